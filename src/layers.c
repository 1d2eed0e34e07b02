#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

// Per-channel weight gradients are summed over rows by blocks of channels, so
// each thread owns whole blocks: no atomics, and the same bits for any thread count.
#define CH_BLOCK 16

// ----------------------------------------------------------------------------
// matmul: all three products go through sgemm

void matmul_forward(float *out, const float *inp, const float *w, size_t N, int C, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, OC, C,
                1.0f, inp, C, w, C, 0.0f, out, OC);
}

void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp,
                     const float *w, size_t N, int C, int OC) {
    // dinp (N,C) += dout (N,OC) @ w (OC,C)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, C, OC,
                1.0f, dout, OC, w, C, 1.0f, dinp, C);
    // dw (OC,C) += dout^T (OC,N) @ inp (N,C)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, (int)N,
                1.0f, dout, OC, inp, C, 1.0f, dw, C);
}

// ----------------------------------------------------------------------------
// RMSNorm: y = x * rstd * g, rstd = 1 / sqrt(mean(x^2) + eps)

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     size_t N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / C + eps);
        for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
        if (rstd) rstd[n] = r;
    }
}

// dx_i = r g_i dy_i - x_i r^3 / C * sum_j dy_j g_j x_j;  dg_i = sum_rows dy_i x_i r
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, size_t N, int C) {
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (size_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *dy = dout + n * C;
            float *dx = dinp + n * C;
            float r = rstd[n], dot = 0.0f;
            for (int c = 0; c < C; c++) dot += dy[c] * weight[c] * x[c];
            float k = dot * r * r * r / C;
            for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - k * x[c];
        }
        int nblocks = (C + CH_BLOCK - 1) / CH_BLOCK;
#pragma omp for schedule(static)
        for (int blk = 0; blk < nblocks; blk++) {
            int c0 = blk * CH_BLOCK, c1 = c0 + CH_BLOCK < C ? c0 + CH_BLOCK : C;
            float acc[CH_BLOCK] = {0};
            for (size_t n = 0; n < N; n++)
                for (int c = c0; c < c1; c++) acc[c - c0] += dout[n * C + c] * inp[n * C + c] * rstd[n];
            for (int c = c0; c < c1; c++) dweight[c] += acc[c - c0];
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
#pragma omp parallel for collapse(2) schedule(static)
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
// causal grouped-query attention

void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int pos0, int kv_len, int NH, int NKV, int HS) {
    int C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int kvh = h / group, tk = pos0 + t + 1; // keys 0..pos0+t are visible
                const float *qv = q + ((size_t)b * T + t) * C + h * HS;
                const float *kb = k + (size_t)b * kv_len * KVC + kvh * HS;
                const float *vb = v + (size_t)b * kv_len * KVC + kvh * HS;
                float *a = att + (((size_t)b * NH + h) * T + t) * kv_len;
                float maxv = -INFINITY;
                for (int j = 0; j < tk; j++) {
                    const float *kv = kb + (size_t)j * KVC;
                    float s = 0.0f;
                    for (int i = 0; i < HS; i++) s += qv[i] * kv[i];
                    s *= scale;
                    a[j] = s;
                    if (s > maxv) maxv = s;
                }
                float sum = 0.0f;
                for (int j = 0; j < tk; j++) {
                    a[j] = expf(a[j] - maxv);
                    sum += a[j];
                }
                float inv = 1.0f / sum;
                for (int j = 0; j < tk; j++) a[j] *= inv;
                for (int j = tk; j < kv_len; j++) a[j] = 0.0f;
                float *o = out + ((size_t)b * T + t) * C + h * HS;
                for (int i = 0; i < HS; i++) o[i] = 0.0f;
                for (int j = 0; j < tk; j++) {
                    const float *vv = vb + (size_t)j * KVC;
                    float p = a[j];
                    for (int i = 0; i < HS; i++) o[i] += p * vv[i];
                }
            }
}

size_t attention_scratch_floats(int T) { return (size_t)T; }

// One thread owns one (batch, kv head) pair and all query heads that read it,
// so dk and dv are written without races.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        int B, int T, int NH, int NKV, int HS, float *scratch) {
    int C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int kvh = 0; kvh < NKV; kvh++) {
            float *datt = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(T);
            const float *kb = k + (size_t)b * T * KVC + kvh * HS;
            const float *vb = v + (size_t)b * T * KVC + kvh * HS;
            float *dkb = dk + (size_t)b * T * KVC + kvh * HS;
            float *dvb = dv + (size_t)b * T * KVC + kvh * HS;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int t = 0; t < T; t++) {
                    const float *a = att + (((size_t)b * NH + h) * T + t) * T;
                    const float *dy = dout + ((size_t)b * T + t) * C + h * HS;
                    const float *qv = q + ((size_t)b * T + t) * C + h * HS;
                    float *dqv = dq + ((size_t)b * T + t) * C + h * HS;
                    // through out = att @ v
                    float dot = 0.0f;
                    for (int j = 0; j <= t; j++) {
                        const float *vv = vb + (size_t)j * KVC;
                        float *dvv = dvb + (size_t)j * KVC;
                        float s = 0.0f;
                        for (int i = 0; i < HS; i++) {
                            s += dy[i] * vv[i];
                            dvv[i] += a[j] * dy[i];
                        }
                        datt[j] = s;
                        dot += a[j] * s;
                    }
                    // through softmax, then the scaled q.k scores
                    for (int j = 0; j <= t; j++) {
                        float ds = a[j] * (datt[j] - dot) * scale;
                        const float *kv = kb + (size_t)j * KVC;
                        float *dkv = dkb + (size_t)j * KVC;
                        for (int i = 0; i < HS; i++) {
                            dqv[i] += ds * kv[i];
                            dkv[i] += ds * qv[i];
                        }
                    }
                }
        }
}

// ----------------------------------------------------------------------------
// SwiGLU

void swiglu_forward(float *out, const float *h1, const float *h3, size_t n) {
#pragma omp parallel for schedule(static)
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
// token embedding

void embedding_forward(float *out, const int *tokens, const float *wte, size_t N, int C) {
#pragma omp parallel for schedule(static)
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
