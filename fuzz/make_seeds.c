// Writes the fuzzers' seed corpora: valid small files of every format the
// loaders read, so fuzzing starts from deep inside the parsers.
//
//   build/make_seeds MODEL_DIR TOKENIZER_DIR BPE_DIR TOKCACHE_DIR RECORD_DIR [REF.model.bin ...]
//
// MODEL_DIR gets a checkpoint of each given model (the models themselves and
// the llama2.c files are copied by fuzz/run.sh), and tiny models of each
// norm variant as model, checkpoint and (RMSNorm) llama2.c legacy export.
// TOKENIZER_DIR gets our byte vocabulary and a small vocabulary with merges
// and <0xXX> byte pieces, in llama2.c's tokenizer format. BPE_DIR gets BPE
// tokenizer files (no merges; a few dozen), TOKCACHE_DIR token caches, and
// MODEL_DIR also a tiny model and checkpoint carrying a BPE tokenizer;
// RECORD_DIR the data record the checkpoints carry.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/bpe.h"
#include "../src/export.h"
#include "../src/llama2c.h"
#include "../src/model.h"
#include "../src/modelio.h"
#include "../src/sptok.h"

static int die(const Error *err) {
    fprintf(stderr, "make_seeds: %s\n", err->msg);
    return 1;
}

// A data record of two files and a validation file (docs/format.md).
static const unsigned char RECORD[] = "DREC\1\0\0\0\5\0\0\0\0\0\0\0"
    "\0\0\0\0\7\0\0\0" "\12\0\0\0\0\0\0\0" "\1\2\3\4\5\6\7\10" "a.x,b.x"
    "\2\0\0\0\3\0\0\0" "\4\0\0\0\0\0\0\0" "\1\2\3\4\5\6\7\11" "a.x"
    "\2\0\0\0\3\0\0\0" "\3\0\0\0\0\0\0\0" "\1\2\3\4\5\6\7\12" "b.x"
    "\1\0\0\0\3\0\0\0" "\4\0\0\0\0\0\0\0" "\1\2\3\4\5\6\7\13" "v.x"
    "\3\0\0\0\3\0\0\0" "\4\0\0\0\0\0\0\0" "\1\2\3\4\5\6\7\13" "v.x";

// A checkpoint of m at step 1, zero moments, zero run settings, and a data
// record of two files and a validation file.
static int write_checkpoint(const Model *m, const char *path, Error *err) {
    float *zeros = alloc_floats(m->n_params);
    int64_t run[RUN_BLOCK_SLOTS] = {0};
    TrainState st = {.step = 1, .rng_state = 1, .tokens = 0, .elapsed_s = 0.0,
                     .data_record = (unsigned char *)RECORD, .data_record_bytes = sizeof RECORD - 1};
    if (!zeros) return err_set(err, "out of memory");
    int rc = checkpoint_save(m, zeros, zeros, &st, run, path, err);
    free(zeros);
    return rc;
}

static int checkpoint_of(const char *model_path, const char *dir, int i, Error *err) {
    Model m;
    char path[4096];
    if (model_load(&m, model_path, err)) return -1;
    snprintf(path, sizeof path, "%s/ref%d.checkpoint.bin", dir, i);
    int rc = write_checkpoint(&m, path, err);
    model_free(&m);
    return rc;
}

