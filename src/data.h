// Text data for training: the vocabulary behind one small interface (bytes,
// or llama2.c's sentencepiece vocabulary for its models), and the dataset with its split,
// random training windows and fixed validation windows.
#ifndef DATA_H
#define DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "bpe.h"
#include "rng.h"
#include "sptok.h"

// The vocabulary behind encode/decode: byte-level (256 tokens, token = byte
// value), a byte-level BPE vocabulary (bpe.h; this project's models with
// --vocab-size > 256) or a llama2.c tokenizer (sptok.h). The caller loads a
// BPE or llama2.c vocabulary and keeps it alive while the Tokenizer points at it.
typedef enum { TOK_BYTES, TOK_SP, TOK_BPE } TokenizerKind;

typedef struct {
    TokenizerKind kind;
    int vocab_size;
    const SpTok *sp;        // TOK_SP
    const Bpe *bpe;         // TOK_BPE
    unsigned char raw[256]; // TOK_BYTES: raw[b] == b, what tokens decode to
} Tokenizer;

Tokenizer tokenizer_bytes(void);
Tokenizer tokenizer_sp(const SpTok *sp);
Tokenizer tokenizer_bpe(const Bpe *bpe);
// Room `tokens` needs for a text of n bytes (llama2.c adds BOS and a space).
size_t tokenizer_max_tokens(const Tokenizer *tk, size_t n);
// Bytes: one token per byte. BPE: bpe_encode. llama2.c: BOS, then the pieces of " " + text.
int tokenizer_encode(const Tokenizer *tk, const unsigned char *text, size_t n, int *tokens, size_t *n_tokens,
                     Error *err);
// The bytes `token` prints as when it follows `prev`; returns their count.
size_t tokenizer_decode(const Tokenizer *tk, int prev, int token, const unsigned char **bytes);
// Whether generation ends at this token (llama2.c's BOS and EOS; bytes: never).
int tokenizer_is_stop(const Tokenizer *tk, int token);

// Reads a whole file into memory (regular files only), followed by a NUL
// byte not counted in *n. Caller frees *data.
int read_file(const char *path, unsigned char **data, size_t *n, Error *err);
// Reads a text file and encodes it: *tokens (caller frees) and their count.
int encode_file(const char *path, const Tokenizer *tk, int **tokens, size_t *n_tokens, Error *err);

// The training text in memory, read once for both the vocabulary and the
// dataset, with its FNV-1a fingerprint (what checkpoints and caches key on).
typedef struct {
    const char *path;
    unsigned char *bytes; // NUL-terminated (read_file)
    size_t n;
    uint64_t fingerprint;
} TextFile;
int text_read(TextFile *t, const char *path, Error *err);
void text_free(TextFile *t);

typedef struct {
    int *tokens;
    size_t n_tokens, n_train;     // tokens [0, n_train) train, [n_train, n_tokens) validate
    uint64_t fingerprint;         // FNV-1a of the file's bytes
    double val_bytes_per_token;   // text bytes per token in the validation split (bits per byte)
    char note[1024];              // what happened to the token cache (for the caller to print), or ""
} Dataset;

// The first 90% of the tokens train, the last 10% validate; both must hold
// at least one window of seq_len + 1 tokens. With cache_path (BPE only), the
// tokens come from that token cache when it matches the text and the
// tokenizer; otherwise they are encoded and the cache is (re)written. A
// corrupt cache is an error; a cache that cannot be written is only a note.
int dataset_load(Dataset *ds, const TextFile *text, const Tokenizer *tk, int seq_len, const char *cache_path,
                 Error *err);

// The BPE vocabulary of vocab_size tokens for the text: read from
// vocab_path when that file was trained on this very text (size and FNV-1a)
// with this size, else trained and written there (a write failure is only a
// note). A vocab_path that is not a valid tokenizer file is an error.
int bpe_for_text(Bpe *b, const TextFile *text, int vocab_size, const char *vocab_path, char *note, size_t note_cap,
                 Error *err);
void dataset_free(Dataset *ds);
// Random training windows, counter-based: row g of step `step` (g counts the
// step's rows over all micro-batches and all processes) is drawn from its own
// stream rng_at(key, step, g). So a row's window does not depend on how the
// rows are split into micro-batches or across processes, and the key and the
// step are the whole sampling state. Fills rows row0 .. row0+B-1: inputs
// (B,T), targets (B,T) = inputs shifted by one.
void dataset_train_rows(const Dataset *ds, uint64_t key, int64_t step, int64_t row0, int B, int T,
                        int *inputs, int *targets);
// Validation batch `index` of `n_batches` of `global_B` rows each: fixed
// windows spread evenly over the validation split (the same in every run with
// the same global_B and T); fills its rows row0 .. row0+B-1 (a process's share).
void dataset_val_rows(const Dataset *ds, int index, int n_batches, int64_t global_B, int64_t row0, int B, int T,
                      int *inputs, int *targets);

#endif
