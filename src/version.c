#include "version.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "../build/version.h" // BUILD_NAME, written by the Makefile

_Static_assert(sizeof BUILD_NAME - 1 <= BUILD_NAME_MAX, "the build name must fit a checkpoint's 64 bytes");

const char *build_name(void) { return BUILD_NAME; }

int print_version(const char *program) {
    Error err;
    printf("%s %s\n", program, BUILD_NAME);
    if (!stream_check(stdout, "stdout", &err)) return 0;
    fprintf(stderr, "%s: %s\n", program, err.msg);
    return 1;
}
