// The benchmark program behind `make bench` (scripts/bench.py drives it, one
// process per measurement so that each peak RSS is its own). Every mode
// prints key=value lines on stdout:
//
//   benchmark peak THREADS                  sgemm peak (GFLOP/s) and memory read bandwidth
//   bench train CONFIG NORM THREADS STEPS WARMUP
//                                       one training step as train_llama does it
//   bench layer D THREADS               every norm kind's layer alone, 4096 tokens, side by side
//   bench gen CONFIG NORM THREADS [TIMED]
//                                       prefill of 256 tokens, greedy decode of 256: the best
//                                       of TIMED runs (default 3) after a warm-up, and the
//                                       memory read bandwidth before them
//   bench spin THREADS                  a CPU-bound load beside the others, until killed
//
// CONFIG is tiny, small or medium (the shapes of issue #5) or large (generation
// only), NORM a kind of the norm table (src/norms.c: train_llama --list-norms).
// THREADS 0 = the programs' default: all cores, and the decode loop picks 1 or
// all threads by timing as infer_llama's does.
// Usage errors exit 2, runtime errors 1.
#define _GNU_SOURCE // dlsym's RTLD_DEFAULT
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dyt.h"
#include "../src/common.h"
#include "../src/layers.h"
#include "../src/model.h"
#include "../src/optim.h"
#include "../src/rng.h"
#include "../src/threads.h"

typedef struct {
    const char *name;
    int dim, layers, heads, kv_heads, seq, batch, vocab;
} BenchConfig;

static const BenchConfig CONFIGS[] = {
    {"tiny", 64, 4, 4, 2, 128, 16, 256},
    {"small", 288, 6, 6, 6, 256, 8, 512},
    {"medium", 512, 8, 8, 8, 256, 8, 4096},
    {"large", 768, 12, 12, 12, 256, 8, 4096},
};

static const BenchConfig *find_config(const char *name) {
    for (size_t i = 0; i < sizeof CONFIGS / sizeof CONFIGS[0]; i++)
        if (!strcmp(CONFIGS[i].name, name)) return &CONFIGS[i];
    return NULL;
}

static ModelConfig model_config(const BenchConfig *b, int norm, int seq_len) {
    ModelConfig c = {.dim = b->dim, .hidden_dim = default_hidden_dim(b->dim, MLP_SWIGLU), .n_layers = b->layers,
                     .n_heads = b->heads, .n_kv_heads = b->kv_heads, .vocab_size = b->vocab,
                     .seq_len = seq_len, .tie_embeddings = 0, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    config_set_norm(&c, norm); // the kind's defaults, as train_llama
    return c;
}

// ----------------------------------------------------------------------------
// measurement helpers

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// Peak resident set (VmHWM) of this process, in bytes; 0 if unreadable.
static double peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0.0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb * 1024.0;
}

// Allocation calls so far, when build/alloc_count.so is preloaded; -1 otherwise.
static long alloc_calls(void) {
    long (*count)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "alloc_count_calls");
    return count ? count() : -1;
}

static float *randn(size_t n, uint64_t seed, float scale) {
    float *x = alloc_floats(n);
    Rng r = rng_make(seed, 0);
    for (size_t i = 0; x && i < n; i++) x[i] = scale * (float)rng_normal(&r);
    return x;
}

// FLOPs per trained token: 6 x matmul parameters (forward 2, backward 4) plus
// causal attention's 6 x n_layers x seq x d (QK^T and att V, half the square).
static double train_flops_per_token(const Model *m) {
    const ModelConfig *c = &m->cfg;
    double mat = (double)(m->sizes[T_WQ] + m->sizes[T_WK] + m->sizes[T_WV] + m->sizes[T_WO] +
                          m->sizes[T_W1] + m->sizes[T_W2] + m->sizes[T_W3] + (double)c->vocab_size * c->dim);
    return 6.0 * mat + 6.0 * c->n_layers * (double)c->seq_len * c->dim;
}

// ----------------------------------------------------------------------------
// peak: sgemm GFLOP/s at a square shape, best of several; memory read GB/s

