// The build's name: the project's version and the commit it was built from
// (build/version.h, which the Makefile writes; "-dirty" when the checkout had
// uncommitted changes, "unknown" outside a git checkout). --version prints it;
// the trainer records it in result.txt, config.txt and every checkpoint.
#ifndef VERSION_H
#define VERSION_H

#define BUILD_NAME_MAX 63 // bytes; a checkpoint keeps 64 with the terminating zero

// "0.9-c9a66bb" or "0.9-c9a66bb-dirty"
const char *build_name(void);
// --version: "PROGRAM BUILD" on stdout. Returns 0, or 1 if stdout failed (said on stderr).
int print_version(const char *program);

#endif
