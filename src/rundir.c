#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"   // path_resolve, path_within, output_check
#include "modelio.h" // MODEL_MAGIC: how a checkpoint of ours starts

// ----------------------------------------------------------------------------
// paths and the folder

int run_path(char *dst, size_t cap, const char *dir, const char *name, Error *err) {
    if (snprintf(dst, cap, "%s/%s", dir, name) >= (int)cap) return err_set(err, "%s: path too long", dir);
    return 0;
}

int run_dir_make(const char *out, Error *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", out) >= (int)sizeof buf) return err_set(err, "%s: path too long", out);
    for (char *p = buf + 1; *p; p++) { // mkdir -p
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST) return err_set(err, "%s: cannot create: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return err_set(err, "%s: cannot create: %s", buf, strerror(errno));
    if (access(buf, W_OK)) return err_set(err, "%s: not writable", buf);
    return 0;
}

// The kernel drops the lock when its holder ends however it ends, so the
// lock file a killed run leaves behind blocks nothing.
int run_dir_lock(const char *out, Error *err) {
    char path[RUN_PATH_MAX];
    if (run_path(path, sizeof path, out, ".lock", err)) return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0666);
    struct stat st;
    if (fd < 0) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, "%s: not a regular file", path);
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (!fcntl(fd, F_SETLK, &fl)) return fd;
    int e = errno;
    struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    long pid = fcntl(fd, F_GETLK, &who) || who.l_type == F_UNLCK ? 0 : (long)who.l_pid;
    close(fd);
    if (e == EACCES || e == EAGAIN)
        return err_set(err, "%s: another train_llama (pid %ld) is running in this folder; wait for it to end "
                       "or choose another --out", out, pid);
    return err_set(err, "%s: cannot lock: %s", path, strerror(e));
}

// ----------------------------------------------------------------------------
// the names a run writes

// The step of a file named checkpoint-STEP.bin, or -1.
static long long numbered_step(const char *name) {
    const char *p = name + strlen("checkpoint-");
    char *end;
    if (strncmp(name, "checkpoint-", strlen("checkpoint-")) || *p < '0' || *p > '9') return -1;
    long long step = strtoll(p, &end, 10);
    return strcmp(end, ".bin") ? -1 : step;
}

// A numbered checkpoint this trainer may replace or delete: a regular file
// (not a symlink, device or FIFO) that starts as our files do ("LDYT").
static int numbered_ours(const char *path) {
    struct stat st;
    if (lstat(path, &st) || !S_ISREG(st.st_mode)) return 0;
    Error e;
    size_t size;
    FILE *f = open_regular(path, &size, &e);
    uint32_t magic = 0;
    int ok = f && fread(&magic, 4, 1, f) == 1 && magic == MODEL_MAGIC;
    if (f) fclose(f);
    return ok;
}

// The names a run writes in its folder, each also as NAME.tmp (write_file_atomic),
// besides checkpoint-STEP.bin (--keep).
static const char *const RUN_FILES[] = {"log.csv", "model.bin", "checkpoint.bin", "result.txt", "config.txt", ".lock"};
#define N_RUN_FILES (sizeof RUN_FILES / sizeof RUN_FILES[0])

static int run_file(const char *name) {
    char base[256];
    size_t n = strlen(name);
    if (n >= sizeof base) return 0;
    memcpy(base, name, n + 1);
    if (n > 4 && !strcmp(base + n - 4, ".tmp")) base[n - 4] = 0;
    for (size_t i = 0; i < N_RUN_FILES; i++)
        if (!strcmp(base, RUN_FILES[i])) return 1;
    return numbered_step(base) >= 0;
}

// ----------------------------------------------------------------------------
// the output folder against the inputs

// 1 when `in` is one of run_file's names in the folder out: its folder is
// out (resolved) and its own name, as given, is ours (a symlink there would
// be replaced by the run's file, not followed). -1 when a path cannot be resolved.
static int collides(const char *out, const char *in, Error *err) {
    char dir[4096], a[4096], b[4096];
    size_t n = strlen(in);
    if (n >= sizeof dir) return err_set(err, "%s: path too long", in);
    memcpy(dir, in, n + 1);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
    char *slash = strrchr(dir, '/');
    if (!run_file(slash ? slash + 1 : dir)) return 0;
    const char *folder = !slash ? "." : slash == dir ? "/" : (*slash = 0, dir);
    if (path_resolve(folder, a, sizeof a, err) || path_resolve(out, b, sizeof b, err)) return -1;
    return !strcmp(a, b);
}

// One input path against --out: refused when --out is it or lies inside it,
// or when it is a file the run writes there (except `own`, the checkpoint a
// resume replaces by design). A path that cannot be resolved is left to
// whoever opens it, which then fails with its own message. (Each path is cut
// to 150 bytes: the message stays within the 410 bytes the header promises.)
static int check_out_path(const char *out, const char *in, const char *flag, int own, Error *err) {
    Error e;
    int inside = path_within(out, in, &e), same = inside == 1 && path_within(in, out, &e) == 1;
    if (inside == 1)
        return err_set(err, "--out %.150s %s the input %.150s (%s): the run would write into its own input; "
                       "choose an --out outside it", out, same ? "is" : "lies inside", in, flag);
    if (own || collides(out, in, &e) != 1) return 0;
    return err_set(err, "%.150s (%s): a file the run writes in --out %.150s; move it or choose another --out", in,
                   flag, out);
}

