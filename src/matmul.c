#include "matmul.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"

// ----------------------------------------------------------------------------
// the tables

extern const MatmulBackend MATMUL_OPENBLAS, MATMUL_ONEDNN; // matmul_openblas.c, matmul_onednn.c
const MatmulBackend *const MATMUL_BACKENDS[N_MM_BACKENDS] = {[MM_OPENBLAS] = &MATMUL_OPENBLAS,
                                                             [MM_ONEDNN] = &MATMUL_ONEDNN};
const char *const PRECISION_NAMES[N_PRECISIONS] = {[PREC_FP32] = "fp32", [PREC_BF16] = "bf16"};

int matmul_backend_find(const char *name) {
    for (int i = 0; i < N_MM_BACKENDS; i++)
        if (!strcmp(name, MATMUL_BACKENDS[i]->name)) return i;
    return -1;
}

int precision_find(const char *name) {
    for (int i = 0; i < N_PRECISIONS; i++)
        if (!strcmp(name, PRECISION_NAMES[i])) return i;
    return -1;
}

const char *matmul_backend_name(int i) { return i >= 0 && i < N_MM_BACKENDS ? MATMUL_BACKENDS[i]->name : NULL; }
const char *precision_name(int i) { return i >= 0 && i < N_PRECISIONS ? PRECISION_NAMES[i] : NULL; }

int matmul_default_backend(void) {
    const MatmulBackend *dnnl = MATMUL_BACKENDS[MM_ONEDNN];
    return dnnl->unavailable && dnnl->unavailable() ? MM_OPENBLAS : MM_ONEDNN;
}

int cpu_has_bf16(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
#else
    return 0; // clang 14 knows no "avx512bf16" here: such builds emulate
#endif
}

// ----------------------------------------------------------------------------
// per-thread scratch: the two operands of a product, rounded to bf16

struct MatmulThread {
    void *a, *b; // rounded copies of A and B: uint16_t (native) or float (emulated)
    size_t a_cap, b_cap; // bytes
    void *state; // the backend's (thread_state)
};

static int bgemm_works(Matmul *mm);

int matmul_init(Matmul *mm, int backend, int precision, Error *err) {
    memset(mm, 0, sizeof *mm);
    if (backend < 0 || backend >= N_MM_BACKENDS || precision < 0 || precision >= N_PRECISIONS)
        return err_set(err, "matmul: backend %d or precision %d out of range", backend, precision);
    const MatmulBackend *be = MATMUL_BACKENDS[backend];
    const char *why = be->unavailable ? be->unavailable() : NULL;
    if (why) return err_set(err, "--matmul %s: %s", be->name, why);
    mm->backend = backend, mm->precision = precision;
    mm->emulated = precision == PREC_BF16 && (!be->bgemm || !cpu_has_bf16());
    // every thread this process may run: the tuner and --threads only lower the count
    int procs = omp_get_num_procs(), max = omp_get_max_threads();
    mm->nthreads = procs > max ? procs : max;
    mm->th = calloc((size_t)mm->nthreads, sizeof *mm->th);
    if (!mm->th) return err_set(err, "matmul: out of memory");
    for (int t = 0; t < mm->nthreads; t++) {
        if (be->thread_state && !(mm->th[t].state = be->thread_state(err))) return matmul_free(mm), -1;
    }
    if (precision == PREC_BF16 && !mm->emulated && !bgemm_works(mm)) mm->emulated = 1;
    return 0;
}

void matmul_free(Matmul *mm) {
    if (!mm || !mm->th) return;
    for (int t = 0; t < mm->nthreads; t++) {
        free(mm->th[t].a), free(mm->th[t].b);
        if (mm->th[t].state) MATMUL_BACKENDS[mm->backend]->thread_free(mm->th[t].state);
    }
    free(mm->th);
    mm->th = NULL;
    for (int k = 0; k < 4; k++) free(mm->op[k]), mm->op[k] = NULL;
}

