// llama2.c's tokenizer (tokenizer.bin): a sentencepiece vocabulary of byte
// strings with merge scores. Encoding follows llama2.c's run.c exactly (a
// dummy leading space, UTF-8 characters or raw-byte fallback, then greedy
// merges of the best-scoring adjacent pair) but in O(n log n), so that
// --eval can score whole files. Decoding follows sentencepiece: a piece right
// after BOS loses its leading space, and <0xXX> pieces stand for raw bytes.
//
// File: int32 max_token_length, then per token float32 score, int32 length,
// that many bytes. Only the first vocab_size entries (the model's) are read.
#ifndef SPTOK_H
#define SPTOK_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum { SP_BOS = 1, SP_EOS = 2 };

typedef struct {
    const unsigned char *p;
    uint32_t len;
    int id;
} SpPiece;

typedef struct {
    int vocab_size, max_token_length;
    int file_tokens;        // entries in the whole file (run.c reads only the model's; an
                            // export needs them all to be the model's); -1: a torn entry
    float *scores;          // (vocab_size)
    unsigned char *text;    // every piece's bytes, concatenated
    SpPiece *pieces;        // (vocab_size) by id
    SpPiece *sorted;        // (vocab_size) by bytes, then id: lookup by binary search
    int16_t *byte_value;    // (vocab_size) the raw byte a <0xXX> piece stands for, else -1
    int byte_token[256];    // the token of a raw byte (encoding fallback), -1 if none
    unsigned char raw[256]; // raw[b] == b: what byte pieces decode to
} SpTok;

// Reads the first vocab_size entries of a llama2.c tokenizer file, checking
// every field; errors name the file and the field. Counts the entries after
// them (file_tokens) without reading them.
int sptok_load(SpTok *t, const char *path, int vocab_size, Error *err);
// The vocabulary of this project's byte models in llama2.c's format: token b
// is the single byte b, except token 0, "<0x00>" (llama2.c's strings cannot hold NUL).
int sptok_bytes(SpTok *t, Error *err);
int sptok_save(const SpTok *t, const char *path, Error *err);
void sptok_free(SpTok *t);

// The token whose piece is exactly these bytes (lowest id), or -1.
int sptok_lookup(const SpTok *t, const unsigned char *s, size_t n);
// BOS, then the pieces of " " + text (just BOS for an empty text). tokens
// must hold n + 2. Fails only when a byte has no piece.
int sptok_encode(const SpTok *t, const unsigned char *text, size_t n, int *tokens, size_t *n_tokens,
                 Error *err);
// The bytes that `token` prints as after `prev`; returns their count.
size_t sptok_decode(const SpTok *t, int prev, int token, const unsigned char **bytes);

#endif
