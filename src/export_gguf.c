// GGUF version 3 for llama.cpp (docs/export.md): little-endian; a header
// (magic, version, tensor count, key/value count), the key/value pairs, the
// tensor infos (name, dims innermost first, type, offset), padding to 32
// bytes, then each tensor's data at a 32-byte-aligned offset. Architecture
// `llama`: its RoPE (type NORM) rotates adjacent pairs like ours, so the query
// and key weights go in as they are (llama.cpp's converter un-permutes
// Hugging Face's back to this layout).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "modelio.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_VERSION 3
#define GGUF_ALIGN 32
enum { GGUF_U32 = 4, GGUF_I32 = 5, GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9 };
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_BF16 = 30 };
enum { FILE_ALL_F32 = 0, FILE_MOSTLY_F16 = 1, FILE_MOSTLY_BF16 = 32 }; // general.file_type (llama_ftype)
enum { TOKEN_NORMAL = 1 };                       // tokenizer.ggml.token_type

typedef struct {
    Buf b;
    uint64_t n_kv;
} Kv;

static void put_u32(Buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void put_u64(Buf *b, uint64_t v) { buf_put(b, &v, 8); }
static void put_str(Buf *b, const char *s, size_t n) {
    put_u64(b, n);
    buf_put(b, s, n);
}
static void key(Kv *kv, const char *k, uint32_t type) {
    put_str(&kv->b, k, strlen(k));
    put_u32(&kv->b, type);
    kv->n_kv++;
}
static void kv_u32(Kv *kv, const char *k, uint32_t v) { key(kv, k, GGUF_U32), put_u32(&kv->b, v); }
static void kv_f32(Kv *kv, const char *k, float v) { key(kv, k, GGUF_F32), buf_put(&kv->b, &v, 4); }
static void kv_bool(Kv *kv, const char *k, int v) {
    unsigned char c = (unsigned char)(v != 0);
    key(kv, k, GGUF_BOOL), buf_put(&kv->b, &c, 1);
}
static void kv_str(Kv *kv, const char *k, const char *v) { key(kv, k, GGUF_STRING), put_str(&kv->b, v, strlen(v)); }
static void kv_array(Kv *kv, const char *k, uint32_t type, uint64_t n) {
    key(kv, k, GGUF_ARRAY);
    put_u32(&kv->b, type);
    put_u64(&kv->b, n);
}

// The tokenizer as GPT-2-style byte-level BPE: token texts in GPT-2's byte
// alphabet, all normal tokens, merges "LEFT RIGHT" in rank order. llama.cpp
// needs an end-of-text token (it would take id 11, the byte \v, by default):
// we name token 0, the NUL byte, which text does not contain, and add none.
static int put_vocab(Kv *kv, const Bpe *v, Error *err) {
    char *s = malloc(4 * BPE_MAX_TOKEN_BYTES + 1);
    if (!s) return err_set(err, "out of memory");
    kv_str(kv, "tokenizer.ggml.model", "gpt2");
    kv_str(kv, "tokenizer.ggml.pre", "gpt-2");
    kv_array(kv, "tokenizer.ggml.tokens", GGUF_STRING, (uint64_t)v->vocab_size);
    for (int t = 0; t < v->vocab_size; t++) {
        const unsigned char *bytes;
        size_t n = bpe_decode(v, t, &bytes);
        put_str(&kv->b, s, byte_level_text(bytes, n, s));
    }
    kv_array(kv, "tokenizer.ggml.token_type", GGUF_I32, (uint64_t)v->vocab_size);
    for (int t = 0; t < v->vocab_size; t++) put_u32(&kv->b, TOKEN_NORMAL);
    kv_array(kv, "tokenizer.ggml.merges", GGUF_STRING, (uint64_t)v->n_merges);
    for (int i = 0; i < v->n_merges; i++) {
        const unsigned char *l, *r;
        size_t nl = bpe_decode(v, v->merges[2 * i], &l), nr = bpe_decode(v, v->merges[2 * i + 1], &r);
        size_t k = byte_level_text(l, nl, s);
        s[k++] = ' ';
        k += byte_level_text(r, nr, s + k);
        put_str(&kv->b, s, k);
    }
    kv_u32(kv, "tokenizer.ggml.bos_token_id", 0);
    kv_u32(kv, "tokenizer.ggml.eos_token_id", 0);
    kv_bool(kv, "tokenizer.ggml.add_bos_token", 0);
    kv_bool(kv, "tokenizer.ggml.add_eos_token", 0);
    free(s);
    return 0;
}

static void put_hparams(Kv *kv, const ModelConfig *c, int dtype) {
    const uint32_t file_type[N_OUT_DTYPES] = {[OUT_FP32] = FILE_ALL_F32, [OUT_FP16] = FILE_MOSTLY_F16,
                                              [OUT_BF16] = FILE_MOSTLY_BF16};
    kv_str(kv, "general.architecture", "llama");
    kv_str(kv, "general.name", "llama-dyt");
    kv_u32(kv, "general.file_type", file_type[dtype]);
    kv_u32(kv, "llama.context_length", (uint32_t)c->seq_len);
    kv_u32(kv, "llama.embedding_length", (uint32_t)c->dim);
    kv_u32(kv, "llama.block_count", (uint32_t)c->n_layers);
    kv_u32(kv, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    kv_u32(kv, "llama.attention.head_count", (uint32_t)c->n_heads);
    kv_u32(kv, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    kv_u32(kv, "llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads));
    kv_f32(kv, "llama.rope.freq_base", c->rope_theta);
    kv_f32(kv, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    kv_u32(kv, "llama.vocab_size", (uint32_t)c->vocab_size);
}

static size_t pad_to(size_t n) { return (GGUF_ALIGN - n % GGUF_ALIGN) % GGUF_ALIGN; }

// dtype (OUT_*): the matrices' type (the norm vectors stay F32, as llama.cpp's converter keeps them).
static int gguf_write(const Model *m, const char *path, int dtype, Error *err) {
    if (export_check(m, EXPORT_GGUF, path, err) ||
        output_check_ours(path, "a GGUF file as this program writes them", gguf_probe, NULL, err))
        return -1;
    ExportVocab voc;
    if (export_vocab(&voc, m, path, err)) return -1;
    ExportTensor *ts = NULL;
    int nt = 0;
    Kv kv = {0};
    Buf info = {0}, head = {0};
    Chunk *ch = NULL;
    uint16_t *half = NULL;
    static const unsigned char zeros[GGUF_ALIGN] = {0};
    int rc = export_tensors(m, &ts, &nt, err);
    if (!rc) rc = put_vocab(&kv, &voc.bpe, err);
    if (rc) goto done;
    put_hparams(&kv, &m->cfg, dtype);
    // tensor infos; the norm vectors stay F32 (llama.cpp's converter does the same)
    size_t off = 0, n_half = 0;
    for (int i = 0; i < nt; i++) {
        int is_half = dtype != OUT_FP32 && ts[i].cols > 1;
        size_t bytes = ts[i].rows * ts[i].cols * (is_half ? 2 : 4);
        put_str(&info, ts[i].gguf, strlen(ts[i].gguf));
        put_u32(&info, ts[i].cols > 1 ? 2 : 1);
        put_u64(&info, ts[i].cols > 1 ? ts[i].cols : ts[i].rows); // innermost dimension first
        if (ts[i].cols > 1) put_u64(&info, ts[i].rows);
        put_u32(&info, !is_half ? GGML_F32 : dtype == OUT_BF16 ? GGML_BF16 : GGML_F16);
        put_u64(&info, off);
        off += bytes + pad_to(bytes);
        if (is_half) n_half += ts[i].rows * ts[i].cols;
    }
    buf_put(&head, GGUF_MAGIC, 4);
    put_u32(&head, GGUF_VERSION);
    put_u64(&head, (uint64_t)nt);
    put_u64(&head, kv.n_kv);
    if (kv.b.failed || info.failed || head.failed) {
        rc = err_set(err, "out of memory");
        goto done;
    }
    size_t meta = head.n + kv.b.n + info.n;
    ch = malloc((size_t)(4 + 2 * nt) * sizeof *ch);
    half = dtype != OUT_FP32 ? malloc((n_half ? n_half : 1) * sizeof *half) : NULL;
    if (!ch || (dtype != OUT_FP32 && !half)) {
        rc = err_set(err, "out of memory");
        goto done;
    }
    int k = 0;
    ch[k++] = (Chunk){head.p, head.n};
    ch[k++] = (Chunk){kv.b.p, kv.b.n};
    ch[k++] = (Chunk){info.p, info.n};
    ch[k++] = (Chunk){zeros, pad_to(meta)};
    uint16_t *h = half;
    for (int i = 0; i < nt; i++) {
        size_t n = ts[i].rows * ts[i].cols, bytes;
        if (dtype != OUT_FP32 && ts[i].cols > 1) {
            rc = dtype == OUT_BF16 ? export_bf16_convert(h, ts[i].data, n, ts[i].gguf, path, err)
                                   : f16_convert(h, ts[i].data, n, ts[i].gguf, path, err);
            if (rc) goto done;
            ch[k++] = (Chunk){h, bytes = n * 2};
            h += n;
        } else {
            ch[k++] = (Chunk){ts[i].data, bytes = n * 4};
        }
        ch[k++] = (Chunk){zeros, pad_to(bytes)};
    }
    rc = write_file_atomic(path, ch, k, err);
done:
    free(ch);
    free(half);
    free(ts);
    buf_free(&kv.b);
    buf_free(&info);
    buf_free(&head);
    export_vocab_free(&voc);
    return rc;
}

int gguf_export(const Model *m, const ExportArgs *a, Error *err) {
    int rc = gguf_write(m, a->out, a->dtype, err);
    if (!rc) fprintf(stderr, "wrote %s (GGUF v3, llama, %s)\n", a->out, export_dtype_text(a->dtype));
    return rc;
}

// ----------------------------------------------------------------------------
// reading back what gguf_export writes (an existing output is replaced only
// when it is one: files.h, output_check_ours)

typedef struct {
    FILE *f;
    uint64_t left; // bytes of the file not read yet
    int bad;
} Reader;

static uint64_t rd(Reader *r, size_t n) { // n <= 8 bytes, little-endian
    uint64_t v = 0;
    if (r->bad || r->left < n || fread(&v, 1, n, r->f) != n) return r->bad = 1, 0;
    r->left -= n;
    return v;
}

static void skip(Reader *r, uint64_t n) {
    if (r->bad || r->left < n || fseeko(r->f, (off_t)n, SEEK_CUR)) r->bad = 1;
    else r->left -= n;
}

static void skip_value(Reader *r, uint32_t type, int depth) {
    static const unsigned char fixed[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}; // by GGUF type
    if (type == GGUF_STRING) skip(r, rd(r, 8));
    else if (type == GGUF_ARRAY && depth == 0) {
        uint32_t et = (uint32_t)rd(r, 4);
        uint64_t n = rd(r, 8);
        if (et == GGUF_STRING)
            for (uint64_t i = 0; i < n && !r->bad; i++) skip(r, rd(r, 8));
        else if (et < sizeof fixed && fixed[et] && n <= r->left / fixed[et]) skip(r, n * fixed[et]);
        else r->bad = 1;
    } else if (type < sizeof fixed && fixed[type]) skip(r, fixed[type]);
    else r->bad = 1;
}

int gguf_probe(const char *path, void *ctx, Error *err) {
    (void)ctx;
    size_t size;
    FILE *f = open_regular(path, &size, err);
    if (!f) return -1;
    Reader r = {f, size, 0};
    char magic[4] = {0};
    uint64_t m = rd(&r, 4);
    memcpy(magic, &m, 4);
    uint32_t version = (uint32_t)rd(&r, 4);
    uint64_t nt = rd(&r, 8), nkv = rd(&r, 8), end = 0;
    int rc = 0;
    if (r.bad || memcmp(magic, GGUF_MAGIC, 4) || version != GGUF_VERSION)
        rc = err_set(err, "no GGUF version 3 header");
    for (uint64_t i = 0; !rc && i < nkv && !r.bad; i++) {
        skip(&r, rd(&r, 8)); // key
        skip_value(&r, (uint32_t)rd(&r, 4), 0);
    }
    for (uint64_t i = 0; !rc && i < nt && !r.bad; i++) {
        skip(&r, rd(&r, 8)); // name
        uint32_t dims = (uint32_t)rd(&r, 4);
        uint64_t n = 1;
        for (uint32_t d = 0; d < dims && d < 4; d++) n *= rd(&r, 8); // bounded: checked against size below
        uint32_t type = (uint32_t)rd(&r, 4);
        uint64_t off = rd(&r, 8), bytes = n * (type == GGML_F32 ? 4 : 2);
        if (dims < 1 || dims > 2 || (type != GGML_F32 && type != GGML_F16 && type != GGML_BF16) || bytes > size ||
            off > size)
            r.bad = 1;
        else if (off + bytes + pad_to(bytes) > end) end = off + bytes + pad_to(bytes);
    }
    uint64_t meta = size - r.left;
    if (!rc && r.bad) rc = err_set(err, "its GGUF header is cut short or holds what gguf_export never writes");
    if (!rc && meta + pad_to(meta) + end != size)
        rc = err_set(err, "%zu bytes, but its GGUF header implies %llu", size,
                     (unsigned long long)(meta + pad_to(meta) + end));
    fclose(f);
    return rc;
}
