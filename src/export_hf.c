// A Hugging Face folder for LlamaForCausalLM (docs/export.md):
// model.safetensors (8-byte little-endian header length, a JSON header with
// each tensor's dtype, shape and data_offsets, padded with spaces to a
// multiple of 8, then the raw little-endian data), config.json, and a
// byte-level BPE tokenizer (tokenizer.json, tokenizer_config.json).
// Hugging Face's RoPE rotates halves (rotate_half) where ours rotates
// adjacent pairs, so the query and key rows of each head are permuted: their
// row 2i + j goes to j * head_dim/2 + i (convert_llama_weights_to_hf's permute).
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export.h"
#include "modelio.h"

// the files of an export folder, in the order they are written
enum { F_SAFETENSORS, F_CONFIG, F_TOKENIZER, F_TOKENIZER_CONFIG, N_FILES };
static const char *const FILE_NAMES[] = {[F_SAFETENSORS] = "model.safetensors", [F_CONFIG] = "config.json",
                                         [F_TOKENIZER] = "tokenizer.json",
                                         [F_TOKENIZER_CONFIG] = "tokenizer_config.json"};
_Static_assert(sizeof FILE_NAMES / sizeof FILE_NAMES[0] == N_FILES, "a name per F_ file");

// The shortest decimal that reads back as the same float.
static void fmt_float(char *s, size_t cap, float x) {
    for (int p = 1; p <= 9; p++) {
        snprintf(s, cap, "%.*g", p, (double)x);
        if (strtof(s, NULL) == x) return;
    }
}

// rows of head h: ours (h, i, j) (pair i, member j) -> HF's (h, j, i)
static void permute_rope(float *out, const float *in, size_t rows, size_t cols, int heads) {
    size_t hd = rows / (size_t)heads, half = hd / 2;
    for (size_t h = 0; h < (size_t)heads; h++)
        for (size_t i = 0; i < half; i++)
            for (size_t j = 0; j < 2; j++)
                memcpy(out + (h * hd + j * half + i) * cols, in + (h * hd + 2 * i + j) * cols, cols * sizeof(float));
}

// The data of each tensor as stored: permuted (wq, wk) and/or converted to
// F16 or BF16 (dtype, OUT_*); data[i] points at the model's own floats when nothing changes.
static int safetensors_write(const Model *m, const char *path, int dtype, Error *err) {
    static const char *const names[N_OUT_DTYPES] = {[OUT_FP32] = "F32", [OUT_FP16] = "F16", [OUT_BF16] = "BF16"};
    ExportTensor *ts;
    int nt;
    if (export_tensors(m, &ts, &nt, err)) return -1;
    void **own = calloc((size_t)nt, sizeof *own);
    Chunk *ch = malloc((size_t)(nt + 2) * sizeof *ch);
    Buf json = {0};
    int rc = 0;
    if (!own || !ch) rc = err_set(err, "out of memory");
    size_t off = 0, esize = dtype == OUT_FP32 ? 4 : 2;
    buf_printf(&json, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < nt && !rc; i++) {
        const ExportTensor *t = &ts[i];
        size_t n = t->rows * t->cols;
        const float *src = t->data;
        float *perm = NULL;
        if (t->rope_heads) {
            if (!(perm = malloc(n * sizeof(float)))) {
                rc = err_set(err, "out of memory");
                break;
            }
            permute_rope(perm, src, t->rows, t->cols, t->rope_heads);
            src = perm;
        }
        const void *data = src;
        if (dtype != OUT_FP32) {
            uint16_t *h = malloc(n * 2);
            rc = !h                  ? err_set(err, "out of memory")
                 : dtype == OUT_BF16 ? export_bf16_convert(h, src, n, t->hf, path, err)
                                     : f16_convert(h, src, n, t->hf, path, err);
            free(perm);
            perm = NULL;
            data = own[i] = h;
            if (rc) break;
        } else {
            own[i] = perm;
        }
        ch[2 + i] = (Chunk){data, n * esize};
        buf_printf(&json, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%zu", t->hf, names[dtype], t->rows);
        if (t->cols > 1) buf_printf(&json, ",%zu", t->cols);
        buf_printf(&json, "],\"data_offsets\":[%zu,%zu]}", off, off + n * esize);
        off += n * esize;
    }
    buf_printf(&json, "}");
    while (json.n % 8) buf_put(&json, " ", 1); // the data starts 8-byte aligned
    uint64_t hlen = json.n;
    if (!rc && json.failed) rc = err_set(err, "out of memory");
    if (!rc) {
        ch[0] = (Chunk){&hlen, 8};
        ch[1] = (Chunk){json.p, json.n};
        rc = write_file_atomic(path, ch, nt + 2, err);
    }
    for (int i = 0; own && i < nt; i++) free(own[i]);
    free(own);
    free(ch);
    free(ts);
    buf_free(&json);
    return rc;
}

static int config_write(const ModelConfig *c, const char *path, int dtype, Error *err) {
    static const char *const torch[N_OUT_DTYPES] = {[OUT_FP32] = "float32", [OUT_FP16] = "float16",
                                                   [OUT_BF16] = "bfloat16"};
    char eps[32], theta[32];
    fmt_float(eps, sizeof eps, c->norm_eps);
    fmt_float(theta, sizeof theta, c->rope_theta);
    Buf b = {0};
    buf_printf(&b, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
               "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
               "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
               "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %s,\n"
               "  \"rope_theta\": %s,\n  \"rope_scaling\": null,\n  \"tie_word_embeddings\": %s,\n"
               "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"mlp_bias\": false,\n"
               "  \"attention_dropout\": 0.0,\n  \"initializer_range\": 0.02,\n  \"pretraining_tp\": 1,\n"
               "  \"bos_token_id\": null,\n  \"eos_token_id\": null,\n  \"use_cache\": true,\n"
               "  \"torch_dtype\": \"%s\"\n}\n",
               c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->dim / c->n_heads, c->vocab_size,
               c->seq_len, eps, theta, c->tie_embeddings ? "true" : "false", torch[dtype]);
    Chunk ch = {b.p, b.n};
    int rc = b.failed ? err_set(err, "out of memory") : write_file_atomic(path, &ch, 1, err);
    buf_free(&b);
    return rc;
}

// A token's text in GPT-2's byte alphabet as a JSON string ('"' and '\' escaped;
// the alphabet has no control characters).
static void json_token(Buf *b, const Bpe *v, int t, char *s) {
    const unsigned char *bytes;
    size_t len = bpe_decode(v, t, &bytes), n = byte_level_text(bytes, len, s);
    buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') buf_put(b, "\\", 1);
        buf_put(b, &s[i], 1);
    }
    buf_put(b, "\"", 1);
}

