// The benchmark program behind `make bench` (scripts/bench.py drives it, one
// process per measurement so that each peak RSS is its own). Every mode
// prints key=value lines on stdout:
//
//   benchmark peak THREADS                  sgemm peak (GFLOP/s) and memory read bandwidth; each
//                                       matmul backend and precision's product at the same
//                                       shape; the clock and the physical peak per precision
//   bench train CONFIG NORM THREADS STEPS WARMUP [MATMUL PRECISION]
//                                       one training step as train_llama does it
//   bench layer D THREADS               every norm kind's layer alone, 4096 tokens, side by side
//   bench gen CONFIG NORM THREADS [TIMED [WEIGHTS]]
//                                       prefill of 256 tokens, greedy decode of 256: the best
//                                       of TIMED runs (default 3) after a warm-up, and the
//                                       memory read bandwidth before them
//   bench spin THREADS                  a CPU-bound load beside the others, until killed
//
// CONFIG is tiny, small or medium (the shapes of issue #5) or large (generation
// only), NORM a kind of the norm table (src/norms.c: train_llama --list-norms).
// THREADS 0 = the programs' default: all cores, and the decode loop picks 1 or
// all threads by timing as infer_llama's does. MATMUL and PRECISION are the
// trainer's --matmul and --precision (default: its default backend, fp32).
// WEIGHTS is fp32 or bf16, the weights a decoded token streams (WEIGHT_FORMATS
// below): a format this build cannot decode from prints unavailable=WHY, exit 0.
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
#include "../src/matmul.h"
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
// clock: this CPU's physical peak per precision (issue #27)
//
// The physical peak is clock x FLOP per cycle per core x cores. The clock is
// timed on a chain of dependent FMAs (vfmadd on one ymm register, each
// waiting for the one before; zmm's latency is the same, and ymm runs on any
// AVX2 CPU): such a chain retires one FMA per FMA latency, a fixed number of
// cycles (FMA_LATENCY: 4 on Zen 4 and Zen 5, and on Intel cores since
// Skylake) whatever else the core could run beside it, so n FMAs in t seconds
// mean a clock of FMA_LATENCY n / t: the time of a cycle, not of a unit's
// throughput. Then independent chains (more accumulators than latency x
// pipes: every FMA unit busy) measure each kind of instruction's throughput
// on every thread at once. Divided by the clock and the threads it reads FLOP
// per cycle per core: the nominal 32 (AVX2 FMA: 2 pipes x 8 lanes x 2), 64
// (AVX-512 FMA: 16 lanes) and 128 (vdpbf16ps: 16 lanes x 2 products x 2) when
// the constants hold, so each measurement checks the other's. The kernels are
// compiled for their instruction set whatever -march says and run only where
// the CPU has it (CI's machine may lack AVX-512).
#define FMA_LATENCY 4
#define CLOCK_REPS 200 // runs of each kernel per thread, about 1 ms each (inside a time slice); the best counts

// The peaks printed: AVX2's (what OpenBLAS's Haswell kernels can reach), and
// fp32's and bf16's on this CPU (the widest instruction it has for each).
enum { PEAK_AVX2, PEAK_FP32, PEAK_BF16, N_PEAKS };
static const char *const PEAK_NAMES[N_PEAKS] = {[PEAK_AVX2] = "avx2", [PEAK_FP32] = "fp32", [PEAK_BF16] = "bf16"};

typedef struct {
    const char *name;
    int (*supported)(void);
    float (*run)(long n); // n iterations; returns the accumulators' sum (kept alive)
    int per_iter;         // instructions per iteration: 8 dependent, or one per chain
    int flop;             // FLOP per instruction
    int flop_per_cycle;   // nominal, per core (0: the latency chain, which measures the clock)
    unsigned peaks;       // the peaks (bits 1 << PEAK_*) it sets where supported; a later row overrides
    long n;               // iterations of a run: about 1 ms at 3 GHz
} ClockKernel;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

static int has_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
}

static int has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

