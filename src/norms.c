#include "norms.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "vmath.h"

// ----------------------------------------------------------------------------
// per-channel gradient sums in a fixed order

#define CH_BLOCK 16 // channels per block of the final vector sums

static size_t n_chunks(size_t N) { return (N + NORM_ROWS - 1) / NORM_ROWS; }

// vector planes (chunks, C), then scalar planes (chunks, NORM_LANES)
size_t norm_channel_scratch_floats(int nvec, int nscal, size_t N, int C) {
    return n_chunks(N) * ((size_t)nvec * (size_t)C + (size_t)nscal * NORM_LANES);
}

void norm_channel_sums(float *const *out, int nvec, int nscal, NormRowFn row, const void *ctx,
                       size_t N, int C, float *scratch) {
    int planes = nvec + nscal, nblocks = (C + CH_BLOCK - 1) / CH_BLOCK;
    size_t nchunks = n_chunks(N), vplane = nchunks * (size_t)C;
    float *scal = scratch + (size_t)nvec * vplane; // (nscal, nchunks, NORM_LANES)
#pragma omp parallel if (N * (size_t)C >= PAR_MIN)
    {
#pragma omp for schedule(static)
        for (size_t k = 0; k < nchunks; k++) {
            float *pl[NORM_MAX_PLANES];
            for (int p = 0; p < planes; p++) {
                size_t w = p < nvec ? (size_t)C : NORM_LANES;
                pl[p] = p < nvec ? scratch + p * vplane + k * C : scal + ((p - nvec) * nchunks + k) * NORM_LANES;
                memset(pl[p], 0, w * sizeof(float));
            }
            size_t n1 = (k + 1) * NORM_ROWS < N ? (k + 1) * NORM_ROWS : N;
            for (size_t n = k * NORM_ROWS; n < n1; n++) row(ctx, n, pl);
        }
        // vector sums in chunk order, per channel, in double
#pragma omp for schedule(static)
        for (int blk = 0; blk < nblocks; blk++) {
            int c0 = blk * CH_BLOCK, c1 = c0 + CH_BLOCK < C ? c0 + CH_BLOCK : C;
            for (int p = 0; p < nvec; p++) {
                if (!out[p]) continue;
                double s[CH_BLOCK] = {0};
                for (size_t k = 0; k < nchunks; k++) {
                    const float *src = scratch + p * vplane + k * C;
                    for (int c = c0; c < c1; c++) s[c - c0] += src[c];
                }
                for (int c = c0; c < c1; c++) out[p][c] += (float)s[c - c0];
            }
        }
    }
    for (int p = nvec; p < planes; p++) { // chunks, then lanes, in order (a few thousand adds)
        const float *src = scal + (size_t)(p - nvec) * nchunks * NORM_LANES;
        double total = 0.0;
        for (size_t i = 0; i < nchunks * NORM_LANES; i++) total += src[i];
        if (out[p]) *out[p] += (float)total;
    }
}

// ----------------------------------------------------------------------------
// RMSNorm: y = x * rstd * g, rstd = 1 / sqrt(mean(x^2) + eps)

// sum(a[i]), in dot_lanes' lanes (vmath.h)
static float sum_lanes(const float *restrict a, int n) {
    float acc[DOT_LANES] = {0};
    int i = 0;
    for (; i + DOT_LANES <= n; i += DOT_LANES)
        for (int j = 0; j < DOT_LANES; j++) acc[j] += a[i + j];
    for (; i < n; i++) acc[i % DOT_LANES] += a[i];
    float s = 0.0f;
    for (int j = 0; j < DOT_LANES; j++) s += acc[j];
    return s;
}

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     size_t N, int C, float eps) {
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        float r = 1.0f / sqrtf(dot_lanes(x, x, NULL, C) / C + eps);
        for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
        if (rstd) rstd[n] = r;
    }
}

size_t rmsnorm_scratch_floats(size_t N, int C) { return norm_channel_scratch_floats(1, 0, N, C); }

typedef struct {
    float *dinp;
    const float *dout, *inp, *w, *rstd;
    int C;
} RmsRow;

// dx_i = r g_i dy_i - x_i r^3 / C * sum_j dy_j g_j x_j;  dg_i = sum_rows dy_i x_i r
// One row: dx +=, its dg terms into the chunk's plane (restrict: it vectorises).
static void rms_row(float *restrict dx, float *restrict pg, const float *restrict dy,
                    const float *restrict x, const float *restrict w, float r, int C) {
    float k = dot_lanes(dy, w, x, C) * r * r * r / C;
    for (int c = 0; c < C; c++) {
        dx[c] += r * w[c] * dy[c] - k * x[c];
        pg[c] += dy[c] * x[c] * r;
    }
}

