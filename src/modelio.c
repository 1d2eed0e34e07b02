#include "modelio.h"

#include "bf16.h"
#include "bpe.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file formats are little-endian");

// ----------------------------------------------------------------------------
// header

static void put_i32(unsigned char *h, int off, int32_t v) { memcpy(h + off, &v, 4); }
static void put_f32(unsigned char *h, int off, float v) { memcpy(h + off, &v, 4); }
static int32_t get_i32(const unsigned char *h, int off) { int32_t v; memcpy(&v, h + off, 4); return v; }
static float get_f32(const unsigned char *h, int off) { float v; memcpy(&v, h + off, 4); return v; }

static void header_encode(unsigned char h[HEADER_BYTES], const ModelConfig *c, int kind, int dtype,
                          size_t tok_bytes, size_t data_bytes) {
    memset(h, 0, HEADER_BYTES);
    put_i32(h, 0, (int32_t)MODEL_MAGIC);
    put_i32(h, 4, MODEL_VERSION);
    put_i32(h, 8, kind);
    const int32_t ints[] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                            c->vocab_size, c->seq_len, c->norm, c->tie_embeddings, c->opt_beta};
    for (int i = 0; i < 10; i++) put_i32(h, 12 + 4 * i, ints[i]);
    put_f32(h, 52, c->norm_eps);
    put_f32(h, 56, c->rope_theta);
    put_f32(h, 60, c->alpha_attn0);
    put_f32(h, 64, c->alpha_ffn0);
    put_i32(h, 68, (int32_t)tok_bytes);
    put_i32(h, 72, c->emb_scale);
    put_i32(h, 76, c->residual_gate);
    put_i32(h, 80, (int32_t)data_bytes);
    put_i32(h, 84, c->mlp);
    put_f32(h, 88, c->alpha_final0);
    put_i32(h, 92, dtype);
}

// Validates and decodes; errors name the file and the field.
static int header_decode(const unsigned char h[HEADER_BYTES], const char *path, ModelConfig *c,
                         int *kind, int *dtype, size_t *tok_bytes, size_t *data_bytes, Error *err) {
    uint32_t magic = (uint32_t)get_i32(h, 0);
    if (magic != MODEL_MAGIC)
        return err_set(err, "%s: bad magic 0x%08x (not a model or checkpoint of this project)", path, magic);
    int version = get_i32(h, 4);
    if (version < 1 || version > MODEL_VERSION)
        return err_set(err, "%s: header field version = %d is not supported (this build reads versions 1 to %d)",
                       path, version, MODEL_VERSION);
    *kind = get_i32(h, 8);
    if (*kind != KIND_MODEL && *kind != KIND_CHECKPOINT)
        return err_set(err, "%s: header field kind = %d is neither 1 (model) nor 2 (checkpoint)", path, *kind);
    *c = (ModelConfig){
        .dim = get_i32(h, 12), .hidden_dim = get_i32(h, 16), .n_layers = get_i32(h, 20),
        .n_heads = get_i32(h, 24), .n_kv_heads = get_i32(h, 28), .vocab_size = get_i32(h, 32),
        .seq_len = get_i32(h, 36), .norm = get_i32(h, 40), .tie_embeddings = get_i32(h, 44),
        .opt_beta = get_i32(h, 48), .norm_eps = get_f32(h, 52), .rope_theta = get_f32(h, 56),
        .alpha_attn0 = get_f32(h, 60), .alpha_ffn0 = get_f32(h, 64)};
    // version 1 (RMSNorm or DyT only): the embedding scale went with DyT, no gates;
    // versions 1 and 2: SwiGLU, and the final norm's alpha0 was the FFN input's
    // version 3: the weights' type at byte 92 (reserved, so 0 = fp32, in every file before it)
    int v1 = version == 1, before_mlp = version < 3, reserved = v1 ? 72 : before_mlp ? 84 : 96;
    if (v1 && c->norm > NORM_DYT)
        return err_set(err, "%s: header field norm = %d needs version 2 (the file says 1)", path, c->norm);
    c->emb_scale = v1 ? c->norm == NORM_DYT : get_i32(h, 72);
    c->residual_gate = v1 ? 0 : get_i32(h, 76);
    c->mlp = before_mlp ? MLP_SWIGLU : get_i32(h, 84);
    c->alpha_final0 = before_mlp ? c->alpha_ffn0 : get_f32(h, 88);
    Error e;
    if (config_validate(c, &e)) return err_set(err, "%s: header field %s", path, e.msg);
    // a tokenizer file: 0 (bytes), or the size of one with 0 to (BPE_MAX_VOCAB - 256) merges
    int32_t tb = get_i32(h, 68);
    if (tb != 0 && (tb < BPE_HEADER_BYTES || tb > BPE_HEADER_BYTES + 8 * (BPE_MAX_VOCAB - 256) ||
                    (tb - BPE_HEADER_BYTES) % 8))
        return err_set(err, "%s: header field tokenizer_bytes = %d is not 0 or a BPE tokenizer's size "
                       "(%d + 8 * merges, at most %d)", path, tb, BPE_HEADER_BYTES,
                       BPE_HEADER_BYTES + 8 * (BPE_MAX_VOCAB - 256));
    *tok_bytes = (size_t)tb;
    // the data record: checkpoints of version 2 on only (0 in those written before it)
    int32_t db = v1 ? 0 : get_i32(h, 80);
    if (db < 0 || db > DATA_RECORD_MAX_BYTES || (db && *kind != KIND_CHECKPOINT))
        return err_set(err, "%s: header field data_record_bytes = %d is not 0%s", path, db,
                       *kind == KIND_CHECKPOINT ? " or a size up to 64 MiB" : " (a model file has no data record)");
    *data_bytes = (size_t)db;
    *dtype = before_mlp ? DTYPE_F32 : get_i32(h, 92);
    if (*dtype < 0 || *dtype >= N_DTYPES)
        return err_set(err, "%s: header field dtype = %d is not 0 (fp32) or 1 (bf16)", path, *dtype);
    if (*dtype != DTYPE_F32 && *kind == KIND_CHECKPOINT)
        return err_set(err, "%s: header field dtype = %d, but a checkpoint holds fp32 weights (0)", path, *dtype);
    for (int i = reserved; i < HEADER_BYTES; i++)
        if (h[i]) return err_set(err, "%s: header byte %d is not zero (reserved)", path, i);
    return 0;
}

