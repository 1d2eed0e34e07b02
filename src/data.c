#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

Tokenizer tokenizer_bytes(void) {
    Tokenizer tk = {.kind = TOK_BYTES, .vocab_size = 256};
    for (int b = 0; b < 256; b++) tk.raw[b] = (unsigned char)b;
    return tk;
}

Tokenizer tokenizer_sp(const SpTok *sp) { return (Tokenizer){.kind = TOK_SP, .vocab_size = sp->vocab_size, .sp = sp}; }

Tokenizer tokenizer_bpe(const Bpe *bpe) {
    return (Tokenizer){.kind = TOK_BPE, .vocab_size = bpe->vocab_size, .bpe = bpe};
}

size_t tokenizer_max_tokens(const Tokenizer *tk, size_t n) { return tk->kind == TOK_SP ? n + 2 : n; }

int tokenizer_encode(const Tokenizer *tk, const unsigned char *text, size_t n, int *tokens, size_t *n_tokens,
                     Error *err) {
    if (tk->kind == TOK_SP) return sptok_encode(tk->sp, text, n, tokens, n_tokens, err);
    if (tk->kind == TOK_BPE) return bpe_encode(tk->bpe, text, n, tokens, n_tokens, err);
    for (size_t i = 0; i < n; i++) tokens[i] = text[i];
    *n_tokens = n;
    return 0;
}

size_t tokenizer_decode(const Tokenizer *tk, int prev, int token, const unsigned char **bytes) {
    if (tk->kind == TOK_SP) return sptok_decode(tk->sp, prev, token, bytes);
    if (tk->kind == TOK_BPE) return bpe_decode(tk->bpe, token, bytes);
    if (token < 0 || token >= tk->vocab_size) return 0;
    *bytes = &tk->raw[token];
    return 1;
}

int tokenizer_is_stop(const Tokenizer *tk, int token) {
    return tk->kind == TOK_SP && (token == SP_BOS || token == SP_EOS);
}

int read_file(const char *path, unsigned char **data, size_t *n, Error *err) {
    FILE *f = open_regular(path, n, err);
    if (!f) return -1;
    if (*n >= LARGE_BYTES && memory_check(*n, path, err)) {
        fclose(f);
        return -1;
    }
    *data = malloc(*n + 1); // + 1: a terminating NUL, so text parsers cannot run off the end
    if (!*data) {
        fclose(f);
        return err_set(err, "%s: out of memory (%zu bytes)", path, *n);
    }
    size_t got = fread(*data, 1, *n, f);
    fclose(f);
    if (got != *n) {
        free(*data);
        return err_set(err, "%s: read %zu of %zu bytes", path, got, *n);
    }
    (*data)[*n] = 0;
    return 0;
}

// tokens (malloc'd) of text[0..n); errors name path.
static int encode_text(const Tokenizer *tk, const unsigned char *text, size_t n, const char *path, int **tokens,
                       size_t *n_tokens, Error *err) {
    *tokens = malloc((tokenizer_max_tokens(tk, n) + 1) * sizeof(int));
    if (!*tokens) return err_set(err, "%s: out of memory", path);
    Error e;
    if (tokenizer_encode(tk, text, n, *tokens, n_tokens, &e)) {
        free(*tokens);
        *tokens = NULL;
        return err_set(err, "%s: %s", path, e.msg);
    }
    return 0;
}

int encode_file(const char *path, const Tokenizer *tk, int **tokens, size_t *n_tokens, Error *err) {
    unsigned char *text;
    size_t n;
    if (read_file(path, &text, &n, err)) return -1;
    int rc = encode_text(tk, text, n, path, tokens, n_tokens, err);
    free(text);
    return rc;
}

int text_read(TextFile *t, const char *path, Error *err) {
    memset(t, 0, sizeof *t);
    t->path = path;
    if (read_file(path, &t->bytes, &t->n, err)) return -1;
    t->fingerprint = fnv1a64(t->bytes, t->n, FNV1A64_INIT);
    return 0;
}

void text_free(TextFile *t) {
    free(t->bytes);
    memset(t, 0, sizeof *t);
}

// Tokens of the text from the cache when it belongs to this text and
// tokenizer; else NULL (*note says why) and the caller encodes.
static int cache_read(Dataset *ds, const char *cache_path, const Tokenizer *tk, size_t n, Error *err) {
    if (access(cache_path, F_OK)) {
        snprintf(ds->note, sizeof ds->note, "token cache %s: none yet, encoding", cache_path);
        return 0;
    }
    TokCacheInfo info;
    int *tokens;
    Error e;
    if (tokcache_load(cache_path, &info, &tokens, &e))
        return err_set(err, "%s (delete the file to rebuild it)", e.msg);
    if (info.vocab_size == tk->vocab_size && info.tokenizer_checksum == tk->bpe->checksum &&
        info.text_size == n && info.text_hash == ds->fingerprint) {
        ds->tokens = tokens, ds->n_tokens = (size_t)info.n_tokens;
        snprintf(ds->note, sizeof ds->note, "token cache %s: reused (%zu tokens)", cache_path, ds->n_tokens);
        return 0;
    }
    free(tokens);
    snprintf(ds->note, sizeof ds->note, "token cache %s: stale (%s changed), rebuilding", cache_path,
             info.text_size != n || info.text_hash != ds->fingerprint ? "the text" : "the tokenizer");
    return 0;
}

