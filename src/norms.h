// The norm kinds: ONE table (norms.c) gives each kind's name, formula, the
// parameters it has at each site (attention input, FFN input, final), the
// per-row statistics its forward saves for the backward pass, its scratch
// size and its forward/backward pair. The model layout, init, dispatch, the
// file format, --norm, the benchmark, the fuzz seeds and the tests all read
// this table; docs/adding-a-norm.md says how to add a row.
//
// Backward functions accumulate (+=) into every gradient they are given.
#ifndef NORMS_H
#define NORMS_H

#include <stddef.h>

// A kind's number is its row in the table and its code in the file header
// (docs/format.md): never reorder, only append.
enum { NORM_RMS, NORM_DYT, NORM_LAYER, NORM_DERF, NORM_HARDTANH, NORM_NONE, NORM_SOFTSIGN, N_NORMS };

// The parameters a kind may have at a site; each is one tensor per site
// (model.h), per layer for the attention and FFN sites.
enum { NP_GAIN, NP_BETA, NP_ALPHA, NP_SHIFT, N_NORM_PARAMS };
#define NP_BIT(p) (1u << (p))

typedef struct {
    const char *suffix; // tensor name is SITE_SUFFIX: attn_norm, ffn_beta, final_alpha
    const char *log;    // log.csv column prefix of a scalar (alpha_attn_0, s_final), or NULL
    int vector;         // 1: one value per channel (d); 0: one scalar
    int init;           // INIT_ONE, INIT_ZERO or INIT_ALPHA0 (the site's alpha0)
    int decays;         // AdamW weight decay applies
} NormParam;
enum { INIT_ONE, INIT_ZERO, INIT_ALPHA0 };
// Unsized, as every enum-indexed table declared in a header: with [N_NORM_PARAMS]
// here the definition would have N rows whatever its initializer holds, and the
// count assert beside it (norms.c) could not fail.
extern const NormParam NORM_PARAMS[]; // unsized: norms.c asserts a row per NP_

// One site's parameters in the forward: absent ones are NULL or unused.
typedef struct {
    const float *gain, *beta; // (C) each
    float alpha, shift;
    float eps; // the normalizing kinds' epsilon
} NormW;
// and their gradients (+=); NULL where absent
typedef struct {
    float *gain, *beta, *alpha, *shift;
} NormG;

typedef struct {
    const char *name; // --norm NAME, result.txt, log names
    const char *help; // formula and init, for --help and --list-norms
    unsigned params;   // NP_BIT()s of the parameters each site has
    unsigned optional; // of those, the ones a config may drop (DyT's beta: --no-dyt-beta)
    float alpha0;      // default alpha0 (kinds with NP_ALPHA)
    int emb_scale;     // default of --emb-scale: 1 for the norm-free kinds
    int stats;         // floats per row the forward saves for the backward
    float sat;         // saturating kinds: an input is saturated when |alpha x + s| > sat (log.csv sat_*); 0: none
    // out (N,C), stats (N, stats) or NULL, inp (N,C)
    void (*forward)(float *out, float *stats, const float *inp, const NormW *w, size_t N, int C);
    // dinp (N,C) +=, g +=; dout, inp (N,C), stats from the forward;
    // scratch: scratch_floats(N, C) floats
    void (*backward)(float *dinp, const NormG *g, const float *dout, const float *inp,
                     const float *stats, const NormW *w, size_t N, int C, float *scratch);
    size_t (*scratch_floats)(size_t N, int C);
} NormKind;

extern const NormKind NORM_KINDS[]; // unsized: norms.c asserts a row per NORM_

// The kind named `name`, or -1.
int norm_find(const char *name);
// "rmsnorm, dyt, ..." into buf (for messages).
void norm_names(char *buf, size_t cap);
// Whether kind k has parameter p at a site, given the config's optional-beta switch.
int norm_has(int kind, int p, int beta);