const char *matmul_describe(const Matmul *mm, char *buf, size_t len) {
    int be = mm ? mm->backend : MM_OPENBLAS, pr = mm ? mm->precision : PREC_FP32;
    snprintf(buf, len, "%s %s%s", MATMUL_BACKENDS[be]->name, PRECISION_NAMES[pr],
             mm && mm->emulated ? " (emulated)" : "");
    return buf;
}

const char *matmul_note(const Matmul *mm) {
    if (!mm || !mm->emulated) return NULL;
    int native = matmul_default_backend() == MM_ONEDNN && cpu_has_bf16(); // another backend would be faster
    if (!MATMUL_BACKENDS[mm->backend]->bgemm && native)
        return "bf16 is emulated on this backend (operands rounded to bf16, then fp32 products: bf16's numbers at "
               "fp32's speed, plus the rounding); --matmul onednn computes bf16 products natively";
    if (!MATMUL_BACKENDS[mm->backend]->bgemm)
        return "bf16 is emulated on this backend (operands rounded to bf16, then fp32 products: bf16's numbers at "
               "fp32's speed, plus the rounding)";
    return "this CPU has no bf16 dot product (AVX512_BF16): bf16 is emulated (operands rounded to bf16, then fp32 "
           "products: bf16's numbers at fp32's speed, plus the rounding)";
}

// A buffer of at least `bytes` (grown, never shrunk; NULL if out of memory).
static void *scratch(void **p, size_t *cap, size_t bytes) {
    if (bytes > *cap) {
        void *q = realloc(*p, bytes);
        if (!q) return NULL;
        *p = q, *cap = bytes;
    }
    return *p;
}

// The stored matrix X (rows, cols) with leading dimension ld, rounded into dst
// packed (leading dimension cols): bf16 values, or floats holding bf16 values.
static void round_matrix(void *dst, int as_float, const float *X, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++) {
        const float *src = X + (size_t)r * ld;
        if (as_float) bf16_round_floats((float *)dst + (size_t)r * cols, src, (size_t)cols);
        else bf16_from_floats((uint16_t *)dst + (size_t)r * cols, src, (size_t)cols);
    }
}

// ----------------------------------------------------------------------------
// one product on the calling thread

