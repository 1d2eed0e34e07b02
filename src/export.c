#include "export.h"

#include "bf16.h"
#include "llama2c.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// What each target runs. A model feature that some target lacks is one
// function here (whether the model has it, and what it is); a target's row
// lists the features it lacks. A new model feature (a norm kind, a switch)
// needs one function here and its bit in the rows of the targets that lack it.

static int has_other_norm(const Model *m, char *what, size_t cap) {
    snprintf(what, cap, "a %s norm (the targets have RMSNorm only)", NORM_KINDS[m->cfg.norm].name);
    return m->cfg.norm != NORM_RMS;
}
static int has_emb_scale(const Model *m, char *what, size_t cap) {
    snprintf(what, cap, "an embedding scale (--emb-scale)");
    return m->cfg.emb_scale;
}
static int has_residual_gate(const Model *m, char *what, size_t cap) {
    snprintf(what, cap, "residual gates (--residual-gate)");
    return m->cfg.residual_gate;
}
static int has_other_eps(const Model *m, char *what, size_t cap) {
    snprintf(what, cap, "norm_eps = %g (llama2.c's RMSNorm uses 1e-5)", m->cfg.norm_eps);
    return m->cfg.norm_eps != LLAMA2C_EPS;
}
static int has_other_theta(const Model *m, char *what, size_t cap) {
    snprintf(what, cap, "rope_theta = %g (llama2.c's RoPE uses 10000)", m->cfg.rope_theta);
    return m->cfg.rope_theta != LLAMA2C_THETA;
}
static int has_other_mlp(const Model *m, char *what, size_t cap) {
    snprintf(what, cap, "a %s MLP (the targets have SwiGLU only)", MLP_KINDS[m->cfg.mlp].name);
    return m->cfg.mlp != MLP_SWIGLU;
}
static int has_bpe(const Model *m, char *what, size_t cap) {
    snprintf(what, cap, "a BPE vocabulary (%d tokens; llama2.c's tokenizer cannot reproduce it)",
             m->cfg.vocab_size);
    return m->tokenizer != NULL;
}

// in this order export_check asks, and names the first the target lacks
const ExportFeature EXPORT_FEATURES[] = {
    [FEAT_OTHER_NORM] = has_other_norm,
    [FEAT_EMB_SCALE] = has_emb_scale,
    [FEAT_RESIDUAL_GATE] = has_residual_gate,
    [FEAT_OTHER_MLP] = has_other_mlp,
    [FEAT_OTHER_EPS] = has_other_eps,
    [FEAT_OTHER_THETA] = has_other_theta,
    [FEAT_BPE] = has_bpe,
};
// Unsized (export.h), the table is as long as its last row: a feature appended
// to the enum without one fails here; test_core's test_tables checks every row.
_Static_assert(sizeof EXPORT_FEATURES / sizeof EXPORT_FEATURES[0] == N_EXPORT_FEATURES,
               "EXPORT_FEATURES: a row per FEAT_");

// lacked by a target that runs a plain LLaMA only (RMSNorm, SwiGLU, no
// embedding scale or gates): all three do
#define PLAIN_LLAMA_ONLY \
    (FEAT_BIT(FEAT_OTHER_NORM) | FEAT_BIT(FEAT_EMB_SCALE) | FEAT_BIT(FEAT_RESIDUAL_GATE) | FEAT_BIT(FEAT_OTHER_MLP))