// One chain: x = x b + c, 8 dependent FMAs per iteration (x tends to 1: no
// denormals, no overflow, however long).
__attribute__((target("avx2,fma"))) static float chain_fma(long n) {
    __m256 x = _mm256_set1_ps(0.5f), b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 8; j++) x = _mm256_fmadd_ps(x, b, c);
    float out[8];
    _mm256_storeu_ps(out, x);
    return out[0];
}

// 12 independent chains on ymm registers (AVX2 has 16; 8 in flight fill 2 pipes of latency 4)
__attribute__((target("avx2,fma"))) static float many_fma256(long n) {
    __m256 x[12], b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    for (int j = 0; j < 12; j++) x[j] = _mm256_set1_ps(0.5f + 0.01f * j);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 12; j++) x[j] = _mm256_fmadd_ps(x[j], b, c);
    float out[8], s = 0.0f;
    for (int j = 0; j < 12; j++) _mm256_storeu_ps(out, x[j]), s += out[0];
    return s;
}

// 16 independent chains on zmm registers (32 of them)
__attribute__((target("avx512f"))) static float many_fma512(long n) {
    __m512 x[16], b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < 16; j++) x[j] = _mm512_set1_ps(0.5f + 0.01f * j);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 16; j++) x[j] = _mm512_fmadd_ps(x[j], b, c);
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += _mm512_reduce_add_ps(x[j]);
    return s;
}

// 16 independent chains of vdpbf16ps: each adds 32 bf16 products pairwise into 16 floats
__attribute__((target("avx512f,avx512bf16"))) static float many_dot_bf16(long n) {
    __m512 x[16], h = _mm512_set1_ps(1e-3f);
    __m512bh a = _mm512_cvtne2ps_pbh(h, h); // every sum grows by 2e-6 a step: no overflow
    for (int j = 0; j < 16; j++) x[j] = _mm512_set1_ps(0.01f * j);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < 16; j++) x[j] = _mm512_dpbf16_ps(x[j], a, a);
    float s = 0.0f;
    for (int j = 0; j < 16; j++) s += _mm512_reduce_add_ps(x[j]);
    return s;
}

static const ClockKernel CLOCK_KERNELS[] = {
    {"chain", has_fma, chain_fma, 8, 16, 0, 0, 100000},
    // without wider instructions, fp32 and bf16 products run as AVX2 FMAs
    {"fma_avx2", has_fma, many_fma256, 12, 16, 32, 1 << PEAK_AVX2 | 1 << PEAK_FP32 | 1 << PEAK_BF16, 400000},
    {"fma_avx512", has_avx512, many_fma512, 16, 32, 64, 1 << PEAK_FP32 | 1 << PEAK_BF16, 300000},
    {"dot_bf16", cpu_has_bf16, many_dot_bf16, 16, 64, 128, 1 << PEAK_BF16, 300000},
};
#define N_CLOCK_KERNELS (int)(sizeof CLOCK_KERNELS / sizeof CLOCK_KERNELS[0])
#else
static const ClockKernel CLOCK_KERNELS[1];
#define N_CLOCK_KERNELS 0 // not x86-64 with GCC's builtins: no clock, the peaks print 0
#endif

// Iterations per second of k, summed over the threads, all running it at
// once: each thread's best of CLOCK_REPS runs.
static double kernel_rate(const ClockKernel *k, double *sink) {
    double rate = 0.0, keep = 0.0;
#pragma omp parallel reduction(+ : rate, keep)
    {
        double best = 1e30;
        for (int r = 0; r < CLOCK_REPS; r++) {
            double t0 = now_seconds();
            keep += k->run(k->n);
            double dt = now_seconds() - t0;
            best = dt < best ? dt : best;
        }
        rate += k->n / best;
    }
    *sink += keep;
    return rate;
}