// ----------------------------------------------------------------------------
// The one helper for per-channel gradient sums, shared by every kind's
// backward: their order must not depend on the thread count.
//
// Rows go in fixed chunks of NORM_ROWS (row-major, as the data lies); each
// chunk adds its rows' terms into its own slices of scratch, through
// row(ctx, n, planes): planes 0..nvec-1 are per-channel vectors, a (C) slice
// each; the others are scalars, a (NORM_LANES) slice each, where lane j sums
// the terms of channels j, j + NORM_LANES, ... (kept in registers along the
// row: see norm_scalar_row). Then the slices are summed in chunk order, in
// double: each vector per channel into out[p] (C), each scalar over chunks
// and lanes into *out[p]. out[p] may be NULL (the term is computed, not
// stored). No atomics, and the same bits for any thread count.
#define NORM_ROWS 32
#define NORM_LANES 16
#define NORM_MAX_PLANES 4
typedef void (*NormRowFn)(const void *ctx, size_t n, float *const *planes);
void norm_channel_sums(float *const *out, int nvec, int nscal, NormRowFn row, const void *ctx,
                       size_t N, int C, float *scratch);
size_t norm_channel_scratch_floats(int nvec, int nscal, size_t N, int C);

// The element-wise kinds with a gain, a beta and one or two scalars (alpha,
// shift: DyT, Derf, hardtanh, softsign) share one row function shape. elems
// does n consecutive channels: dx +=, its gain and beta terms into pg and pb
// (per channel), its alpha and shift terms into the lane sums la and ls.
typedef void (*NormElemsFn)(float *restrict dx, float *restrict pg, float *restrict pb, float *restrict la,
                            float *restrict ls, const float *restrict dy, const float *restrict x,
                            const float *restrict g, float alpha, float s, int n);
typedef struct {
    float *dinp;
    const float *dout, *inp, *gain;
    float alpha, shift;
    int C;
} NormScalarRow;

// The backward of such a kind with one scalar, alpha (DyT, hardtanh,
// softsign), through its row function: dinp, dgain, dbeta (or NULL), dalpha
// +=; scratch holds norm_alpha_scratch_floats(N, C) floats.
void norm_alpha_backward(NormRowFn row, float *dinp, float *dgain, float *dbeta, float *dalpha,
                         const float *dout, const float *inp, const float *gain, float alpha,
                         size_t N, int C, float *scratch);
size_t norm_alpha_scratch_floats(size_t N, int C);

// Row n of such a kind (ctx a NormScalarRow; planes gain, beta, alpha and, if
// nscal is 2, shift): elems on full blocks of NORM_LANES channels (a constant
// count: vectorised, with the lane sums in registers rather than a load and a
// store per element), then on the tail. Inline, with elems a constant at each
// call, so the compiler inlines elems too.
static inline void norm_scalar_row(NormElemsFn elems, int nscal, const void *ctx, size_t n, float *const *pl) {
    const NormScalarRow *a = ctx;
    size_t o = n * (size_t)a->C;
    float *dx = a->dinp + o, la[NORM_LANES] = {0}, ls[NORM_LANES] = {0};
    const float *dy = a->dout + o, *x = a->inp + o;
    int c = 0;
    for (; c + NORM_LANES <= a->C; c += NORM_LANES)
        elems(dx + c, pl[0] + c, pl[1] + c, la, ls, dy + c, x + c, a->gain + c, a->alpha, a->shift, NORM_LANES);
    elems(dx + c, pl[0] + c, pl[1] + c, la, ls, dy + c, x + c, a->gain + c, a->alpha, a->shift, a->C - c);
    for (int j = 0; j < NORM_LANES; j++) pl[2][j] += la[j];
    if (nscal == 2)
        for (int j = 0; j < NORM_LANES; j++) pl[3][j] += ls[j];
}

// The kinds' own layers. DyT's (dyt.h is its public, tested entry):
// out (N,C), inp (N,C), gain (C), beta (C) or NULL; the backward accumulates
// into dinp, dalpha, dgain, dbeta (or NULL), scratch norm_alpha_scratch_floats(N, C).
void dyt_layer_forward(float *out, const float *inp, float alpha, const float *gain, const float *beta, size_t N,
                       int C);
void dyt_layer_backward(float *dinp, float *dalpha, float *dgain, float *dbeta, const float *dout, const float *inp,
                        float alpha, const float *gain, size_t N, int C, float *scratch);
// out (N,C), rstd (N) or NULL, inp (N,C), weight (C)
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                     size_t N, int C, float eps);
// dinp (N,C) +=, dweight (C) +=; scratch: rmsnorm_scratch_floats(N, C) floats
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, size_t N, int C, float *scratch);
size_t rmsnorm_scratch_floats(size_t N, int C);

#endif
