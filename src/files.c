// realpath is X/Open
#define _XOPEN_SOURCE 700
#include "files.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

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
    if (!strcmp(base, ".") || !strcmp(base, "..") || !*base) { // resolve the whole path then
        if (!realpath(path, real)) return err_set(err, "%s: %s", path, strerror(errno));
        if (strlen(real) >= cap) return err_set(err, "%s: path too long", path);
        strcpy(out, real);
        return 0;
    }
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