// Read bandwidth in GB/s: the sum of a 512 MiB array (far beyond any cache),
// all threads, best of 4; 0 if out of memory. *sink: the sums (kept alive).
// The array holds a cheap pattern: the sum does not care, and normal
// variates for 128 M floats took seconds, in every generation run.
static double read_bandwidth(double *sink) {
    size_t m = (size_t)128 << 20;
    float *x = malloc(m * sizeof(float));
    double bw = 0.0;
    *sink = 0.0;
#pragma omp parallel for schedule(static) if (x)
    for (size_t i = 0; i < m; i++) x[i] = (float)(i & 1023);
    for (int rep = 0; x && rep < 4; rep++) {
        double t0 = now_seconds(), s = 0.0;
#pragma omp parallel for reduction(+ : s) schedule(static)
        for (size_t i = 0; i < m; i += 16) {
            float acc = 0.0f;
            for (int j = 0; j < 16; j++) acc += x[i + j];
            s += acc;
        }
        double dt = now_seconds() - t0;
        *sink += s;
        bw = m * 4.0 / dt / 1e9 > bw ? m * 4.0 / dt / 1e9 : bw;
    }
    free(x);
    return bw;
}

#define PEAK_N 1536

static int bench_peak(void) {
    size_t n = PEAK_N;
    float *a = randn(n * n, 1, 1.0f), *b = randn(n * n, 2, 1.0f), *c = alloc_floats(n * n);
    if (!a || !b || !c) return fprintf(stderr, "bench: out of memory\n"), 1;
    double best = 0.0;
    for (int rep = 0; rep < 8; rep++) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1.0f, a, (int)n, b,
                    (int)n, 0.0f, c, (int)n);
        double dt = now_seconds() - t0, gf = 2.0 * n * n * n / dt / 1e9;
        best = gf > best ? gf : best;
    }
    free(a), free(b), free(c);
    double sink, bw = read_bandwidth(&sink);
    if (bw <= 0.0) return fprintf(stderr, "bench: out of memory\n"), 1;
    printf("sgemm_shape=%zux%zux%zu NT\nsgemm_gflops=%.2f\nmem_read_gbs=%.2f\n", n, n, n, best, bw);
    printf("corename=%s\nblas_config=%s\nthreads=%d\nsink=%g\n", openblas_get_corename(), openblas_get_config(),
           omp_get_max_threads(), sink);
    return 0;
}

// ----------------------------------------------------------------------------
// train: zero grad, forward, backward, clip, AdamW, as train_llama's step

static int bench_train(const BenchConfig *bc, int norm, int steps, int warmup) {
    ModelConfig cfg = model_config(bc, norm, bc->seq);
    Model m;
    Acts a;
    Error err;
    if (model_create(&m, &cfg, &err) || model_alloc_grads(&m, &err))
        return fprintf(stderr, "bench: %s\n", err.msg), 1;
    model_init(&m, 1);
    if (acts_create(&a, &m, bc->batch, bc->seq, bc->seq, 1, &err))
        return fprintf(stderr, "bench: %s\n", err.msg), 1;
    float *mom1 = alloc_floats(m.n_params), *mom2 = alloc_floats(m.n_params);
    size_t N = (size_t)bc->batch * bc->seq;
    int *tokens = malloc((N + 1) * sizeof(int)), *targets;
    double *ms = malloc((size_t)steps * sizeof(double));
    if (!mom1 || !mom2 || !tokens || !ms) return fprintf(stderr, "bench: out of memory\n"), 1;
    Rng r = rng_make(7, 0);
    for (size_t i = 0; i <= N; i++) tokens[i] = (int)(rng_u64(&r) % (uint64_t)bc->vocab);
    targets = tokens + 1;
    PartTimes parts = {{0}};
    AdamW opt = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .scalar_lr_mult = 1.0f};
    long allocs0 = 0;
    double opt_s = 0.0, loss = 0.0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) { // timers and the allocation count cover the timed steps only
            a.timers = &parts;
            allocs0 = alloc_calls();
        }
        double t0 = now_seconds();
        model_zero_grad(&m);
        model_forward(&m, &a, tokens, bc->seq, 0, 1, NULL); // full shape: cannot fail
        loss = model_backward(&m, &a, tokens, targets, 1.0f);
        double t1 = now_seconds();
        grad_clip(m.grads, m.n_params, 1.0f);
        adamw_step(&m, mom1, mom2, s + 1, &opt);
        double t2 = now_seconds();
        if (s >= warmup) {
            ms[s - warmup] = 1000.0 * (t2 - t0);
            opt_s += t2 - t1;
        }
    }
    long allocs = alloc_calls() - allocs0;
    double step_ms = median(ms, steps), total = 0.0;
    for (int p = 0; p < N_PARTS; p++) total += parts.s[p];
    // analytic need: parameters, gradients, two AdamW moments; the activations
    // block as acts_create lays it out (what backward keeps, plus its scratch)
    double model_bytes = 16.0 * (double)m.n_params;
    double act_bytes = 4.0 * (double)a.block_floats + 8.0 * (double)N; // and row_loss
    double fpt = train_flops_per_token(&m);
    printf("config=%s\nnorm=%s\nthreads=%d\nsteps=%d\nwarmup=%d\nparams=%zu\nloss=%.4f\n", bc->name,
           NORM_KINDS[norm].name, omp_get_max_threads(), steps, warmup, m.n_params, loss);
    printf("step_ms=%.3f\ntok_s=%.1f\nflops_per_token=%.0f\nachieved_gflops=%.2f\n", step_ms,
           N / (step_ms / 1000.0), fpt, fpt * N / (step_ms / 1000.0) / 1e9);
    const char *names[N_PARTS] = {"matmul", "attention", "norm", "other"};
    double all_s = 0.0;
    for (int s = 0; s < steps; s++) all_s += ms[s] / 1000.0;
    for (int p = 0; p < N_PARTS; p++) printf("share_%s=%.4f\n", names[p], parts.s[p] / all_s);
    printf("share_optimizer=%.4f\nshare_untimed=%.4f\n", opt_s / all_s, 1.0 - (total + opt_s) / all_s);
    printf("peak_rss_bytes=%.0f\nanalytic_bytes=%.0f\nmodel_state_bytes=%.0f\nactivation_bytes=%.0f\n",
           peak_rss_bytes(), model_bytes + act_bytes, model_bytes, act_bytes);
    printf("allocs_in_steps=%ld\n", allocs);
    acts_free(&a), model_free(&m), free(mom1), free(mom2), free(tokens), free(ms);
    return 0;
}

