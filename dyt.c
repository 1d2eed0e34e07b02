#include "dyt.h"

#include "src/common.h"
#include "src/norms.h"

#include <math.h>

void dyt_forward(float *out, const float *inp, float alpha, const float *gamma,
                 const float *beta, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        if (beta) // two loops: a test inside would keep the compiler from vectorising
            for (int c = 0; c < C; c++) y[c] = VM_MADD(gamma[c], tanh_approx(alpha * x[c]), beta[c]);
        else
            for (int c = 0; c < C; c++) y[c] = gamma[c] * tanh_approx(alpha * x[c]);
    }
}

// three planes of per-channel sums (src/norms.h): dgamma, dbeta, dalpha
size_t dyt_scratch_floats(size_t N, int C) { return norm_channel_scratch(3, N, C); }

typedef struct {
    float *dinp;
    const float *dout, *inp, *gamma;
    float alpha;
    int C;
} DytRow;

// One row: dx +=, and its terms added to the chunk's per-channel sums. The
// pointers do not alias (restrict): the loop then vectorises.
static void dyt_backward_row(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict pa,
                             const float *restrict dy, const float *restrict x, float alpha,
                             const float *restrict gamma, int C) {
    for (int c = 0; c < C; c++) {
        float t = tanh_approx(alpha * x[c]);
        float g = dy[c] * gamma[c] * VM_MADD(-t, t, 1.0f);
        dx[c] = VM_MADD(g, alpha, dx[c]);
        pa[c] = VM_MADD(g, x[c], pa[c]);
        pg[c] = VM_MADD(dy[c], t, pg[c]);
        pb[c] += dy[c];
    }
}

static void dyt_row_fn(const void *ctx, size_t n, float *const *pl) {
    const DytRow *a = ctx;
    size_t o = n * (size_t)a->C;
    dyt_backward_row(a->dinp + o, pl[0], pl[1], pl[2], a->dout + o, a->inp + o, a->alpha, a->gamma, a->C);
}

// With t = tanh(alpha x) and dt/du = 1 - t^2 at u = alpha x:
//   dx = dy * gamma * alpha * (1 - t^2)
//   dalpha = sum over all elements of dy * gamma * x * (1 - t^2)
//   dgamma = sum over rows of dy * t,  dbeta = sum over rows of dy
// The sums go through norm_channel_sums: the same bits for any thread count.
void dyt_backward(float *dinp, float *dalpha, float *dgamma, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gamma,
                  size_t N, int C, float *scratch) {
    DytRow a = {dinp, dout, inp, gamma, alpha, C};
    float *out[3] = {dgamma, dbeta, dalpha};
    norm_channel_sums(out, 2, 1, dyt_row_fn, &a, N, C, scratch);
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