// ----------------------------------------------------------------------------
// reading

// Index of the first non-finite value (or, with nonneg, negative one), or n.
static size_t first_bad(const float *p, size_t n, int nonneg) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]) || (nonneg && p[i] < 0.0f)) return i;
    return n;
}

// Which tensor holds flat parameter index i.
static const char *tensor_at(const Model *m, size_t i) {
    for (int t = 0; t < N_TENSORS; t++) {
        if (i < m->sizes[t]) return tensor_name(t);
        i -= m->sizes[t];
    }
    return "?";
}

int model_check_values(const Model *m, const float *p, int nonneg, const char *path, const char *what, Error *err) {
    size_t i = first_bad(p, m->n_params, nonneg);
    if (i == m->n_params) return 0;
    return err_set(err, "%s: %s: tensor %s holds a %s value (%g) at flat index %zu", path, what,
                   tensor_at(m, i), isfinite(p[i]) ? "negative" : "non-finite", p[i], i);
}

static size_t checkpoint_bytes(size_t n_params) {
    return HEADER_BYTES + 3 * n_params * sizeof(float) + TRAIN_BLOCK_BYTES + RUN_BLOCK_SLOTS * 8;
}

// Reads and checks the header and the exact file size; creates the model.
static FILE *open_model_file(Model *m, const char *path, int *kind, int *dtype, size_t *tok_bytes,
                             size_t *data_bytes, Error *err) {
    size_t size;
    FILE *f = open_regular(path, &size, err);
    if (!f) return NULL;
    unsigned char h[HEADER_BYTES];
    ModelConfig c;
    if (size < HEADER_BYTES) {
        err_set(err, "%s: %zu bytes is shorter than the %d-byte header", path, size, HEADER_BYTES);
    } else if (!read_exact(f, h, HEADER_BYTES, path, "the header", err) &&
               !header_decode(h, path, &c, kind, dtype, tok_bytes, data_bytes, err)) {
        size_t sizes[N_TENSORS], n_params;
        Error e;
        if (config_layout(&c, sizes, &n_params, &e)) {
            err_set(err, "%s: %s", path, e.msg);
        } else {
            // n_params <= 2^40, so these sizes cannot overflow
            size_t want = *kind == KIND_MODEL ? HEADER_BYTES + n_params * dtype_bytes(*dtype)
                                              : checkpoint_bytes(n_params);
            want += *tok_bytes + *data_bytes;
            if (size != want)
                err_set(err, "%s: file is %zu bytes but its header implies %zu (%s)", path, size, want,
                        size < want ? "truncated" : "trailing bytes");
            else if (model_create_as(m, &c, *dtype, &e))
                err_set(err, "%s: %s", path, e.msg);
            else
                return f;
        }
    }
    fclose(f);
    return NULL;
}

