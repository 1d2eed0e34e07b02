#include "dyt.h"

#include "src/common.h"
#include "src/norms.h"

#include <math.h>

void dyt_forward(float *out, const float *inp, float alpha, const float *gamma,
                 const float *beta, size_t N, int C) {
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        if (beta) // two loops: a test inside would keep the compiler from vectorising
            for (int c = 0; c < C; c++) y[c] = VM_MADD(gamma[c], tanh_approx(alpha * x[c]), beta[c]);
        else
            for (int c = 0; c < C; c++) y[c] = gamma[c] * tanh_approx(alpha * x[c]);
    }
}

// per-channel sums of dgamma, dbeta; dalpha in lanes (src/norms.h)
size_t dyt_scratch_floats(size_t N, int C) { return norm_alpha_scratch(N, C); }

// n channels of a row: dx +=, and its terms added to the chunk's sums. The
// pointers do not alias (restrict): the loop then vectorises.
static inline void dyt_elems(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict la,
                             float *restrict ls, const float *restrict dy, const float *restrict x,
                             const float *restrict gamma, float alpha, float s, int n) {
    (void)ls, (void)s;
    for (int j = 0; j < n; j++) {
        float t = tanh_approx(alpha * x[j]);
        float g = dy[j] * gamma[j] * VM_MADD(-t, t, 1.0f);
        dx[j] = VM_MADD(g, alpha, dx[j]);
        la[j] = VM_MADD(g, x[j], la[j]);
        pg[j] = VM_MADD(dy[j], t, pg[j]);
        pb[j] += dy[j];
    }
}

static void dyt_row_fn(const void *ctx, size_t n, float *const *pl) { norm_scalar_row(dyt_elems, 1, ctx, n, pl); }

// With t = tanh(alpha x) and dt/du = 1 - t^2 at u = alpha x:
//   dx = dy * gamma * alpha * (1 - t^2)
//   dalpha = sum over all elements of dy * gamma * x * (1 - t^2)
//   dgamma = sum over rows of dy * t,  dbeta = sum over rows of dy
// The sums go through norm_channel_sums: the same bits for any thread count.
void dyt_backward(float *dinp, float *dalpha, float *dgamma, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gamma,
                  size_t N, int C, float *scratch) {
    norm_alpha_backward(dyt_row_fn, dinp, dgamma, dbeta, dalpha, dout, inp, gamma, alpha, N, C, scratch);
}

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