// C = alpha op(A) op(B) + beta C on operands already rounded (round_matrix's
// form: bf16, or floats when emulated).
static void gemm_rounded(Matmul *mm, MatmulThread *th, int ta, int tb, int M, int N, int K, float alpha,
                         const void *A, int lda, const void *B, int ldb, float beta, float *C, int ldc) {
    const MatmulBackend *be = MATMUL_BACKENDS[mm->backend];
    if (mm->emulated) be->sgemm(th, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (be->bgemm(th, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) {
        fprintf(stderr, "matmul: %s failed on a bf16 %dx%dx%d product\n", be->name, M, N, K);
        exit(1); // matmul_init's probe passed: this is out of memory
    }
}

void mm_gemm(Matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int t = omp_get_thread_num();
    if (!mm || !mm->th || t >= mm->nthreads) { // no context: OpenBLAS, fp32
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                    alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    MatmulThread *th = &mm->th[t];
    const MatmulBackend *be = MATMUL_BACKENDS[mm->backend];
    if (mm->precision == PREC_FP32 || K <= 0) {
        be->sgemm(th, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    // stored shapes: A is (M,K), or (K,M) when transposed; B (K,N) or (N,K)
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    size_t elt = mm->emulated ? sizeof(float) : sizeof(uint16_t);
    void *a = scratch(&th->a, &th->a_cap, (size_t)ar * ac * elt), *b = scratch(&th->b, &th->b_cap, (size_t)br * bc * elt);
    if (!a || !b) { // out of memory mid-step: nothing to return an error to
        fprintf(stderr, "matmul: out of memory for a %dx%d bf16 operand\n", ar, ac);
        exit(1);
    }
    round_matrix(a, mm->emulated, A, ar, ac, lda);
    round_matrix(b, mm->emulated, B, br, bc, ldb);
    gemm_rounded(mm, th, ta, tb, M, N, K, alpha, a, ac, b, bc, beta, C, ldc);
}

// Whether the backend's native bf16 product works here: a 3x2x5 product whose
// operands are bf16 values, so the exact result is known.
static int bgemm_works(Matmul *mm) {
    float A[15], B[10], C[6] = {0}, want[6] = {0};
    for (int i = 0; i < 15; i++) A[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 10; i++) B[i] = 0.5f * (float)(i % 5) - 1.0f;
    for (int m = 0; m < 3; m++)
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 5; k++) want[m * 2 + n] += A[m * 5 + k] * B[k * 2 + n];
    uint16_t a[15], b[10];
    bf16_from_floats(a, A, 15), bf16_from_floats(b, B, 10);
    const MatmulBackend *be = MATMUL_BACKENDS[mm->backend];
    return !be->bgemm(&mm->th[0], 0, 0, 3, 2, 5, 1.0f, a, 5, b, 2, 0.0f, C, 2) && !memcmp(C, want, sizeof C);
}

void *matmul_thread_state(MatmulThread *th) { return th->state; }

// ----------------------------------------------------------------------------
// the linear layers
//
// Each thread of our own parallel region computes its slice of the output
// rows with a single-threaded product: one barrier per product instead of a
// threaded BLAS driver, which synchronises its threads many times per call
// (spinning, then sched_yield) and mallocs per call. Products of one input
// with several matrices (q, k, v; w1, w3) share one region: one barrier for
// all. (A decoded token goes further: its whole forward is one region,
// src/model.c's token_forward.) The slices are fixed by the thread count
// (slice k of nt: the same rows, so the same bits, whichever thread computes
// it) but handed out first come, first served: when another process holds a
// core, the thread that has one takes the slices of the thread that has not
// started yet.

// Rows [r0, r1) of M for thread t of nt: contiguous, in blocks of 16 rows.
static void thread_rows(int M, int t, int nt, int *r0, int *r1) {
    long blocks = (M + 15) / 16;
    long b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    *r0 = b0 * 16 < M ? (int)(b0 * 16) : M;
    *r1 = b1 * 16 < M ? (int)(b1 * 16) : M;
}

// ----------------------------------------------------------------------------
// the linear layers in bf16: each operand is rounded once, by all threads
// together, then every thread multiplies its slice (rounding in each thread's
// mm_gemm would round a shared operand once per thread: 17% of a small step)

static size_t rounded_size(const Matmul *mm) { return mm->emulated ? sizeof(float) : sizeof(uint16_t); }

// Shared operand buffer k of at least `elems` rounded values (outside parallel regions).
static char *op_buffer(Matmul *mm, int k, size_t elems) {
    char *p = scratch(&mm->op[k], &mm->op_cap[k], elems * rounded_size(mm));
    if (!p) {
        fprintf(stderr, "matmul: out of memory for %zu bf16 operand values\n", elems);
        exit(1);
    }
    return p;
}

// X (rows, cols; leading dimension ld) rounded into dst, packed; a share of
// the rows per thread of the team, no barrier.
static void round_team(const Matmul *mm, char *dst, const float *X, size_t rows, int cols, int ld) {
#pragma omp for schedule(static) nowait
    for (size_t r = 0; r < rows; r++)
        round_matrix(dst + r * cols * rounded_size(mm), mm->emulated, X + r * ld, 1, cols, cols);
}

static void forward_bf16(Matmul *mm, int n, float *const out[], const float *inp, const float *const w[],
                         size_t N, int C, const int OC[]) {
    size_t at[8], total = 0, elt = rounded_size(mm); // w[i]'s place in the shared buffer
    for (int i = 0; i < n; i++) at[i] = total, total += (size_t)OC[i] * C;
    char *x = op_buffer(mm, 0, N * C), *wr = op_buffer(mm, 1, total);
#pragma omp parallel
    {
        round_team(mm, x, inp, N, C, C);
        for (int i = 0; i < n; i++) round_team(mm, wr + at[i] * elt, w[i], (size_t)OC[i], C, C);
#pragma omp barrier
        int nt = omp_get_num_threads();
        MatmulThread *th = &mm->th[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1) nowait
        for (int task = 0; task < n * nt; task++) {
            int i = task / nt, k = task % nt, r0, r1;
            thread_rows((int)N, k, nt, &r0, &r1);
            if (r1 > r0)
                gemm_rounded(mm, th, 0, 1, r1 - r0, OC[i], C, 1.0f, x + (size_t)r0 * C * elt, C, wr + at[i] * elt,
                             C, 0.0f, out[i] + (size_t)r0 * OC[i], OC[i]);
        }
    }
}

static void backward_bf16(Matmul *mm, float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          size_t N, int C, int OC) {
    size_t elt = rounded_size(mm);
    char *d = op_buffer(mm, 0, N * OC), *x = op_buffer(mm, 1, N * C), *wr = op_buffer(mm, 2, (size_t)OC * C);
#pragma omp parallel
    {
        round_team(mm, d, dout, N, OC, OC);
        round_team(mm, x, inp, N, C, C);
        round_team(mm, wr, w, (size_t)OC, C, C);
#pragma omp barrier
        int nt = omp_get_num_threads();
        MatmulThread *th = &mm->th[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1) nowait
        for (int task = 0; task < 2 * nt; task++) {
            int r0, r1;
            if (task < nt) { // dinp (N,C) += dout @ w, by rows of dinp
                thread_rows((int)N, task, nt, &r0, &r1);
                if (r1 > r0)
                    gemm_rounded(mm, th, 0, 0, r1 - r0, C, OC, 1.0f, d + (size_t)r0 * OC * elt, OC, wr, C, 1.0f,
                                 dinp + (size_t)r0 * C, C);
            } else { // dw (OC,C) += dout^T @ inp, by rows of dw
                thread_rows(OC, task - nt, nt, &r0, &r1);
                if (r1 > r0)
                    gemm_rounded(mm, th, 1, 0, r1 - r0, C, (int)N, 1.0f, d + (size_t)r0 * elt, OC, x, C, 1.0f,
                                 dw + (size_t)r0 * C, C);
            }
        }
    }
}

// ----------------------------------------------------------------------------
// operands

static int rounds(const Matmul *mm) { return mm && mm->th && mm->precision == PREC_BF16; }

Operand mm_operand(Matmul *mm, int slot, const float *X, size_t rows, int cols, int ld) {
    Operand o = {X, NULL, ld, cols};
    if (!rounds(mm)) return o;
    char *r = op_buffer(mm, slot, rows * cols);
#pragma omp parallel
    round_team(mm, r, X, rows, cols, ld);
    o.r = r;
    return o;
}

Operand mm_local(Matmul *mm, int which, const float *X, int rows, int cols, int ld) {
    Operand o = {X, NULL, ld, cols};
    int t = omp_get_thread_num();
    if (!rounds(mm) || t >= mm->nthreads) return o;
    MatmulThread *th = &mm->th[t];
    void *r = which ? scratch(&th->b, &th->b_cap, (size_t)rows * cols * rounded_size(mm))
                    : scratch(&th->a, &th->a_cap, (size_t)rows * cols * rounded_size(mm));
    if (!r) {
        fprintf(stderr, "matmul: out of memory for a %dx%d bf16 operand\n", rows, cols);
        exit(1);
    }
    round_matrix(r, mm->emulated, X, rows, cols, ld);
    o.r = r;
    return o;
}

Operand mm_sub(const Matmul *mm, Operand o, size_t row, size_t col) {
    o.x += row * o.ld + col;
    if (o.r) o.r = (const char *)o.r + (row * o.rld + col) * rounded_size(mm);
    return o;
}

void mm_gemm_op(Matmul *mm, int ta, int tb, int M, int N, int K, float alpha, Operand A, Operand B, float beta,
                float *C, int ldc) {
    int t = omp_get_thread_num();
    if (A.r && B.r && M > 0 && N > 0 && K > 0 && t < mm->nthreads)
        gemm_rounded(mm, &mm->th[t], ta, tb, M, N, K, alpha, A.r, A.rld, B.r, B.rld, beta, C, ldc);
    else
        mm_gemm(mm, ta, tb, M, N, K, alpha, A.x, A.ld, B.x, B.ld, beta, C, ldc);
}

void matmul_forward_multi(Matmul *mm, int n, float *const out[], const float *inp, const float *const w[],
                          size_t N, int C, const int OC[]) {
    if (mm && mm->th && mm->precision == PREC_BF16 && n <= 8) {
        forward_bf16(mm, n, out, inp, w, N, C, OC);
        return;
    }
    int vec = N == 1 && (!mm || mm->precision == PREC_FP32);
#pragma omp parallel
    if (vec) {
        matvec_team(mm, n, out, inp, w, C, OC, NULL, NULL);
    } else {
        int nt = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1) nowait
        for (int task = 0; task < n * nt; task++) {
            int i = task / nt, k = task % nt, r0, r1;
            thread_rows((int)N, k, nt, &r0, &r1);
            if (r1 > r0)
                mm_gemm(mm, 0, 1, r1 - r0, OC[i], C, 1.0f, inp + (size_t)r0 * C, C, w[i], C, 0.0f,
                        out[i] + (size_t)r0 * OC[i], OC[i]);
        }
    }
}

// One token (generation): sgemv streams w once (sgemm would first pack a copy
// of it), a slice of w's rows per task; each output's dot product is the same
// whoever computes it, so the bits do not depend on the thread count. Every
// backend decodes through OpenBLAS's sgemv: a memory-bound product, where a
// faster kernel cannot help (docs/perf.md).
void matvec_team(Matmul *mm, int n, float *const out[], const float *inp, const float *const w[], int C,
                 const int OC[], RowsFn then, void *ctx) {
    (void)mm;
    int nt = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1)
    for (int k = 0; k < nt; k++)
        for (int i = 0; i < n; i++) {
            int r0, r1;
            thread_rows(OC[i], k, nt, &r0, &r1);
            if (r1 <= r0) continue;
            cblas_sgemv(CblasRowMajor, CblasNoTrans, r1 - r0, C, 1.0f, w[i] + (size_t)r0 * C, C, inp, 1, 0.0f,
                        out[i] + r0, 1);
            if (then) then(ctx, i, r0, r1);
        }
}

void matmul_forward(Matmul *mm, float *out, const float *inp, const float *w, size_t N, int C, int OC) {
    matmul_forward_multi(mm, 1, &out, inp, &w, N, C, &OC);
}

void matmul_backward(Matmul *mm, float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                     size_t N, int C, int OC) {
    if (mm && mm->th && mm->precision == PREC_BF16) {
        backward_bf16(mm, dinp, dw, dout, inp, w, N, C, OC);
        return;
    }
#pragma omp parallel
    {
        int nt = omp_get_num_threads();
        // tasks 0..nt-1: slices of dinp's rows; nt..2nt-1: slices of dw's rows
#pragma omp for schedule(dynamic, 1) nowait
        for (int task = 0; task < 2 * nt; task++) {
            int r0, r1;
            if (task < nt) {
                // dinp (N,C) += dout (N,OC) @ w (OC,C), by rows of dinp
                thread_rows((int)N, task, nt, &r0, &r1);
                if (r1 > r0)
                    mm_gemm(mm, 0, 0, r1 - r0, C, OC, 1.0f, dout + (size_t)r0 * OC, OC, w, C, 1.0f,
                            dinp + (size_t)r0 * C, C);
            } else {
                // dw (OC,C) += dout^T (OC,N) @ inp (N,C), by rows of dw: each sums over all N
                thread_rows(OC, task - nt, nt, &r0, &r1);
                if (r1 > r0)
                    mm_gemm(mm, 1, 0, r1 - r0, C, (int)N, 1.0f, dout + r0, OC, inp, C, 1.0f,
                            dw + (size_t)r0 * C, C);
            }
        }
    }
}

// ----------------------------------------------------------------------------
// bf16 weights
//
// bf16_gemm_nt's arithmetic (matmul.h) is vdpbf16ps's, so its portable loop
// can give the instruction's bits: a bf16 x bf16 product is exact in fp32, and
// each lane adds its two products one after the other, odd first (measured on
// Zen 5: 3.2 M lanes of random operands, every bit equal; the opposite order
// differs in 12 %), flushing subnormal inputs and sums to zero.

#define DOT_LANES_BF16 16 // fp32 lanes of a 512-bit register; each takes 2 inputs of a block of 32

// A bf16 input as vdpbf16ps reads it: a subnormal is a zero of its sign.
static inline float daz_bf16(uint16_t h) { return bf16_to_float((h & 0x7f80u) ? h : (uint16_t)(h & 0x8000u)); }
// A sum as vdpbf16ps writes it: below 2^-126, a zero of its sign.
static inline float ftz(float s) { return fabsf(s) < FLT_MIN ? copysignf(0.0f, s) : s; }

// The lanes' tree sum (matmul.h): j + j+8, + 4, + 2, + 1.
static float lanes_tree(float *a) {
    for (int s = DOT_LANES_BF16 / 2; s >= 1; s /= 2)
        for (int j = 0; j < s; j++) a[j] = a[j] + a[j + s];
    return a[0];
}

static float dot_row_portable(const uint16_t *w, const uint16_t *x, int C) {
    float acc[DOT_LANES_BF16] = {0};
    int full = C / (2 * DOT_LANES_BF16) * (2 * DOT_LANES_BF16);
    for (int k = 0; k < full; k += 2 * DOT_LANES_BF16)
        for (int j = 0; j < DOT_LANES_BF16; j++) {
            const uint16_t *wj = w + k + 2 * j, *xj = x + k + 2 * j;
            acc[j] = ftz(acc[j] + daz_bf16(wj[1]) * daz_bf16(xj[1]));
            acc[j] = ftz(acc[j] + daz_bf16(wj[0]) * daz_bf16(xj[0]));
        }
    if (full < C) // the last block, zeros past C (they add +0, as the instruction's masked lanes)
        for (int j = 0; j < DOT_LANES_BF16; j++) {
            int i0 = full + 2 * j, i1 = i0 + 1;
            float p1 = i1 < C ? daz_bf16(w[i1]) * daz_bf16(x[i1]) : 0.0f;
            float p0 = i0 < C ? daz_bf16(w[i0]) * daz_bf16(x[i0]) : 0.0f;
            acc[j] = ftz(acc[j] + p1);
            acc[j] = ftz(acc[j] + p0);
        }
    return lanes_tree(acc);
}

void bf16_gemm_nt_portable(float *out, size_t ldo, const uint16_t *x, int N, const uint16_t *w, int rows, int C) {
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < N; n++) out[(size_t)n * ldo + r] = dot_row_portable(w + (size_t)r * C, x + (size_t)n * C, C);
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#include <immintrin.h>

int bf16_dot_native(void) { return 1; }

// The 16 lanes summed in lanes_tree's order.
static inline float lanes_sum(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); // j + j+8
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));            // + 4
    __m128 c = _mm_add_ps(b, _mm_movehl_ps(b, b));                                           // + 2
    return _mm_cvtss_f32(_mm_add_ss(c, _mm_movehdup_ps(c)));                                 // + 1
}