static void rms_row_fn(const void *ctx, size_t n, float *const *pl) {
    const RmsRow *a = ctx;
    size_t o = n * (size_t)a->C;
    rms_row(a->dinp + o, pl[0], a->dout + o, a->inp + o, a->w, a->rstd[n], a->C);
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, size_t N, int C, float *scratch) {
    RmsRow a = {dinp, dout, inp, weight, rstd, C};
    float *out[1] = {dweight};
    norm_channel_sums(out, 1, 0, rms_row_fn, &a, N, C, scratch);
}

// ----------------------------------------------------------------------------
// LayerNorm: y = (x - mean) * rstd * g + b, rstd = 1 / sqrt(var + eps);
// stats: mean and rstd per row

static void layernorm_forward(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C) {
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        // var = mean(x^2) - mean^2 would cancel; the centred form costs a pass more
        float mean = sum_lanes(x, C) / C, r;
        float acc[DOT_LANES] = {0};
        int c = 0;
        for (; c + DOT_LANES <= C; c += DOT_LANES)
            for (int j = 0; j < DOT_LANES; j++) acc[j] += (x[c + j] - mean) * (x[c + j] - mean);
        for (; c < C; c++) acc[c % DOT_LANES] += (x[c] - mean) * (x[c] - mean);
        float var = 0.0f;
        for (int j = 0; j < DOT_LANES; j++) var += acc[j];
        r = 1.0f / sqrtf(var / C + w->eps);
        for (c = 0; c < C; c++) y[c] = (x[c] - mean) * r * w->gain[c] + w->beta[c];
        stats[2 * n] = mean, stats[2 * n + 1] = r;
    }
}

typedef struct {
    float *dinp;
    const float *dout, *inp, *gain, *stats;
    int C;
} LnRow;

// xhat = (x - mean) r, dxhat = dy g:
//   dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)); dg = sum_rows dy xhat; db = sum_rows dy
// with sum(dxhat xhat) = r (sum(dy g x) - mean sum(dy g))
static void ln_row(float *restrict dx, float *restrict pg, float *restrict pb, const float *restrict dy,
                   const float *restrict x, const float *restrict g, float mean, float r, int C) {
    float m1 = dot_lanes(dy, g, NULL, C) / C, m2 = r * (dot_lanes(dy, g, x, C) / C - mean * m1);
    for (int c = 0; c < C; c++) {
        float xh = (x[c] - mean) * r;
        dx[c] += r * (dy[c] * g[c] - m1 - xh * m2);
        pg[c] += dy[c] * xh;
        pb[c] += dy[c];
    }
}

static void ln_row_fn(const void *ctx, size_t n, float *const *pl) {
    const LnRow *a = ctx;
    size_t o = n * (size_t)a->C;
    ln_row(a->dinp + o, pl[0], pl[1], a->dout + o, a->inp + o, a->gain, a->stats[2 * n], a->stats[2 * n + 1], a->C);
}

static void layernorm_backward(float *dinp, const NormG *g, const float *dout, const float *inp, const float *stats,
                               const NormW *w, size_t N, int C, float *scratch) {
    LnRow a = {dinp, dout, inp, w->gain, stats, C};
    float *out[2] = {g->gain, g->beta};
    norm_channel_sums(out, 2, 0, ln_row_fn, &a, N, C, scratch);
}

static size_t layernorm_scratch(size_t N, int C) { return norm_channel_scratch_floats(2, 0, N, C); }

// ----------------------------------------------------------------------------
// Derf ("Stronger Normalization-Free Transformers"): y = g * erf(alpha x + s) + b

static void derf_forward(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C) {
    (void)stats;
    float alpha = w->alpha, s = w->shift;
    const float *g = w->gain, *b = w->beta;
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        for (int c = 0; c < C; c++) y[c] = g[c] * erf_approx(alpha * x[c] + s) + b[c];
    }
}

// e = erf'(u) at u = alpha x + s, k = dy g e:
//   dx = k alpha, dalpha = sum k x, ds = sum k, dg = sum_rows dy erf(u), db = sum_rows dy
static inline void derf_elems(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict la,
                              float *restrict ls, const float *restrict dy, const float *restrict x,
                              const float *restrict g, float alpha, float s, int n) {
    for (int j = 0; j < n; j++) {
        float u = VM_MADD(alpha, x[j], s), v = erf_approx(u), e = erf_deriv(u);
        float k = dy[j] * g[j] * e;
        dx[j] = VM_MADD(k, alpha, dx[j]);
        la[j] = VM_MADD(k, x[j], la[j]);
        ls[j] += k;
        pg[j] = VM_MADD(dy[j], v, pg[j]);
        pb[j] += dy[j];
    }
}