static int tokenizer_write(const Bpe *v, const char *path, Error *err) {
    char *s = malloc(4 * BPE_MAX_TOKEN_BYTES + 1);
    if (!s) return err_set(err, "out of memory");
    Buf b = {0};
    buf_printf(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
               "  \"added_tokens\": [],\n  \"normalizer\": null,\n"
               "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
               "\"use_regex\": true},\n  \"post_processor\": null,\n"
               "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
               "\"use_regex\": true},\n"
               "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
               "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, "
               "\"byte_fallback\": false, \"ignore_merges\": false,\n    \"vocab\": {");
    for (int t = 0; t < v->vocab_size; t++) {
        buf_printf(&b, "%s\n      ", t ? "," : "");
        json_token(&b, v, t, s);
        buf_printf(&b, ": %d", t);
    }
    buf_printf(&b, "\n    },\n    \"merges\": [");
    for (int i = 0; i < v->n_merges; i++) {
        buf_printf(&b, "%s\n      [", i ? "," : "");
        json_token(&b, v, v->merges[2 * i], s);
        buf_put(&b, ", ", 2);
        json_token(&b, v, v->merges[2 * i + 1], s);
        buf_put(&b, "]", 1);
    }
    buf_printf(&b, "\n    ]\n  }\n}\n");
    free(s);
    Chunk ch = {b.p, b.n};
    int rc = b.failed ? err_set(err, "out of memory") : write_file_atomic(path, &ch, 1, err);
    buf_free(&b);
    return rc;
}

static int tokenizer_config_write(const ModelConfig *c, const char *path, Error *err) {
    char s[512];
    int n = snprintf(s, sizeof s, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"model_max_length\": %d,\n"
                     "  \"add_bos_token\": false,\n  \"add_eos_token\": false,\n"
                     "  \"clean_up_tokenization_spaces\": false\n}\n", c->seq_len);
    Chunk ch = {s, (size_t)n};
    return write_file_atomic(path, &ch, 1, err);
}