const ExportTarget EXPORT_TARGETS[] = {
    [EXPORT_LLAMA2C] = {
        .name = "llama2c", .help = NULL, .reader = "llama2.c", .target = "llama2.c",
        .folder = 0, .f16 = HALF_NONE, .bf16 = HALF_NONE, .names = NO_NAMES, // float32 only
        .vocab = VOCAB_LLAMA2C,
        // fixed epsilon and RoPE theta; a SentencePiece-style tokenizer
        .lacks = PLAIN_LLAMA_ONLY | FEAT_BIT(FEAT_OTHER_EPS) | FEAT_BIT(FEAT_OTHER_THETA) | FEAT_BIT(FEAT_BPE),
        .write = llama2c_export_files,
    },
    [EXPORT_GGUF] = {
        .name = "gguf", .help = "llama.cpp", .reader = "llama.cpp (GGUF v3)",
        .target = "llama.cpp's llama architecture",
        .folder = 0, .f16 = HALF_MATRICES, .bf16 = HALF_MATRICES, .names = offsetof(ExportTensor, gguf),
        .vocab = VOCAB_BPE,
        .lacks = PLAIN_LLAMA_ONLY,
        .write = gguf_export,
    },
    [EXPORT_HF] = {
        .name = "hf", .help = "Hugging Face folder", .reader = "Hugging Face transformers (safetensors folder)",
        .target = "Hugging Face's LlamaForCausalLM",
        .folder = 1, .f16 = HALF_ALL, .bf16 = HALF_ALL, .names = offsetof(ExportTensor, hf),
        .vocab = VOCAB_BPE,
        .lacks = PLAIN_LLAMA_ONLY,
        .write = hf_export,
    },
    [EXPORT_MODEL] = {
        // every model this project trains, as infer_llama reads it: the converter between fp32 and bf16
        // weights (docs/format.md), and out of a checkpoint or a llama2.c checkpoint
        .name = "model", .help = "our model.bin", .reader = "infer_llama (our model.bin, fp32 or bf16 weights)",
        .target = "infer_llama",
        .folder = 0, .f16 = HALF_NONE, .bf16 = HALF_ALL, .names = NO_NAMES, // model_save_as refuses as it converts
        .vocab = VOCAB_OWN,
        .lacks = 0,
        .write = model_export,
    },
};
// Unsized (export.h): a format appended to the enum without a row fails here;
// test_core's test_tables checks every row has a name and a writer.
_Static_assert(sizeof EXPORT_TARGETS / sizeof EXPORT_TARGETS[0] == N_EXPORT_FORMATS,
               "EXPORT_TARGETS: a row per ExportFormat");
#undef PLAIN_LLAMA_ONLY

const char *out_dtype_name(int i) {
    static const char *const names[N_OUT_DTYPES] = {[OUT_FP32] = "fp32", [OUT_FP16] = "fp16", [OUT_BF16] = "bf16"};
    return i >= 0 && i < N_OUT_DTYPES ? names[i] : NULL;
}

const char *export_dtype_text(int dtype) {
    static const char *const text[N_OUT_DTYPES] = {[OUT_FP32] = "float32", [OUT_FP16] = "float16",
                                                   [OUT_BF16] = "bfloat16"};
    return text[dtype];
}

int export_format_parse(const char *name) {
    for (int f = 0; f < N_EXPORT_FORMATS; f++)
        if (!strcmp(name, EXPORT_TARGETS[f].name)) return f;
    return -1;
}

// s after the n bytes of buf (cap bytes), cut to fit; returns the new length.
static size_t append(char *buf, size_t cap, size_t n, const char *s) {
    while (*s && n + 1 < cap) buf[n++] = *s++;
    buf[n] = 0;
    return n;
}

void export_list(char *buf, size_t cap, unsigned which, int item, const char *sep, const char *last) {
    int count = 0, k = 0;
    for (int f = 0; f < N_EXPORT_FORMATS; f++) count += (which >> f) & 1;
    size_t n = append(buf, cap, 0, "");
    for (int f = 0; f < N_EXPORT_FORMATS; f++) {
        const ExportTarget *t = &EXPORT_TARGETS[f];
        if (!((which >> f) & 1)) continue;
        if (k++) n = append(buf, cap, n, k == count ? last : sep);
        n = append(buf, cap, n, item == LIST_READERS ? t->reader : t->name);
        if (item == LIST_HELP && t->help) {
            n = append(buf, cap, n, " (");
            n = append(buf, cap, n, t->help);
            n = append(buf, cap, n, ")");
        }
    }
}

