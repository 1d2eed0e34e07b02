#include "model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "layers.h"
#include "rng.h"

// ----------------------------------------------------------------------------
// config and parameter layout

// The parameter tensors, each described once. Shape rules: d = dim, h =
// hidden_dim, V = vocab_size, kvd = n_kv_heads * head_dim; per-layer tensors
// are stacked over the L layers. Norm parameters (np >= 0) take their shape,
// init and decay from NORM_PARAMS and are present when the site's kind has them.
enum { SH_VD, SH_D, SH_1, SH_DD, SH_KD, SH_HD, SH_DH, N_SHAPES }; // shape of one layer's slice
enum { HAS_ALWAYS, HAS_NORM, HAS_EMB_SCALE, HAS_GATE, HAS_UNTIED, HAS_GATED_MLP }; // present when
enum { INIT_NORMAL = 16, INIT_NORMAL_RESID, INIT_SQRT_D, INIT_GATE }; // beside norms.h's INIT_
enum { AT_LAYER, AT_TOP, AT_END }; // gradient complete: with its layer, after the head, on return

typedef struct {
    const char *name;
    int shape, per_layer, has, init, decays;
    int site, np;  // norm parameter np of site (np = -1: not a norm parameter)
    int stream;    // random init: the rng stream (the tensor's number in the first format: kept)
    int grad_at;
} TensorDesc;

#define NORM_P(nm, s, p, lay, at) {nm, -1, lay, HAS_NORM, -1, -1, s, p, 0, at}
static const TensorDesc TENSORS[] = {
    [T_WTE] = {"wte", SH_VD, 0, HAS_ALWAYS, INIT_NORMAL, 1, -1, -1, 0, AT_END},
    [T_ATTN_GAIN] = NORM_P("attn_norm", SITE_ATTN, NP_GAIN, 1, AT_LAYER),
    [T_ATTN_BETA] = NORM_P("attn_beta", SITE_ATTN, NP_BETA, 1, AT_LAYER),
    [T_ATTN_ALPHA] = NORM_P("attn_alpha", SITE_ATTN, NP_ALPHA, 1, AT_LAYER),
    [T_ATTN_SHIFT] = NORM_P("attn_shift", SITE_ATTN, NP_SHIFT, 1, AT_LAYER),
    [T_WQ] = {"wq", SH_DD, 1, HAS_ALWAYS, INIT_NORMAL, 1, -1, -1, 4, AT_LAYER},
    [T_WK] = {"wk", SH_KD, 1, HAS_ALWAYS, INIT_NORMAL, 1, -1, -1, 5, AT_LAYER},
    [T_WV] = {"wv", SH_KD, 1, HAS_ALWAYS, INIT_NORMAL, 1, -1, -1, 6, AT_LAYER},
    [T_WO] = {"wo", SH_DD, 1, HAS_ALWAYS, INIT_NORMAL_RESID, 1, -1, -1, 7, AT_LAYER},
    [T_ATTN_GATE] = {"attn_gate", SH_1, 1, HAS_GATE, INIT_GATE, 0, -1, -1, 0, AT_LAYER},
    [T_FFN_GAIN] = NORM_P("ffn_norm", SITE_FFN, NP_GAIN, 1, AT_LAYER),
    [T_FFN_BETA] = NORM_P("ffn_beta", SITE_FFN, NP_BETA, 1, AT_LAYER),
    [T_FFN_ALPHA] = NORM_P("ffn_alpha", SITE_FFN, NP_ALPHA, 1, AT_LAYER),
    [T_FFN_SHIFT] = NORM_P("ffn_shift", SITE_FFN, NP_SHIFT, 1, AT_LAYER),
    [T_W1] = {"w1", SH_HD, 1, HAS_ALWAYS, INIT_NORMAL, 1, -1, -1, 11, AT_LAYER},
    [T_W2] = {"w2", SH_DH, 1, HAS_ALWAYS, INIT_NORMAL_RESID, 1, -1, -1, 12, AT_LAYER},
    [T_W3] = {"w3", SH_HD, 1, HAS_GATED_MLP, INIT_NORMAL, 1, -1, -1, 13, AT_LAYER},
    [T_FFN_GATE] = {"ffn_gate", SH_1, 1, HAS_GATE, INIT_GATE, 0, -1, -1, 0, AT_LAYER},
    [T_FINAL_GAIN] = NORM_P("final_norm", SITE_FINAL, NP_GAIN, 0, AT_TOP),
    [T_FINAL_BETA] = NORM_P("final_beta", SITE_FINAL, NP_BETA, 0, AT_TOP),
    [T_FINAL_ALPHA] = NORM_P("final_alpha", SITE_FINAL, NP_ALPHA, 0, AT_TOP),
    [T_FINAL_SHIFT] = NORM_P("final_shift", SITE_FINAL, NP_SHIFT, 0, AT_TOP),
    [T_EMB_SCALE] = {"emb_scale", SH_1, 0, HAS_EMB_SCALE, INIT_SQRT_D, 0, -1, -1, 0, AT_END},
    [T_WCLS] = {"wcls", SH_VD, 0, HAS_UNTIED, INIT_NORMAL, 1, -1, -1, 18, AT_TOP},
};
#undef NORM_P
// Unsized, the table is as long as its last row: a tensor appended to the enum
// without a row fails here. A row missing in the middle is zero-filled (a NULL
// name): test_core's test_tables checks every row.
_Static_assert(sizeof TENSORS / sizeof TENSORS[0] == N_TENSORS, "TENSORS: a row per T_ tensor");

const char *tensor_name(int t) { return t >= 0 && t < N_TENSORS ? TENSORS[t].name : "?"; }

int tensor_decays(int t) {
    const TensorDesc *x = &TENSORS[t];
    return x->np >= 0 ? NORM_PARAMS[x->np].decays : x->decays;
}

int site_tensor(int site, int p) {
    for (int t = 0; t < N_TENSORS; t++)
        if (TENSORS[t].site == site && TENSORS[t].np == p) return t;
    return -1;
}

void config_set_norm(ModelConfig *c, int kind) {
    const NormKind *k = &NORM_KINDS[kind];
    c->norm = kind;
    c->emb_scale = k->emb_scale;
    c->opt_beta = k->optional != 0;
    c->alpha_attn0 = c->alpha_ffn0 = c->alpha_final0 = k->alpha0;
}

int tensor_is_matrix(int t) {
    const TensorDesc *x = &TENSORS[t];
    return x->np < 0 && x->shape != SH_1 && x->shape != SH_D;
}

// A scalar: one number per layer or site (a slice of shape 1): alpha, shift,
// the embedding scale, the residual gates.
int tensor_is_scalar(int t) {
    const TensorDesc *x = &TENSORS[t];
    return (x->np >= 0 ? !NORM_PARAMS[x->np].vector : x->shape == SH_1);
}

// ----------------------------------------------------------------------------
// weight types

static const struct {
    const char *name;
    size_t bytes;
} DTYPES[] = {[DTYPE_F32] = {"fp32", 4}, [DTYPE_BF16] = {"bf16", 2}};
_Static_assert(sizeof DTYPES / sizeof DTYPES[0] == N_DTYPES, "DTYPES: a row per DTYPE_");