// ----------------------------------------------------------------------------
// layer: every kind of the norm table alone, forward and backward, 4096 tokens
// of width D, through its table entry (as the model calls it). The kinds take
// turns within each repetition, so a load that comes and goes hits them alike.

static int bench_layer(int D) {
    size_t N = 4096, n = N * (size_t)D, ns = 0;
    for (int k = 0; k < N_NORMS; k++)
        ns = NORM_KINDS[k].scratch_floats(N, D) > ns ? NORM_KINDS[k].scratch_floats(N, D) : ns;
    float *x = randn(n, 1, 1.0f), *dy = randn(n, 2, 1.0f), *y = alloc_floats(n), *dx = alloc_floats(n);
    float *g = randn((size_t)D, 3, 0.1f), *b = alloc_floats((size_t)D), *dg = alloc_floats((size_t)D);
    float *db = alloc_floats((size_t)D), *stats = alloc_floats(4 * N), da = 0.0f, dsh = 0.0f;
    float *scratch = alloc_floats(ns ? ns : 1);
    if (!x || !dy || !y || !dx || !g || !b || !dg || !db || !stats || !scratch)
        return fprintf(stderr, "bench: out of memory\n"), 1;
    for (int i = 0; i < D; i++) g[i] += 1.0f;
    enum { REPS = 41 };
    static double t[N_NORMS][2][REPS];
    for (int rep = 0; rep < REPS + 3; rep++) { // 3 warm-up repetitions
        for (int k = 0; k < N_NORMS; k++) {
            NormW w = {.gain = g, .beta = norm_has(k, NP_BETA, 1) ? b : NULL, .alpha = 0.5f, .shift = 0.0f, .eps = 1e-5f};
            NormG gr = {dg, w.beta ? db : NULL, &da, &dsh};
            double t0 = now_seconds();
            NORM_KINDS[k].forward(y, stats, x, &w, N, D);
            double t1 = now_seconds();
            NORM_KINDS[k].backward(dx, &gr, dy, x, stats, &w, N, D, scratch);
            double t2 = now_seconds();
            if (rep >= 3) t[k][0][rep - 3] = t1 - t0, t[k][1][rep - 3] = t2 - t1;
        }
    }
    printf("dim=%d\ntokens=%zu\nthreads=%d\n", D, N, omp_get_max_threads());
    for (int k = 0; k < N_NORMS; k++)
        printf("%s_fwd_us=%.2f\n%s_bwd_us=%.2f\n%s_stats=%d\n", NORM_KINDS[k].name, 1e6 * median(t[k][0], REPS),
               NORM_KINDS[k].name, 1e6 * median(t[k][1], REPS), NORM_KINDS[k].name, NORM_KINDS[k].stats);
    free(x), free(dy), free(y), free(dx), free(g), free(b), free(dg), free(db), free(stats), free(scratch);
    return 0;
}