// Tiny models (a few hundred bytes): the fuzzer mutates them fastest.
static int tiny_models(const char *dir, Error *err) {
    // every kind of the norm table, untied with its defaults and tied with a
    // residual gate, the other embedding-scale setting and the GELU MLP
    for (int i = 0; i < 2 * N_NORMS; i++) {
        int kind = i / 2, tied = i % 2;
        ModelConfig c = {.dim = 4, .hidden_dim = 6, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1,
                         .vocab_size = 5, .seq_len = 3, .tie_embeddings = tied, .norm_eps = 1e-5f,
                         .rope_theta = 10000.0f};
        config_set_norm(&c, kind);
        if (tied) // and the other MLP kind, with the final norm's own alpha0
            c.residual_gate = 1, c.emb_scale = !c.emb_scale, c.alpha_ffn0 = 0.5f, c.alpha_final0 = 0.25f, c.mlp = MLP_GELU;
        Model m;
        char path[4096];
        if (model_create(&m, &c, err)) return -1;
        model_init(&m, (uint64_t)i);
        char name[64];
        snprintf(name, sizeof name, "%s%s", NORM_KINDS[kind].name, tied ? "_tied_gate" : "");
        snprintf(path, sizeof path, "%s/tiny_%s.model.bin", dir, name);
        int rc = model_save(&m, path, err);
        snprintf(path, sizeof path, "%s/tiny_%s.bf16.model.bin", dir, name); // header field dtype 1
        rc = rc || model_save_as(&m, DTYPE_BF16, path, err);
        snprintf(path, sizeof path, "%s/tiny_%s.checkpoint.bin", dir, name);
        rc = rc || write_checkpoint(&m, path, err);
        snprintf(path, sizeof path, "%s/tiny_%s.legacy.bin", dir, name);
        rc = rc || (c.norm == NORM_RMS && !c.emb_scale && !c.residual_gate && llama2c_export(&m, path, err));
        model_free(&m);
        if (rc) return -1;
    }
    return 0;
}

// A 38 KB model claiming a context of 1048576 positions with 48-wide heads:
// a regression seed. Per-position memory (RoPE tables) once came with the
// model, 192 MB from this file; run.sh's -malloc_limit_mb catches a relapse
// on the corpus's first pass.
static int long_context_model(const char *dir, Error *err) {
    ModelConfig c = {.dim = 48, .hidden_dim = 1, .n_layers = 1, .n_heads = 1, .n_kv_heads = 1,
                     .vocab_size = 1, .seq_len = 1048576, .norm = NORM_RMS, .tie_embeddings = 1,
                     .norm_eps = 1e-5f, .rope_theta = 10000.0f, .alpha_attn0 = 1.0f, .alpha_ffn0 = 1.0f, .alpha_final0 = 1.0f};
    Model m;
    char path[4096];
    if (model_create(&m, &c, err)) return -1;
    snprintf(path, sizeof path, "%s/long_context.model.bin", dir);
    int rc = model_save(&m, path, err);
    model_free(&m);
    return rc;
}

// Appends one tokenizer entry (score, length, bytes).
static unsigned char *put_piece(unsigned char *p, float score, const char *s, int len) {
    int32_t n = len;
    memcpy(p, &score, 4), memcpy(p + 4, &n, 4), memcpy(p + 8, s, (size_t)len);
    return p + 8 + len;
}

// llama2.c's layout: <unk> <s> </s>, 256 <0xXX> byte pieces, then merges.
static int merge_tokenizer(const char *path, Error *err) {
    static const char *merges[] = {" ", "e", "t", "h", "th", " t", "he", "the", " the", "l", "ll", "o",
                                   "H", "He", "Hell", "Hello", ",", "\xc3\xb6", "w", " w", "d", "!"};
    unsigned char buf[8192], *p = buf + 4;
    int32_t max_len = 8;
    memcpy(buf, &max_len, 4);
    p = put_piece(p, 0.0f, "<unk>", 5);
    p = put_piece(p, 0.0f, "\n<s>\n", 5);
    p = put_piece(p, 0.0f, "\n</s>\n", 6);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        p = put_piece(p, 0.0f, s, 6);
    }
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++)
        p = put_piece(p, -(float)i, merges[i], (int)strlen(merges[i]));
    Chunk c = {buf, (size_t)(p - buf)};
    return write_file_atomic(path, &c, 1, err);
}

