// llama2.c checkpoints (docs/format.md, "llama2.c files"): the legacy format
// (version 0: seven int32, float32 weights, RoPE tables) and the "ak42"
// version 1 export, read into our Model as an RMSNorm model (eps 1e-5, RoPE
// theta 10000, our tensor order), so the forward pass is the trainer's own.
// The exporter writes an RMSNorm model in the legacy format, which llama2.c's
// run.c reads.
#ifndef LLAMA2C_H
#define LLAMA2C_H

#include "common.h"
#include "model.h"

#define AK42_MAGIC 0x616b3432u // "ak42" in llama2.c's export.py
// llama2.c's run.c fixes these (its files do not hold them): a model whose
// own differ cannot be exported to it (export.c)
#define LLAMA2C_EPS 1e-5f
#define LLAMA2C_THETA 10000.0f

typedef enum { FMT_LDYT, FMT_LLAMA2C_LEGACY, FMT_LLAMA2C_AK42 } ModelFormat;

const char *model_format_name(ModelFormat f);

// Reads a model in any format we know, told apart by the first bytes: our
// model or checkpoint ("LDYT"), llama2.c's version 1 ("ak42"), otherwise
// llama2.c's legacy header. Every field and the exact file size are checked.
int model_load_any(Model *m, const char *path, ModelFormat *format, Error *err);

// 0 when path is a valid llama2.c legacy model (an OursFn of files.h).
int llama2c_probe(const char *path, void *ctx, Error *err);

#endif
