// The run folder (--out): the names a run writes there, the checks made
// before it writes anything (an output on an input, another run's results,
// a second live trainer), and the numbered checkpoints --keep leaves beside
// checkpoint.bin. Every function takes the folder's path: nothing here knows
// the trainer's settings. (docs/robustness.md, docs/usage.md)
#ifndef RUNDIR_H
#define RUNDIR_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

// Room for a path in the run folder: a 4095-byte folder name and a file's.
#define RUN_PATH_MAX 4200

// ----------------------------------------------------------------------------
// paths and the folder

// DIR/NAME into dst (cap bytes); -1 with "DIR: path too long" when it does
// not fit (never act on a truncated name).
int run_path(char *dst, size_t cap, const char *dir, const char *name, Error *err);

// The folder, made as mkdir -p makes it; -1 when a part cannot be created or
// the folder is not writable, naming that part.
int run_dir_make(const char *out, Error *err);

// OUT/.lock, locked (fcntl) for as long as the returned fd stays open: a
// second trainer on the folder is refused, naming the first's pid. Returns
// the fd (closing it, or the process's end however it ends, drops the lock),
// or -1 with the message in err.
int run_dir_lock(const char *out, Error *err);

// ----------------------------------------------------------------------------
// checks before the first write

// Refuses (-1, message in err) an --out on or inside an input, or an input
// that is one of the files the run writes in --out (except `resume`, the
// checkpoint a resume replaces by design). data and val_data are data specs
// (a file, a folder or a comma list); val_data and resume may be NULL. The
// messages leave room for the caller's " (see --help)" (at most 410 bytes).
int run_dir_check_inputs(const char *out, const char *data, const char *val_data, const char *resume, Error *err);

// Refuses (-1, message in err) a folder where the run would overwrite what
// is not its own: a symlink, device or folder at one of its file names, a
// checkpoint-STEP.bin this trainer did not write when keep > 1 (--keep
// replaces and deletes them), or another run's results (a checkpoint or a
// model) unless resume_dir, the folder of the checkpoint being resumed, is
// this one.
int run_dir_check_free(const char *out, int64_t keep, const char *resume_dir, Error *err);

// ----------------------------------------------------------------------------
// numbered checkpoints (--keep N > 1)

// OUT/checkpoint-STEP.bin into path (RUN_PATH_MAX bytes), made free for a
// new checkpoint: a checkpoint this trainer wrote there is removed, anything
// else is refused (-1, message in err).
int numbered_slot(char *path, const char *out, int64_t step, Error *err);

// Deletes the numbered checkpoints at or before `step`, except the newest
// `keep`. Later ones (a run resumed from an older checkpoint) are left alone:
// the run overwrites them as it gets there. Failures only warn on stderr: the
// run and its newest checkpoints are intact either way.
void numbered_prune(const char *out, int64_t step, int64_t keep);

#endif
