#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "common.h"
#include "vmath.h"

// Per-channel weight gradients are summed over rows by blocks of channels, so
// each thread owns whole blocks: no atomics, and the same bits for any thread count.
#define CH_BLOCK 16

// ----------------------------------------------------------------------------
// matmul: all three products go through sgemm
//
// Each thread of our own parallel region calls sgemm on its slice of the
// output rows, and OpenBLAS runs it single-threaded there: one barrier per
// product instead of OpenBLAS's threaded driver, which synchronises its threads
// many times per call (spinning, then sched_yield) and mallocs per call.
// Products of one input with several matrices (q, k, v; w1, w3) share one
// region: one barrier for all, which matters most for a decoded token, whose
// products take microseconds (and a barrier far longer on a busy machine).
// The slices are fixed by the thread count (slice k of nt: the same rows, so
// the same bits, whichever thread computes it) but handed out first come,
// first served: when another process holds a core, the thread that has one
// takes the slices of the thread that has not started yet.

// Rows [r0, r1) of M for thread t of nt: contiguous, in blocks of 16 rows.
static void thread_rows(int M, int t, int nt, int *r0, int *r1) {
    long blocks = (M + 15) / 16;
    long b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    *r0 = b0 * 16 < M ? (int)(b0 * 16) : M;
    *r1 = b1 * 16 < M ? (int)(b1 * 16) : M;
}

void matmul_forward_multi(int n, float *const out[], const float *inp, const float *const w[], size_t N, int C,
                          const int OC[]) {
#pragma omp parallel
    {
        int nt = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1) nowait
        for (int task = 0; task < n * nt; task++) {
            int i = task / nt, k = task % nt, r0, r1;
            if (N == 1) {
                // one token (generation): sgemv streams w once (sgemm would first pack a
                // copy of it), a slice of w's rows per task; each output's dot product
                // is the same whoever computes it, so the bits do not depend on the count
                thread_rows(OC[i], k, nt, &r0, &r1);
                if (r1 > r0)
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, r1 - r0, C, 1.0f, w[i] + (size_t)r0 * C, C, inp, 1,
                                0.0f, out[i] + r0, 1);
            } else {
                thread_rows((int)N, k, nt, &r0, &r1);
                if (r1 > r0)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, OC[i], C, 1.0f,
                                inp + (size_t)r0 * C, C, w[i], C, 0.0f, out[i] + (size_t)r0 * OC[i], OC[i]);
            }
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *w, size_t N, int C, int OC) {
    matmul_forward_multi(1, &out, inp, &w, N, C, &OC);
}

void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp,
                     const float *w, size_t N, int C, int OC) {
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
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, C, OC,
                                1.0f, dout + (size_t)r0 * OC, OC, w, C, 1.0f, dinp + (size_t)r0 * C, C);
            } else {
                // dw (OC,C) += dout^T (OC,N) @ inp (N,C), by rows of dw: each sums over all N
                thread_rows(OC, task - nt, nt, &r0, &r1);
                if (r1 > r0)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, C, (int)N,
                                1.0f, dout + r0, OC, inp, C, 1.0f, dw + (size_t)r0 * C, C);
            }
        }
    }
}

// ----------------------------------------------------------------------------
// RoPE, interleaved pairs (x[2i], x[2i+1]) as in Meta's reference and llama2.c

void rope_tables(float *cos_t, float *sin_t, int max_pos, int head_dim, float theta) {
    size_t half = (size_t)head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        // in double, so the tables do not depend on libm's float paths
        double freq = pow((double)theta, -2.0 * (double)i / head_dim);
        for (size_t p = 0; p < (size_t)max_pos; p++) {
            cos_t[p * half + i] = (float)cos((double)p * freq);
            sin_t[p * half + i] = (float)sin((double)p * freq);
        }
    }
}

void rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int pos0,
                int n_heads, int head_dim, int inverse) {
    int half = head_dim / 2, width = n_heads * head_dim;
    float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * n_heads * head_dim >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *cs = cos_t + (size_t)(pos0 + t) * half, *sn = sin_t + (size_t)(pos0 + t) * half;
            float *row = x + ((size_t)b * T + t) * width;
            for (int h = 0; h < n_heads; h++) {
                float *v = row + h * head_dim;
                for (int i = 0; i < half; i++) {
                    float c = cs[i], s = sgn * sn[i];
                    float a = v[2 * i], bb = v[2 * i + 1];
                    v[2 * i] = a * c - bb * s;
                    v[2 * i + 1] = a * s + bb * c;
                }
            }
        }
}

// ----------------------------------------------------------------------------
// causal grouped-query attention, as sgemms per (batch, head)
//
// Each (batch, head) is one task of a parallel loop (handed out first come,
// first served, as the matmuls' slices), and its products are
// BLAS calls made inside it (sgemm; sgemv for a block of one query): OpenBLAS's OpenMP build runs a call made inside
// a parallel region on the calling thread alone (and nested regions get one
// thread anyway, OpenMP's default), so the pool is never oversubscribed and
// every task's bits are the same for any thread count.
// Rows go in blocks of ATT_ROWS queries: block [t0, t1) sees only keys
// 0..pos0+t1-1, which skips most of the masked upper triangle's products.

#define ATT_ROWS 64

// Row t of a block: probabilities over its tk visible keys, zeros up to kv_len.
static void softmax_row(float *a, int tk, int kv_len) {
    float maxv = -INFINITY, sum = 0.0f;
    for (int j = 0; j < tk; j++) maxv = a[j] > maxv ? a[j] : maxv;
    for (int j = 0; j < tk; j++) {
        a[j] = exp_approx(a[j] - maxv);
        sum += a[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < tk; j++) a[j] *= inv;
    for (int j = tk; j < kv_len; j++) a[j] = 0.0f;
}

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int pos0, int kv_len, int NH, int NKV, int HS) {
    int C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *kb = k + (size_t)b * kv_len * KVC + (h / group) * HS;
            const float *vb = v + (size_t)b * kv_len * KVC + (h / group) * HS;
            float *ab = att + ((size_t)b * NH + h) * T * kv_len;
            for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
                int rows = T - t0 < ATT_ROWS ? T - t0 : ATT_ROWS, nk = pos0 + t0 + rows;
                const float *qb = q + ((size_t)b * T + t0) * C + h * HS;
                float *a = ab + (size_t)t0 * kv_len;
                float *o = out + ((size_t)b * T + t0) * C + h * HS;
                // scores (rows, nk) = scale * q (rows,HS) @ k (nk,HS)^T
                if (rows == 1) // one query (generation): sgemv reads the cache once, sgemm would pack a copy first
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, nk, HS, scale, kb, KVC, qb, 1, 0.0f, a, 1);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, HS,
                                scale, qb, C, kb, KVC, 0.0f, a, kv_len);
                for (int r = 0; r < rows; r++) softmax_row(a + (size_t)r * kv_len, pos0 + t0 + r + 1, kv_len);
                // out (rows,HS) = att (rows,nk) @ v (nk,HS)
                if (rows == 1)
                    cblas_sgemv(CblasRowMajor, CblasTrans, nk, HS, 1.0f, vb, KVC, a, 1, 0.0f, o, 1);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, nk,
                                1.0f, a, kv_len, vb, KVC, 0.0f, o, C);
            }
        }
}

size_t attention_scratch_floats(int T) { return (size_t)(T < ATT_ROWS ? T : ATT_ROWS) * (size_t)T; }

// d(scores) of one row block in place: ds = p * (dp - sum_j p dp) * scale.
// Keys past the diagonal have p = 0, so their ds is 0 as well.
static void softmax_backward_rows(float *dp, const float *p, int rows, int nk, int T, float scale) {
    for (int r = 0; r < rows; r++) {
        float *d = dp + (size_t)r * nk;
        const float *pr = p + (size_t)r * T;
        float dot = 0.0f;
        for (int j = 0; j < nk; j++) dot += pr[j] * d[j];
        for (int j = 0; j < nk; j++) d[j] = pr[j] * (d[j] - dot) * scale;
    }
}

