// llama2.c's legacy format (docs/format.md, "llama2.c files"): seven int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size negated when
// the head is untied, seq_len), the float32 weights in llama2.c's order, its
// RoPE tables, then the untied head; run.c reads it. The reader is llama2c.c.
#include <stdlib.h>

#include "export.h"
#include "layers.h"
#include "llama2c.h"
#include "modelio.h"

int llama2c_export(const Model *m, const char *path, Error *err) {
    const ModelConfig *c = &m->cfg;
    if (export_check(m, EXPORT_LLAMA2C, path, err) ||
        output_check_ours(path, "a llama2.c model", llama2c_probe, NULL, err))
        return -1;
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                    c->tie_embeddings ? c->vocab_size : -c->vocab_size, c->seq_len};
    // an RMSNorm model's tensors wte .. final_norm are contiguous and in
    // llama2.c's order; then the RoPE tables (seq_len, head_dim/2) each, then wcls
    size_t body = (size_t)(m->w.t[T_FINAL_NORM] - m->params) + m->sizes[T_FINAL_NORM];
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