const char *dtype_name(int i) { return i >= 0 && i < N_DTYPES ? DTYPES[i].name : NULL; }
size_t dtype_bytes(int dtype) { return DTYPES[dtype].bytes; }

int dtype_find(const char *name) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(DTYPES[i].name, name)) return i;
    return -1;
}

// ----------------------------------------------------------------------------
// MLP kinds

// LLaMA's rule: 2/3 of 4d, rounded up to a multiple of 32 (the parameters of
// a 4d two-matrix MLP in three matrices).
static int swiglu_hidden(int dim) { return (8 * dim / 3 + 31) / 32 * 32; }
static int gelu_hidden(int dim) { return 4 * dim; }

static void gelu_act_forward(float *hg, const float *h1, const float *h3, size_t n) {
    (void)h3;
    gelu_forward(hg, h1, n);
}

static void gelu_act_backward(float *dh1, float *dh3, const float *dhg, const float *h1, const float *h3,
                              size_t n) {
    (void)dh3, (void)h3;
    gelu_backward(dh1, dhg, h1, n);
}

const MlpKind MLP_KINDS[] = {
    [MLP_SWIGLU] = {"swiglu", "w2(silu(w1 n) * w3 n), hidden 8d/3 rounded up to 32", 1, swiglu_hidden,
                    swiglu_forward, swiglu_backward},
    [MLP_GELU] = {"gelu", "w2(gelu(w1 n)), exact erf GELU, hidden 4d", 0, gelu_hidden, gelu_act_forward,
                  gelu_act_backward},
};
_Static_assert(sizeof MLP_KINDS / sizeof MLP_KINDS[0] == N_MLPS, "MLP_KINDS: a row per MLP_ kind");

int mlp_find(const char *name) {
    for (int k = 0; k < N_MLPS; k++)
        if (!strcmp(MLP_KINDS[k].name, name)) return k;
    return -1;
}

int default_hidden_dim(int dim, int mlp) { return MLP_KINDS[mlp].default_hidden(dim); }