#define DP(acc, wp, xv) _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(wp), xv)
#define DP_TAIL(acc, wp, m, xv) _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi16(m, wp), xv)

// Four rows of w against one row x: four independent sums in flight, each
// block of x loaded once for the four.
static void dot4(float *out, const uint16_t *w, size_t C, const uint16_t *x, int full, __mmask32 tail) {
    const uint16_t *w0 = w, *w1 = w0 + C, *w2 = w1 + C, *w3 = w2 + C;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int k = 0; k < full; k += 32) {
        __m512bh xv = (__m512bh)_mm512_loadu_si512(x + k);
        a0 = DP(a0, w0 + k, xv), a1 = DP(a1, w1 + k, xv), a2 = DP(a2, w2 + k, xv), a3 = DP(a3, w3 + k, xv);
    }
    if (tail) {
        __m512bh xt = (__m512bh)_mm512_maskz_loadu_epi16(tail, x + full);
        a0 = DP_TAIL(a0, w0 + full, tail, xt), a1 = DP_TAIL(a1, w1 + full, tail, xt);
        a2 = DP_TAIL(a2, w2 + full, tail, xt), a3 = DP_TAIL(a3, w3 + full, tail, xt);
    }
    out[0] = lanes_sum(a0), out[1] = lanes_sum(a1), out[2] = lanes_sum(a2), out[3] = lanes_sum(a3);
}

