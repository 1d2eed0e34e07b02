// Text data for training: the vocabulary behind one small interface (bytes
// today; a BPE tokenizer can replace it), and the dataset with its split,
// random training windows and fixed validation windows.
#ifndef DATA_H
#define DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "rng.h"

// The vocabulary: today byte-level (256 tokens, token = byte value).
typedef struct {
    int vocab_size;
} Tokenizer;

Tokenizer tokenizer_bytes(void);
// tokens: room for n; returns how many were written.
size_t tokenizer_encode(const Tokenizer *tk, const unsigned char *text, size_t n, int *tokens);
// Writes the bytes of one token into buf (cap >= 16); returns their count.
size_t tokenizer_decode(const Tokenizer *tk, int token, unsigned char *buf, size_t cap);

// Reads a whole file into memory (regular files only), followed by a NUL
// byte not counted in *n. Caller frees *data.
int read_file(const char *path, unsigned char **data, size_t *n, Error *err);

typedef struct {
    int *tokens;
    size_t n_tokens, n_train; // tokens [0, n_train) train, [n_train, n_tokens) validate
    uint64_t fingerprint;     // FNV-1a of the file's bytes
} Dataset;

// The first 90% of the tokens train, the last 10% validate; both must hold
// at least one window of seq_len + 1 tokens.
int dataset_load(Dataset *ds, const char *path, const Tokenizer *tk, int seq_len, Error *err);
void dataset_free(Dataset *ds);
// B random training windows: inputs (B,T), targets (B,T) = inputs shifted by one.
void dataset_train_batch(const Dataset *ds, Rng *rng, int B, int T, int *inputs, int *targets);
// Validation batch `index` of `n_batches`: fixed windows spread evenly over the
// validation split, the same in every run with the same B and T.
void dataset_val_batch(const Dataset *ds, int index, int n_batches, int B, int T, int *inputs, int *targets);

#endif
