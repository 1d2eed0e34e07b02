// realpath is X/Open
#define _XOPEN_SOURCE 700
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ----------------------------------------------------------------------------
// paths

// realpath of the whole path when it exists; otherwise the resolved folder
// and the final name as given (recursively, for folders a run will create).
int path_resolve(const char *path, char *out, size_t cap, Error *err) {
    size_t n = strlen(path);
    if (n == 0) return err_set(err, "an empty path");
    if (n >= PATH_MAX) return err_set(err, "%.200s...: path too long", path);
    char head[PATH_MAX], real[PATH_MAX];
    if (realpath(path, real)) {
        if (strlen(real) >= cap) return err_set(err, "%s: path too long", path);
        strcpy(out, real);
        return 0;
    }
    if (errno != ENOENT) return err_set(err, "%s: %s", path, strerror(errno));
    memcpy(head, path, n + 1);
    while (n > 1 && head[n - 1] == '/') head[--n] = '\0'; // "dir/" is "dir"
    char *slash = strrchr(head, '/');
    const char *dir = slash == head ? "/" : slash ? (*slash = '\0', head) : ".";
    const char *base = slash ? slash + 1 : head;
    if (!strcmp(base, ".") || !strcmp(base, "..")) // "missing/..": no name to keep as given
        return err_set(err, "%s: %s", path, strerror(ENOENT));
    if (!realpath(dir, real)) {
        // a folder that does not exist yet (train_llama --out a/b/c makes it): resolve its parent
        if (errno != ENOENT || !slash) return err_set(err, "%s: %s", dir, strerror(errno));
        if (path_resolve(dir, real, sizeof real, err)) return -1;
    }
    int k = snprintf(out, cap, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base);
    if (k < 0 || (size_t)k >= cap) return err_set(err, "%s: path too long", path);
    return 0;
}

int path_within(const char *out, const char *in, Error *err) {
    char a[PATH_MAX], b[PATH_MAX];
    if (path_resolve(out, a, sizeof a, err) || path_resolve(in, b, sizeof b, err)) return -1;
    size_t nb = strlen(b);
    return !strcmp(a, b) || (!strncmp(a, b, nb) && (a[nb] == '/' || !strcmp(b, "/")));
}

// ----------------------------------------------------------------------------
// outputs

// lstat's verdict on an output name: 1 absent, 0 a regular file, -1 anything
// else (message in err).
static int output_stat(const char *path, Error *err) {
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT) return 1;
        return err_set(err, "%s: cannot check: %s", path, strerror(errno));
    }
    if (S_ISREG(st.st_mode)) return 0;
    return err_set(err, "%s: exists and is %s: not replaced (remove it or give another name)", path,
                   file_kind(st.st_mode));
}

int output_check(const char *path, Error *err) { return output_stat(path, err) < 0 ? -1 : 0; }

int output_check_ours(const char *path, const char *what, OursFn ours, void *ctx, Error *err) {
    int rc = output_stat(path, err);
    if (rc) return rc < 0 ? -1 : 0;
    Error why = {{0}};
    if (!ours(path, ctx, &why)) return 0;
    return err_set(err, "%s: exists and is not %s (%s): not replaced (remove it or give another name)", path, what,
                   why.msg);
}

int output_clear_tmp(const char *tmp, Error *err) {
    int rc = output_stat(tmp, err);
    if (rc < 0) return -1;
    if (rc == 0 && unlink(tmp) && errno != ENOENT)
        return err_set(err, "%s: cannot remove this stale temporary: %s", tmp, strerror(errno));
    return 0;
}

FILE *create_fresh(const char *path, Error *err) {
    if (output_clear_tmp(path, err)) return NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0666);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    if (!f) {
        err_set(err, "%s: cannot create: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
    }
    return f;
}

int fsync_parent_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

