#include "layers.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "bf16.h"
#include "common.h"
#include "matmul.h"
#include "vmath.h"

// Per-channel weight gradients are summed over rows by blocks of channels, so
// each thread owns whole blocks: no atomics, and the same bits for any thread count.
#define CH_BLOCK 16

// ----------------------------------------------------------------------------
// RoPE, interleaved pairs (x[2i], x[2i+1]) as in Meta's reference and llama2.c

void rope_tables(float *cos_t, float *sin_t, int max_pos, int HS, float theta) {
    size_t half = (size_t)HS / 2;
    for (size_t i = 0; i < half; i++) {
        // in double, so the tables do not depend on libm's float paths
        double freq = pow((double)theta, -2.0 * (double)i / HS);
        for (size_t p = 0; p < (size_t)max_pos; p++) {
            cos_t[p * half + i] = (float)cos((double)p * freq);
            sin_t[p * half + i] = (float)sin((double)p * freq);
        }
    }
}

// Pairs i0..i1-1 of one head v at the angles cs, sn (its position's row).
static void rope_head(float *v, const float *cs, const float *sn, int i0, int i1, float sgn) {
    for (int i = i0; i < i1; i++) {
        float c = cs[i], s = sgn * sn[i];
        float a = v[2 * i], bb = v[2 * i + 1];
        v[2 * i] = a * c - bb * s;
        v[2 * i + 1] = a * s + bb * c;
    }
}

void rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int pos0,
                int n_heads, int HS, int inverse) {
    int half = HS / 2, width = n_heads * HS;
    float sgn = inverse ? -1.0f : 1.0f;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * n_heads * HS >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *cs = cos_t + (size_t)(pos0 + t) * half, *sn = sin_t + (size_t)(pos0 + t) * half;
            float *row = x + ((size_t)b * T + t) * width;
            for (int h = 0; h < n_heads; h++) rope_head(row + h * HS, cs, sn, 0, half, sgn);
        }
}

void rope_span(float *x, const float *cos_t, const float *sin_t, int pos, int e0, int e1, int HS) {
    int half = HS / 2;
    const float *cs = cos_t + (size_t)pos * half, *sn = sin_t + (size_t)pos * half;
    for (int h = e0 / HS; h * HS < e1; h++) {
        int lo = e0 - h * HS, hi = e1 - h * HS; // the span within head h, in elements
        rope_head(x + (size_t)h * HS, cs, sn, lo > 0 ? lo / 2 : 0, hi < HS ? hi / 2 : half, 1.0f);
    }
}

// ----------------------------------------------------------------------------
// causal grouped-query attention, as sgemms per (batch, head)
//
// Each (batch, head) is one task of a parallel loop (handed out first come,
// first served, as the matmuls' slices), and its products are sgemm calls
// made inside it: OpenBLAS's OpenMP build runs a call made inside a parallel
// region on the calling thread alone (and nested regions get one thread
// anyway, OpenMP's default), so the pool is never oversubscribed and every
// task's bits are the same for any thread count.
// Rows go in blocks of ATT_ROWS queries: block [t0, t1) sees only keys
// 0..pos0+t1-1, which skips most of the masked upper triangle's products.
// One query (a decoded token, T = 1) has code of its own: attention_one_team.

#define ATT_ROWS 64

// a (n) = exp(a - max a); returns the sum, *max the maximum. (The
// exponentials in a loop of their own vectorise; the sum stays one running
// sum in order, so the bits are those of a single loop.)
static float exp_row(float *a, int n, float *max) {
    float maxv = -INFINITY, sum = 0.0f;
    for (int j = 0; j < n; j++) maxv = a[j] > maxv ? a[j] : maxv;
    for (int j = 0; j < n; j++) a[j] = exp_approx(a[j] - maxv);
    for (int j = 0; j < n; j++) sum += a[j];
    *max = maxv;
    return sum;
}