// The tokenizer at the end of a model or checkpoint file: a valid BPE file
// whose vocabulary is the model's.
static int read_tokenizer(Model *m, FILE *f, size_t n, const char *path, Error *err) {
    if (!n) return 0;
    if (!(m->tokenizer = malloc(n))) return err_set(err, "%s: out of memory", path);
    m->tokenizer_bytes = n;
    if (read_exact(f, m->tokenizer, n, path, "the tokenizer", err)) return -1;
    char name[4200];
    snprintf(name, sizeof name, "%s: embedded tokenizer", path);
    Bpe b;
    if (bpe_parse(&b, m->tokenizer, n, name, err)) return -1;
    int V = b.vocab_size;
    bpe_free(&b);
    if (V != m->cfg.vocab_size)
        return err_set(err, "%s: the embedded tokenizer has %d tokens but header field vocab_size = %d", path, V,
                       m->cfg.vocab_size);
    return 0;
}

// n bf16 weights from f, widened (exactly) into p: a block at a time.
static int read_bf16(FILE *f, float *p, size_t n, const char *path, Error *err) {
    enum { BLOCK = 1 << 12 };
    uint16_t h[BLOCK];
    for (size_t i = 0; i < n; i += BLOCK) {
        size_t k = n - i < BLOCK ? n - i : BLOCK;
        if (read_exact(f, h, k * sizeof *h, path, "the parameters", err)) return -1;
        bf16_to_floats(p + i, h, k);
    }
    return 0;
}

// A bf16 model file's tensors, in file order: the matrices as they are, the
// vectors and scalars widened to fp32 (model.h).
static int read_weights_bf16(Model *m, FILE *f, const char *path, Error *err) {
    for (int t = 0; t < N_TENSORS; t++) {
        size_t k = m->sizes[t];
        if (k && (tensor_is_matrix(t) ? read_exact(f, m->w16.t[t], k * sizeof(uint16_t), path, "the parameters", err)
                                      : read_bf16(f, m->w.t[t], k, path, err)))
            return -1;
    }
    return 0;
}

// model_check_values over a bf16 model's tensors, whichever type holds them.
static int check_weights_bf16(const Model *m, const char *path, Error *err) {
    size_t flat = 0; // the index in file order
    for (int t = 0; t < N_TENSORS; t++) {
        size_t k = m->sizes[t], i = 0;
        if (tensor_is_matrix(t)) {
            while (i < k && !bf16_nonfinite(m->w16.t[t][i])) i++;
        } else {
            i = first_bad(m->w.t[t], k, 0);
        }
        if (i < k)
            return err_set(err, "%s: the parameters: tensor %s holds a non-finite value (%g) at flat index %zu", path,
                           tensor_name(t), tensor_is_matrix(t) ? bf16_to_float(m->w16.t[t][i]) : m->w.t[t][i], flat + i);
        flat += k;
    }
    return 0;
}

int model_load(Model *m, const char *path, Error *err) {
    int kind, dtype;
    size_t tok_bytes, data_bytes;
    FILE *f = open_model_file(m, path, &kind, &dtype, &tok_bytes, &data_bytes, err);
    if (!f) return -1;
    int rc = dtype == DTYPE_BF16
                 ? read_weights_bf16(m, f, path, err) || check_weights_bf16(m, path, err)
                 : read_exact(f, m->params, m->n_params * sizeof(float), path, "the parameters", err) ||
                       model_check_values(m, m->params, 0, path, "the parameters", err);
    if (!rc && kind == KIND_CHECKPOINT) // the tokenizer follows the optimizer state and the blocks
        rc = fseek(f, (long)(checkpoint_bytes(m->n_params) - HEADER_BYTES - m->n_params * sizeof(float)), SEEK_CUR)
                 ? err_set(err, "%s: cannot seek to the tokenizer", path) : 0;
    if (!rc) rc = read_tokenizer(m, f, tok_bytes, path, err);
    fclose(f);
    if (rc) model_free(m);
    return rc;
}