#define CHECK_RANGE(field, lo, hi)                                                        \
    if (c->field < (lo) || c->field > (hi))                                               \
        return err_set(err, #field " = %d is out of range [%d, %d]", c->field, (lo), (hi));

int config_validate(const ModelConfig *c, Error *err) {
    CHECK_RANGE(dim, 2, 65536);
    CHECK_RANGE(hidden_dim, 1, 1048576);
    CHECK_RANGE(n_layers, 1, MAX_LAYERS);
    CHECK_RANGE(n_heads, 1, c->dim);
    CHECK_RANGE(n_kv_heads, 1, c->n_heads);
    CHECK_RANGE(vocab_size, 1, 1048576);
    CHECK_RANGE(seq_len, 1, 1048576);
    CHECK_RANGE(norm, 0, N_NORMS - 1);
    CHECK_RANGE(tie_embeddings, 0, 1);
    if (c->opt_beta < 0 || c->opt_beta > 1) // the header field's name: dyt_beta (docs/format.md)
        return err_set(err, "dyt_beta = %d is out of range [0, 1]", c->opt_beta);
    CHECK_RANGE(mlp, 0, N_MLPS - 1);
    CHECK_RANGE(emb_scale, 0, 1);
    CHECK_RANGE(residual_gate, 0, 1);
    if (c->dim % c->n_heads)
        return err_set(err, "n_heads = %d does not divide dim = %d", c->n_heads, c->dim);
    if ((c->dim / c->n_heads) % 2)
        return err_set(err, "head_dim = dim / n_heads = %d must be even (RoPE rotates pairs)",
                       c->dim / c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return err_set(err, "n_kv_heads = %d does not divide n_heads = %d", c->n_kv_heads, c->n_heads);
    if (c->opt_beta && !NORM_KINDS[c->norm].optional)
        return err_set(err, "dyt_beta = 1 but norm %s has no optional beta", NORM_KINDS[c->norm].name);
    if (!isfinite(c->norm_eps) || c->norm_eps <= 0.0f)
        return err_set(err, "norm_eps = %g must be finite and > 0", c->norm_eps);
    if (!isfinite(c->rope_theta) || c->rope_theta <= 0.0f)
        return err_set(err, "rope_theta = %g must be finite and > 0", c->rope_theta);
    if (!isfinite(c->alpha_attn0) || !isfinite(c->alpha_ffn0) || !isfinite(c->alpha_final0))
        return err_set(err, "alpha_attn0 / alpha_ffn0 / alpha_final0 must be finite");
    return 0;
}

// Whether tensor t is present in config c.
static int tensor_present(const ModelConfig *c, int t) {
    const TensorDesc *x = &TENSORS[t];
    switch (x->has) {
    case HAS_NORM: return norm_has(c->norm, x->np, c->opt_beta);
    case HAS_EMB_SCALE: return c->emb_scale;
    case HAS_GATE: return c->residual_gate;
    case HAS_UNTIED: return !c->tie_embeddings;
    case HAS_GATED_MLP: return MLP_KINDS[c->mlp].gated;
    default: return 1;
    }
}

int config_layout(const ModelConfig *c, size_t sizes[N_TENSORS], size_t *n_params, Error *err) {
    size_t d = (size_t)c->dim, h = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t V = (size_t)c->vocab_size, kvd = d / (size_t)c->n_heads * (size_t)c->n_kv_heads;
    size_t total = 0;
    for (int t = 0; t < N_TENSORS; t++) {
        const TensorDesc *x = &TENSORS[t];
        int shape = x->np >= 0 ? (NORM_PARAMS[x->np].vector ? SH_D : SH_1) : x->shape;
        const size_t one[] = {[SH_VD] = V * d, [SH_D] = d, [SH_1] = 1, [SH_DD] = d * d, // each < 2^40
                              [SH_KD] = kvd * d, [SH_HD] = h * d, [SH_DH] = d * h};
        _Static_assert(sizeof one / sizeof one[0] == N_SHAPES, "a size per SH_ shape");
        size_t n = tensor_present(c, t) ? one[shape] : 0;
        if ((x->per_layer && size_mul(L, n, &n)) || size_add(total, n, &total)) // L * d * h can overflow
            return err_set(err, "parameter count overflows (%s)", x->name);
        sizes[t] = n;
    }
    // float offsets must fit in memory and in the file-size arithmetic
    if (total > ((size_t)1 << 40)) return err_set(err, "model has %zu parameters (limit 2^40)", total);
    *n_params = total;
    return 0;
}

// ----------------------------------------------------------------------------
// allocation and init

static void carve(Tensors *ts, float *base, const size_t sizes[N_TENSORS], int tied) {
    for (int t = 0; t < N_TENSORS; t++) {
        ts->t[t] = base;
        base += sizes[t];
    }
    if (tied) ts->t[T_WCLS] = ts->t[T_WTE];
}

// A bf16 model's tensors: the matrices into params16, the others into params.
static void carve_bf16(Model *m) {
    float *p = m->params;
    uint16_t *q = m->params16;
    for (int t = 0; t < N_TENSORS; t++) {
        int mat = tensor_is_matrix(t);
        m->w.t[t] = mat ? NULL : p;
        m->w16.t[t] = mat ? q : NULL;
        if (mat) q += m->sizes[t];
        else p += m->sizes[t];
    }
    if (m->cfg.tie_embeddings) m->w16.t[T_WCLS] = m->w16.t[T_WTE];
}

// Parameters of the matrices (held in bf16 by a bf16 model).
static size_t matrix_params(const Model *m) {
    size_t n = 0;
    for (int t = 0; t < N_TENSORS; t++) n += tensor_is_matrix(t) ? m->sizes[t] : 0;
    return n;
}

int model_create_as(Model *m, const ModelConfig *c, int dtype, Error *err) {
    memset(m, 0, sizeof *m);
    if (config_validate(c, err) || config_layout(c, m->sizes, &m->n_params, err)) return -1;
    m->cfg = *c;
    m->dtype = dtype;
    if (dtype == DTYPE_F32) {
        if (!(m->params = alloc_floats(m->n_params)))
            return err_set(err, "out of memory for %zu parameters", m->n_params);
        carve(&m->w, m->params, m->sizes, c->tie_embeddings);
        return 0;
    }
    size_t nm = matrix_params(m);
    m->params = alloc_floats(m->n_params - nm);
    m->params16 = (uint16_t *)alloc_floats((nm + 1) / 2); // two bf16 a float: aligned, and checked as alloc_floats
    if (!m->params || !m->params16) {
        model_free(m);
        return err_set(err, "out of memory for %zu bf16 parameters", m->n_params);
    }
    carve_bf16(m);
    return 0;
}

int model_create(Model *m, const ModelConfig *c, Error *err) { return model_create_as(m, c, DTYPE_F32, err); }

int model_set_dtype(Model *m, int dtype, Error *err) {
    if (m->dtype == dtype) return 0;
    if (m->grads) return err_set(err, "a model being trained keeps its fp32 weights");
    Model n;
    if (model_create_as(&n, &m->cfg, dtype, err)) return -1;
    for (int t = 0; t < N_TENSORS; t++) {
        size_t k = m->sizes[t];
        if (!k) continue;
        if (!tensor_is_matrix(t) && dtype == DTYPE_BF16) bf16_round_floats(n.w.t[t], m->w.t[t], k); // as its file
        else if (!tensor_is_matrix(t)) memcpy(n.w.t[t], m->w.t[t], k * sizeof(float));
        else if (dtype == DTYPE_F32) bf16_to_floats(n.w.t[t], m->w16.t[t], k);
        else if (bf16_convert(n.w16.t[t], m->w.t[t], k) < k) {
            model_free(&n);
            return err_set(err, "tensor %s holds a weight beyond bf16's range (3.39e38)", tensor_name(t));
        }
    }
    n.tokenizer = m->tokenizer, n.tokenizer_bytes = m->tokenizer_bytes;
    m->tokenizer = NULL;
    model_free(m);
    *m = n;
    return 0;
}

int model_alloc_grads(Model *m, Error *err) {
    if (m->dtype != DTYPE_F32) return err_set(err, "a bf16 model cannot be trained: train from its fp32 checkpoint");
    m->grads = alloc_floats(m->n_params);
    if (!m->grads) return err_set(err, "out of memory for gradients");
    carve(&m->g, m->grads, m->sizes, m->cfg.tie_embeddings);
    return 0;
}

void model_free(Model *m) {
    free(m->params);
    free(m->params16);
    free(m->grads);
    free(m->tokenizer);
    memset(m, 0, sizeof *m);
}

void model_zero_grad(Model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

static void fill(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] = v;
}

void model_init(Model *m, uint64_t seed) {
    const ModelConfig *c = &m->cfg;
    float std = 0.02f, std_resid = 0.02f / sqrtf(2.0f * c->n_layers);
    for (int t = 0; t < N_TENSORS; t++) {
        const TensorDesc *x = &TENSORS[t];
        float *p = m->w.t[t];
        size_t n = m->sizes[t];
        int init = x->np >= 0 ? NORM_PARAMS[x->np].init : x->init;
        switch (init) {
        case INIT_ONE: fill(p, n, 1.0f); break;
        case INIT_ZERO: case INIT_GATE: fill(p, n, 0.0f); break;
        case INIT_ALPHA0: {
            const float alpha0[] = {[SITE_ATTN] = c->alpha_attn0, [SITE_FFN] = c->alpha_ffn0,
                                    [SITE_FINAL] = c->alpha_final0};
            _Static_assert(sizeof alpha0 / sizeof alpha0[0] == N_SITES, "an alpha0 per site");
            fill(p, n, alpha0[x->site]);
            break;
        }
        case INIT_SQRT_D: fill(p, n, sqrtf((float)c->dim)); break;
        default: { // matrices and the embedding: their own stream per tensor
            Rng r = rng_make(seed, (uint64_t)x->stream);
            float s = init == INIT_NORMAL_RESID ? std_resid : std;
            for (size_t i = 0; i < n; i++) p[i] = s * (float)rng_normal(&r);
        }
        }
    }
}

// ----------------------------------------------------------------------------
// activations

// One thread's share of Acts.token_norm: a row (d) and its stats, in 64-byte
// units (no two threads write one cache line).
static size_t token_norm_floats(const Model *m) {
    return ((size_t)m->cfg.dim + (size_t)NORM_KINDS[m->cfg.norm].stats + 15) / 16 * 16;
}

// One decoded token's share of Acts.x16 (a thread's): the widest input of a
// product (d or the hidden size), in 64-byte units.
static size_t token_x16_values(const Model *m) {
    size_t w = (size_t)(m->cfg.dim > m->cfg.hidden_dim ? m->cfg.dim : m->cfg.hidden_dim);
    return (w + 31) / 32 * 32;
}

// Acts.x16: T rows of the widest input, or a token's for each of nt threads.
static size_t x16_values(const Model *m, size_t T, int nt) {
    size_t rows = T > (size_t)nt ? T : (size_t)nt;
    return rows * token_x16_values(m);
}

// Without stored activations, attention's blocks of score rows: one per
// thread, but no more than the (batch, head) tasks that can run at once.
static int att_blocks(const Acts *a, int n_heads) {
    int64_t tasks = (int64_t)a->B * n_heads;
    return tasks < a->nthreads ? (int)tasks : a->nthreads;
}

// The attention probabilities: every layer's (B,NH,T,kv_len) for the backward
// pass; otherwise a decoded token's (B,NH,kv_len) or att_blocks blocks of
// rows, whichever is larger: linear in the context, where T x kv_len of a
// long window would not fit any machine (and never more than that).
static int att_floats(const Acts *a, int n_heads, size_t *out) {
    size_t per = (size_t)a->B * (size_t)n_heads, rows = attention_rows_floats(a->T_cap, a->kv_len);
    if (a->store_all)
        return size_mul(per, (size_t)a->T_cap, out) || size_mul(*out, (size_t)a->kv_len, out) ? -1 : 0;
    if (size_mul(per, (size_t)a->kv_len, out) || size_mul((size_t)att_blocks(a, n_heads), rows, &rows)) return -1;
    if (rows > *out) *out = rows;
    return 0;
}

int acts_create(Acts *a, const Model *m, int B, int T, int kv_len, int store_all, Error *err) {
    const ModelConfig *c = &m->cfg;
    memset(a, 0, sizeof *a);
    if (B < 1 || T < 1 || T > kv_len || kv_len > c->seq_len || (B > 1 && kv_len != T))
        return err_set(err, "bad activation shape B=%d T=%d kv_len=%d (context %d)", B, T, kv_len, c->seq_len);
    int bf16 = m->dtype == DTYPE_BF16;
    if (bf16 && (B > 1 || store_all))
        return err_set(err, "a bf16 model generates and evaluates one sequence (B %d%s): train from its fp32 checkpoint",
                       B, store_all ? ", activations kept for training" : "");
    a->B = B, a->T = a->T_cap = T, a->kv_len = kv_len, a->store_all = store_all;
    a->nthreads = omp_get_max_threads();
    size_t N = (size_t)B * T, d = c->dim, h = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    size_t kvd = d / c->n_heads * c->n_kv_heads, S = store_all ? L : 1, att;
    // bf16: the cache (L, kv_len, kvd) of bf16, two a float; one layer's fp32 rows in k, v
    size_t kv16 = bf16 ? (L * kv_len * kvd + 1) / 2 : 0, kv32 = (bf16 ? 1 : L) * B * kv_len * kvd;
    const NormKind *kind = &NORM_KINDS[c->norm];
    size_t ns = (size_t)kind->stats; // the norm's saved floats per row
    // the largest products, checked; every other part is smaller than one of these
    size_t big, one; // one: a decoded token's attention scratch
    if (att_floats(a, c->n_heads, &att) ||
        size_mul(one = attention_one_scratch_floats(B, kv_len, c->n_heads, (int)(d / c->n_heads)), sizeof(float),
                 &big) ||
        size_mul(S, att, &big) || size_mul((size_t)B * L * kv_len, kvd, &big) ||
        size_mul(S * N, h > V ? h : V, &big) || size_mul(big, sizeof(float), &big))
        return err_set(err, "activations for B=%d T=%d kv_len=%d overflow", B, T, kv_len);
    float *k16 = NULL, *v16 = NULL, *x16 = NULL; // carved as floats, held as bf16
    struct { float **p; size_t n; } parts[] = {
        {&a->resid, (S + (store_all ? 1 : 0)) * N * d},
        {&a->norm_attn, S * N * d}, {&a->stats_attn, S * N * ns}, {&a->q, S * N * d}, {&a->att, S * att},
        {&a->atty, S * N * d}, {&a->resid_mid, S * N * d}, {&a->norm_ffn, S * N * d},
        {&a->stats_ffn, S * N * ns}, {&a->h1, S * N * h}, {&a->h3, S * N * h}, {&a->hg, S * N * h},
        {&a->k, kv32}, {&a->v, kv32}, {&k16, kv16}, {&v16, kv16},
        {&x16, bf16 ? x16_values(m, T, a->nthreads) / 2 : 0},
        {&a->norm_final, N * d}, {&a->stats_final, N * ns}, {&a->logits, N * V}, {&a->tmp, N * d},
        {&a->emb, N * d}, {&a->att_one, one}, {&a->token_norm, (size_t)a->nthreads * token_norm_floats(m)},
        {&a->attn_out, c->residual_gate ? S * N * d : 0},
        {&a->ffn_out, c->residual_gate ? S * N * d : 0}, {&a->dbranch, c->residual_gate && store_all ? N * d : 0}, {&a->rope_cos, (size_t)kv_len * (d / c->n_heads / 2)},
        {&a->rope_sin, (size_t)kv_len * (d / c->n_heads / 2)},
        // backward scratch
        {&a->dresid, store_all ? N * d : 0}, {&a->dnorm, store_all ? N * d : 0},
        {&a->dq, store_all ? N * d : 0}, {&a->dk, store_all ? N * kvd : 0},
        {&a->dv, store_all ? N * kvd : 0}, {&a->datty, store_all ? N * d : 0},
        {&a->dh1, store_all ? N * h : 0}, {&a->dh3, store_all ? N * h : 0},
        {&a->dhg, store_all ? N * h : 0}, {&a->dlogits, store_all ? N * V : 0},
        {&a->att_scratch, store_all ? (size_t)a->nthreads * attention_scratch_floats(T) : 0},
        {&a->norm_scratch, store_all ? kind->scratch_floats(N, c->dim) : 0},
    };
    size_t total = 0, nparts = sizeof parts / sizeof parts[0];
    for (size_t i = 0; i < nparts; i++) // parts rounded to 16 floats (64 bytes)
        if (size_add(total, (parts[i].n + 15) & ~(size_t)15, &total))
            return err_set(err, "activations for B=%d T=%d kv_len=%d overflow", B, T, kv_len);
    char what[128];
    snprintf(what, sizeof what, "the activation block for %d x %d positions with %d keys", B, T, kv_len);
    if (memory_check(total * sizeof(float) + N * sizeof(double), what, err)) return -1;
    a->block = alloc_floats(total);
    a->block_floats = total;
    a->row_loss = calloc(N, sizeof(double));
    if (!a->block || !a->row_loss) {
        acts_free(a);
        return err_set(err, "out of memory for activations (%zu floats)", total);
    }
    // Touch every page now (calloc maps them lazily): all the memory a run
    // needs is resident from the start, so a generation's footprint does not
    // creep up as its KV cache fills, and a machine short of memory says so
    // at start-up, not hours into a run.
    memset(a->block, 0, total * sizeof(float));
    float *p = a->block;
    for (size_t i = 0; i < nparts; i++) {
        *parts[i].p = parts[i].n ? p : NULL;
        p += (parts[i].n + 15) & ~(size_t)15;
    }
    a->k16 = (uint16_t *)k16, a->v16 = (uint16_t *)v16, a->x16 = (uint16_t *)x16;
    rope_tables(a->rope_cos, a->rope_sin, kv_len, c->dim / c->n_heads, c->rope_theta);
    return 0;
}

void acts_free(Acts *a) {
    free(a->block);
    free(a->row_loss);
    memset(a, 0, sizeof *a);
}

// One layer's view into the activations: its own slices when store_all,
// otherwise the shared ones; k and v are always per layer (the KV cache).
typedef struct {
    float *x_in, *x_out, *norm_attn, *stats_attn, *q, *att, *atty, *resid_mid;
    float *norm_ffn, *stats_ffn, *h1, *h3, *hg, *k, *v;
    float *attn_out, *ffn_out; // NULL without residual gates
    uint16_t *k16, *v16;       // a bf16 model's cache (k, v then: fp32 rows shared by the layers); else NULL
} Layer;

// p + off, or NULL for a buffer this model does not have (w3's h3 without a
// gated MLP, no per-row statistics, no residual gates): NULL + 0 is undefined.
static float *slice(float *p, size_t off) { return p ? p + off : NULL; }

static Layer layer_at(const Model *m, const Acts *a, int l) {
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)a->B * a->T, d = c->dim, h = c->hidden_dim;
    size_t kvd = d / c->n_heads * c->n_kv_heads, s = a->store_all ? (size_t)l : 0;
    size_t att = (size_t)a->B * c->n_heads * a->T * a->kv_len, ns = (size_t)NORM_KINDS[c->norm].stats;
    Layer y = {
        .x_in = slice(a->resid, s * N * d), .x_out = slice(a->resid, (a->store_all ? s + 1 : 0) * N * d),
        .norm_attn = slice(a->norm_attn, s * N * d), .stats_attn = slice(a->stats_attn, s * N * ns),
        .q = slice(a->q, s * N * d), .att = slice(a->att, s * att), .atty = slice(a->atty, s * N * d),
        .resid_mid = slice(a->resid_mid, s * N * d), .norm_ffn = slice(a->norm_ffn, s * N * d),
        .stats_ffn = slice(a->stats_ffn, s * N * ns), .h1 = slice(a->h1, s * N * h), .h3 = slice(a->h3, s * N * h),
        .hg = slice(a->hg, s * N * h),
        .attn_out = slice(a->attn_out, s * N * d), .ffn_out = slice(a->ffn_out, s * N * d),
        .k = slice(a->k, (size_t)l * a->B * a->kv_len * kvd), .v = slice(a->v, (size_t)l * a->B * a->kv_len * kvd)};
    if (a->k16) {
        size_t off = (size_t)l * a->kv_len * kvd;
        y.k = a->k, y.v = a->v, y.k16 = a->k16 + off, y.v16 = a->v16 + off;
    }
    return y;
}

// ----------------------------------------------------------------------------
// norm dispatch: the site's kind (norms.h) with layer l's parameters

// Layer l's slice of tensor t in params or grads (l = 0 for a global tensor).
static float *slice_at(const Model *m, float *const *ts, int t, int l) {
    return ts[t] + (TENSORS[t].per_layer ? (size_t)l * (m->sizes[t] / (size_t)m->cfg.n_layers) : 0);
}

// The site's parameter p of layer l, or NULL when the kind has none.
static float *site_param(const Model *m, float *const *ts, int site, int p, int l) {
    int t = site_tensor(site, p);
    return m->sizes[t] ? slice_at(m, ts, t, l) : NULL;
}

static NormW site_weights(const Model *m, int site, int l) {
    const float *alpha = site_param(m, m->w.t, site, NP_ALPHA, l), *shift = site_param(m, m->w.t, site, NP_SHIFT, l);
    return (NormW){.gain = site_param(m, m->w.t, site, NP_GAIN, l), .beta = site_param(m, m->w.t, site, NP_BETA, l),
                   .alpha = alpha ? *alpha : 0.0f, .shift = shift ? *shift : 0.0f, .eps = m->cfg.norm_eps};
}

// inp, out (N,d), stats (N, kind's stats)
static void norm_forward(const Model *m, int site, int l, float *out, float *stats, const float *inp, size_t N) {
    NormW w = site_weights(m, site, l);
    NORM_KINDS[m->cfg.norm].forward(out, stats, inp, &w, N, m->cfg.dim);
}

// dinp (N,d) +=; parameter gradients +=
static void norm_backward(Model *m, Acts *a, int site, int l, float *dinp, const float *dout,
                          const float *inp, const float *stats, size_t N) {
    NormW w = site_weights(m, site, l);
    NormG g = {.gain = site_param(m, m->g.t, site, NP_GAIN, l), .beta = site_param(m, m->g.t, site, NP_BETA, l),
               .alpha = site_param(m, m->g.t, site, NP_ALPHA, l), .shift = site_param(m, m->g.t, site, NP_SHIFT, l)};
    NORM_KINDS[m->cfg.norm].backward(dinp, &g, dout, inp, stats, &w, N, m->cfg.dim, a->norm_scratch);
}

// ----------------------------------------------------------------------------
// per-part timers: lap(a, PART, &t) charges the time since t to PART

static double lap_start(const Acts *a) { return a->timers ? now_seconds() : 0.0; }

static void lap(const Acts *a, int part, double *t) {
    if (!a->timers) return;
    double now = now_seconds();
    a->timers->s[part] += now - *t;
    *t = now;
}

// ----------------------------------------------------------------------------
// forward

// out = a + b; with a residual gate (keep != NULL) out = a + gate * b, and
// keep = b, which the gate's gradient needs. Under PAR_MIN elements (a decoded
// token's slice of rows, token_residual) it runs on the calling thread.
static void residual_add(float *out, const float *a, const float *b, float *keep, const float *gate, size_t n) {
    if (!keep) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
        return;
    }
    float g = *gate;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) keep[i] = b[i], out[i] = a[i] + g * b[i];
}

