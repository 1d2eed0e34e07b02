// Shared by the libFuzzer targets: the loaders take a path, libFuzzer gives
// bytes. An anonymous memory file (memfd_create) reached through
// /proc/self/fd keeps every input off the disk, is a regular file (the loaders
// refuse anything else) and needs no clean-up. One file serves every input.
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../src/common.h"

// The input as a file; returns its path (valid until the next call).
static inline const char *fuzz_file(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz input file");
        abort();
    }
    return path;
}

// "Bad input gets a clear error": a refusal must say something, on one line,
// naming the file. Anything else is a finding (trap: libFuzzer reports it).
static inline void fuzz_check_error(const Error *err, const char *path) {
    if (!err->msg[0] || strchr(err->msg, '\n') || strncmp(err->msg, path, strlen(path))) {
        fprintf(stderr, "bad error message: '%s'\n", err->msg);
        __builtin_trap();
    }
}

#endif