// Row t of a block: probabilities over its tk visible keys, zeros up to kv_len.
static void softmax_row(float *a, int tk, int kv_len) {
    float maxv, inv = 1.0f / exp_row(a, tk, &maxv);
    for (int j = 0; j < tk; j++) a[j] *= inv;
    for (int j = tk; j < kv_len; j++) a[j] = 0.0f;
}

// One query per batch row (a decoded token) against nk = pos0 + 1 cached
// keys. BLAS would be called per head, on nk rows of HS floats at the cache's
// stride (sgemv runs at half the memory's speed there, its kernel made for long
// rows; sgemm packs a copy first), and threads that split the heads read
// alternate runs of every row, which the prefetchers turn into twice the
// traffic. Here the keys go in fixed chunks of ATT_CHUNK rows, each a task
// that reads its rows whole, once: the scores of every head, their
// exponentials against the chunk's own maximum, and the chunk's weighted sum
// of the values; then the chunks are combined, each weighted by
// exp(its maximum - the head's) / the head's sum (as in flash-decoding). A
// chunk's data stays with the thread that made it until the combination, and
// the chunks do not depend on the thread count, nor then do the bits.
#define ATT_CHUNK 64

static int chunk_end(int ch, int nk) { return (ch + 1) * ATT_CHUNK < nk ? (ch + 1) * ATT_CHUNK : nk; }

size_t attention_one_scratch_floats(int B, int kv_len, int NH, int HS) { // SIZE_MAX if it overflows
    size_t chunks = (size_t)B * (size_t)((kv_len + ATT_CHUNK - 1) / ATT_CHUNK), per = (size_t)NH * ((size_t)HS + 2);
    return chunks && per > SIZE_MAX / chunks ? SIZE_MAX : chunks * per;
}

// The cache row ATT_AHEAD rows on, asked for while this one is computed: the
// memory's latency then overlaps the arithmetic, which the hardware's
// prefetcher alone did not achieve (d 512, 8 layers: a decoded token's
// attention 0.68 -> 0.41 ms). Within the chunk: the rows after it are another task's.
#define ATT_AHEAD 4
static void prefetch_row(const void *p, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) __builtin_prefetch((const char *)p + i);
}