// Layer l's slice of a per-layer tensor id, in the weights (LW) or gradients (LG).
static float *LW(const Model *m, int id, int l) { return slice_at(m, m->w.t, id, l); }
static float *LG(const Model *m, int id, int l) { return slice_at(m, m->g.t, id, l); }
// The same of a bf16 model's matrix.
static const uint16_t *LW16(const Model *m, int id, int l) {
    return m->w16.t[id] + (TENSORS[id].per_layer ? (size_t)l * (m->sizes[id] / (size_t)m->cfg.n_layers) : 0);
}

// out[i] (N,OC[i]) = inp (N,C) @ (layer l's slice of matrix ts[i])^T, i < n <= 3: the linear layers, in the
// weights' own type (matmul.h: a bf16 model's products round their input to bf16)
static void linear(const Model *m, Acts *a, int n, float *const out[], const float *inp, const int ts[], int l,
                   size_t N, int C, const int OC[]) {
    if (m->dtype == DTYPE_BF16) {
        const uint16_t *w[3];
        for (int i = 0; i < n; i++) w[i] = LW16(m, ts[i], l);
        matmul_forward_multi_bf16(n, out, inp, a->x16, w, N, C, OC);
    } else {
        const float *w[3];
        for (int i = 0; i < n; i++) w[i] = LW(m, ts[i], l);
        matmul_forward_multi(a->mm, n, out, inp, w, N, C, OC);
    }
}

