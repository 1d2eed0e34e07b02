// Sampling the next token: temperature (0 = greedy argmax), top-k, top-p
// (nucleus), from a seeded stream so that a seed reproduces a text.
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stdint.h>

#include "common.h"
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

#endif