// Element i of a cache row: fp32, or bf16 widened as it is read.
static inline float kv_at(const void *row, int i, int bf16) {
    return bf16 ? bf16_to_float(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

// dot_lanes (vmath.h) of q and a cache row: the same sums in the same order
// (its product with 1.0f is exact), in either element type.
static inline float dot_lanes_kv(const float *restrict a, const void *b, int n, int bf16) {
    float acc[DOT_LANES] = {0};
    int i = 0;
    for (; i + DOT_LANES <= n; i += DOT_LANES)
        for (int j = 0; j < DOT_LANES; j++) acc[j] += a[i + j] * kv_at(b, i + j, bf16);
    for (; i < n; i++) acc[i % DOT_LANES] += a[i] * kv_at(b, i, bf16);
    float s = 0.0f;
    for (int j = 0; j < DOT_LANES; j++) s += acc[j];
    return s;
}

// Chunk [j0, j1) of one batch row: a = exp(scale q.k - m) (NH rows of kv_len
// at stride kv_len), m and s (NH) each head's maximum and sum over the chunk,
// o (NH*HS) = sum over the chunk of a v. k and v are fp32, or bf16 when bf16
// (a constant at each call: always inlined, so each type gets its own loops).
static inline __attribute__((always_inline)) void
attention_chunk(float *o, float *a, float *m, float *s, const float *q, const void *k, const void *v, int j0,
                int j1, int kv_len, int NH, int KVC, int HS, const int *kv_col, float scale, int bf16) {
    size_t elt = bf16 ? sizeof(uint16_t) : sizeof(float), row = (size_t)KVC * elt;
    for (int j = j0; j < j1; j++) {
        const char *kr = (const char *)k + (size_t)j * row;
        if (j + ATT_AHEAD < j1) prefetch_row(kr + ATT_AHEAD * row, row);
        for (int h = 0; h < NH; h++)
            a[(size_t)h * kv_len + j] = scale * dot_lanes_kv(q + (size_t)h * HS, kr + kv_col[h] * elt, HS, bf16);
    }
    for (int h = 0; h < NH; h++) s[h] = exp_row(a + (size_t)h * kv_len + j0, j1 - j0, &m[h]);
    for (int i = 0; i < NH * HS; i++) o[i] = 0.0f;
    for (int j = j0; j < j1; j++) {
        const char *vr = (const char *)v + (size_t)j * row;
        if (j + ATT_AHEAD < j1) prefetch_row(vr + ATT_AHEAD * row, row);
        for (int h = 0; h < NH; h++) {
            float p = a[(size_t)h * kv_len + j], *oh = o + (size_t)h * HS;
            const char *vh = vr + kv_col[h] * elt;
            for (int i = 0; i < HS; i++) oh[i] += p * kv_at(vh, i, bf16);
        }
    }
}

// Head h of one batch row, once its chunks are done: out (HS) = the chunks'
// shares weighted by exp(chunk max - max) / sum, and its probabilities (a row
// of att: the chunk's exponentials, weighted alike; zeros from nk).
static void attention_combine(float *out, float *a, const float *part, const float *cmax, const float *csum,
                              int nch, int nk, int kv_len, int NH, int HS, int h) {
    float w[nch], mx = -INFINITY, sum = 0.0f;
    for (int ch = 0; ch < nch; ch++) mx = cmax[(size_t)ch * NH + h] > mx ? cmax[(size_t)ch * NH + h] : mx;
    for (int ch = 0; ch < nch; ch++) {
        w[ch] = exp_approx(cmax[(size_t)ch * NH + h] - mx);
        sum += w[ch] * csum[(size_t)ch * NH + h];
    }
    for (int ch = 0; ch < nch; ch++) w[ch] /= sum;
    for (int i = 0; i < HS; i++) out[i] = 0.0f;
    for (int ch = 0; ch < nch; ch++)
        for (int i = 0; i < HS; i++) out[i] += w[ch] * part[(size_t)ch * NH * HS + (size_t)h * HS + i];
    for (int ch = 0; ch < nch; ch++) {
        for (int j = ch * ATT_CHUNK, j1 = chunk_end(ch, nk); j < j1; j++) a[j] *= w[ch];
    }
    for (int j = nk; j < kv_len; j++) a[j] = 0.0f;
}

// attention_one_team over a cache of fp32 (k, v) or bf16 (k16, v16, when not NULL).
static void attention_one(float *out, float *att, const float *q, const float *k, const float *v, const uint16_t *k16,
                          const uint16_t *v16, int B, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch) {
    int C = NH * HS, KVC = NKV * HS, nk = pos0 + 1, nch = (nk + ATT_CHUNK - 1) / ATT_CHUNK;
    float scale = 1.0f / sqrtf((float)HS);
    // per (batch row, chunk): its share of out (C), its maxima and sums (NH each)
    float *part = scratch, *cmax = part + (size_t)B * nch * C, *csum = cmax + (size_t)B * nch * NH;
    int kv_col[NH]; // query head h's first column in a cache row (no division per key)
    for (int h = 0; h < NH; h++) kv_col[h] = h / (NH / NKV) * HS;
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < nch; ch++) {
            size_t bc = (size_t)b * nch + ch, kvb = (size_t)b * kv_len * KVC;
            float *o = part + bc * C, *a = att + (size_t)b * NH * kv_len, *m = cmax + bc * NH, *s = csum + bc * NH;
            if (k16) // a constant flag per call: the two element types' own loops
                attention_chunk(o, a, m, s, q + (size_t)b * C, k16 + kvb, v16 + kvb, ch * ATT_CHUNK,
                                chunk_end(ch, nk), kv_len, NH, KVC, HS, kv_col, scale, 1);
            else
                attention_chunk(o, a, m, s, q + (size_t)b * C, k + kvb, v + kvb, ch * ATT_CHUNK,
                                chunk_end(ch, nk), kv_len, NH, KVC, HS, kv_col, scale, 0);
        }
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t b0 = (size_t)b * nch; // the batch row's first chunk
            attention_combine(out + (size_t)b * C + (size_t)h * HS, att + ((size_t)b * NH + h) * kv_len,
                              part + b0 * C, cmax + b0 * NH, csum + b0 * NH, nch, nk, kv_len, NH, HS, h);
        }
}