// Prints the clock (GHz, mean over the threads), each kernel's measured GFLOP/s
// on all threads, and the physical peaks (PEAK_NAMES), GFLOP/s: clock x the
// nominal FLOP per cycle of the widest supported kernel for each x cores.
static void bench_clock(double *sink) {
    int threads = omp_get_max_threads(), procs = omp_get_num_procs();
    int cores = threads < procs ? threads : procs;
    double ghz = 0.0;
    int per_cycle[N_PEAKS] = {0};
    for (int i = 0; i < N_CLOCK_KERNELS; i++) {
        const ClockKernel *k = &CLOCK_KERNELS[i];
        int ok = k->supported();
        double rate = ok ? kernel_rate(k, sink) : 0.0;
        if (k->flop_per_cycle == 0) { // the chain
            ghz = rate * k->per_iter * FMA_LATENCY / threads / 1e9;
            continue;
        }
        printf("%s_gflops=%.2f\n", k->name, rate * k->per_iter * k->flop / 1e9);
        for (int p = 0; p < N_PEAKS; p++)
            if (ok && (k->peaks >> p & 1)) per_cycle[p] = k->flop_per_cycle;
    }
    printf("clock_ghz=%.3f\nfma_latency_cycles=%d\ncores=%d\n", ghz, FMA_LATENCY, cores);
    for (int p = 0; p < N_PEAKS; p++)
        printf("peak_%s_gflops=%.2f\npeak_%s_flop_per_cycle=%d\n", PEAK_NAMES[p], ghz * per_cycle[p] * cores,
               PEAK_NAMES[p], per_cycle[p]);
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

// Every backend and precision's product at the peak shape (n x n x n, B
// transposed) as the model runs it: matmul_forward, our threads, a slice of
// rows each. mm_BACKEND_PRECISION_gflops (best of 8 after one call that sets
// up the backend), _emulated; mm_BACKEND_unavailable=WHY for a backend this
// build or CPU lacks.
static void mm_peaks(const float *a, const float *b, float *c, size_t n) {
    for (int be = 0; be < N_MM_BACKENDS; be++)
        for (int pr = 0; pr < N_PRECISIONS; pr++) {
            Matmul mm;
            Error err;
            const char *name = matmul_backend_name(be), *prec = precision_name(pr);
            if (matmul_init(&mm, be, pr, &err)) {
                printf("mm_%s_unavailable=%s\n", name, err.msg);
                break;
            }
            double best = 0.0;
            for (int rep = 0; rep < 9; rep++) {
                double t0 = now_seconds();
                matmul_forward(&mm, c, a, b, n, (int)n, (int)n);
                double gf = 2.0 * n * n * n / (now_seconds() - t0) / 1e9;
                best = rep > 0 && gf > best ? gf : best;
            }
            printf("mm_%s_%s_gflops=%.2f\nmm_%s_%s_emulated=%d\n", name, prec, best, name, prec, mm.emulated);
            matmul_free(&mm);
        }
}

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
    printf("sgemm_shape=%zux%zux%zu NT\nsgemm_gflops=%.2f\n", n, n, n, best);
    mm_peaks(a, b, c, n);
    free(a), free(b), free(c);
    double sink, bw = read_bandwidth(&sink);
    if (bw <= 0.0) return fprintf(stderr, "bench: out of memory\n"), 1;
    bench_clock(&sink);
    printf("mem_read_gbs=%.2f\n", bw);
    printf("corename=%s\nblas_config=%s\nthreads=%d\nsink=%g\n", openblas_get_corename(), openblas_get_config(),
           omp_get_max_threads(), sink);
    return 0;
}

// ----------------------------------------------------------------------------
// train: zero grad, forward, backward, clip, AdamW, as train_llama's step,
// its products through mm (the trainer's --matmul and --precision)