static void cache_write(Dataset *ds, const char *cache_path, const Tokenizer *tk, size_t n) {
    TokCacheInfo info = {.vocab_size = tk->vocab_size, .n_tokens = ds->n_tokens,
                         .tokenizer_checksum = tk->bpe->checksum, .text_size = n, .text_hash = ds->fingerprint};
    Error e;
    size_t len = strlen(ds->note);
    if (tokcache_save(cache_path, &info, ds->tokens, &e))
        snprintf(ds->note + len, sizeof ds->note - len, "; warning: not cached: %s", e.msg);
    else
        snprintf(ds->note + len, sizeof ds->note - len, "; wrote %zu tokens", ds->n_tokens);
}

static double bytes_per_token(const Tokenizer *tk, const int *tokens, size_t n) {
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b;
        bytes += tokenizer_decode(tk, i ? tokens[i - 1] : -1, tokens[i], &b);
    }
    return n ? (double)bytes / (double)n : 1.0;
}

int dataset_load(Dataset *ds, const TextFile *text, const Tokenizer *tk, int seq_len, const char *cache_path,
                 Error *err) {
    memset(ds, 0, sizeof *ds);
    const char *path = text->path;
    size_t n = text->n;
    ds->fingerprint = text->fingerprint;
    int use_cache = cache_path && tk->kind == TOK_BPE;
    if (use_cache && cache_read(ds, cache_path, tk, n, err)) return -1;
    if (!ds->tokens) {
        if (encode_text(tk, text->bytes, n, path, &ds->tokens, &ds->n_tokens, err)) return -1;
        if (use_cache) cache_write(ds, cache_path, tk, n);
    }
    ds->n_train = ds->n_tokens / 10 * 9;
    size_t need = (size_t)seq_len + 1;
    if (ds->n_train < need || ds->n_tokens - ds->n_train < need) {
        size_t have = ds->n_tokens;
        dataset_free(ds);
        return err_set(err, "%s: %zu tokens is too short: the 90/10 split needs at least %zu "
                       "tokens in each part for --seq %d", path, have, need, seq_len);
    }
    ds->val_bytes_per_token = bytes_per_token(tk, ds->tokens + ds->n_train, ds->n_tokens - ds->n_train);
    return 0;
}

int bpe_for_text(Bpe *b, const TextFile *text, int vocab_size, const char *vocab_path, char *note, size_t note_cap,
                 Error *err) {
    memset(b, 0, sizeof *b);
    const char *why = "none yet";
    if (!access(vocab_path, F_OK)) {
        Error e;
        if (bpe_load(b, vocab_path, &e)) return err_set(err, "%s (delete the file to retrain it)", e.msg);
        if (b->text_size == text->n && b->text_hash == text->fingerprint && b->vocab_size == vocab_size) {
            snprintf(note, note_cap, "tokenizer %s: reused (%d tokens)", vocab_path, vocab_size);
            return 0;
        }
        why = b->vocab_size != vocab_size ? "stale: another vocab size" : "stale: the text changed";
        bpe_free(b);
    }
    double t0 = now_seconds();
    Error e;
    if (bpe_train(b, text->bytes, text->n, vocab_size, &e)) return err_set(err, "%s: %s", text->path, e.msg);
    int len = snprintf(note, note_cap, "tokenizer %s: %s, trained %d tokens in %.2f s", vocab_path, why, vocab_size,
                       now_seconds() - t0);
    if (len < 0 || (size_t)len >= note_cap) return 0;
    if (bpe_save(b, vocab_path, &e))
        snprintf(note + len, note_cap - (size_t)len, "; warning: not saved: %s", e.msg);
    return 0;
}

void dataset_free(Dataset *ds) {
    free(ds->tokens);
    memset(ds, 0, sizeof *ds);
}

static void window(const Dataset *ds, size_t start, int T, int *inputs, int *targets) {
    memcpy(inputs, ds->tokens + start, (size_t)T * sizeof(int));
    memcpy(targets, ds->tokens + start + 1, (size_t)T * sizeof(int));
}

void dataset_train_rows(const Dataset *ds, uint64_t key, int64_t step, int64_t row0, int B, int T,
                        int *inputs, int *targets) {
    size_t starts = ds->n_train - (size_t)T; // windows of T+1 tokens inside the train split
    for (int b = 0; b < B; b++) {
        Rng rng = rng_at(key, (uint64_t)step, (uint64_t)(row0 + b));
        window(ds, rng_u64(&rng) % starts, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

void dataset_val_rows(const Dataset *ds, int index, int n_batches, int64_t global_B, int64_t row0, int B, int T,
                      int *inputs, int *targets) {
    size_t n_val = ds->n_tokens - ds->n_train, span = n_val - (size_t)T - 1;
    size_t windows = (size_t)n_batches * (size_t)global_B;
    for (int b = 0; b < B; b++) {
        size_t w = (size_t)index * (size_t)global_B + (size_t)row0 + (size_t)b;
        size_t start = ds->n_train + (windows > 1 ? (size_t)((double)w / (double)(windows - 1) * span) : 0);
        window(ds, start, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}
