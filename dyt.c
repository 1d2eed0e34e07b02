#include "dyt.h"

#include "src/common.h"

#include <math.h>


// The backward walks rows in fixed chunks of DYT_ROWS (row-major, as the
// data lies), each chunk summing its per-channel gradients into its own slice
// of scratch; then the slices are summed in chunk order, by blocks of
// DYT_BLOCK channels. No atomics, and the same bits for any thread count.
#define DYT_ROWS 32
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

// three (chunks, C) slices: dgamma, dbeta and dalpha's per-channel partial
// sums; then dalpha's sum per channel block, a double each (even offset)
static size_t alpha_offset(size_t N, int C) { return (3 * ((N + DYT_ROWS - 1) / DYT_ROWS) * (size_t)C + 1) & ~(size_t)1; }

size_t dyt_scratch_floats(size_t N, int C) {
    return alpha_offset(N, C) + 2 * (size_t)((C + DYT_BLOCK - 1) / DYT_BLOCK);
}

// One row: dx +=, and its terms added to the chunk's per-channel sums. The
// pointers do not alias (restrict): the loop then vectorises.
static void dyt_backward_row(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict pa,
                             const float *restrict dy, const float *restrict x, float alpha,
                             const float *restrict gamma, int C) {
    for (int c = 0; c < C; c++) {
        float t = dyt_tanh(alpha * x[c]);
        float g = dy[c] * gamma[c] * (1.0f - t * t);
        dx[c] += g * alpha;
        pa[c] += g * x[c];
        pg[c] += dy[c] * t;
        pb[c] += dy[c];
    }
}

// With t = tanh(alpha x) and dt/du = 1 - t^2 at u = alpha x:
//   dx = dy * gamma * alpha * (1 - t^2)
//   dalpha = sum over all elements of dy * gamma * x * (1 - t^2)
//   dgamma = sum over rows of dy * t,  dbeta = sum over rows of dy
void dyt_backward(float *dinp, float *dalpha, float *dgamma, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gamma,
                  size_t N, int C, float *scratch) {
    size_t nchunks = (N + DYT_ROWS - 1) / DYT_ROWS, plane = nchunks * (size_t)C;
    int nblocks = (C + DYT_BLOCK - 1) / DYT_BLOCK;
    double *alpha_blk = (double *)(void *)(scratch + alpha_offset(N, C));
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (size_t k = 0; k < nchunks; k++) {
            float *pg = scratch + k * C, *pb = pg + plane, *pa = pb + plane;
            for (int c = 0; c < C; c++) pg[c] = pb[c] = pa[c] = 0.0f;
            size_t n1 = (k + 1) * DYT_ROWS < N ? (k + 1) * DYT_ROWS : N;
            for (size_t n = k * DYT_ROWS; n < n1; n++)
                dyt_backward_row(dinp + n * C, pg, pb, pa, dout + n * C, inp + n * C, alpha, gamma, C);
        }
        // chunk sums in chunk order, per channel; alpha's in double
#pragma omp for schedule(static)
        for (int blk = 0; blk < nblocks; blk++) {
            int c0 = blk * DYT_BLOCK, c1 = c0 + DYT_BLOCK < C ? c0 + DYT_BLOCK : C;
            double sg[DYT_BLOCK] = {0}, sb[DYT_BLOCK] = {0}, sa[DYT_BLOCK] = {0};
            for (size_t k = 0; k < nchunks; k++) {
                const float *pg = scratch + k * C, *pb = pg + plane, *pa = pb + plane;
                for (int c = c0; c < c1; c++) sg[c - c0] += pg[c], sb[c - c0] += pb[c], sa[c - c0] += pa[c];
            }
            double blk_a = 0.0;
            for (int c = c0; c < c1; c++) {
                dgamma[c] += (float)sg[c - c0];
                if (dbeta) dbeta[c] += (float)sb[c - c0];
                blk_a += sa[c - c0];
            }
            alpha_blk[blk] = blk_a;
        }
    }
    double total = 0.0; // in block order: deterministic
    for (int blk = 0; blk < nblocks; blk++) total += alpha_blk[blk];
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
