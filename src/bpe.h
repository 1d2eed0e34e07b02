// Byte-level BPE tokenizer: training (merge the most frequent adjacent pair,
// counted once per distinct pre-split word and updated incrementally),
// encoding (per word, merges by rank, with a word -> tokens cache), decoding
// (a token is a fixed byte string, so pieces decode the same as the whole),
// the tokenizer file, and the token cache. Formats: docs/format.md.
//
// Pre-split rule (training and encoding both): the text is cut into words,
// and tokens never cross a word boundary. Byte classes: letter (A-Z, a-z and
// every byte >= 0x80, so UTF-8 characters stay inside words), digit, space
// (0x20), newline-like (\n \r \t \v \f) and other (punctuation, controls,
// NUL). A word is a run of one class, except that one space directly before a
// letter, digit or other byte starts the word of that run (" the", " 42",
// " ,"); of a run of spaces before such a byte, all but the last space form a
// word of their own. A word longer than BPE_MAX_TOKEN_BYTES bytes is cut into
// pieces of that length, so no token is longer.
#ifndef BPE_H
#define BPE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define BPE_MAGIC 0x45504242u // "BBPE"
#define BPE_VERSION 1
#define BPE_HEADER_BYTES 32
#define BPE_SPLIT_RULE 1      // the pre-split rule above
#define BPE_MAX_VOCAB 65536   // token ids fit in uint16 (the token cache)
#define BPE_MAX_TOKEN_BYTES 256

#define TOKCACHE_MAGIC 0x4B4F5442u // "BTOK"
#define TOKCACHE_VERSION 2
#define TOKCACHE_HEADER_BYTES 56

typedef struct {
    int vocab_size;                // 256 + n_merges
    int n_merges;
    int32_t *merges;               // (n_merges, 2): token 256 + i is merges[2i] then merges[2i+1]
    uint32_t *tok_off;             // (vocab_size) where each token's bytes start in `bytes`
    uint16_t *tok_len;             // (vocab_size) their count, 1..BPE_MAX_TOKEN_BYTES
    unsigned char *bytes;          // every token's bytes, concatenated
    uint64_t *pair_keys;           // merge lookup: open addressing, key (left << 32 | right) + 1, 0 = empty
    int32_t *pair_ids;             //   -> the merged token
    size_t pair_cap;               //   a power of two
    int32_t *byte_pair;            // (65536) the same for two byte tokens: [l << 8 | r], -1 = none
    uint64_t text_size, text_hash; // fingerprint (size, FNV-1a) of the text it was trained on
    uint64_t checksum;             // FNV-1a of the file's bytes: what a token cache is tied to
    unsigned char *blob;           // the file's bytes (what a model file embeds)
    size_t blob_bytes;
} Bpe;

// Trains vocab_size - 256 merges on text (n bytes). Ties between equally
// frequent pairs go to the lowest (left, right) ids, so the same text and
// size always give the same vocabulary. Fails if the text has fewer distinct
// pairs to merge than asked for.
int bpe_train(Bpe *b, const unsigned char *text, size_t n, int vocab_size, Error *err);
// Called before each merge: merges done, of total.
typedef struct {
    void (*fn)(void *ctx, size_t done, size_t total);
    void *ctx;
} BpeProgress;
// The same, on a sample of a larger text: the vocabulary records text_size and
// text_hash (the whole text's fingerprint, what reuse checks) instead of the
// sample's. progress may be NULL.
int bpe_train_as(Bpe *b, const unsigned char *text, size_t n, int vocab_size, uint64_t text_size, uint64_t text_hash,
                 const BpeProgress *progress, Error *err);
// Parses and validates a tokenizer file held in memory; `name` (a path) starts errors.
int bpe_parse(Bpe *b, const unsigned char *data, size_t n, const char *name, Error *err);
int bpe_load(Bpe *b, const char *path, Error *err);
int bpe_save(const Bpe *b, const char *path, Error *err);
void bpe_free(Bpe *b);

// Cuts text into words by the pre-split rule: returns the length of the word at text[0..n), n > 0.
size_t bpe_word_len(const unsigned char *text, size_t n);
// The first position >= from (0 stays 0) where a word starts whatever came
// before it: a newline-like byte after another class; n if none. Encoding
// text[0..p) and text[p..n) apart gives the tokens of the whole.
size_t bpe_split_point(const unsigned char *text, size_t n, size_t from);
// Encodes n bytes; tokens must hold n (a token is at least one byte).
int bpe_encode(const Bpe *b, const unsigned char *text, size_t n, int *tokens, size_t *n_tokens, Error *err);
// The bytes of token (0 if out of range); returns their count.
size_t bpe_decode(const Bpe *b, int token, const unsigned char **bytes);

// Token cache: the tokens of one text under one tokenizer, with their checksum.
typedef struct {
    int vocab_size;
    uint64_t n_tokens, tokenizer_checksum, text_size, text_hash;
    uint64_t tokens_hash; // FNV-1a 64 of the token array as stored (uint16); written by tokcache_save
} TokCacheInfo;

uint64_t tokcache_hash(const uint16_t *tokens, size_t n);
int tokcache_save(const char *path, const TokCacheInfo *info, const uint16_t *tokens, Error *err);
// Validates every field and every token id (< vocab_size) of a cache held in
// memory (8-byte aligned); *tokens points into data. Returns 0; -1 for a file
// that breaks the format; 1 (message in err) for one that is well formed but
// cannot be trusted: version 1 (no checksum) or tokens that fail the checksum.
int tokcache_parse(const unsigned char *data, size_t n, const char *name, TokCacheInfo *info, const uint16_t **tokens,
                   Error *err);

#endif