int checkpoint_load(Model *m, float **mom1, float **mom2, TrainState *st, int64_t *run,
                    const char *path, Error *err) {
    int kind, dtype;
    size_t tok_bytes, data_bytes;
    FILE *f = open_model_file(m, path, &kind, &dtype, &tok_bytes, &data_bytes, err);
    if (!f) return -1;
    *mom1 = *mom2 = NULL;
    st->data_record = NULL, st->data_record_bytes = 0;
    int rc = -1;
    unsigned char tb[TRAIN_BLOCK_BYTES];
    size_t bytes = m->n_params * sizeof(float);
    if (kind != KIND_CHECKPOINT) {
        err_set(err, "%s: is a model file, not a checkpoint (header field kind = %d)", path, kind);
    } else if (!(*mom1 = alloc_floats(m->n_params)) || !(*mom2 = alloc_floats(m->n_params))) {
        err_set(err, "%s: out of memory for optimizer state", path);
    } else if (!read_exact(f, m->params, bytes, path, "the parameters", err) &&
               !read_exact(f, *mom1, bytes, path, "AdamW m", err) &&
               !read_exact(f, *mom2, bytes, path, "AdamW v", err) &&
               !read_exact(f, tb, sizeof tb, path, "the training block", err) &&
               !read_exact(f, run, RUN_BLOCK_SLOTS * 8, path, "the run settings", err)) {
        memcpy(&st->step, tb, 8);
        memcpy(&st->rng_state, tb + 8, 8);
        memcpy(&st->tokens, tb + 16, 8);
        memcpy(&st->elapsed_s, tb + 24, 8);
        int reserved = 0;
        for (int i = 32; i < TRAIN_BLOCK_BYTES; i++) reserved |= tb[i];
        if (st->step < 0 || st->tokens < 0 || st->rng_state == 0 || !(st->elapsed_s >= 0) || reserved)
            err_set(err, "%s: training block is invalid (step %lld, tokens %lld, elapsed %g%s)", path,
                    (long long)st->step, (long long)st->tokens, st->elapsed_s,
                    reserved ? ", reserved bytes not zero" : "");
        else if (!model_check_values(m, m->params, 0, path, "the parameters", err) &&
                 !model_check_values(m, *mom1, 0, path, "AdamW m", err) &&
                 !model_check_values(m, *mom2, 1, path, "AdamW v", err) &&
                 !read_tokenizer(m, f, tok_bytes, path, err)) {
            if (!data_bytes) rc = 0;
            else if (!(st->data_record = malloc(data_bytes))) err_set(err, "%s: out of memory", path);
            else if (!read_exact(f, st->data_record, data_bytes, path, "the data record", err)) rc = 0;
            st->data_record_bytes = data_bytes;
        }
    }
    fclose(f);
    if (rc) {
        free(st->data_record);
        st->data_record = NULL, st->data_record_bytes = 0;
        free(*mom1);
        free(*mom2);
        *mom1 = *mom2 = NULL;
        model_free(m);
    }
    return rc;
}

// ----------------------------------------------------------------------------
// writing

int model_save(const Model *m, const char *path, Error *err) { return model_save_as(m, DTYPE_F32, path, err); }

// Tensor t of m as the file's dtype stores it, into *chunk: the model's own
// memory where it holds t so, else converted into conv (advanced past it).
static int tensor_as(const Model *m, int t, int dtype, unsigned char **conv, Chunk *chunk, size_t flat,
                     const char *path, Error *err) {
    size_t k = m->sizes[t];
    int bf16_held = m->dtype == DTYPE_BF16 && tensor_is_matrix(t);
    if (bf16_held == (dtype == DTYPE_BF16)) {
        *chunk = (Chunk){bf16_held ? (const void *)m->w16.t[t] : (const void *)m->w.t[t], k * dtype_bytes(dtype)};
        return 0;
    }
    if (bf16_held) {
        bf16_to_floats((float *)*conv, m->w16.t[t], k);
    } else {
        size_t i = bf16_convert((uint16_t *)*conv, m->w.t[t], k);
        if (i < k)
            return err_set(err, "%s: tensor %s holds %g (flat index %zu), beyond bf16's range (3.39e38): save it "
                           "as fp32", path, tensor_name(t), m->w.t[t][i], flat + i);
    }
    *chunk = (Chunk){*conv, k * dtype_bytes(dtype)};
    *conv += k * dtype_bytes(dtype);
    return 0;
}