// out (N,d) = the embedding's rows of tokens
static void embed(const Model *m, float *out, const int *tokens, size_t N) {
    if (m->dtype == DTYPE_BF16) embedding_forward_bf16(out, tokens, m->w16.t[T_WTE], N, m->cfg.dim);
    else embedding_forward(out, tokens, m->w.t[T_WTE], N, m->cfg.dim);
}

// A bf16 cache (B = 1): the T new keys and values at pos0 rounded into it,
// then the fp32 rows attention's products read made the cache's values, the
// new ones and the older ones alike: a prompt's attention reads what a
// decoded token's reads.
static void kv_into_cache(const Layer *y, int pos0, int T, int kvd) {
    size_t old = (size_t)pos0 * kvd, n = (size_t)T * kvd;
    bf16_from_floats(y->k16 + old, y->k + old, n);
    bf16_from_floats(y->v16 + old, y->v + old, n);
    bf16_to_floats(y->k, y->k16, old + n);
    bf16_to_floats(y->v, y->v16, old + n);
}

static void block_forward(const Model *m, Acts *a, const Layer *y, int l, int pos0) {
    const ModelConfig *c = &m->cfg;
    int B = a->B, T = a->T, d = c->dim, h = c->hidden_dim, HS = d / c->n_heads;
    int kvd = HS * c->n_kv_heads;
    size_t N = (size_t)B * T;
    // attention: new keys and values land at pos0 (B = 1 with a cache, or pos0 = 0)
    float *knew = y->k + (size_t)pos0 * kvd, *vnew = y->v + (size_t)pos0 * kvd;
    double t = lap_start(a);
    norm_forward(m, SITE_ATTN, l, y->norm_attn, y->stats_attn, y->x_in, N);
    lap(a, PART_NORM, &t);
    float *const qkv[3] = {y->q, knew, vnew};
    linear(m, a, 3, qkv, y->norm_attn, (const int[3]){T_WQ, T_WK, T_WV}, l, N, d, (const int[3]){d, kvd, kvd});
    lap(a, PART_MATMUL, &t);
    rope_apply(y->q, a->rope_cos, a->rope_sin, B, T, pos0, c->n_heads, HS, 0);
    rope_apply(knew, a->rope_cos, a->rope_sin, B, T, pos0, c->n_kv_heads, HS, 0);
    if (y->k16) kv_into_cache(y, pos0, T, kvd);
    attention_forward(a->mm, y->atty, y->att, y->q, y->k, y->v, B, T, pos0, a->kv_len,
                      c->n_heads, c->n_kv_heads, HS, a->att_one, a->store_all ? 0 : att_blocks(a, c->n_heads));
    lap(a, PART_ATTENTION, &t);
    linear(m, a, 1, &a->tmp, y->atty, (const int[1]){T_WO}, l, N, d, &d);
    lap(a, PART_MATMUL, &t);
    residual_add(y->resid_mid, y->x_in, a->tmp, y->attn_out, LW(m, T_ATTN_GATE, l), N * d);
    lap(a, PART_OTHER, &t);
    // feed-forward: the MLP kind's
    const MlpKind *mk = &MLP_KINDS[c->mlp];
    norm_forward(m, SITE_FFN, l, y->norm_ffn, y->stats_ffn, y->resid_mid, N);
    lap(a, PART_NORM, &t);
    float *const h13[2] = {y->h1, y->h3}; // a gated MLP's w3 shares the pass over its input
    linear(m, a, mk->gated ? 2 : 1, h13, y->norm_ffn, (const int[2]){T_W1, T_W3}, l, N, d, (const int[2]){h, h});
    lap(a, PART_MATMUL, &t);
    mk->forward(y->hg, y->h1, y->h3, N * h);
    lap(a, PART_OTHER, &t);
    linear(m, a, 1, &a->tmp, y->hg, (const int[1]){T_W2}, l, N, h, &d);
    lap(a, PART_MATMUL, &t);
    residual_add(y->x_out, y->resid_mid, a->tmp, y->ffn_out, LW(m, T_FFN_GATE, l), N * d);
    lap(a, PART_OTHER, &t);
}