void attention_one_team(float *out, float *att, const float *q, const float *k, const float *v,
                        int B, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch) {
    attention_one(out, att, q, k, v, NULL, NULL, B, pos0, kv_len, NH, NKV, HS, scratch);
}

void attention_one_team_bf16(float *out, float *att, const float *q, const uint16_t *k, const uint16_t *v,
                             int B, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch) {
    attention_one(out, att, q, NULL, NULL, k, v, B, pos0, kv_len, NH, NKV, HS, scratch);
}

void attention_forward(Matmul *mm, float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch, int blocks) {
    if (T == 1) {
#pragma omp parallel
        attention_one_team(out, att, q, k, v, B, pos0, kv_len, NH, NKV, HS, scratch);
        return;
    }
    int C = NH * HS, KVC = NKV * HS, group = NH / NKV, team = omp_get_max_threads();
    float scale = 1.0f / sqrtf((float)HS);
    if (blocks && team > blocks) team = blocks; // a thread per block of scratch
    // in bf16, q, k and v rounded once here, not once per product
    Operand Q = mm_operand(mm, 0, q, (size_t)B * T, C, C), K = mm_operand(mm, 1, k, (size_t)B * kv_len, KVC, KVC),
            V = mm_operand(mm, 2, v, (size_t)B * kv_len, KVC, KVC);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(team)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            Operand kb = mm_sub(mm, K, (size_t)b * kv_len, (size_t)(h / group) * HS);
            Operand vb = mm_sub(mm, V, (size_t)b * kv_len, (size_t)(h / group) * HS);
            float *ab = blocks ? att + (size_t)omp_get_thread_num() * attention_rows_floats(T, kv_len)
                               : att + ((size_t)b * NH + h) * T * kv_len;
            for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
                int rows = T - t0 < ATT_ROWS ? T - t0 : ATT_ROWS, nk = pos0 + t0 + rows;
                Operand qb = mm_sub(mm, Q, (size_t)b * T + t0, (size_t)h * HS);
                float *a = blocks ? ab : ab + (size_t)t0 * kv_len; // (rows, kv_len) either way
                float *o = out + ((size_t)b * T + t0) * C + h * HS;
                // scores (rows, nk) = scale * q (rows,HS) @ k (nk,HS)^T
                mm_gemm_op(mm, 0, 1, rows, nk, HS, scale, qb, kb, 0.0f, a, kv_len);
                for (int r = 0; r < rows; r++) softmax_row(a + (size_t)r * kv_len, pos0 + t0 + r + 1, kv_len);
                // out (rows,HS) = att (rows,nk) @ v (nk,HS)
                mm_gemm_op(mm, 0, 0, rows, HS, nk, 1.0f, mm_local(mm, 0, a, rows, nk, kv_len), vb, 0.0f, o, C);
            }
        }
}

