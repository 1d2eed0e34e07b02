// Files as every program writes them, and the questions asked before: where
// a path really leads, whether an output would land on or inside an input,
// whether what stands at an output's name may be replaced. And a guard for
// memory-mapped inputs that shrink while a run reads them. (docs/robustness.md)
#ifndef FILES_H
#define FILES_H

#include <stddef.h>

#include "common.h"

// ----------------------------------------------------------------------------
// paths

// The absolute path `path` leads to, symlinks resolved (realpath); for a
// path that does not exist yet, its existing folders resolved and the rest
// kept as given. Returns 0, or -1 with the reason in err.
int path_resolve(const char *path, char *out, size_t cap, Error *err);

// 1 when `out` leads to `in` itself or inside the folder `in` (both resolved
// as above: a symlink to the data folder is the data folder), 0 when not, -1
// when either cannot be resolved (message in err).
int path_within(const char *out, const char *in, Error *err);

// ----------------------------------------------------------------------------
// outputs
//
// The rule: no output follows a symlink at its final name (or at its .tmp),
// replaces a device, a FIFO or a folder, or removes what this program did
// not write. A writer whose output name the user picks (exports, tokenize
// --out) also asks, before it writes, whether an existing regular file there
// is one of ours (it parses as that format at its exact size).

// What stands at `path`, an output about to be replaced: nothing or a regular
// file is 0; a symlink, device, FIFO, socket or folder is -1 with "PATH:
// exists and is a symlink: not replaced (remove it or give another name)".
int output_check(const char *path, Error *err);

// An output name the user picked (an export, tokenize --out): absent, or a
// regular file that `ours` (that format's loader, told ctx) accepts whole;
// otherwise "PATH: exists and is not WHAT (REASON): not replaced (remove it
// or give another name)". A symlink or device there as output_check says.
typedef int (*OursFn)(const char *path, void *ctx, Error *err);
int output_check_ours(const char *path, const char *what, OursFn ours, void *ctx, Error *err);

// The same for a temporary name (PATH.tmp): a regular file there is a
// temporary a crashed run left, and is removed; anything else is refused.
int output_clear_tmp(const char *tmp, Error *err);

// A new file at `path` for writing ("wb"), after output_clear_tmp(path):
// O_CREAT | O_EXCL | O_NOFOLLOW, so nothing is written through a name that
// something else took in between.
FILE *create_fresh(const char *path, Error *err);

// Writes `n` byte chunks to path atomically (temp file, fsync, rename, fsync
// dir), after output_check(path) and output_clear_tmp(PATH.tmp).
typedef struct {
    const void *p;
    size_t n;
} Chunk;
int write_file_atomic(const char *path, const Chunk *chunks, int n, Error *err);
// fsyncs the folder holding path, so that a rename, link or unlink in it
// survives a crash. Returns 0 or -1 (errno set).
int fsync_parent_dir(const char *path);

// ----------------------------------------------------------------------------
// mapped inputs

// A memory-mapped file that shrinks under a run (truncated, or rewritten in
// place) turns the next read of a lost page into SIGBUS, which would kill the
// process with no word. While a mapping is guarded, SIGBUS inside it prints
// "PROG: PATH: the file shrank while it was being read: stopped (nothing
// written since the last save is lost; files saved before are intact)" and
// exits 1; SIGBUS elsewhere keeps its default action. Signal handlers see only
// global state, so the guarded mappings live in a small process-wide table
// (MAP_GUARD_MAX entries; a mapping past that is simply not guarded).
#define MAP_GUARD_MAX 64
void map_guard_add(const void *p, size_t n, const char *path);
void map_guard_remove(const void *p);

#endif
