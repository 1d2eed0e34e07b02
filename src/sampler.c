#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

// ----------------------------------------------------------------------------
// the context window

int window_create(Window *w, const Model *m, Matmul *mm, const int *prompt, int n_prompt, int64_t n_new, int keep,
                  int sink, int *dropped, Error *err) {
    int ctx = m->cfg.seq_len;
    memset(w, 0, sizeof *w);
    if (n_prompt < 1) return err_set(err, "generation needs at least one prompt token");
    if (sink < 0 || sink >= ctx || sink > n_prompt)
        return err_set(err, "sink = %d is outside [0, min(prompt %d, context %d - 1)]", sink, n_prompt, ctx);
    if (keep == 0) keep = ctx / 2 > sink ? ctx / 2 : sink + 1;
    if (keep <= sink || keep > ctx)
        return err_set(err, "keep = %d is outside [sink %d + 1, context %d]", keep, sink, ctx);
    w->m = m;
    w->sink = sink;
    w->tokens = malloc((size_t)ctx * sizeof(int));
    if (!w->tokens) return err_set(err, "out of memory for the context window");
    int cut = n_prompt > ctx ? n_prompt - keep : 0; // the first sink and the last keep - sink tokens
    if (dropped) *dropped = cut;
    memcpy(w->tokens, prompt, (size_t)sink * sizeof(int));
    memcpy(w->tokens + sink, prompt + sink + cut, (size_t)(n_prompt - sink - cut) * sizeof(int));
    w->n = n_prompt - cut;
    // the cache holds the prompt and the tokens asked for, within the
    // context; the buffers hold the prompt's prefill, or a slide's
    int64_t want = (int64_t)w->n + n_new;
    int kv_len = want < ctx ? (int)want : ctx, T_cap = w->n;
    if (want > ctx && keep > T_cap) T_cap = keep;
    // only pushes past n_new can slide with less room (sink < w->n <= T_cap)
    w->keep = keep < T_cap ? keep : T_cap;
    if (acts_create(&w->acts, m, 1, T_cap, kv_len, 0, err) ||
        (w->acts.mm = mm, model_forward(m, &w->acts, w->tokens, w->n, 0, 0, err))) {
        window_free(w);
        return -1;
    }
    w->logits = w->acts.logits + (size_t)(w->n - 1) * m->cfg.vocab_size;
    return 0;
}

int window_push(Window *w, int token, Error *err) {
    Acts *a = &w->acts;
    if (w->n < a->kv_len) { // room in the cache: one step at the next position
        w->tokens[w->n] = token;
        if (model_forward(w->m, a, &w->tokens[w->n], 1, w->n, 0, err)) return -1;
        w->n++;
        w->logits = a->logits;
        return 0;
    }
    // full: the sink, the last keep - sink - 1 tokens and this one, recomputed from position 0
    int k = w->keep, tail = k - w->sink - 1;
    memmove(w->tokens + w->sink, w->tokens + w->n - tail, (size_t)tail * sizeof(int));
    w->tokens[k - 1] = token;
    w->n = k;
    w->slides++;
    if (model_forward(w->m, a, w->tokens, k, 0, 0, err)) return -1;
    w->logits = a->logits + (size_t)(k - 1) * w->m->cfg.vocab_size;
    return 0;
}

void window_free(Window *w) {
    acts_free(&w->acts);
    free(w->tokens);
    w->tokens = NULL;
}