static float *final_input(const Model *m, const Acts *a) {
    size_t N = (size_t)a->B * a->T;
    return a->resid + (a->store_all ? (size_t)m->cfg.n_layers : 0) * N * m->cfg.dim;
}

// ----------------------------------------------------------------------------
// one token's forward (generation): the whole pass in one parallel region
//
// A decoded token's products take microseconds, so a region per product (5
// per layer, each a fork and a join) and the element-wise steps between them
// on the calling thread (norms, RoPE, residual adds, the MLP's activation),
// with the other threads waiting, cost a fifth of a token at d 288. Here the
// threads enter once. Each normalises the residual stream into a buffer of its
// own (the same floats on every thread, and no barrier to hand them out), and
// each element-wise step runs on the thread that computed the rows it reads,
// right after their product (matvec_team's `then`). 6 barriers a layer: after
// q/k/v, two in attention, after wo, w1/w3 and w2. The same layers and
// formulas as block_forward, row by row (tested: the logits of a sequence's
// forward, and the same bits on 1 and 2 threads).

typedef struct {
    const Model *m;
    const Acts *a;
    const Layer *y;
    int l, pos;
    float *const *qkv; // token_rope: the q, k, v products' rows (the new key's in the cache)
    int ffn;           // token_residual: the FFN branch's add (else the attention branch's)
} TokenStep;

// q (i 0) and the new key (i 1) rotated; with a bf16 cache, the new key and value (i 2) rounded into it
static void token_rope(void *ctx, int i, int r0, int r1) {
    const TokenStep *s = ctx;
    const ModelConfig *c = &s->m->cfg;
    int HS = c->dim / c->n_heads;
    if (i < 2) rope_span(s->qkv[i], s->a->rope_cos, s->a->rope_sin, s->pos, r0, r1, HS);
    if (i > 0 && s->y->k16)
        bf16_from_floats((i == 1 ? s->y->k16 : s->y->v16) + (size_t)s->pos * HS * c->n_kv_heads + r0, s->qkv[i] + r0,
                         (size_t)(r1 - r0));
}

// The residual add after wo (the attention branch) or, with s->ffn, after w2.
static void token_residual(void *ctx, int i, int r0, int r1) {
    const TokenStep *s = ctx;
    const Layer *y = s->y;
    float *out = s->ffn ? y->x_out : y->resid_mid, *keep = s->ffn ? y->ffn_out : y->attn_out;
    const float *in = s->ffn ? y->resid_mid : y->x_in;
    (void)i;
    residual_add(out + r0, in + r0, s->a->tmp + r0, keep ? keep + r0 : NULL,
                 LW(s->m, s->ffn ? T_FFN_GATE : T_ATTN_GATE, s->l), (size_t)(r1 - r0));
}

static void token_mlp_act(void *ctx, int i, int r0, int r1) { // once w1's (and w3's) rows are done
    const TokenStep *s = ctx;
    const MlpKind *mk = &MLP_KINDS[s->m->cfg.mlp];
    if (i != mk->gated) return;
    const Layer *y = s->y;
    mk->forward(y->hg + r0, y->h1 + r0, y->h3 ? y->h3 + r0 : NULL, (size_t)(r1 - r0));
}

// A decoded token's linear(): out[i] (OC[i]) = (layer l's slice of matrix ts[i]) @ inp (C), every thread of
// the region calling; x16: this thread's scratch for a bf16 model's rounded input.
static void token_linear(const Model *m, Acts *a, int n, float *const out[], const float *inp, const int ts[], int l,
                         int C, const int OC[], RowsFn then, void *ctx, uint16_t *x16) {
    if (m->dtype == DTYPE_BF16) {
        const uint16_t *w[3];
        for (int i = 0; i < n; i++) w[i] = LW16(m, ts[i], l);
        matvec_bf16_team(n, out, inp, x16, w, C, OC, then, ctx);
    } else {
        const float *w[3];
        for (int i = 0; i < n; i++) w[i] = LW(m, ts[i], l);
        matvec_team(a->mm, n, out, inp, w, C, OC, then, ctx);
    }
}