static void derf_row_fn(const void *ctx, size_t n, float *const *pl) { norm_scalar_row(derf_elems, 2, ctx, n, pl); }

static void derf_backward(float *dinp, const NormG *g, const float *dout, const float *inp, const float *stats,
                          const NormW *w, size_t N, int C, float *scratch) {
    (void)stats;
    NormScalarRow a = {dinp, dout, inp, w->gain, w->alpha, w->shift, C};
    float *out[4] = {g->gain, g->beta, g->alpha, g->shift};
    norm_channel_sums(out, 2, 2, derf_row_fn, &a, N, C, scratch);
}

static size_t derf_scratch(size_t N, int C) { return norm_channel_scratch_floats(2, 2, N, C); }

// ----------------------------------------------------------------------------
// hardtanh: y = g * clamp(alpha x, -1, 1) + b (is a smooth saturation needed?)

static void hardtanh_forward(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C) {
    (void)stats;
    float alpha = w->alpha;
    const float *g = w->gain, *b = w->beta;
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        for (int c = 0; c < C; c++) {
            float u = alpha * x[c];
            u = u > 1.0f ? 1.0f : u;
            u = u < -1.0f ? -1.0f : u;
            y[c] = g[c] * u + b[c];
        }
    }
}

// inside (|alpha x| < 1): dx = dy g alpha, dalpha = sum dy g x; outside both 0;
// dg = sum_rows dy clamp(alpha x, -1, 1), db = sum_rows dy
static inline void hardtanh_elems(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict la,
                                  float *restrict ls, const float *restrict dy, const float *restrict x,
                                  const float *restrict g, float alpha, float s, int n) {
    (void)ls, (void)s;
    for (int j = 0; j < n; j++) {
        float u = alpha * x[j];
        float in = u > -1.0f && u < 1.0f ? 1.0f : 0.0f;
        float v = u > 1.0f ? 1.0f : u;
        v = v < -1.0f ? -1.0f : v;
        float k = dy[j] * g[j] * in;
        dx[j] += k * alpha;
        la[j] += k * x[j];
        pg[j] += dy[j] * v;
        pb[j] += dy[j];
    }
}

static void hardtanh_row_fn(const void *ctx, size_t n, float *const *pl) {
    norm_scalar_row(hardtanh_elems, 1, ctx, n, pl);
}

void norm_alpha_backward(NormRowFn row, float *dinp, float *dgain, float *dbeta, float *dalpha,
                         const float *dout, const float *inp, const float *gain, float alpha,
                         size_t N, int C, float *scratch) {
    NormScalarRow a = {dinp, dout, inp, gain, alpha, 0.0f, C};
    float *out[3] = {dgain, dbeta, dalpha};
    norm_channel_sums(out, 2, 1, row, &a, N, C, scratch);
}

size_t norm_alpha_scratch_floats(size_t N, int C) { return norm_channel_scratch_floats(2, 1, N, C); }

static void hardtanh_backward(float *dinp, const NormG *g, const float *dout, const float *inp, const float *stats,
                              const NormW *w, size_t N, int C, float *scratch) {
    (void)stats;
    norm_alpha_backward(hardtanh_row_fn, dinp, g->gain, g->beta, g->alpha, dout, inp, w->gain, w->alpha, N, C, scratch);
}

// ----------------------------------------------------------------------------
// softsign: y = g * u / (1 + |u|) + b, u = alpha x. It saturates like tanh but
// with polynomial tails: its derivative 1 / (1 + |u|)^2 never vanishes (the
// control for "do the saturating kinds lose because their gradient dies?").

static void softsign_forward(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C) {
    (void)stats;
    float alpha = w->alpha;
    const float *g = w->gain, *b = w->beta;
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) {
        const float *restrict x = inp + n * C;
        float *restrict y = out + n * C;
        for (int c = 0; c < C; c++) {
            float u = alpha * x[c];
            y[c] = VM_MADD(g[c], u / (1.0f + fabsf(u)), b[c]);
        }
    }
}

// r = 1 / (1 + |u|), v = u r, k = dy g r^2:
//   dx = k alpha, dalpha = sum k x, dg = sum_rows dy v, db = sum_rows dy
static inline void softsign_elems(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict la,
                                  float *restrict ls, const float *restrict dy, const float *restrict x,
                                  const float *restrict g, float alpha, float s, int n) {
    (void)ls, (void)s;
    for (int j = 0; j < n; j++) {
        float u = alpha * x[j], r = 1.0f / (1.0f + fabsf(u));
        float k = dy[j] * g[j] * r * r;
        dx[j] = VM_MADD(k, alpha, dx[j]);
        la[j] = VM_MADD(k, x[j], la[j]);
        pg[j] = VM_MADD(dy[j], u * r, pg[j]);
        pb[j] += dy[j];
    }
}

