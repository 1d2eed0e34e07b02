// llama2.c's legacy format (docs/format.md, "llama2.c files"): seven int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size negated when
// the head is untied, seq_len), the float32 weights in llama2.c's order, its
// RoPE tables, then the untied head; run.c reads it. The reader is llama2c.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "layers.h"
#include "llama2c.h"
#include "modelio.h"
#include "sptok.h"

int llama2c_export(const Model *m, const char *path, Error *err) {
    const ModelConfig *c = &m->cfg;
    if (export_check(m, EXPORT_LLAMA2C, path, err) ||
        output_check_ours(path, "a llama2.c model", llama2c_probe, NULL, err))
        return -1;
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                    c->tie_embeddings ? c->vocab_size : -c->vocab_size, c->seq_len};
    // an RMSNorm model's tensors wte .. final_norm are contiguous and in
    // llama2.c's order; then the RoPE tables (seq_len, head_dim/2) each, then wcls
    size_t body = (size_t)(m->w.t[T_FINAL_GAIN] - m->params) + m->sizes[T_FINAL_GAIN];
    size_t rope_n = (size_t)c->seq_len * (size_t)(c->dim / c->n_heads / 2);
    float *cos_t = alloc_floats(rope_n), *sin_t = alloc_floats(rope_n);
    int rc = -1;
    if (!cos_t || !sin_t) {
        err_set(err, "%s: out of memory for the RoPE tables", path);
    } else {
        rope_tables(cos_t, sin_t, c->seq_len, c->dim / c->n_heads, c->rope_theta);
        Chunk ch[] = {{h, sizeof h}, {m->params, body * sizeof(float)}, {cos_t, rope_n * sizeof(float)},
                      {sin_t, rope_n * sizeof(float)},
                      {m->w.t[T_WCLS], c->tie_embeddings ? 0 : m->sizes[T_WCLS] * sizeof(float)}};
        rc = write_file_atomic(path, ch, 5, err);
    }
    free(cos_t);
    free(sin_t);
    return rc;
}

// A llama2.c tokenizer file of exactly V tokens. run.c reads only the first
// vocab_size of a longer one, so Llama 2's 32000 would pass for a byte
// model's 256 (<unk>, <s>, </s>, <0x00>, ...) and every token's text would be
// wrong.
static int sptok_load_exact(SpTok *sp, const char *path, int V, Error *err) {
    if (sptok_load(sp, path, V, err)) return -1;
    if (sp->file_tokens == V) return 0;
    if (sp->file_tokens < 0)
        err_set(err, "%s: the bytes after the model's %d tokens are not whole entries", path, V);
    else
        err_set(err, "%s: holds %d tokens, the model has %d: not this model's tokenizer", path, sp->file_tokens, V);
    sptok_free(sp);
    return -1;
}

// An existing OUT.tokenizer.bin is replaced only when it is the model's (files.h).
static int sptok_probe(const char *path, void *vocab_size, Error *err) {
    SpTok sp;
    if (sptok_load_exact(&sp, path, *(const int *)vocab_size, err)) return -1;
    sptok_free(&sp);
    return 0;
}

// The tokenizer for llama2.c: the byte vocabulary of a byte model, or -z for a
// llama2.c model with its own (exactly the model's tokens).
static int export_tokenizer(SpTok *sp, const Model *m, ModelFormat format, const char *tok_path, const char *out,
                            Error *err) {
    int V = m->cfg.vocab_size, bytes = V == 256 && format == FMT_LDYT;
    if (tok_path && bytes)
        return err_set(err, "-z %s: the model's vocabulary is our 256 bytes, written without -z; -z is for a "
                       "llama2.c model's own tokenizer", tok_path);
    if (!tok_path && V != 256)
        return err_set(err, "%s: vocab_size = %d is not the byte tokenizer's 256: give the model's tokenizer with "
                       "-z TOKENIZER", out, V);
    if (!tok_path) return sptok_bytes(sp, err);
    if (!sptok_load_exact(sp, tok_path, V, err)) return 0;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return err_set(err, "-z %s", msg);
}

int llama2c_export_files(const Model *m, const ExportArgs *a, Error *err) {
    char tok_out[4096];
    size_t len = strlen(a->out);
    int stem = (int)(len > 4 && !strcmp(a->out + len - 4, ".bin") ? len - 4 : len);
    if (snprintf(tok_out, sizeof tok_out, "%.*s.tokenizer.bin", stem, a->out) >= (int)sizeof tok_out)
        return err_set(err, "%s: path too long", a->out);
    int vocab = m->cfg.vocab_size;
    if (output_check_ours(tok_out, "a llama2.c tokenizer", sptok_probe, &vocab, err)) return -1;
    SpTok sp;
    if (export_tokenizer(&sp, m, a->model_format, a->tokenizer, a->out, err)) return -1;
    int rc = llama2c_export(m, a->out, err);
    if (!rc) rc = sptok_save(&sp, tok_out, err);
    if (!rc) fprintf(stderr, "wrote %s (llama2.c legacy format) and its tokenizer %s\n", a->out, tok_out);
    sptok_free(&sp);
    return rc;
}