// Every path a data spec names, as text_open reads it: the spec itself when
// it names an existing file or folder, else each file of its comma list
// (empty names are text_open's to report).
static int check_out_spec(const char *out, const char *spec, const char *flag, Error *err) {
    struct stat st;
    if (!stat(spec, &st) || !strchr(spec, ',')) return *spec ? check_out_path(out, spec, flag, 0, err) : 0;
    char item[4096];
    for (const char *p = spec; *p;) {
        size_t len = strcspn(p, ",");
        int rc = 0;
        if (len && len < sizeof item) {
            memcpy(item, p, len);
            item[len] = 0;
            rc = check_out_path(out, item, flag, 0, err);
        }
        if (rc) return rc;
        p += len + (p[len] == ',');
    }
    return 0;
}

// Refused before anything is written: `--data corp --out corp` would find
// its own files among the data next time, and its resume would not find the
// checkpoint's data. An input in the output folder is fine unless the run
// would overwrite it.
int run_dir_check_inputs(const char *out, const char *data, const char *val_data, const char *resume, Error *err) {
    int rc = check_out_spec(out, data, "--data", err);
    if (!rc && val_data) rc = check_out_spec(out, val_data, "--val-data", err);
    if (!rc && resume) rc = check_out_path(out, resume, "--resume", 1, err);
    return rc;
}

// ----------------------------------------------------------------------------
// the output folder: nothing lost by mistake

static int same_dir(const char *a, const char *b) {
    struct stat x, y;
    return !stat(a, &x) && !stat(b, &y) && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

// A fresh run must not overwrite another run's results, nor may a run
// resumed into another --out.
int run_dir_check_free(const char *out, int64_t keep, const char *resume_dir, Error *err) {
    // What stands at the run's file names must be a regular file (or nothing):
    // said now, not after hours of training when the model is written.
    for (size_t i = 0; i < N_RUN_FILES; i++) {
        char path[RUN_PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", out, RUN_FILES[i]) >= (int)sizeof path - 4)
            return err_set(err, "%s: path too long", out);
        if (output_check(path, err) || output_check(strcat(path, ".tmp"), err)) return -1;
    }
    DIR *d = keep > 1 ? opendir(out) : NULL; // --keep replaces and deletes checkpoint-STEP.bin
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[RUN_PATH_MAX];
        if (numbered_step(e->d_name) < 0 || snprintf(path, sizeof path, "%s/%s", out, e->d_name) >= RUN_PATH_MAX ||
            numbered_ours(path))
            continue;
        closedir(d);
        return err_set(err, "%s: is not a checkpoint this trainer wrote, and --keep would replace or delete it: "
                       "move it away or choose another --out", path);
    }
    if (d) closedir(d);
    if (resume_dir && same_dir(out, resume_dir)) return 0;
    char ckpt[RUN_PATH_MAX], model[RUN_PATH_MAX];
    if (run_path(ckpt, sizeof ckpt, out, "checkpoint.bin", err) || run_path(model, sizeof model, out, "model.bin", err))
        return -1;
    if (!access(ckpt, F_OK) || !access(model, F_OK))
        return err_set(err, "%s: already holds a run; continue it with --resume %s, or choose another --out", out,
                       ckpt);
    return 0;
}

// ----------------------------------------------------------------------------
// numbered checkpoints

// OUT/checkpoint-STEP.bin into path (RUN_PATH_MAX bytes); -1 if it does not
// fit (never act on a truncated name).
static int numbered_path(char *path, const char *out, long long step) {
    return snprintf(path, RUN_PATH_MAX, "%s/checkpoint-%lld.bin", out, step) >= RUN_PATH_MAX ? -1 : 0;
}

int numbered_slot(char *path, const char *out, int64_t step, Error *err) {
    if (numbered_path(path, out, step)) return err_set(err, "%s: path too long", out);
    struct stat st;
    if (lstat(path, &st)) return 0;
    // something stands there (a dangling symlink too): replaced only when ours
    if (!numbered_ours(path))
        return err_set(err, "%s: exists and is not a checkpoint this trainer wrote: not replaced", path);
    if (unlink(path)) return err_set(err, "%s: cannot replace: %s", path, strerror(errno));
    return 0;
}

static int cmp_desc_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x < y) - (x > y);
}

void numbered_prune(const char *out, int64_t step, int64_t keep) {
    DIR *d = opendir(out);
    long long steps[4096];
    size_t n = 0;
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) && n < sizeof steps / sizeof steps[0];) {
        long long s = numbered_step(e->d_name);
        if (s >= 0 && s <= step) steps[n++] = s;
    }
    closedir(d);
    qsort(steps, n, sizeof steps[0], cmp_desc_ll);
    for (size_t i = (size_t)keep; i < n; i++) {
        char path[RUN_PATH_MAX];
        if (!numbered_path(path, out, steps[i]) && numbered_ours(path) && unlink(path) && errno != ENOENT)
            fprintf(stderr, "train_llama: warning: cannot delete %s: %s\n", path, strerror(errno));
    }
}
