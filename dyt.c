#include "dyt.h"

#include "src/common.h"

#include <math.h>


// Channels are processed in blocks of this many floats (one cache line):
// each thread owns whole blocks, so per-channel gradient sums need no atomics
// and come out the same for any thread count.
#define DYT_BLOCK 16

void dyt_forward(float *out, const float *inp, float alpha, const float *gamma,
                 const float *beta, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        if (beta) // two loops: a test inside would keep the compiler from vectorising
            for (int c = 0; c < C; c++) y[c] = gamma[c] * dyt_tanh(alpha * x[c]) + beta[c];
        else
            for (int c = 0; c < C; c++) y[c] = gamma[c] * dyt_tanh(alpha * x[c]);
    }
}

size_t dyt_scratch_doubles(int C) { return (size_t)(C + DYT_BLOCK - 1) / DYT_BLOCK; }

// With t = tanh(alpha x) and dt/du = 1 - t^2 at u = alpha x:
//   dx = dy * gamma * alpha * (1 - t^2)
//   dalpha = sum over all elements of dy * gamma * x * (1 - t^2)
//   dgamma = sum over rows of dy * t,  dbeta = sum over rows of dy
void dyt_backward(float *dinp, float *dalpha, float *dgamma, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gamma,
                  size_t N, int C, double *partial) {
    int nblocks = (int)dyt_scratch_doubles(C);
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * DYT_BLOCK, c1 = c0 + DYT_BLOCK < C ? c0 + DYT_BLOCK : C;
        // per-channel partial sums (alpha's too): the inner loop has no
        // cross-lane reduction, so it vectorises without reordering float sums
        float dg[DYT_BLOCK] = {0}, db[DYT_BLOCK] = {0}, da[DYT_BLOCK] = {0};
        for (size_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *dy = dout + n * C;
            float *dx = dinp + n * C;
            for (int c = c0; c < c1; c++) {
                float t = dyt_tanh(alpha * x[c]);
                float g = dy[c] * gamma[c] * (1.0f - t * t);
                dx[c] += g * alpha;
                da[c - c0] += g * x[c];
                dg[c - c0] += dy[c] * t;
                db[c - c0] += dy[c];
            }
        }
        double da_blk = 0.0;
        for (int c = c0; c < c1; c++) {
            dgamma[c] += dg[c - c0];
            if (dbeta) dbeta[c] += db[c - c0];
            da_blk += da[c - c0];
        }
        partial[blk] = da_blk;
    }
    double total = 0.0; // summed in block order: deterministic
    for (int blk = 0; blk < nblocks; blk++) total += partial[blk];
    *dalpha += (float)total;
}

void embscale_forward(float *out, const float *inp, float scale, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = scale * inp[i];
}

void embscale_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                       float scale, size_t n) {
    *dscale += (float)dot_fixed_order(dout, inp, n); // before dinp, which may alias dout
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] = scale * dout[i];
}
