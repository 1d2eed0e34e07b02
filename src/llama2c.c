#include "llama2c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "modelio.h"

#define LEGACY_HEADER_BYTES 28 // seven int32
#define AK42_HEADER_BYTES 256
#define ROPE (-1)             // the legacy file's RoPE tables: skipped, we compute our own

// Tensors in file order; an absent one (wcls when shared) has size 0.
static const int LEGACY_ORDER[] = {T_WTE, T_ATTN_GAIN, T_WQ, T_WK, T_WV, T_WO, T_FFN_GAIN,
                                   T_W1, T_W2, T_W3, T_FINAL_GAIN, ROPE, T_WCLS};
static const int AK42_ORDER[] = {T_ATTN_GAIN, T_FFN_GAIN, T_FINAL_GAIN, T_WTE, T_WQ, T_WK,
                                 T_WV, T_WO, T_W1, T_W2, T_W3, T_WCLS};

const char *model_format_name(ModelFormat f) {
    return f == FMT_LDYT ? "LDYT" : f == FMT_LLAMA2C_LEGACY ? "llama2.c legacy" : "llama2.c ak42";
}

// The seven llama2.c fields as our config (RMSNorm, llama2.c's eps and theta).
static int llama2c_config(const int32_t f[7], int shared, ModelConfig *c, Error *err) {
    *c = (ModelConfig){.dim = f[0], .hidden_dim = f[1], .n_layers = f[2], .n_heads = f[3],
                       .n_kv_heads = f[4], .vocab_size = f[5], .seq_len = f[6], .norm = NORM_RMS,
                       .tie_embeddings = shared, .opt_beta = 0, .norm_eps = LLAMA2C_EPS,
                       .rope_theta = LLAMA2C_THETA, .alpha_attn0 = 1.0f, .alpha_ffn0 = 1.0f, .alpha_final0 = 1.0f};
    return config_validate(c, err);
}

// Checks the exact size the config implies, creates the model and reads the
// tensors in `order` from f (positioned after the header).
static int read_tensors(Model *m, FILE *f, size_t size, size_t header, const ModelConfig *c,
                        const int *order, int n_order, const char *path, const char *fmt, Error *err) {
    size_t sizes[N_TENSORS], n_params, rope = 0, want;
    Error e;
    if (config_layout(c, sizes, &n_params, &e)) return err_set(err, "%s: %s", path, e.msg);
    for (int i = 0; i < n_order; i++)
        if (order[i] == ROPE) rope = (size_t)c->seq_len * (size_t)(c->dim / c->n_heads); // cos and sin
    // n_params <= 2^40 and rope < 2^37: no overflow, but keep the arithmetic checked
    if (size_add(n_params, rope, &want) || size_mul(want, sizeof(float), &want) || size_add(want, header, &want))
        return err_set(err, "%s: %s file size overflows", path, fmt);
    if (size != want)
        return err_set(err, "%s: %s file is %zu bytes but its header implies %zu (%s)", path, fmt, size, want,
                       size < want ? "truncated" : "trailing bytes");
    if (model_create(m, c, &e)) return err_set(err, "%s: %s", path, e.msg);
    int rc = 0;
    for (int i = 0; i < n_order && !rc; i++) {
        if (order[i] == ROPE)
            rc = fseeko(f, (off_t)(rope * sizeof(float)), SEEK_CUR) ? err_set(err, "%s: cannot seek", path) : 0;
        else
            rc = read_exact(f, m->w.t[order[i]], m->sizes[order[i]] * sizeof(float), path,
                            tensor_name(order[i]), err);
    }
    if (!rc) rc = model_check_values(m, m->params, 0, path, fmt, err);
    if (rc) model_free(m);
    return rc;
}

static int load_legacy(Model *m, FILE *f, size_t size, const unsigned char *h, const char *path, Error *err) {
    int32_t v[7];
    memcpy(v, h, sizeof v);
    uint32_t magic = (uint32_t)v[0];
    // a negative vocab_size says the classifier is not the embedding
    // (INT32_MIN has no positive counterpart: left negative, it is reported as out of range)
    int shared = v[5] > 0;
    if (v[5] < 0 && v[5] != INT32_MIN) v[5] = -v[5];
    ModelConfig c;
    Error e;
    if (llama2c_config(v, shared, &c, &e))
        return err_set(err, "%s: bad magic 0x%08x (neither LDYT nor ak42), and not a llama2.c legacy file: "
                       "header field %s", path, magic, e.msg);
    return read_tensors(m, f, size, LEGACY_HEADER_BYTES, &c, LEGACY_ORDER,
                        (int)(sizeof LEGACY_ORDER / sizeof LEGACY_ORDER[0]), path, "llama2.c legacy", err);
}

static int load_ak42(Model *m, FILE *f, size_t size, const char *path, Error *err) {
    unsigned char h[AK42_HEADER_BYTES];
    if (size < AK42_HEADER_BYTES)
        return err_set(err, "%s: %zu bytes is shorter than the %d-byte ak42 header", path, size, AK42_HEADER_BYTES);
    if (fseeko(f, 0, SEEK_SET) || read_exact(f, h, sizeof h, path, "the ak42 header", err)) return -1;
    int32_t version, v[7];
    memcpy(&version, h + 4, 4);
    memcpy(v, h + 8, sizeof v);
    if (version != 1)
        return err_set(err, "%s: ak42 header field version = %d is not supported (this build reads version 1, "
                       "float32)", path, version);
    if (h[36] > 1)
        return err_set(err, "%s: ak42 header field shared_classifier = %d is neither 0 nor 1", path, h[36]);
    for (int i = 37; i < AK42_HEADER_BYTES; i++)
        if (h[i]) return err_set(err, "%s: ak42 header byte %d is not zero (padding)", path, i);
    ModelConfig c;
    Error e;
    if (llama2c_config(v, h[36], &c, &e)) return err_set(err, "%s: ak42 header field %s", path, e.msg);
    return read_tensors(m, f, size, AK42_HEADER_BYTES, &c, AK42_ORDER,
                        (int)(sizeof AK42_ORDER / sizeof AK42_ORDER[0]), path, "llama2.c ak42", err);
}

int model_load_any(Model *m, const char *path, ModelFormat *format, Error *err) {
    size_t size;
    FILE *f = open_regular(path, &size, err);
    if (!f) return -1;
    unsigned char h[LEGACY_HEADER_BYTES];
    size_t got = fread(h, 1, sizeof h, f);
    uint32_t magic = 0;
    if (got >= 4) memcpy(&magic, h, 4);
    int rc;
    if (magic == MODEL_MAGIC) {
        *format = FMT_LDYT;
        rc = model_load(m, path, err);
    } else if (magic == AK42_MAGIC) {
        *format = FMT_LLAMA2C_AK42;
        rc = load_ak42(m, f, size, path, err);
    } else if (got < LEGACY_HEADER_BYTES) {
        rc = err_set(err, "%s: %zu bytes is shorter than the 256-byte header (or llama2.c's 28)", path, size);
    } else {
        *format = FMT_LLAMA2C_LEGACY;
        rc = load_legacy(m, f, size, h, path, err);
    }
    fclose(f);
    return rc;
}

int llama2c_probe(const char *path, void *ctx, Error *err) {
    (void)ctx;
    Model m;
    ModelFormat f = FMT_LDYT;
    if (model_load_any(&m, path, &f, err)) return -1;
    model_free(&m);
    return f == FMT_LLAMA2C_LEGACY ? 0 : err_set(err, "it holds a model in the %s format", model_format_name(f));
}