// Layer l for every thread of the region; xn, stats, x16: this thread's own.
static void token_block(const Model *m, Acts *a, const Layer *y, int l, int pos, float *xn, float *stats,
                        uint16_t *x16) {
    const ModelConfig *c = &m->cfg;
    int d = c->dim, h = c->hidden_dim, HS = d / c->n_heads, kvd = HS * c->n_kv_heads;
    float *const qkv[3] = {y->q, y->k + (size_t)pos * kvd, y->v + (size_t)pos * kvd};
    TokenStep s = {m, a, y, l, pos, qkv, 0};
    norm_forward(m, SITE_ATTN, l, xn, stats, y->x_in, 1);
    token_linear(m, a, 3, qkv, xn, (const int[3]){T_WQ, T_WK, T_WV}, l, d, (const int[3]){d, kvd, kvd}, token_rope,
                 &s, x16);
    if (y->k16)
        attention_one_team_bf16(y->atty, y->att, y->q, y->k16, y->v16, 1, pos, a->kv_len, c->n_heads, c->n_kv_heads,
                                HS, a->att_one);
    else
        attention_one_team(y->atty, y->att, y->q, y->k, y->v, 1, pos, a->kv_len, c->n_heads, c->n_kv_heads, HS,
                           a->att_one);
    token_linear(m, a, 1, &a->tmp, y->atty, (const int[1]){T_WO}, l, d, &d, token_residual, &s, x16);
    norm_forward(m, SITE_FFN, l, xn, stats, y->resid_mid, 1);
    float *const h13[2] = {y->h1, y->h3};
    token_linear(m, a, MLP_KINDS[c->mlp].gated ? 2 : 1, h13, xn, (const int[2]){T_W1, T_W3}, l, d,
                 (const int[2]){h, h}, token_mlp_act, &s, x16);
    s.ffn = 1;
    token_linear(m, a, 1, &a->tmp, y->hg, (const int[1]){T_W2}, l, h, &d, token_residual, &s, x16);
}

// The forward of token at pos (B = 1, no activations kept): logits (V).
static void token_forward(const Model *m, Acts *a, int token, int pos) {
    const ModelConfig *c = &m->cfg;
    embed(m, a->resid, &token, 1);
    if (c->emb_scale) embscale_forward(a->resid, a->resid, m->w.t[T_EMB_SCALE][0], (size_t)c->dim);
#pragma omp parallel
    {
        int tid = omp_get_thread_num();
        float *xn = a->token_norm + (size_t)tid * token_norm_floats(m), *stats = xn + c->dim;
        uint16_t *x16 = a->x16 ? a->x16 + (size_t)tid * token_x16_values(m) : NULL;
        for (int l = 0; l < c->n_layers; l++) {
            Layer y = layer_at(m, a, l);
            token_block(m, a, &y, l, pos, xn, stats, x16);
        }
        norm_forward(m, SITE_FINAL, 0, xn, stats, final_input(m, a), 1);
        token_linear(m, a, 1, &a->logits, xn, (const int[1]){T_WCLS}, 0, c->dim, &c->vocab_size, NULL, NULL, x16);
    }
}

int model_forward(const Model *m, Acts *a, const int *tokens, int T, int pos0, int all_logits, Error *err) {
    const ModelConfig *c = &m->cfg;
    if (T < 1 || T > a->T_cap || pos0 < 0 || pos0 + T > a->kv_len || (a->B > 1 && (pos0 || T != a->T_cap)))
        return err_set(err, "forward of %d positions at %d does not fit the activations "
                       "(B %d, T %d, kv %d)", T, pos0, a->B, a->T_cap, a->kv_len);
    a->T = T;
    // (a->token_norm has a buffer for each of the threads there were when it was made)
    if (T == 1 && a->B == 1 && !a->store_all && omp_get_max_threads() <= a->nthreads) {
        token_forward(m, a, tokens[0], pos0);
        return 0;
    }
    size_t N = (size_t)a->B * a->T, d = c->dim;
    double t = lap_start(a);
    embed(m, a->resid, tokens, N);
    if (c->emb_scale) { // keep the raw embedding: the scale's gradient needs it
        memcpy(a->emb, a->resid, N * d * sizeof(float));
        embscale_forward(a->resid, a->emb, m->w.t[T_EMB_SCALE][0], N * d);
    }
    for (int l = 0; l < c->n_layers; l++) {
        Layer y = layer_at(m, a, l);
        lap(a, PART_OTHER, &t);
        block_forward(m, a, &y, l, pos0);
        t = lap_start(a);
    }
    norm_forward(m, SITE_FINAL, 0, a->norm_final, a->stats_final, final_input(m, a), N);
    lap(a, PART_NORM, &t);
    size_t first = all_logits ? 0 : N - 1;
    float *logits = a->logits + first * c->vocab_size;
    linear(m, a, 1, &logits, a->norm_final + first * d, (const int[1]){T_WCLS}, 0, N - first, c->dim,
           &c->vocab_size);
    lap(a, PART_MATMUL, &t);
    return 0;
}

double model_loss(const Model *m, Acts *a, const int *targets) {
    return crossentropy_forward_backward(NULL, a->logits, targets, (size_t)a->B * a->T,
                                         m->cfg.vocab_size, 0.0f, a->row_loss);
}

// ----------------------------------------------------------------------------
// backward (training activations only)

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

// The gradient of a branch added to the residual stream: dresid itself, or
// with a gate (branch kept) gate * dresid, and dgate += sum(dresid * branch).
static const float *branch_grad(Model *m, Acts *a, int gate, int l, const float *branch, size_t n) {
    if (!branch) return a->dresid;
    float g = *LW(m, gate, l);
    *LG(m, gate, l) += (float)dot_fixed_order(a->dresid, branch, n);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) a->dbranch[i] = g * a->dresid[i];
    return a->dbranch;
}

