// Model and checkpoint files (docs/format.md): a 256-byte header with the
// whole config, then the tensors: float32, or in a model file bf16 (header
// field dtype). Loaders validate every header field and
// the exact file size and return an error instead of exiting; writers go
// through a temporary file, fsync and rename, so a crash never leaves a
// half-written file behind.
#ifndef MODELIO_H
#define MODELIO_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "files.h" // write_file_atomic
#include "model.h"

#define MODEL_MAGIC 0x5459444Cu // "LDYT"
#define MODEL_VERSION 3 // versions 1 (before the norm zoo) and 2 (before --mlp, --alpha-final) still load
#define HEADER_BYTES 256
enum { KIND_MODEL = 1, KIND_CHECKPOINT = 2 };

#define TRAIN_BLOCK_BYTES 64
#define RUN_BLOCK_SLOTS 128 // the trainer's settings: 128 int64 slots (1024 bytes)

typedef struct {
    int64_t step;       // optimizer steps completed
    uint64_t rng_state; // data-sampling stream
    int64_t tokens;     // training tokens seen
    double elapsed_s;   // training seconds so far (evaluation excluded)
    // The trainer's data record (data.h; docs/format.md), stored after the
    // tokenizer: written as given; read into a malloc'd copy (caller frees),
    // NULL in a checkpoint from before it existed.
    unsigned char *data_record;
    size_t data_record_bytes;
} TrainState;
#define DATA_RECORD_MAX_BYTES (64 << 20)

// Writes the model alone (kind 1), its weights in fp32.
int model_save(const Model *m, const char *path, Error *err);
// The same with the weights stored as dtype (DTYPE_*, header field dtype):
// bf16 rounds every tensor to nearest even, and refuses (naming the tensor) a
// finite weight that would become inf.
int model_save_as(const Model *m, int dtype, const char *path, Error *err);
// Reads a model file (fp32 or bf16 weights), or the model inside a checkpoint; creates m.
int model_load(Model *m, const char *path, Error *err);

// Every loader's last check of n_params values p (the weights, or an AdamW
// moment, nonneg for v): "PATH: WHAT: tensor NAME holds a non-finite value".
int model_check_values(const Model *m, const float *p, int nonneg, const char *path, const char *what,
                       Error *err);

// mom1, mom2: AdamW moments (n_params each). run: RUN_BLOCK_SLOTS values.
int checkpoint_save(const Model *m, const float *mom1, const float *mom2, const TrainState *st,
                    const int64_t *run, const char *path, Error *err);
// Creates m and allocates *mom1, *mom2 (caller frees).
int checkpoint_load(Model *m, float **mom1, float **mom2, TrainState *st, int64_t *run,
                    const char *path, Error *err);

// 0 when path is a whole model file (kind 1) of this project (an OursFn of
// files.h: an export may replace it).
int model_probe(const char *path, void *ctx, Error *err);

// The settings a model or checkpoint file records, without its tensors: the
// config from its (validated) header, the kind, and for a checkpoint its run
// block into run (RUN_BLOCK_SLOTS values; the trainer interprets them) and
// its data record into a malloc'd *data_record (NULL if none; caller frees).
int settings_read(const char *path, ModelConfig *c, int *kind, int64_t *run, unsigned char **data_record,
                  size_t *data_bytes, Error *err);

#endif