// Whether `dir` is an export folder of ours: 1 absent, 0 a folder holding
// nothing but regular files with an export's names (and their .tmp), -1
// anything else (a symlink, a file, a folder with other things in it),
// message in err naming the culprit. Only such a folder may be removed.
static int export_dir_state(const char *dir, Error *err) {
    struct stat st;
    if (lstat(dir, &st)) return errno == ENOENT ? 1 : err_set(err, "%s: cannot check: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set(err, "%s: exists and is %s: not replaced (remove it or give another name)", dir,
                       S_ISREG(st.st_mode) ? "a file" : file_kind(st.st_mode));
    DIR *d = opendir(dir);
    if (!d) return err_set(err, "%s: cannot read: %s", dir, strerror(errno));
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        int ours = 0;
        for (int f = 0; f < N_FILES && !ours; f++) {
            size_t n = strlen(FILE_NAMES[f]);
            ours = !strncmp(e->d_name, FILE_NAMES[f], n) && (!e->d_name[n] || !strcmp(e->d_name + n, ".tmp"));
        }
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!ours)
            rc = err_set(err, "%s: exists and holds %s, which is not an export's file: give a new folder", dir,
                         e->d_name);
        else if (lstat(p, &st) || !S_ISREG(st.st_mode))
            rc = err_set(err, "%s: exists and its %s is not a regular file: not replaced", dir, e->d_name);
    }
    closedir(d);
    return rc;
}

// Removes a folder export_dir_state called ours: its own files, then itself.
static int remove_export_dir(const char *dir) {
    char p[4200];
    for (int f = 0; f < N_FILES; f++) {
        snprintf(p, sizeof p, "%s/%s", dir, FILE_NAMES[f]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s.tmp", dir, FILE_NAMES[f]);
        unlink(p);
    }
    return rmdir(dir);
}

// DIR.tmp or DIR.old left by a crash: removed when it is an export folder
// of ours, refused when it is anything else.
static int clear_aside(const char *dir, Error *err) {
    int state = export_dir_state(dir, err);
    if (state < 0) return -1;
    if (state == 0 && remove_export_dir(dir))
        return err_set(err, "%s: cannot remove this stale folder: %s", dir, strerror(errno));
    return 0;
}

// Writes the folder as DIR.tmp, then renames it to DIR; an existing DIR is
// first moved to DIR.old and removed afterwards, so DIR is at every moment
// absent, the old folder, or the complete new one.
static int hf_write(const Model *m, const char *dir, int dtype, Error *err) {
    if (export_check(m, EXPORT_HF, dir, err)) return -1;
    char out[4096], tmp[4104], old[4104], p[N_FILES][4200];
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--; // "out/" names the folder out (not a link's target)
    if (len >= sizeof out) return err_set(err, "%s: path too long", dir);
    snprintf(out, sizeof out, "%.*s", (int)len, dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    snprintf(old, sizeof old, "%s.old", out);
    int state = export_dir_state(out, err); // 1 absent, 0 an export of ours, -1 refused
    if (state < 0 || clear_aside(tmp, err) || clear_aside(old, err)) return -1;
    int had_old = state == 0;
    ExportVocab voc;
    if (export_vocab(&voc, m, dir, err)) return -1;
    for (int f = 0; f < N_FILES; f++) snprintf(p[f], sizeof p[f], "%s/%s", tmp, FILE_NAMES[f]);
    int rc = 0;
    if (mkdir(tmp, 0777)) rc = err_set(err, "%s: cannot create the folder %s: %s", out, tmp, strerror(errno));
    if (!rc) {
        rc = safetensors_write(m, p[F_SAFETENSORS], dtype, err);
        if (!rc) rc = config_write(&m->cfg, p[F_CONFIG], dtype, err);
        if (!rc) rc = tokenizer_write(&voc.bpe, p[F_TOKENIZER], err);
        if (!rc) rc = tokenizer_config_write(&m->cfg, p[F_TOKENIZER_CONFIG], err);
        // DIR is at every moment absent, the old folder, or the complete new one
        if (!rc && had_old && rename(out, old)) rc = err_set(err, "%s: cannot move the old folder aside: %s", dir, strerror(errno));
        if (!rc && rename(tmp, out)) {
            rc = err_set(err, "%s: cannot rename %s to it: %s", dir, tmp, strerror(errno));
            if (had_old) rename(old, out);
        }
        if (rc) remove_export_dir(tmp);
        else if (had_old) remove_export_dir(old);
        if (!rc) fsync_parent_dir(out);
    }
    export_vocab_free(&voc);
    return rc;
}

int hf_export(const Model *m, const ExportArgs *a, Error *err) {
    int rc = hf_write(m, a->out, a->dtype, err);
    if (!rc) fprintf(stderr, "wrote %s (Hugging Face LlamaForCausalLM, %s)\n", a->out, export_dtype_text(a->dtype));
    return rc;
}
