// File-system questions every program asks before it writes: where a path
// really leads (symlinks in its folders resolved), and whether an output
// would land on or inside one of the inputs.
#ifndef FILES_H
#define FILES_H

#include <stddef.h>

#include "common.h"

// The absolute path `path` leads to, symlinks resolved (realpath); for a
// path that does not exist yet, its existing folders resolved and the rest
// kept as given. Returns 0, or -1 with the reason in err.
int path_resolve(const char *path, char *out, size_t cap, Error *err);

// 1 when `out` leads to `in` itself or inside the folder `in` (both resolved
// as above: a symlink to the data folder is the data folder), 0 when not, -1
// when either cannot be resolved (message in err).
int path_within(const char *out, const char *in, Error *err);

#endif
