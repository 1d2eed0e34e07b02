// log.csv, the run's record (a row per step; format: docs/format.md): its
// columns and rows as the trainer writes them, and on resume the rows a
// resumed run keeps, checked against its columns and moved under them by
// name. Nothing here knows the trainer's run beyond what it is given: the
// model (its columns and scalars), each row's numbers, the header, the
// checkpoint's step, the paths.
#ifndef RUNLOG_H
#define RUNLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "model.h"

// ----------------------------------------------------------------------------
// writing

// The header line (with its "\n"): step, tokens, train_loss, val_loss, lr,
// grad_norm, ms, tok_s, elapsed_s; then per site (PREFIX_attn_0.., ffn_0..,
// final) the norm's learnable scalars (alpha_, s_), for the saturating kinds
// the fraction of inputs in saturation (sat_), the residual gates (gate_,
// no final); then the norm inputs' std (std_) and val_bpb.
void log_header(FILE *f, const Model *m);

typedef struct {
    int64_t step, tokens;
    double train_loss, grad_norm, ms, tok_s, elapsed; // has_train: a training step's
    float lr;
    double val_loss, val_bpb; // has_val: an evaluation's (the first row has no training step)
    int has_train, has_val;
    const double *stds; // the evaluation's norm-input std (2L+1), then fraction saturated (2L+1)
} LogRow;

// One row under log_header's columns, flushed: the cells of what the row
// lacks (a training step, an evaluation) empty; the norm's scalars and
// gates read from m's weights now.
void log_row(FILE *f, const Model *m, const LogRow *x);

// ----------------------------------------------------------------------------
// kept on resume

// Called with each kept row after the header (no line end): the trainer
// takes the last and best validation loss from them.
typedef void (*KeptRowFn)(void *ctx, const char *row, size_t len);

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
int log_keep(const char *dst, const char *src, const char *header, int64_t step, KeptRowFn on_row, void *ctx,
             FILE *notes, Error *err);

#endif