int model_save_as(const Model *m, int dtype, const char *path, Error *err) {
    unsigned char h[HEADER_BYTES];
    header_encode(h, &m->cfg, KIND_MODEL, dtype, m->tokenizer_bytes, 0);
    // converted: into bf16 every tensor an fp32 model holds (all, or a bf16 model's vectors), into fp32 a
    // bf16 model's matrices; fp32 to fp32 converts nothing
    int same = m->dtype == DTYPE_F32 && dtype == DTYPE_F32;
    size_t conv_bytes = m->n_params * dtype_bytes(dtype);
    unsigned char *conv = same ? NULL : malloc(conv_bytes ? conv_bytes : 1), *next = conv;
    if (!same && !conv) return err_set(err, "%s: out of memory for the %s weights", path, dtype_name(dtype));
    Chunk c[N_TENSORS + 2] = {{h, HEADER_BYTES}};
    int n = 1, rc = 0;
    size_t flat = 0;
    for (int t = 0; t < N_TENSORS && !rc; t++) {
        if (m->sizes[t]) rc = tensor_as(m, t, dtype, &next, &c[n++], flat, path, err);
        flat += m->sizes[t];
    }
    c[n++] = (Chunk){m->tokenizer, m->tokenizer_bytes};
    if (!rc) rc = write_file_atomic(path, c, n, err);
    free(conv);
    return rc;
}

int checkpoint_save(const Model *m, const float *mom1, const float *mom2, const TrainState *st,
                    const int64_t *run, const char *path, Error *err) {
    unsigned char h[HEADER_BYTES], tb[TRAIN_BLOCK_BYTES] = {0};
    if (st->data_record_bytes > DATA_RECORD_MAX_BYTES)
        return err_set(err, "%s: the data record (%zu bytes) is over 64 MiB", path, st->data_record_bytes);
    header_encode(h, &m->cfg, KIND_CHECKPOINT, DTYPE_F32, m->tokenizer_bytes, st->data_record_bytes);
    memcpy(tb, &st->step, 8);
    memcpy(tb + 8, &st->rng_state, 8);
    memcpy(tb + 16, &st->tokens, 8);
    memcpy(tb + 24, &st->elapsed_s, 8);
    size_t bytes = m->n_params * sizeof(float);
    Chunk c[] = {{h, HEADER_BYTES}, {m->params, bytes}, {mom1, bytes}, {mom2, bytes},
                 {tb, TRAIN_BLOCK_BYTES}, {run, RUN_BLOCK_SLOTS * 8}, {m->tokenizer, m->tokenizer_bytes},
                 {st->data_record, st->data_record_bytes}};
    return write_file_atomic(path, c, 8, err);
}

int settings_read(const char *path, ModelConfig *c, int *kind, int64_t *run, unsigned char **data_record,
                  size_t *data_bytes, Error *err) {
    Model m;
    size_t tok_bytes;
    int dtype;
    *data_record = NULL;
    FILE *f = open_model_file(&m, path, kind, &dtype, &tok_bytes, data_bytes, err);
    if (!f) return -1;
    *c = m.cfg;
    int rc = 0;
    if (*kind == KIND_CHECKPOINT) { // the run block follows the parameters, moments and training block
        long at = (long)(HEADER_BYTES + 3 * m.n_params * sizeof(float) + TRAIN_BLOCK_BYTES);
        rc = fseek(f, at, SEEK_SET) ? err_set(err, "%s: cannot seek to the run settings", path)
                                    : read_exact(f, run, RUN_BLOCK_SLOTS * 8, path, "the run settings", err);
        // the data record follows the tokenizer
        if (!rc && *data_bytes) {
            if (fseek(f, (long)tok_bytes, SEEK_CUR)) rc = err_set(err, "%s: cannot seek to the data record", path);
            else if (!(*data_record = malloc(*data_bytes))) rc = err_set(err, "%s: out of memory", path);
            else rc = read_exact(f, *data_record, *data_bytes, path, "the data record", err);
        }
    }
    fclose(f);
    model_free(&m);
    if (rc) free(*data_record), *data_record = NULL;
    return rc;
}

int model_probe(const char *path, void *ctx, Error *err) {
    (void)ctx;
    Model m;
    int kind, dtype;
    size_t tok_bytes, data_bytes;
    FILE *f = open_model_file(&m, path, &kind, &dtype, &tok_bytes, &data_bytes, err);
    if (!f) return -1;
    fclose(f);
    model_free(&m);
    return kind == KIND_MODEL ? 0 : err_set(err, "it is a checkpoint (header field kind = %d)", kind);
}