// ----------------------------------------------------------------------------
// gen: prefill a 256-token prompt, then greedy-decode 256 tokens (KV cache)

#define GEN_PROMPT 256
#define GEN_TOKENS 256
#define GEN_TIMED 3 // timed runs after a warm-up by default; the best counts, as the bandwidth's best of 4

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

static int bench_gen(const BenchConfig *bc, int norm, int tuned, int timed) {
    int ctx = GEN_PROMPT + GEN_TOKENS;
    ModelConfig cfg = model_config(bc, norm, ctx);
    Model m;
    Acts a;
    Error err;
    if (model_create(&m, &cfg, &err)) return fprintf(stderr, "bench: %s\n", err.msg), 1;
    model_init(&m, 1);
    if (acts_create(&a, &m, 1, GEN_PROMPT, ctx, 0, &err)) return fprintf(stderr, "bench: %s\n", err.msg), 1;
    int *tok = malloc((size_t)ctx * sizeof(int));
    if (!tok) return fprintf(stderr, "bench: out of memory\n"), 1;
    Rng r = rng_make(5, 0);
    for (int i = 0; i < GEN_PROMPT; i++) tok[i] = (int)(rng_u64(&r) % (uint64_t)bc->vocab);
    // the bound's bandwidth, measured here, before the warm-up and the timed
    // runs (seconds, not minutes, before them: this VM's speed drifts over minutes)
    double sink, bw = read_bandwidth(&sink);
    if (bw <= 0.0) return fprintf(stderr, "bench: out of memory\n"), 1;
    double best_prefill = 1e30, best_decode = 1e30;
    int one_thread = 0; // decoded tokens the tuner ran on one thread (timed repetitions)
    for (int rep = 0; rep < 1 + timed; rep++) { // the first repetition warms up
        ThreadTuner tuner;
        int max = tuned ? omp_get_max_threads() : 1;
        tuner_init(&tuner, max, threads_crowded);
        double t0 = now_seconds();
        if (model_forward(&m, &a, tok, GEN_PROMPT, 0, 0, &err)) return fprintf(stderr, "bench: %s\n", err.msg), 1;
        double t1 = now_seconds();
        const float *logits = a.logits + (size_t)(GEN_PROMPT - 1) * bc->vocab;
        for (int n = GEN_PROMPT; n < ctx; n++) {
            tok[n] = argmax(logits, bc->vocab);
            if (n + 1 == ctx) break;
            int th = tuner_next(&tuner);
            double u0 = now_seconds();
            if (model_forward(&m, &a, &tok[n], 1, n, 0, &err)) return fprintf(stderr, "bench: %s\n", err.msg), 1;
            tuner_done(&tuner, now_seconds() - u0);
            if (rep > 0 && tuned) one_thread += th == 1;
            logits = a.logits;
        }
        double t2 = now_seconds();
        tuner_end(&tuner);
        if (rep > 0) {
            best_prefill = t1 - t0 < best_prefill ? t1 - t0 : best_prefill;
            best_decode = t2 - t1 < best_decode ? t2 - t1 : best_decode;
        }
    }
    // per decoded token: every weight is read once except the embedding's other rows
    double weight_bytes = 4.0 * (double)(m.n_params - m.sizes[T_WTE]);
    double mat = (double)(m.n_params - m.sizes[T_WTE]); // matmul weights dominate: 2 FLOPs each
    double attn = 4.0 * cfg.n_layers * (GEN_PROMPT + GEN_TOKENS / 2.0) * cfg.dim; // mean position
    printf("config=%s\nnorm=%s\nthreads=%d\nprompt=%d\ngenerated=%d\ntimed=%d\n", bc->name,
           NORM_KINDS[norm].name, omp_get_max_threads(), GEN_PROMPT, GEN_TOKENS, timed);
    printf("prefill_tok_s=%.1f\ndecode_tok_s=%.1f\ndecode_ms_per_token=%.4f\n", GEN_PROMPT / best_prefill,
           (GEN_TOKENS - 1) / best_decode, 1000.0 * best_decode / (GEN_TOKENS - 1));
    printf("decode_weight_bytes=%.0f\ndecode_flops_per_token=%.0f\n", weight_bytes, 2.0 * mat + attn);
    // the KV cache each decoded token reads, at the mean position: not in the
    // issue's bound (the weights once), shown beside it
    double kvd = (double)cfg.dim / cfg.n_heads * cfg.n_kv_heads;
    printf("decode_kv_bytes=%.0f\n", 2.0 * 4.0 * cfg.n_layers * (GEN_PROMPT + GEN_TOKENS / 2.0) * kvd);
    printf("decode_one_thread_share=%.3f\n", one_thread / (double)timed / (GEN_TOKENS - 1));
    printf("mem_read_gbs=%.2f\nsink=%g\n", bw, sink);
    acts_free(&a), model_free(&m), free(tok);
    return 0;
}