static void softsign_row_fn(const void *ctx, size_t n, float *const *pl) {
    norm_scalar_row(softsign_elems, 1, ctx, n, pl);
}

static void softsign_backward(float *dinp, const NormG *g, const float *dout, const float *inp, const float *stats,
                              const NormW *w, size_t N, int C, float *scratch) {
    (void)stats;
    norm_alpha_backward(softsign_row_fn, dinp, g->gain, g->beta, g->alpha, dout, inp, w->gain, w->alpha, N, C, scratch);
}

// ----------------------------------------------------------------------------
// none: y = x (does the network need anything at all?)

static void none_forward(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C) {
    (void)stats, (void)w;
    memcpy(out, inp, N * (size_t)C * sizeof(float));
}

static void none_backward(float *dinp, const NormG *g, const float *dout, const float *inp, const float *stats,
                          const NormW *w, size_t N, int C, float *scratch) {
    (void)g, (void)inp, (void)stats, (void)w, (void)scratch;
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t i = 0; i < N * (size_t)C; i++) dinp[i] += dout[i];
}

static size_t no_scratch(size_t N, int C) { return (void)N, (void)C, 0; }

// ----------------------------------------------------------------------------
// the table: each kind's forward/backward in the table's signature

static void rms_fwd(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C) {
    rmsnorm_forward(out, stats, inp, w->gain, N, C, w->eps);
}
static void rms_bwd(float *dinp, const NormG *g, const float *dout, const float *inp, const float *stats,
                    const NormW *w, size_t N, int C, float *scratch) {
    rmsnorm_backward(dinp, g->gain, dout, inp, w->gain, stats, N, C, scratch);
}

// ----------------------------------------------------------------------------
// DyT (dyt.h is its public entry): gain * tanh(alpha x) + beta

void dyt_layer_forward(float *out, const float *inp, float alpha, const float *gain,
                 const float *beta, size_t N, int C) {
#pragma omp parallel for schedule(static) if (N * (size_t)C >= PAR_MIN)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        if (beta) // two loops: a test inside would keep the compiler from vectorising
            for (int c = 0; c < C; c++) y[c] = VM_MADD(gain[c], tanh_approx(alpha * x[c]), beta[c]);
        else
            for (int c = 0; c < C; c++) y[c] = gain[c] * tanh_approx(alpha * x[c]);
    }
}

// n channels of a row: dx +=, and its terms added to the chunk's sums. The
// pointers do not alias (restrict): the loop then vectorises.
static inline void dyt_elems(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict la,
                             float *restrict ls, const float *restrict dy, const float *restrict x,
                             const float *restrict gain, float alpha, float s, int n) {
    (void)ls, (void)s;
    for (int j = 0; j < n; j++) {
        float t = tanh_approx(alpha * x[j]);
        float g = dy[j] * gain[j] * VM_MADD(-t, t, 1.0f);
        dx[j] = VM_MADD(g, alpha, dx[j]);
        la[j] = VM_MADD(g, x[j], la[j]);
        pg[j] = VM_MADD(dy[j], t, pg[j]);
        pb[j] += dy[j];
    }
}

static void dyt_row_fn(const void *ctx, size_t n, float *const *pl) { norm_scalar_row(dyt_elems, 1, ctx, n, pl); }

// With t = tanh(alpha x) and dt/du = 1 - t^2 at u = alpha x:
//   dx = dy * gain * alpha * (1 - t^2)
//   dalpha = sum over all elements of dy * gain * x * (1 - t^2)
//   dgain = sum over rows of dy * t,  dbeta = sum over rows of dy
// The sums go through norm_channel_sums: the same bits for any thread count.
void dyt_layer_backward(float *dinp, float *dalpha, float *dgain, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gain,
                  size_t N, int C, float *scratch) {
    norm_alpha_backward(dyt_row_fn, dinp, dgain, dbeta, dalpha, dout, inp, gain, alpha, N, C, scratch);
}


static void dyt_fwd(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C) {
    (void)stats;
    dyt_layer_forward(out, inp, w->alpha, w->gain, w->beta, N, C);
}
static void dyt_bwd(float *dinp, const NormG *g, const float *dout, const float *inp, const float *stats,
                    const NormW *w, size_t N, int C, float *scratch) {
    (void)stats;
    dyt_layer_backward(dinp, g->alpha, g->gain, g->beta, dout, inp, w->alpha, w->gain, N, C, scratch);
}