int export_check(const Model *m, ExportFormat f, const char *path, Error *err) {
    const ExportTarget *t = &EXPORT_TARGETS[f];
    char what[256];
    for (int i = 0; i < N_EXPORT_FEATURES; i++)
        if ((t->lacks & FEAT_BIT(i)) && EXPORT_FEATURES[i](m, what, sizeof what))
            return err_set(err, "%s: cannot export to %s: the model has %s, which %s cannot run", path, t->name,
                           what, t->target);
    return 0;
}

// ----------------------------------------------------------------------------
// vocabulary

static int cmp_token(const void *a, const void *b, const Bpe *v) {
    int x = *(const int *)a, y = *(const int *)b;
    size_t lx = v->tok_len[x], ly = v->tok_len[y];
    int c = memcmp(v->bytes + v->tok_off[x], v->bytes + v->tok_off[y], lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

// insertion into a sorted list would be quadratic: a merge sort over ids by bytes
static void sort_ids(int *ids, int *tmp, int n, const Bpe *v) {
    if (n < 2) return;
    int h = n / 2;
    sort_ids(ids, tmp, h, v);
    sort_ids(ids + h, tmp, n - h, v);
    int i = 0, j = h, k = 0;
    while (i < h || j < n) tmp[k++] = j >= n || (i < h && cmp_token(&ids[i], &ids[j], v) <= 0) ? ids[i++] : ids[j++];
    memcpy(ids, tmp, (size_t)n * sizeof(int));
}

int export_vocab(ExportVocab *v, const Model *m, const char *path, Error *err) {
    memset(v, 0, sizeof *v);
    Bpe *b = &v->bpe;
    if (m->tokenizer) {
        if (bpe_parse(b, m->tokenizer, m->tokenizer_bytes, path, err)) return -1;
    } else if (m->cfg.vocab_size == 256) {
        // the byte vocabulary is a BPE vocabulary without merges
        if (bpe_train(b, (const unsigned char *)"", 0, 256, err)) return -1;
    } else {
        return err_set(err, "%s: the model has %d tokens but no BPE vocabulary of its own (a llama2.c "
                       "tokenizer?): only byte and BPE vocabularies can be exported here", path,
                       m->cfg.vocab_size);
    }
    if (b->vocab_size != m->cfg.vocab_size) {
        export_vocab_free(v);
        return err_set(err, "%s: the model's vocab_size %d differs from its tokenizer's %d", path,
                       m->cfg.vocab_size, v->bpe.vocab_size);
    }
    // llama.cpp and Hugging Face map token text to ids: every token's bytes must be unique
    int n = b->vocab_size, *ids = malloc(2 * (size_t)n * sizeof(int)), rc = 0;
    if (!ids) {
        export_vocab_free(v);
        return err_set(err, "out of memory");
    }
    for (int i = 0; i < n; i++) ids[i] = i;
    sort_ids(ids, ids + n, n, b);
    for (int i = 1; i < n && !rc; i++)
        if (!cmp_token(&ids[i - 1], &ids[i], b))
            rc = err_set(err, "%s: tokens %d and %d have the same bytes; llama.cpp and Hugging Face look tokens "
                         "up by their text, so this vocabulary cannot be exported", path,
                         ids[i - 1] < ids[i] ? ids[i - 1] : ids[i], ids[i - 1] < ids[i] ? ids[i] : ids[i - 1]);
    free(ids);
    if (rc) export_vocab_free(v);
    return rc;
}

void export_vocab_free(ExportVocab *v) { bpe_free(&v->bpe); }

// GPT-2's bytes_to_unicode: printable Latin-1 bytes ('!'..'~', 0xA1..0xAC,
// 0xAE..0xFF) stand for themselves; the other 68 bytes, in order, become
// U+0100, U+0101, ...
static unsigned byte_code_point(unsigned char c) {
    if ((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE) return c;
    unsigned k = 0; // c's rank among the bytes that are not printable
    for (unsigned x = 0; x < c; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) k++;
    return 256 + k;
}

size_t byte_level_text(const unsigned char *bytes, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = byte_code_point(bytes[i]);
        if (cp < 0x80) {
            out[k++] = (char)cp;
        } else { // every code point here is below U+0800: two UTF-8 bytes
            out[k++] = (char)(0xC0 | (cp >> 6));
            out[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return k;
}

uint16_t f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xFF, man = u & 0x7FFFFF;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 : 0)); // inf, NaN
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7C00); // overflow
    if (e <= 0) { // subnormal half (or zero)
        if (e < -10) return sign;
        man |= 0x800000;
        int shift = 14 - e; // 13 + (1 - e)
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; // a carry into the exponent is still right
    return (uint16_t)(sign | h);
}

// A finite value that float16 turns into inf (an inf or NaN weight stays
// what it is: model loading refuses those anyway).
static int f16_overflows(float x, uint16_t h) { return (h & 0x7FFF) == 0x7C00 && isfinite(x); }

// The first such value of x[0..n), or n.
static size_t f16_first_overflow(const float *x, size_t n) {
    for (size_t j = 0; j < n; j++)
        if (f16_overflows(x[j], f32_to_f16(x[j]))) return j;
    return n;
}

static int f16_refuse(const float *x, size_t j, const char *tensor, const char *path, Error *err) {
    return err_set(err, "%s: --f16: tensor %s holds %g (index %zu), beyond float16's range (65504): export in float32",
                   path, tensor, (double)x[j], j);
}

static int bf16_refuse(const float *x, size_t j, const char *tensor, const char *path, Error *err) {
    return err_set(err, "%s: --dtype bf16: tensor %s holds %g (index %zu), beyond bfloat16's range (3.39e38): "
                   "export in float32", path, tensor, (double)x[j], j);
}

int f16_convert(uint16_t *h, const float *x, size_t n, const char *tensor, const char *path, Error *err) {
    for (size_t j = 0; j < n; j++) // checked as converted: one pass
        if (f16_overflows(x[j], h[j] = f32_to_f16(x[j]))) return f16_refuse(x, j, tensor, path, err);
    return 0;
}

int export_bf16_convert(uint16_t *h, const float *x, size_t n, const char *tensor, const char *path, Error *err) {
    size_t j = bf16_convert(h, x, n);
    return j < n ? bf16_refuse(x, j, tensor, path, err) : 0;
}

// The first value of x[0..n) that bfloat16 turns into inf, or n.
static size_t bf16_first_overflow(const float *x, size_t n) {
    for (size_t j = 0; j < n; j++)
        if (bf16_nonfinite(bf16_from_float(x[j])) && isfinite(x[j])) return j;
    return n;
}

// ----------------------------------------------------------------------------
// Buf

void buf_put(Buf *b, const void *p, size_t n) {
    if (b->failed || !n) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

void buf_printf(Buf *b, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)len < sizeof small) {
        buf_put(b, small, (size_t)len);
        return;
    }
    char *big = malloc((size_t)len + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)len + 1, fmt, ap);
    va_end(ap);
    buf_put(b, big, (size_t)len);
    free(big);
}

