// Generation: sampling the next token (temperature, 0 = greedy argmax,
// top-k, top-p nucleus, from a seeded stream so that a seed reproduces a
// text), and the window of tokens the model sees over its KV cache, which
// slides when the context is full.
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stdint.h>

#include "common.h"
#include "model.h"
#include "rng.h"

typedef struct {
    float prob, logit;
    int index;
} ProbIndex;

typedef struct {
    int vocab_size, top_k; // top_k 0 = off
    float temperature, top_p; // top_p 1 = off
    Rng rng;
    ProbIndex *sorted; // (vocab_size) scratch
} Sampler;

int sampler_create(Sampler *s, int vocab_size, float temperature, float top_p, int top_k,
                   uint64_t seed, Error *err);
void sampler_free(Sampler *s);
int sampler_argmax(const float *logits, int n); // lowest index among equal maxima
int sampler_sample(Sampler *s, const float *logits);

// The tokens the model sees, with their keys and values in the KV cache.
// Generating past the context slides the window: when the cache is full, the
// window keeps its first `sink` tokens (a BOS every text starts with, as
// llama.cpp keeps it) and its last ones, the next token included, `keep` in
// all, and the cache is recomputed from them with one batched forward from
// position 0: the model then sees what a fresh run with those tokens as its
// prompt sees. The default keeps half the context: a slide costs one prefill
// of ctx/2 tokens and buys ctx/2 cheap steps.
typedef struct {
    const Model *m;
    Acts acts;
    int *tokens;         // (ctx) the tokens in the cache
    int n;               // tokens in the cache
    int keep;            // tokens kept when the window slides
    int sink;            // of which the first ones, always kept
    int64_t slides;      // times the window slid
    const float *logits; // (vocab_size) next-token logits after the last token
} Window;

// Runs the prompt (n_prompt >= 1 tokens) in one forward. Sized for the
// prompt and n_new more tokens: the cache and buffers grow to the whole
// context only when generating that far needs it. keep 0 means ctx/2 (and
// more than sink). A prompt longer than the context keeps its first sink and
// last tokens, keep in all (*dropped says how many went; NULL allowed). On
// failure nothing is held.
// mm: the products' backend (matmul.h; NULL: OpenBLAS).
int window_create(Window *w, const Model *m, Matmul *mm, const int *prompt, int n_prompt, int64_t n_new, int keep,
                  int sink, int *dropped, Error *err);
// Appends a token: one forward step over the cache, or a slide when it is full.
int window_push(Window *w, int token, Error *err);
void window_free(Window *w);

#endif