static float dot1(const uint16_t *w, const uint16_t *x, int full, __mmask32 tail) {
    __m512 a0 = _mm512_setzero_ps();
    for (int k = 0; k < full; k += 32) a0 = DP(a0, w + k, (__m512bh)_mm512_loadu_si512(x + k));
    if (tail) a0 = DP_TAIL(a0, w + full, tail, (__m512bh)_mm512_maskz_loadu_epi16(tail, x + full));
    return lanes_sum(a0);
}
#undef DP
#undef DP_TAIL

// Four rows of w at a time against every row of x: the four rows (C values
// each, a few KB) stay in the first-level cache while the rows of x pass, so
// w streams from memory once for the N rows.
void bf16_gemm_nt(float *out, size_t ldo, const uint16_t *x, int N, const uint16_t *w, int rows, int C) {
    int full = C & ~31, rest = C - full;
    __mmask32 tail = (__mmask32)((1u << rest) - 1); // rest < 32
    int r = 0;
    float o[4];
    for (; r + 4 <= rows; r += 4)
        for (int n = 0; n < N; n++) {
            dot4(o, w + (size_t)r * C, (size_t)C, x + (size_t)n * C, full, tail);
            memcpy(out + (size_t)n * ldo + r, o, sizeof o);
        }
    for (; r < rows; r++)
        for (int n = 0; n < N; n++) out[(size_t)n * ldo + r] = dot1(w + (size_t)r * C, x + (size_t)n * C, full, tail);
}

