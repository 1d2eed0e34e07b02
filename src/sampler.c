#include "sampler.h"

#include <math.h>
#include <stdlib.h>

int sampler_create(Sampler *s, int vocab_size, float temperature, float top_p, int top_k,
                   uint64_t seed, Error *err) {
    *s = (Sampler){.vocab_size = vocab_size, .top_k = top_k, .temperature = temperature,
                   .top_p = top_p, .rng = rng_make(seed, 0x5A3D1E)};
    s->sorted = malloc((size_t)vocab_size * sizeof(ProbIndex));
    return s->sorted ? 0 : err_set(err, "out of memory for the sampler");
}

void sampler_free(Sampler *s) { free(s->sorted); }

int sampler_argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

// Descending probability; ties (expf can round nearby logits to one value)
// by logit, then by lower index, so top-k 1 is exactly argmax.
static int by_prob_desc(const void *a, const void *b) {
    const ProbIndex *x = a, *y = b;
    if (x->prob != y->prob) return x->prob > y->prob ? -1 : 1;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->index - y->index;
}

int sampler_sample(Sampler *s, const float *logits) {
    int V = s->vocab_size;
    if (s->temperature == 0.0f) return sampler_argmax(logits, V);
    float maxv = logits[sampler_argmax(logits, V)];
    for (int i = 0; i < V; i++) // unnormalised: only ratios matter below
        s->sorted[i] = (ProbIndex){expf((logits[i] - maxv) / s->temperature), logits[i], i};
    qsort(s->sorted, (size_t)V, sizeof(ProbIndex), by_prob_desc);
    int keep = (s->top_k > 0 && s->top_k < V) ? s->top_k : V;
    double kept = 0.0;
    for (int i = 0; i < keep; i++) kept += s->sorted[i].prob;
    if (s->top_p < 1.0f) { // smallest prefix whose mass reaches top_p of what is kept
        double cum = 0.0;
        for (int i = 0; i < keep; i++) {
            cum += s->sorted[i].prob;
            if (cum >= s->top_p * kept) {
                keep = i + 1;
                kept = cum;
                break;
            }
        }
    }
    double u = rng_uniform(&s->rng) * kept, cum = 0.0;
    for (int i = 0; i < keep; i++) {
        cum += s->sorted[i].prob;
        if (u < cum) return s->sorted[i].index;
    }
    return s->sorted[keep - 1].index; // rounding at the end of the range
}