// Test hook for the kill test in test/run_tests.sh: with the environment
// variable LLAMA_TEST_WRITE_DELAY_MS=N, every atomic write sleeps N ms after
// its first chunk (the temp file is then partial) and again before the rename
// (the temp file complete, the old file still in place), so that SIGKILLs land
// inside writes. Unset (normal use), it does nothing.
static void test_write_delay(FILE *f) {
    static long ms = -1;
    if (ms < 0) {
        const char *s = getenv("LLAMA_TEST_WRITE_DELAY_MS");
        ms = s ? strtol(s, NULL, 10) : 0;
        if (ms < 0 || ms > 10000) ms = 0;
    }
    if (!ms) return;
    fflush(f);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int write_file_atomic(const char *path, const Chunk *chunks, int n, Error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return err_set(err, "%s: path too long", path);
    if (output_check(path, err)) return -1; // the final name: never a symlink, device or folder replaced
    FILE *f = create_fresh(tmp, err);
    if (!f) return -1;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        // an empty chunk may be NULL (no embedded tokenizer), which fwrite must not see
        ok = !chunks[i].n || fwrite(chunks[i].p, 1, chunks[i].n, f) == chunks[i].n;
        if (i == 0) test_write_delay(f);
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (ok) test_write_delay(f);
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) saved = errno;
        remove(tmp);
        return err_set(err, "%s: write failed: %s (what was on disk is unchanged)", path, strerror(saved));
    }
    fsync_parent_dir(path); // makes the rename durable; best effort
    return 0;
}

// ----------------------------------------------------------------------------
// mapped inputs

// Process-wide, because a signal handler sees nothing else. Each entry keeps
// its message composed in advance: the handler may only call write and _exit.
typedef struct {
    const char *lo, *hi;
    char msg[512];
    size_t len;
} Guarded;
static Guarded guarded[MAP_GUARD_MAX];
static volatile sig_atomic_t guard_installed;
static char guard_prog[64]; // the program's name, read when the handler is installed

static void on_sigbus(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    const char *a = si->si_addr;
    for (int i = 0; i < MAP_GUARD_MAX; i++)
        if (guarded[i].lo && a >= guarded[i].lo && a < guarded[i].hi) {
            ssize_t w = write(STDERR_FILENO, guarded[i].msg, guarded[i].len);
            (void)w;
            _exit(1);
        }
    signal(sig, SIG_DFL); // not ours: the default action when the fault repeats
}

// The program's name for messages (argv[0]'s last part, from
// /proc/self/cmdline), read once, before any signal. Not /proc/self/comm: a
// program that re-executes itself through /proc/self/exe (threads.h) is
// "exe" there.
static void program_name(char *out, size_t cap) {
    char arg0[256] = "";
    snprintf(out, cap, "error");
    FILE *f = fopen("/proc/self/cmdline", "r"); // a kernel file, never a user's path
    if (!f) return;
    size_t n = fread(arg0, 1, sizeof arg0 - 1, f);
    fclose(f);
    arg0[n] = '\0'; // the first argument ends at its NUL
    const char *slash = strrchr(arg0, '/');
    const char *name = slash ? slash + 1 : arg0;
    size_t k = strlen(name) < cap ? strlen(name) : cap - 1; // cut to fit, knowingly
    if (k) memcpy(out, name, k), out[k] = '\0';
}

void map_guard_add(const void *p, size_t n, const char *path) {
    if (!p || !n) return;
    if (!guard_installed) {
        program_name(guard_prog, sizeof guard_prog);
        struct sigaction sa = {0};
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        guard_installed = sigaction(SIGBUS, &sa, NULL) == 0;
    }
    for (int i = 0; i < MAP_GUARD_MAX; i++)
        if (!guarded[i].lo) {
            Guarded *g = &guarded[i];
            int k = snprintf(g->msg, sizeof g->msg, "%s: %s: the file shrank while it was being read: stopped "
                             "(what was saved before is intact)\n", guard_prog, path);
            g->len = k < 0 ? 0 : (size_t)k < sizeof g->msg ? (size_t)k : sizeof g->msg - 1;
            g->hi = (const char *)p + n;
            g->lo = p; // last: the handler tests lo
            return;
        }
}

void map_guard_remove(const void *p) {
    for (int i = 0; i < MAP_GUARD_MAX; i++)
        if (guarded[i].lo == p) guarded[i].lo = NULL;
}