// On entry a->dresid = dL/d(x_out); on exit dL/d(x_in).
static void block_backward(Model *m, Acts *a, const Layer *y, int l) {
    const ModelConfig *c = &m->cfg;
    int B = a->B, T = a->T, d = c->dim, h = c->hidden_dim, HS = d / c->n_heads;
    int kvd = HS * c->n_kv_heads;
    size_t N = (size_t)B * T;
    // x_out = resid_mid + w2(silu(w1 n) * w3 n) (or w2(gelu(w1 n))), n = norm_ffn(resid_mid)
    const MlpKind *mk = &MLP_KINDS[c->mlp];
    double t = lap_start(a);
    zero(a->dhg, N * h);
    lap(a, PART_OTHER, &t);
    const float *dffn = branch_grad(m, a, T_FFN_GATE, l, y->ffn_out, N * d);
    matmul_backward(a->mm, a->dhg, LG(m, T_W2, l), dffn, y->hg, LW(m, T_W2, l), N, h, d);
    lap(a, PART_MATMUL, &t);
    mk->backward(a->dh1, a->dh3, a->dhg, y->h1, y->h3, N * h);
    zero(a->dnorm, N * d);
    lap(a, PART_OTHER, &t);
    matmul_backward(a->mm, a->dnorm, LG(m, T_W1, l), a->dh1, y->norm_ffn, LW(m, T_W1, l), N, d, h);
    if (mk->gated) matmul_backward(a->mm, a->dnorm, LG(m, T_W3, l), a->dh3, y->norm_ffn, LW(m, T_W3, l), N, d, h);
    lap(a, PART_MATMUL, &t);
    norm_backward(m, a, SITE_FFN, l, a->dresid, a->dnorm, y->resid_mid, y->stats_ffn, N);
    lap(a, PART_NORM, &t);
    // resid_mid = x_in + wo(attention(rope(wq n), rope(wk n), wv n)), n = norm_attn(x_in)
    zero(a->datty, N * d);
    lap(a, PART_OTHER, &t);
    const float *dattn = branch_grad(m, a, T_ATTN_GATE, l, y->attn_out, N * d);
    matmul_backward(a->mm, a->datty, LG(m, T_WO, l), dattn, y->atty, LW(m, T_WO, l), N, d, d);
    lap(a, PART_MATMUL, &t);
    zero(a->dq, N * d);
    zero(a->dk, N * kvd);
    zero(a->dv, N * kvd);
    attention_backward(a->mm, a->dq, a->dk, a->dv, a->datty, y->att, y->q, y->k, y->v,
                       B, T, c->n_heads, c->n_kv_heads, HS, a->att_scratch);
    rope_apply(a->dq, a->rope_cos, a->rope_sin, B, T, 0, c->n_heads, HS, 1);
    rope_apply(a->dk, a->rope_cos, a->rope_sin, B, T, 0, c->n_kv_heads, HS, 1);
    lap(a, PART_ATTENTION, &t);
    zero(a->dnorm, N * d);
    lap(a, PART_OTHER, &t);
    matmul_backward(a->mm, a->dnorm, LG(m, T_WQ, l), a->dq, y->norm_attn, LW(m, T_WQ, l), N, d, d);
    matmul_backward(a->mm, a->dnorm, LG(m, T_WK, l), a->dk, y->norm_attn, LW(m, T_WK, l), N, d, kvd);
    matmul_backward(a->mm, a->dnorm, LG(m, T_WV, l), a->dv, y->norm_attn, LW(m, T_WV, l), N, d, kvd);
    lap(a, PART_MATMUL, &t);
    norm_backward(m, a, SITE_ATTN, l, a->dresid, a->dnorm, y->x_in, y->stats_attn, N);
    lap(a, PART_NORM, &t);
}

double model_backward(Model *m, Acts *a, const int *tokens, const int *targets, float loss_scale) {
    return model_backward_hooked(m, a, tokens, targets, loss_scale, NULL, NULL);
}

double model_backward_hooked(Model *m, Acts *a, const int *tokens, const int *targets, float loss_scale,
                             GradsReady ready, void *ctx) {
    const ModelConfig *c = &m->cfg;
    size_t N = (size_t)a->B * a->T, d = c->dim;
    double t = lap_start(a);
    double loss = crossentropy_forward_backward(a->dlogits, a->logits, targets, N, c->vocab_size,
                                                loss_scale / (float)N, a->row_loss);
    zero(a->dnorm, N * d);
    lap(a, PART_OTHER, &t);
    matmul_backward(a->mm, a->dnorm, m->g.t[T_WCLS], a->dlogits, a->norm_final, m->w.t[T_WCLS],
                    N, c->dim, c->vocab_size);
    lap(a, PART_MATMUL, &t);
    zero(a->dresid, N * d);
    norm_backward(m, a, SITE_FINAL, 0, a->dresid, a->dnorm, final_input(m, a), a->stats_final, N);
    lap(a, PART_NORM, &t);
    if (ready) ready(ctx, c->n_layers);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        Layer y = layer_at(m, a, l);
        block_backward(m, a, &y, l);
        if (ready) ready(ctx, l);
    }
    t = lap_start(a);
    if (c->emb_scale)
        embscale_backward(a->dresid, m->g.t[T_EMB_SCALE], a->dresid, a->emb,
                          m->w.t[T_EMB_SCALE][0], N * d);
    embedding_backward(m->g.t[T_WTE], a->dresid, tokens, N, c->dim);
    lap(a, PART_OTHER, &t);
    return loss;
}

int model_grad_slices(const Model *m, int part, Slice *out) {
    int n = 0, L = m->cfg.n_layers;
    for (int t = 0; t < N_TENSORS; t++) {
        const TensorDesc *x = &TENSORS[t];
        if (!m->sizes[t] || (t != T_WTE && m->g.t[t] == m->g.t[T_WTE])) continue; // absent, or the tied head
        if (part >= 0 && part < L && x->grad_at == AT_LAYER)
            out[n++] = (Slice){slice_at(m, m->g.t, t, part), m->sizes[t] / (size_t)L};
        else if ((part == L && x->grad_at == AT_TOP) || (part == GRADS_REST && x->grad_at == AT_END))
            out[n++] = (Slice){m->g.t[t], m->sizes[t]};
    }
    return n;
}

// ----------------------------------------------------------------------------
// diagnostics

static void moments(const float *x, size_t n, double *s1, double *s2) {
    double a = 0.0, b = 0.0;
    for (size_t i = 0; i < n; i++) {
        a += x[i];
        b += (double)x[i] * x[i];
    }
    *s1 += a;
    *s2 += b;
}

void model_norm_input_moments(const Model *m, const Acts *a, double *s1, double *s2) {
    int L = m->cfg.n_layers;
    size_t n = (size_t)a->B * a->T * m->cfg.dim;
    for (int l = 0; l < L; l++) {
        Layer y = layer_at(m, a, l);
        moments(y.x_in, n, &s1[l], &s2[l]);
        moments(y.resid_mid, n, &s1[L + l], &s2[L + l]);
    }
    moments(final_input(m, a), n, &s1[2 * L], &s2[2 * L]);
}

static double saturated(const float *x, size_t n, float alpha, float shift, float sat) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += fabsf(alpha * x[i] + shift) > sat;
    return (double)k;
}

void model_norm_saturated(const Model *m, const Acts *a, double *count) {
    int L = m->cfg.n_layers;
    size_t n = (size_t)a->B * a->T * m->cfg.dim;
    float sat = NORM_KINDS[m->cfg.norm].sat;
    if (sat <= 0.0f) return;
    for (int l = 0; l < L; l++) {
        Layer y = layer_at(m, a, l);
        NormW wa = site_weights(m, SITE_ATTN, l), wf = site_weights(m, SITE_FFN, l);
        count[l] += saturated(y.x_in, n, wa.alpha, wa.shift, sat);
        count[L + l] += saturated(y.resid_mid, n, wf.alpha, wf.shift, sat);
    }
    NormW w = site_weights(m, SITE_FINAL, 0);
    count[2 * L] += saturated(final_input(m, a), n, w.alpha, w.shift, sat);
}