void buf_free(Buf *b) {
    free(b->p);
    *b = (Buf){0};
}

// ----------------------------------------------------------------------------
// tensors: ours -> GGUF (llama.cpp's names) and Hugging Face's names

typedef struct {
    int t;                // T_*
    const char *gguf, *hf; // "%d": the layer
    int rope;             // 1: query heads, 2: key/value heads (HF permutes these rows)
    int vec;              // a norm's gain vector (d), not a matrix
} TensorName;

static const TensorName LAYER_TENSORS[] = {
    {T_ATTN_GAIN, "blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", 0, 1},
    {T_WQ, "blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", 1, 0},
    {T_WK, "blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", 2, 0},
    {T_WV, "blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", 0, 0},
    {T_WO, "blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", 0, 0},
    {T_FFN_GAIN, "blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", 0, 1},
    {T_W1, "blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", 0, 0},
    {T_W3, "blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", 0, 0},
    {T_W2, "blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", 0, 0},
};
#define N_LAYER_TENSORS ((int)(sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0]))

static void put_tensor(ExportTensor *e, const Model *m, const TensorName *tn, int layer) {
    const ModelConfig *c = &m->cfg;
    size_t n = m->sizes[tn->t] / (layer >= 0 ? (size_t)c->n_layers : 1);
    // every matrix reads d inputs but w2 (down), which reads the hidden ones
    size_t cols = tn->vec ? 1 : tn->t == T_W2 ? (size_t)c->hidden_dim : (size_t)c->dim;
    snprintf(e->gguf, sizeof e->gguf, tn->gguf, layer);
    snprintf(e->hf, sizeof e->hf, tn->hf, layer);
    e->data = m->w.t[tn->t] + (layer >= 0 ? (size_t)layer * n : 0);
    e->rows = n / cols, e->cols = cols;
    e->rope_heads = tn->rope == 1 ? c->n_heads : tn->rope == 2 ? c->n_kv_heads : 0;
}