static int tokenizers(const char *dir, Error *err) {
    SpTok t;
    char path[4096];
    snprintf(path, sizeof path, "%s/bytes.tokenizer.bin", dir);
    if (sptok_bytes(&t, err)) return -1;
    int rc = sptok_save(&t, path, err);
    sptok_free(&t);
    snprintf(path, sizeof path, "%s/merges.tokenizer.bin", dir);
    return rc || merge_tokenizer(path, err);
}

static const char BPE_TEXT[] = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n"
                               "Speak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n"
                               "\xff\x80\0 42x  end";

// BPE tokenizers, token caches, and a tiny model carrying a tokenizer.
static int bpe_seeds(const char *model_dir, const char *bpe_dir, const char *cache_dir, Error *err) {
    const unsigned char *text = (const unsigned char *)BPE_TEXT;
    size_t n = sizeof BPE_TEXT - 1;
    const int sizes[] = {256, 270, 300};
    char path[4096];
    int tokens[sizeof BPE_TEXT];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        Bpe b;
        size_t nt = 0;
        if (bpe_train(&b, text, n, sizes[i], err)) return -1;
        snprintf(path, sizeof path, "%s/v%d.bpe", bpe_dir, sizes[i]);
        int rc = bpe_save(&b, path, err) || bpe_encode(&b, text, n, tokens, &nt, err);
        TokCacheInfo info = {.vocab_size = b.vocab_size, .n_tokens = nt, .tokenizer_checksum = b.checksum,
                             .text_size = n, .text_hash = fnv1a64(text, n, FNV1A64_INIT)};
        snprintf(path, sizeof path, "%s/v%d.tok", cache_dir, sizes[i]);
        uint16_t t16[sizeof BPE_TEXT];
        for (size_t k = 0; k < nt; k++) t16[k] = (uint16_t)tokens[k];
        rc = rc || tokcache_save(path, &info, t16, err);
        if (!rc && sizes[i] == 270) { // a model that carries this vocabulary
            ModelConfig c = {.dim = 4, .hidden_dim = 6, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1,
                             .vocab_size = 270, .seq_len = 3, .norm = NORM_RMS, .tie_embeddings = 1,
                             .norm_eps = 1e-5f, .rope_theta = 10000.0f, .alpha_attn0 = 1.0f, .alpha_ffn0 = 1.0f, .alpha_final0 = 1.0f};
            Model m;
            rc = model_create(&m, &c, err);
            if (!rc) {
                model_init(&m, 3);
                m.tokenizer = malloc(b.blob_bytes);
                if (!m.tokenizer) rc = err_set(err, "out of memory");
                else memcpy(m.tokenizer, b.blob, b.blob_bytes), m.tokenizer_bytes = b.blob_bytes;
                snprintf(path, sizeof path, "%s/tiny_bpe.model.bin", model_dir);
                rc = rc || model_save(&m, path, err);
                snprintf(path, sizeof path, "%s/tiny_bpe.checkpoint.bin", model_dir);
                rc = rc || write_checkpoint(&m, path, err);
                model_free(&m);
            }
        }
        bpe_free(&b);
        if (rc) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    Error err = {{0}};
    if (argc < 6) {
        fprintf(stderr, "usage: make_seeds MODEL_DIR TOKENIZER_DIR BPE_DIR TOKCACHE_DIR RECORD_DIR [REF.model.bin ...]\n");
        return 2;
    }
    for (int i = 6; i < argc; i++)
        if (checkpoint_of(argv[i], argv[1], i - 6, &err)) return die(&err);
    char path[4096];
    snprintf(path, sizeof path, "%s/record.bin", argv[5]);
    if (write_file_atomic(path, &(Chunk){RECORD, sizeof RECORD - 1}, 1, &err)) return die(&err);
    if (tiny_models(argv[1], &err) || long_context_model(argv[1], &err) || tokenizers(argv[2], &err) ||
        bpe_seeds(argv[1], argv[3], argv[4], &err))
        return die(&err);
    return 0;
}