#else

int bf16_dot_native(void) { return 0; }

void bf16_gemm_nt(float *out, size_t ldo, const uint16_t *x, int N, const uint16_t *w, int rows, int C) {
    bf16_gemm_nt_portable(out, ldo, x, N, w, rows, C);
}

#endif

void matvec_bf16_team(int n, float *const out[], const float *inp, uint16_t *x16, const uint16_t *const w[], int C,
                      const int OC[], RowsFn then, void *ctx) {
    bf16_from_floats(x16, inp, (size_t)C);
    int nt = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1)
    for (int k = 0; k < nt; k++)
        for (int i = 0; i < n; i++) {
            int r0, r1;
            thread_rows(OC[i], k, nt, &r0, &r1);
            if (r1 <= r0) continue;
            bf16_gemm_nt(out[i] + r0, 0, x16, 1, w[i] + (size_t)r0 * C, r1 - r0, C);
            if (then) then(ctx, i, r0, r1);
        }
}

void matmul_forward_multi_bf16(int n, float *const out[], const float *inp, uint16_t *x16, const uint16_t *const w[],
                               size_t N, int C, const int OC[]) {
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (size_t r = 0; r < N; r++) bf16_from_floats(x16 + r * C, inp + r * C, (size_t)C);
        int nt = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1) nowait
        for (int task = 0; task < n * nt; task++) {
            int i = task / nt, k = task % nt, r0, r1;
            thread_rows(OC[i], k, nt, &r0, &r1);
            if (r1 > r0) bf16_gemm_nt(out[i] + r0, (size_t)OC[i], x16, (int)N, w[i] + (size_t)r0 * C, r1 - r0, C);
        }
    }
}