// ----------------------------------------------------------------------------

// ----------------------------------------------------------------------------
// spin: THREADS threads of arithmetic that never ends (the contended section's load)

static int bench_spin(int threads) {
    volatile double sink = 0.0;
#pragma omp parallel num_threads(threads)
    {
        double x = 1.0 + omp_get_thread_num();
        for (;;) {
            for (int i = 0; i < 1000000; i++) x = x * 0.9999999 + 1e-7;
            sink = x;
        }
    }
    return sink != 0.0;
}

static int usage(void) {
    fprintf(stderr, "usage: bench peak THREADS | bench train CONFIG NORM THREADS STEPS WARMUP |\n"
                    "       bench layer D THREADS | bench gen CONFIG NORM THREADS [TIMED] | bench spin THREADS\n"
                    "CONFIG: tiny, small, medium, large; NORM: a kind of train_llama --list-norms; THREADS 0: the default\n");
    return 2;
}

static int parse_int(const char *s, const char *what, int lo, int hi, int *out) {
    int64_t v;
    if (parse_i64(s, lo, hi, &v)) {
        fprintf(stderr, "bench: %s '%s' must be an integer in [%d, %d]\n", what, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_norm(const char *s, int *norm) {
    if ((*norm = norm_find(s)) >= 0) return 0;
    char names[512];
    norm_names(names, sizeof names);
    fprintf(stderr, "bench: NORM '%s' unknown; known: %s\n", s, names);
    return -1;
}

int main(int argc, char **argv) {
    threads_wait_policy(argv); // as the programs do
    if (argc < 3) return usage();
    const char *mode = argv[1];
    int threads, norm = NORM_RMS, steps, warmup, dim;
    const BenchConfig *bc = NULL;
    if (!strcmp(mode, "peak") && argc == 3) {
        if (parse_int(argv[2], "THREADS", 1, 1024, &threads)) return 2;
        threads_setup(threads);
        return bench_peak();
    }
    if (!strcmp(mode, "spin") && argc == 3) {
        if (parse_int(argv[2], "THREADS", 1, 1024, &threads)) return 2;
        return bench_spin(threads);
    }
    if (!strcmp(mode, "layer") && argc == 4) {
        if (parse_int(argv[2], "D", 2, 65536, &dim) || parse_int(argv[3], "THREADS", 1, 1024, &threads)) return 2;
        threads_setup(threads);
        return bench_layer(dim);
    }
    if ((!strcmp(mode, "train") && argc == 7) || (!strcmp(mode, "gen") && (argc == 5 || argc == 6))) {
        if (!(bc = find_config(argv[2]))) {
            fprintf(stderr, "bench: CONFIG '%s' must be tiny, small, medium or large\n", argv[2]);
            return 2;
        }
        if (parse_norm(argv[3], &norm) || parse_int(argv[4], "THREADS", 0, 1024, &threads)) return 2;
        threads_setup(threads);
        int timed = GEN_TIMED;
        if (!strcmp(mode, "gen"))
            return argc == 6 && parse_int(argv[5], "TIMED", 1, 100, &timed) ? 2 : bench_gen(bc, norm, threads == 0, timed);
        if (parse_int(argv[5], "STEPS", 1, 100000, &steps) || parse_int(argv[6], "WARMUP", 0, 100000, &warmup))
            return 2;
        return bench_train(bc, norm, steps, warmup);
    }
    return usage();
}