static int bench_train(const BenchConfig *bc, int norm, int steps, int warmup, Matmul *mm) {
    ModelConfig cfg = model_config(bc, norm, bc->seq);
    Model m;
    Acts a;
    Error err;
    if (model_create(&m, &cfg, &err) || model_alloc_grads(&m, &err))
        return fprintf(stderr, "bench: %s\n", err.msg), 1;
    model_init(&m, 1);
    if (acts_create(&a, &m, bc->batch, bc->seq, bc->seq, 1, &err))
        return fprintf(stderr, "bench: %s\n", err.msg), 1;
    a.mm = mm;
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
    char mode[64];
    printf("config=%s\nnorm=%s\nthreads=%d\nsteps=%d\nwarmup=%d\nparams=%zu\nloss=%.4f\n", bc->name,
           NORM_KINDS[norm].name, omp_get_max_threads(), steps, warmup, m.n_params, loss);
    printf("matmul=%s\nprecision=%s\nmatmul_emulated=%d\nmatmul_mode=%s\n", matmul_backend_name(mm->backend),
           precision_name(mm->precision), mm->emulated, matmul_describe(mm, mode, sizeof mode));
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

// The weights a decoded token streams (WEIGHTS of `bench gen`): bytes per
// weight and per KV cache element (the bound's bytes), and how to make a
// model decode from them.
typedef struct {
    const char *name;
    int weight_bytes, kv_bytes;
    const char *(*unavailable)(void); // NULL when this build decodes from them, else why not (one line)
    int (*prepare)(Model *m, Error *err); // NULL: the model as created (fp32); before its activations
} WeightFormat;

// bf16 weights (issue #27 item 3): the matrices and the KV cache in bf16, as
// infer_llama decodes a bf16 model.bin (model_set_dtype, before the activations,
// whose KV cache follows the model's type).
static int bf16_prepare(Model *m, Error *err) { return model_set_dtype(m, DTYPE_BF16, err); }

static const WeightFormat WEIGHT_FORMATS[] = {
    {"fp32", 4, 4, NULL, NULL},
    {"bf16", 2, 2, NULL, bf16_prepare},
};

static const WeightFormat *find_weights(const char *name) {
    for (size_t i = 0; i < sizeof WEIGHT_FORMATS / sizeof WEIGHT_FORMATS[0]; i++)
        if (!strcmp(WEIGHT_FORMATS[i].name, name)) return &WEIGHT_FORMATS[i];
    return NULL;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

static int bench_gen(const BenchConfig *bc, int norm, int tuned, int timed, const WeightFormat *wf) {
    const char *why = wf->unavailable ? wf->unavailable() : NULL;
    if (why) { // bench.py skips the row with this line
        printf("config=%s\nweights=%s\nunavailable=%s\n", bc->name, wf->name, why);
        return 0;
    }
    int ctx = GEN_PROMPT + GEN_TOKENS;
    ModelConfig cfg = model_config(bc, norm, ctx);
    Model m;
    Acts a;
    Error err;
    if (model_create(&m, &cfg, &err)) return fprintf(stderr, "bench: %s\n", err.msg), 1;
    model_init(&m, 1);
    if ((wf->prepare && wf->prepare(&m, &err)) || acts_create(&a, &m, 1, GEN_PROMPT, ctx, 0, &err))
        return fprintf(stderr, "bench: %s\n", err.msg), 1;
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
    double weight_bytes = wf->weight_bytes * (double)(m.n_params - m.sizes[T_WTE]);
    double mat = (double)(m.n_params - m.sizes[T_WTE]); // matmul weights dominate: 2 FLOPs each
    double attn = 4.0 * cfg.n_layers * (GEN_PROMPT + GEN_TOKENS / 2.0) * cfg.dim; // mean position
    printf("config=%s\nnorm=%s\nthreads=%d\nprompt=%d\ngenerated=%d\ntimed=%d\nweights=%s\n", bc->name,
           NORM_KINDS[norm].name, omp_get_max_threads(), GEN_PROMPT, GEN_TOKENS, timed, wf->name);
    printf("prefill_tok_s=%.1f\ndecode_tok_s=%.1f\ndecode_ms_per_token=%.4f\n", GEN_PROMPT / best_prefill,
           (GEN_TOKENS - 1) / best_decode, 1000.0 * best_decode / (GEN_TOKENS - 1));
    printf("decode_weight_bytes=%.0f\ndecode_flops_per_token=%.0f\n", weight_bytes, 2.0 * mat + attn);
    // the KV cache each decoded token reads, at the mean position: not in the
    // issue's bound (the weights once), shown beside it
    double kvd = (double)cfg.dim / cfg.n_heads * cfg.n_kv_heads;
    printf("decode_kv_bytes=%.0f\n", 2.0 * wf->kv_bytes * cfg.n_layers * (GEN_PROMPT + GEN_TOKENS / 2.0) * kvd);
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
    fprintf(stderr, "usage: bench peak THREADS | bench train CONFIG NORM THREADS STEPS WARMUP [MATMUL PRECISION] |\n"
                    "       bench layer D THREADS | bench gen CONFIG NORM THREADS [TIMED [WEIGHTS]] |\n"
                    "       bench spin THREADS\n"
                    "CONFIG: tiny, small, medium, large; NORM: a kind of train_llama --list-norms;\n"
                    "THREADS 0: the default; MATMUL, PRECISION: train_llama's --matmul and --precision;\n"
                    "WEIGHTS: fp32 or bf16\n");
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

// train's optional MATMUL PRECISION (argv[0], argv[1] when argc is 2): the
// trainer's default backend and fp32 when absent.
static int train_matmul(int argc, char **argv, Matmul *mm) {
    int be = argc ? matmul_backend_find(argv[0]) : matmul_default_backend();
    int pr = argc ? precision_find(argv[1]) : PREC_FP32;
    if (be < 0 || pr < 0) {
        fprintf(stderr, "bench: MATMUL '%s' or PRECISION '%s' unknown (train_llama --help lists them)\n", argv[0],
                argv[1]);
        return 2;
    }
    Error err;
    if (matmul_init(mm, be, pr, &err)) return fprintf(stderr, "bench: %s\n", err.msg), 1;
    return 0;
}

static int main_train(const BenchConfig *bc, int norm, int argc, char **argv) {
    int steps, warmup, rc;
    Matmul mm;
    if (parse_int(argv[0], "STEPS", 1, 100000, &steps) || parse_int(argv[1], "WARMUP", 0, 100000, &warmup)) return 2;
    if ((rc = train_matmul(argc - 2, argv + 2, &mm))) return rc;
    rc = bench_train(bc, norm, steps, warmup, &mm);
    matmul_free(&mm);
    return rc;
}

static int main_gen(const BenchConfig *bc, int norm, int tuned, int argc, char **argv) {
    int timed = GEN_TIMED;
    const WeightFormat *wf = argc > 1 ? find_weights(argv[1]) : &WEIGHT_FORMATS[0];
    if (argc > 0 && parse_int(argv[0], "TIMED", 1, 100, &timed)) return 2;
    if (!wf) return fprintf(stderr, "bench: WEIGHTS '%s' must be fp32 or bf16\n", argv[1]), 2;
    return bench_gen(bc, norm, tuned, timed, wf);
}

int main(int argc, char **argv) {
    threads_wait_policy(argv); // as the programs do
    if (argc < 3) return usage();
    const char *mode = argv[1];
    int threads, norm = NORM_RMS, dim;
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
    if ((!strcmp(mode, "train") && (argc == 7 || argc == 9)) || (!strcmp(mode, "gen") && argc >= 5 && argc <= 7)) {
        if (!(bc = find_config(argv[2]))) {
            fprintf(stderr, "bench: CONFIG '%s' must be tiny, small, medium or large\n", argv[2]);
            return 2;
        }
        if (parse_norm(argv[3], &norm) || parse_int(argv[4], "THREADS", 0, 1024, &threads)) return 2;
        threads_setup(threads);
        return !strcmp(mode, "gen") ? main_gen(bc, norm, threads == 0, argc - 5, argv + 5)
                                    : main_train(bc, norm, argc - 5, argv + 5);
    }
    return usage();
}