int export_tensors(const Model *m, ExportTensor **out, int *n, Error *err) {
    static const TensorName EMB = {T_WTE, "token_embd.weight", "model.embed_tokens.weight", 0, 0},
                            FINAL = {T_FINAL_GAIN, "output_norm.weight", "model.norm.weight", 0, 1},
                            HEAD = {T_WCLS, "output.weight", "lm_head.weight", 0, 0};
    int L = m->cfg.n_layers, cap = 3 + N_LAYER_TENSORS * L, k = 0;
    ExportTensor *e = calloc((size_t)cap, sizeof *e);
    if (!e) return err_set(err, "out of memory");
    put_tensor(&e[k++], m, &EMB, -1);
    for (int l = 0; l < L; l++)
        for (int i = 0; i < N_LAYER_TENSORS; i++) put_tensor(&e[k++], m, &LAYER_TENSORS[i], l);
    put_tensor(&e[k++], m, &FINAL, -1);
    if (!m->cfg.tie_embeddings) put_tensor(&e[k++], m, &HEAD, -1); // a tied head is the embedding
    *out = e;
    *n = k;
    return 0;
}

int export_half(ExportFormat f, int dtype) {
    const ExportTarget *t = &EXPORT_TARGETS[f];
    return dtype == OUT_FP16 ? t->f16 : dtype == OUT_BF16 ? t->bf16 : HALF_ALL;
}

int export_dtype_check(const Model *m, ExportFormat f, int dtype, const char *path, Error *err) {
    const ExportTarget *t = &EXPORT_TARGETS[f];
    int half = export_half(f, dtype);
    ExportTensor *ts;
    int nt, rc = 0;
    if (dtype == OUT_FP32 || half == HALF_NONE || t->names == NO_NAMES) return 0;
    if (export_tensors(m, &ts, &nt, err)) return -1;
    for (int i = 0; i < nt && !rc; i++) {
        size_t n = ts[i].rows * ts[i].cols, j;
        if (half != HALF_ALL && ts[i].cols == 1) continue; // a norm vector stays fp32
        const char *name = (const char *)&ts[i] + t->names;
        if (dtype == OUT_FP16 && (j = f16_first_overflow(ts[i].data, n)) < n)
            rc = f16_refuse(ts[i].data, j, name, path, err);
        if (dtype == OUT_BF16 && (j = bf16_first_overflow(ts[i].data, n)) < n)
            rc = bf16_refuse(ts[i].data, j, name, path, err);
    }
    free(ts);
    return rc;
}
