// log.csv on resume: the rows a resumed run keeps, checked against its
// columns and moved under them by name. The trainer writes the log
// (train_llama.c's log_header and log_row); this module only reads and keeps
// an existing one, and knows nothing of the run beyond what it is given:
// its header, the checkpoint's step, the paths. (Format: docs/format.md.)
#ifndef RUNLOG_H
#define RUNLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

// Called with each kept row after the header (no line end): the trainer
// takes the last and best validation loss from them.
typedef void (*LogRowFn)(void *ctx, const char *row, size_t len);

// Keeps the log at src (the checkpoint's folder) up to `step`, the
// checkpoint's, and writes it atomically to dst (src itself, or the log of
// another --out): its complete rows up to that step, each passed to on_row,
// under `header` (this run's header line, with its "\n"). Later rows are
// redone by the resumed run, so the log reads as one uninterrupted run; a
// last line without a line end is a row a crash cut short. A log whose
// header is an older build's (fewer columns) has its cells moved under
// this one's by column name; a header or row another tool changed is refused,
// naming the column or line. Notes (rows dropped, CRLF line ends read as LF)
// go to `notes` (NULL: none). Returns 0, or -1 with the message in err (dst
// is then unchanged).
int log_keep(const char *dst, const char *src, const char *header, int64_t step, LogRowFn on_row, void *ctx,
             FILE *notes, Error *err);

#endif