size_t attention_rows_floats(int T, int kv_len) { return (size_t)(T < ATT_ROWS ? T : ATT_ROWS) * (size_t)kv_len; }

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
void attention_backward(Matmul *mm, float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        int B, int T, int NH, int NKV, int HS, float *scratch) {
    int C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    // in bf16, q, k, v and dout rounded once here, not once per product
    Operand Q = mm_operand(mm, 0, q, (size_t)B * T, C, C), K = mm_operand(mm, 1, k, (size_t)B * T, KVC, KVC),
            V = mm_operand(mm, 2, v, (size_t)B * T, KVC, KVC), D = mm_operand(mm, 3, dout, (size_t)B * T, C, C);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int kvh = 0; kvh < NKV; kvh++) {
            float *ds = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(T);
            size_t kvo = (size_t)b * T * KVC + kvh * HS;
            Operand kb = mm_sub(mm, K, (size_t)b * T, (size_t)kvh * HS), vb = mm_sub(mm, V, (size_t)b * T, (size_t)kvh * HS);
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int t0 = 0; t0 < T; t0 += ATT_ROWS) {
                    int rows = T - t0 < ATT_ROWS ? T - t0 : ATT_ROWS, nk = t0 + rows;
                    size_t qo = ((size_t)b * T + t0) * C + h * HS;
                    Operand qb = mm_sub(mm, Q, (size_t)b * T + t0, (size_t)h * HS);
                    Operand db = mm_sub(mm, D, (size_t)b * T + t0, (size_t)h * HS);
                    const float *p = att + (((size_t)b * NH + h) * T + t0) * T;
                    // through out = p @ v: dp (rows,nk) = dout @ v^T, dv (nk,HS) += p^T @ dout
                    mm_gemm_op(mm, 0, 1, rows, nk, HS, 1.0f, db, vb, 0.0f, ds, nk);
                    mm_gemm_op(mm, 1, 0, nk, HS, rows, 1.0f, mm_local(mm, 0, p, rows, nk, T), db, 1.0f, dv + kvo, KVC);
                    softmax_backward_rows(ds, p, rows, nk, T, scale);
                    // through scores = q @ k^T: dq += ds @ k, dk += ds^T @ q
                    Operand dsr = mm_local(mm, 1, ds, rows, nk, nk);
                    mm_gemm_op(mm, 0, 0, rows, HS, nk, 1.0f, dsr, kb, 1.0f, dq + qo, C);
                    mm_gemm_op(mm, 1, 0, nk, HS, rows, 1.0f, dsr, qb, 1.0f, dk + kvo, KVC);
                }
        }
}

// ----------------------------------------------------------------------------
// SwiGLU: silu(h1) h3, silu(x) = x sigmoid(x). The sigmoid's exponential is
// expf_vec, libm's expf bit for bit but vectorised (the scalar call per element
// was most of a prefill's element-wise steps, 2.4 of 24 ms at d 288)

void swiglu_forward(float *out, const float *h1, const float *h3, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = h1[i];
        out[i] = x / (1.0f + expf_vec(-x)) * h3[i];
    }
}

// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x)
void swiglu_backward(float *dh1, float *dh3, const float *dout, const float *h1,
                     const float *h3, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = h1[i], s = 1.0f / (1.0f + expf_vec(-x));
        dh3[i] = dout[i] * x * s;
        dh1[i] = dout[i] * h3[i] * s * (1.0f + x * (1.0f - s));
    }
}

// ----------------------------------------------------------------------------
// GELU (exact, with erf: torch.nn.GELU's default), Phi(x) = erfc(-x / sqrt 2) / 2

void gelu_forward(float *out, const float *h, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
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

void embedding_forward_bf16(float *out, const int *tokens, const uint16_t *wte, size_t N, int C) {
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) bf16_to_floats(out + n * C, wte + (size_t)tokens[n] * C, (size_t)C);
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

// ----------------------------------------------------------------------------
// the embedding scale

void embscale_forward(float *out, const float *inp, float scale, size_t n) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = scale * inp[i];
}

void embscale_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                       float scale, size_t n) {
    *dscale += (float)dot_fixed_order(dout, inp, n); // before dinp, which may alias dout
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] = scale * dout[i];
}