// One task owns one (batch, kv head) pair and all query heads that read it,
// so dk and dv are written without races.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        int B, int T, int NH, int NKV, int HS, float *scratch) {
    int C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int kvh = 0; kvh < NKV; kvh++) {
            float *ds = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(T);
            size_t kvo = (size_t)b * T * KVC + kvh * HS;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
                    int rows = T - t0 < ATT_ROWS ? T - t0 : ATT_ROWS, nk = t0 + rows;
                    size_t qo = ((size_t)b * T + t0) * C + h * HS;
                    const float *p = att + (((size_t)b * NH + h) * T + t0) * T;
                    // through out = p @ v: dp (rows,nk) = dout @ v^T, dv (nk,HS) += p^T @ dout
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, HS,
                                1.0f, dout + qo, C, v + kvo, KVC, 0.0f, ds, nk);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, rows,
                                1.0f, p, T, dout + qo, C, 1.0f, dv + kvo, KVC);
                    softmax_backward_rows(ds, p, rows, nk, T, scale);
                    // through scores = q @ k^T: dq += ds @ k, dk += ds^T @ q
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, nk,
                                1.0f, ds, nk, k + kvo, KVC, 1.0f, dq + qo, C);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, rows,
                                1.0f, ds, nk, q + qo, C, 1.0f, dk + kvo, KVC);
                }
        }
}

// ----------------------------------------------------------------------------
// SwiGLU

void swiglu_forward(float *out, const float *h1, const float *h3, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = h1[i];
        out[i] = x / (1.0f + expf(-x)) * h3[i];
    }
}

// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x)
void swiglu_backward(float *dh1, float *dh3, const float *dout, const float *h1,
                     const float *h3, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = h1[i], s = 1.0f / (1.0f + expf(-x));
        dh3[i] = dout[i] * x * s;
        dh1[i] = dout[i] * h3[i] * s * (1.0f + x * (1.0f - s));
    }
}

// ----------------------------------------------------------------------------
// GELU (exact, with erf: torch.nn.GELU's default), Phi(x) = erfc(-x / sqrt 2) / 2

void gelu_forward(float *out, const float *h, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = h[i];
        out[i] = 0.5f * x * erfcf(-x * 0.70710678118654752f); // erfc: no cancellation for x < 0
    }
}

// gelu'(x) = Phi(x) + x phi(x): the normal CDF and density
void gelu_backward(float *dh, const float *dout, const float *h, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = h[i];
        float cdf = 0.5f * erfcf(-x * 0.70710678118654752f);
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        dh[i] = dout[i] * (cdf + x * pdf);
    }
}

// ----------------------------------------------------------------------------
// token embedding

void embedding_forward(float *out, const int *tokens, const float *wte, size_t N, int C) {
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (size_t n = 0; n < N; n++)
        memcpy(out + n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

void embedding_backward(float *dwte, const float *dout, const int *tokens, size_t N, int C) {
    int nblocks = (C + CH_BLOCK - 1) / CH_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * CH_BLOCK, c1 = c0 + CH_BLOCK < C ? c0 + CH_BLOCK : C;
        for (size_t n = 0; n < N; n++) {
            float *dst = dwte + (size_t)tokens[n] * C;
            const float *src = dout + n * C;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

// ----------------------------------------------------------------------------
// softmax cross-entropy

double crossentropy_forward_backward(float *dlogits, const float *logits, const int *targets,
                                     size_t N, int V, float dscale, double *row_loss) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *z = logits + n * V;
        float maxv = -INFINITY;
        for (int i = 0; i < V; i++) maxv = z[i] > maxv ? z[i] : maxv;
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += exp((double)(z[i] - maxv));
        double logsum = log(sum) + maxv;
        row_loss[n] = logsum - z[targets[n]];
        if (dlogits) {
            float *d = dlogits + n * V;
            for (int i = 0; i < V; i++) d[i] = (float)exp(z[i] - logsum) * dscale;
            d[targets[n]] -= dscale;
        }
    }
    double total = 0.0; // in row order: deterministic
    for (size_t n = 0; n < N; n++) total += row_loss[n];
    return total / (double)N;
}