const NormParam NORM_PARAMS[] = {
    [NP_GAIN] = {"norm", NULL, 1, INIT_ONE, 0},
    [NP_BETA] = {"beta", NULL, 1, INIT_ZERO, 0},
    [NP_ALPHA] = {"alpha", "alpha", 0, INIT_ALPHA0, 0},
    [NP_SHIFT] = {"shift", "s", 0, INIT_ZERO, 0},
};
// Both tables are unsized (norms.h): a kind or parameter appended to its enum
// without a row fails here; test_core's test_tables catches a row missing in
// the middle (zero-filled: a NULL name).
_Static_assert(sizeof NORM_PARAMS / sizeof NORM_PARAMS[0] == N_NORM_PARAMS, "NORM_PARAMS: a row per NP_");

#define G NP_BIT(NP_GAIN)
#define B NP_BIT(NP_BETA)
#define A NP_BIT(NP_ALPHA)
#define S NP_BIT(NP_SHIFT)
const NormKind NORM_KINDS[] = {
    // name, help, params, optional, alpha0, emb_scale, stats, sat, forward, backward, scratch
    [NORM_RMS] = {"rmsnorm", "g * x / sqrt(mean(x^2) + eps); g = 1", G, 0, 1.0f, 0, 1, 0.0f,
                  rms_fwd, rms_bwd, rmsnorm_scratch_floats},
    [NORM_DYT] = {"dyt", "gamma * tanh(alpha * x) + beta; alpha0 1 (--alpha-attn, --alpha-ffn), gamma 1, beta 0 "
                  "(--no-dyt-beta: none)", G | B | A, B, 1.0f, 1, 0, 2.0f, dyt_fwd, dyt_bwd, norm_alpha_scratch_floats},
    [NORM_LAYER] = {"layernorm", "(x - mean(x)) / sqrt(var(x) + eps) * g + b; g = 1, b = 0", G | B, 0, 1.0f, 0, 2,
                    0.0f, layernorm_forward, layernorm_backward, layernorm_scratch},
    [NORM_DERF] = {"derf", "gamma * erf(alpha * x + s) + beta; alpha0 0.5 (--alpha-attn, --alpha-ffn), s0 0, "
                   "gamma 1, beta 0", G | B | A | S, 0, 0.5f, 1, 0, 2.0f, derf_forward, derf_backward,
                   derf_scratch},
    [NORM_HARDTANH] = {"hardtanh", "gamma * clamp(alpha * x, -1, 1) + beta; alpha0 1, gamma 1, beta 0",
                       G | B | A, 0, 1.0f, 1, 0, 1.0f, hardtanh_forward, hardtanh_backward, norm_alpha_scratch_floats},
    [NORM_NONE] = {"none", "x (identity: no parameters)", 0, 0, 1.0f, 1, 0, 0.0f, none_forward, none_backward,
                   no_scratch},
    // sat 2 as DyT and Derf (not 27, where softsign is as flat as tanh at 2): sat_
    // then counts the inputs past the same point of alpha x for every smooth kind, so
    // a softsign run's sat_ compares with a DyT run's. Past it tanh's slope falls as
    // 4 e^(-2|u|) (0.07 at 2, 2e-4 at 5), softsign's as 1/(1+|u|)^2 (0.11, 0.03)
    [NORM_SOFTSIGN] = {"softsign", "gamma * u / (1 + |u|) + beta, u = alpha * x; alpha0 1 (--alpha-attn, "
                       "--alpha-ffn), gamma 1, beta 0", G | B | A, 0, 1.0f, 1, 0, 2.0f, softsign_forward,
                       softsign_backward, norm_alpha_scratch_floats},
};
_Static_assert(sizeof NORM_KINDS / sizeof NORM_KINDS[0] == N_NORMS, "NORM_KINDS: a row per NORM_ kind");
#undef G
#undef B
#undef A
#undef S

int norm_find(const char *name) {
    for (int k = 0; k < N_NORMS; k++)
        if (!strcmp(name, NORM_KINDS[k].name)) return k;
    return -1;
}

void norm_names(char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int k = 0; k < N_NORMS && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", k ? ", " : "", NORM_KINDS[k].name);
}

int norm_has(int kind, int p, int beta) {
    const NormKind *k = &NORM_KINDS[kind];
    if (!(k->params & NP_BIT(p))) return 0;
    return !(k->optional & NP_BIT(p)) || beta;
}
