#include "data.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

int encode_text(const Tokenizer *tk, const unsigned char *text, size_t n, const char *path, int **tokens,
                       size_t *n_tokens, Error *err) {
    size_t bytes = (tokenizer_max_tokens(tk, n) + 1) * sizeof(int);
    *tokens = NULL;
    char what[4200];
    snprintf(what, sizeof what, "%.4000s: tokenizing its %zu bytes", path, n);
    if (bytes >= LARGE_BYTES && memory_check(bytes, what, err)) return -1;
    *tokens = malloc(bytes);
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

// ----------------------------------------------------------------------------
// mapped files

int map_file(Mapped *m, const char *path, Error *err) {
    memset(m, 0, sizeof *m);
    size_t n;
    FILE *f = open_regular(path, &n, err); // a FIFO or a device is refused, never waited on
    if (!f) return -1;
    if (n > 0) {
        void *p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        if (p == MAP_FAILED) {
            int e = errno;
            fclose(f);
            return err_set(err, "%s: cannot map %zu bytes: %s", path, n, strerror(e));
        }
        m->p = p, m->n = n;
        map_guard_add(p, n, path); // a file truncated under the run: one line, not a SIGBUS
    }
    fclose(f);
    return 0;
}

void unmap_file(Mapped *m) {
    if (m->p) map_guard_remove(m->p), munmap(m->p, m->n);
    memset(m, 0, sizeof *m);
}

int tokcache_open(Mapped *m, const char *path, TokCacheInfo *info, const uint16_t **tokens, Error *err) {
    *tokens = NULL;
    if (map_file(m, path, err)) return -1;
    int rc = tokcache_parse(m->p ? m->p : (const unsigned char *)"", m->n, path, info, tokens, err);
    if (rc) unmap_file(m);
    return rc;
}

// ----------------------------------------------------------------------------
// progress lines while a large text is read, trained on or encoded

typedef struct {
    int on;
    const char *what;
    double t0, next, every;
} Progress;

static Progress progress_start(int on, const char *what) {
    const char *s = getenv("LLAMA_TEST_PROGRESS_SECONDS"); // for tests: 0 prints every update
    double every = 10.0;
    if (s) parse_f64(s, 0, 3600, &every);
    double t = now_seconds();
    return (Progress){.on = on, .what = what, .t0 = t, .next = t + every, .every = every};
}

static void progress_update(Progress *p, double done, double total, const char *unit) {
    if (!p->on) return;
    double t = now_seconds();
    if (t < p->next) return;
    p->next = t + p->every;
    fprintf(stderr, "train_llama: %s: %.0f of %.0f %s (%.0f%%), %.0f s\n", p->what, done, total, unit,
            total > 0 ? 100.0 * done / total : 100.0, t - p->t0);
}

static void bpe_progress(void *ctx, size_t done, size_t total) {
    progress_update(ctx, (double)done, (double)total, "merges");
}

// ----------------------------------------------------------------------------
// texts: a file, a folder or a list of files

static size_t env_size(const char *name, size_t dflt) {
    const char *s = getenv(name);
    int64_t v;
    return s && !parse_i64(s, 1, INT64_MAX, &v) ? (size_t)v : dflt;
}

// This program's own files beside a text: NAME.bpeN, NAME.bpeN.tok, NAME.tmp.
static int own_file(const char *name) {
    size_t n = strlen(name);
    if (n > 4 && !strcmp(name + n - 4, ".tmp")) return 1;
    if (n > 4 && !strcmp(name + n - 4, ".tok")) n -= 4;
    size_t d = n;
    while (d > 0 && name[d - 1] >= '0' && name[d - 1] <= '9') d--;
    return d < n && d >= 4 && !strncmp(name + d - 4, ".bpe", 4);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int add_doc(TextFile *t, const char *dir, const char *name, Error *err) {
    DataDoc *d = realloc(t->docs, ((size_t)t->n_docs + 1) * sizeof *d);
    if (!d) return err_set(err, "out of memory");
    t->docs = d;
    size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *p = malloc(len);
    if (!p) return err_set(err, "out of memory");
    snprintf(p, len, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    t->docs[t->n_docs++] = (DataDoc){.path = p};
    return 0;
}

// The folder's files (sorted, see TextFile); the vocabulary goes beside the folder.
static int list_folder(TextFile *t, const char *dir, Error *err) {
    DIR *d = opendir(dir);
    if (!d) return err_set(err, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (e->d_name[0] == '.' || own_file(e->d_name)) continue;
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) {
            rc = err_set(err, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        if (stat(path, &st) || !S_ISREG(st.st_mode)) continue; // folders, FIFOs, broken links
        if (n == cap) {
            char **q = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *q);
            if (!q) { rc = err_set(err, "out of memory"); break; }
            names = q;
        }
        if (!(names[n] = strdup(e->d_name))) rc = err_set(err, "out of memory");
        else n++;
    }
    closedir(d);
    if (!rc && !n) rc = err_set(err, "%s: the folder holds no files to train on", dir);
    if (!rc && n > INT32_MAX / 2) rc = err_set(err, "%s: too many files", dir);
    if (!rc) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (!rc) rc = add_doc(t, dir, names[i], err);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int split_list(TextFile *t, const char *spec, Error *err) {
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!len) return err_set(err, "%s: an empty file name in the list", spec);
        char name[4096];
        if (len >= sizeof name) return err_set(err, "%s: path too long", spec);
        memcpy(name, p, len);
        name[len] = 0;
        if (add_doc(t, NULL, name, err)) return -1;
        if (!comma) return 0;
        p = comma + 1;
    }
}

// The text of t's documents: one mapped file, or all of them joined.
static int text_join(TextFile *t, Error *err) {
    if (t->n_docs == 1) {
        if (map_file(&t->map, t->docs[0].path, err)) return -1;
        t->bytes = t->map.p ? t->map.p : (const unsigned char *)"", t->n = t->map.n;
        t->docs[0].size = t->n;
        t->docs[0].hash = t->fingerprint = fnv1a64(t->bytes, t->n, FNV1A64_INIT);
        return 0;
    }
    size_t total = 0, cap = 0;
    for (int i = 0; i < t->n_docs; i++) {
        Mapped m;
        if (map_file(&m, t->docs[i].path, err)) return -1;
        size_t need;
        if (size_add(total, m.n + DOC_SEPARATOR_BYTES, &need)) {
            unmap_file(&m);
            return err_set(err, "%s: the files are too large together", t->spec);
        }
        if (need > cap) {
            size_t c = need > 2 * cap ? need : 2 * cap;
            unsigned char *q = realloc(t->joined, c);
            if (!q) {
                unmap_file(&m);
                return err_set(err, "%s: out of memory joining %zu bytes", t->spec, need);
            }
            t->joined = q, cap = c;
        }
        if (i) memcpy(t->joined + total, DOC_SEPARATOR, DOC_SEPARATOR_BYTES), total += DOC_SEPARATOR_BYTES;
        if (m.n) memcpy(t->joined + total, m.p, m.n);
        t->docs[i].size = m.n;
        t->docs[i].hash = fnv1a64(t->joined + total, m.n, FNV1A64_INIT);
        total += m.n;
        unmap_file(&m);
    }
    t->bytes = t->joined, t->n = total;
    t->fingerprint = fnv1a64(t->bytes, t->n, FNV1A64_INIT);
    return 0;
}

int text_open(TextFile *t, const char *spec, Error *err) {
    memset(t, 0, sizeof *t);
    t->spec = spec;
    if (!spec || !*spec) return err_set(err, "an empty data path");
    struct stat st;
    int exists = !stat(spec, &st), rc;
    if (exists && S_ISDIR(st.st_mode)) {
        size_t n = strlen(spec);
        while (n > 1 && spec[n - 1] == '/') n--; // "corpus/" -> corpus.bpeN beside the folder
        if (n >= sizeof t->base) return err_set(err, "%s: path too long", spec);
        memcpy(t->base, spec, n);
        t->base[n] = 0;
        rc = list_folder(t, t->base, err);
    } else {
        rc = exists || !strchr(spec, ',') ? add_doc(t, NULL, spec, err) : split_list(t, spec, err);
        if (!rc && snprintf(t->base, sizeof t->base, "%s", t->docs[0].path) >= (int)sizeof t->base)
            rc = err_set(err, "%s: path too long", spec);
    }
    if (!rc) rc = text_join(t, err);
    if (rc) text_close(t);
    return rc;
}

void text_close(TextFile *t) {
    for (int i = 0; i < t->n_docs; i++) free(t->docs[i].path);
    free(t->docs);
    unmap_file(&t->map);
    free(t->joined);
    memset(t, 0, sizeof *t);
}

// ----------------------------------------------------------------------------
// the dataset

static int token_at(const Tokens *t, size_t i) { return t->u8 ? t->u8[i] : t->u16[i]; }

static void note_add(Dataset *ds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_add(Dataset *ds, const char *fmt, ...) {
    size_t len = strlen(ds->note);
    if (len + 1 >= sizeof ds->note) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ds->note + len, sizeof ds->note - len, fmt, ap);
    va_end(ap);
}

// Whether the tokens decode to exactly the text (its size and FNV-1a): a
// cache whose header matches but whose tokens were cut or changed fails.
static int decodes_to(const Bpe *b, const uint16_t *tok, size_t n, const TextFile *text) {
    uint64_t h = FNV1A64_INIT, size = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p;
        size_t len = bpe_decode(b, tok[i], &p);
        h = fnv1a64(p, len, h), size += len;
        if (size > text->n) return 0;
    }
    return size == text->n && h == text->fingerprint;
}

// The cached tokens of text when the cache is there, sound and belongs to
// this text and tokenizer (*out set); else a note says why and out->n stays 0.
static int cache_read(Dataset *ds, int slot, const char *path, const TextFile *text, const Tokenizer *tk,
                      Tokens *out, Error *err) {
    if (access(path, F_OK)) {
        note_add(ds, "token cache %s: none yet, encoding", path);
        return 0;
    }
    TokCacheInfo info;
    const uint16_t *tok;
    Error e;
    int rc = tokcache_open(&ds->maps[slot], path, &info, &tok, &e);
    if (rc < 0) return err_set(err, "%s (delete the file to rebuild it)", e.msg);
    if (rc > 0) {
        note_add(ds, "warning: %s: rebuilding it", e.msg);
        return 0;
    }
    const char *stale = info.text_size != text->n || info.text_hash != text->fingerprint ? "the text"
                        : info.vocab_size != tk->vocab_size || info.tokenizer_checksum != tk->bpe->checksum
                            ? "the tokenizer" : NULL;
    if (stale) {
        note_add(ds, "token cache %s: stale (%s changed), rebuilding", path, stale);
    } else if (!decodes_to(tk->bpe, tok, (size_t)info.n_tokens, text)) {
        note_add(ds, "warning: token cache %s: its tokens do not decode to the text: rebuilding it", path);
    } else {
        *out = (Tokens){.u16 = tok, .n = (size_t)info.n_tokens};
        note_add(ds, "token cache %s: reused (%zu tokens)", path, out->n);
        return 0;
    }
    unmap_file(&ds->maps[slot]);
    return 0;
}

// Encodes text in chunks cut at word boundaries (the tokens of the whole),
// into uint16 ids, with progress lines.
static int encode_chunked(const Tokenizer *tk, const TextFile *text, const char *name, int verbose, uint16_t **out,
                          size_t *n_out, Error *err) {
    size_t chunk = env_size("LLAMA_TEST_ENCODE_CHUNK_BYTES", (size_t)16 << 20), n = text->n;
    size_t cap = n / 3 + 16, nt = 0;
    uint16_t *tok = malloc(cap * sizeof *tok);
    int *buf = malloc((chunk + BPE_MAX_TOKEN_BYTES + 1) * sizeof(int));
    Progress pr = progress_start(verbose, "encoding the text");
    int rc = tok && buf ? 0 : err_set(err, "%s: out of memory", name);
    for (size_t i = 0; !rc && i < n;) {
        size_t end = i + chunk < n ? bpe_split_point(text->bytes, n, i + chunk) : n, got = 0;
        int *b = buf;
        int *big = NULL;
        if (end - i > chunk + BPE_MAX_TOKEN_BYTES) { // a long stretch without a newline
            if (!(big = malloc((end - i) * sizeof(int)))) { rc = err_set(err, "%s: out of memory", name); break; }
            b = big;
        }
        Error e;
        if (tokenizer_encode(tk, text->bytes + i, end - i, b, &got, &e)) rc = err_set(err, "%s: %s", name, e.msg);
        if (!rc && nt + got > cap) {
            size_t c = cap + cap / 2 > nt + got ? cap + cap / 2 : nt + got;
            uint16_t *q = realloc(tok, c * sizeof *q);
            if (!q) rc = err_set(err, "%s: out of memory for %zu tokens", name, c);
            else tok = q, cap = c;
        }
        for (size_t k = 0; !rc && k < got; k++) tok[nt + k] = (uint16_t)b[k];
        nt += got;
        free(big);
        i = end;
        progress_update(&pr, (double)i / 1e6, (double)n / 1e6, "MB");
    }
    free(buf);
    if (rc) {
        free(tok);
        return -1;
    }
    *out = tok, *n_out = nt;
    return 0;
}

// The tokens of one text: its bytes, or BPE ids from the cache or encoded.
static int text_tokens(Dataset *ds, int slot, const TextFile *text, const Tokenizer *tk, int verbose, Tokens *out,
                       Error *err) {
    memset(out, 0, sizeof *out);
    if (tk->kind == TOK_BYTES) {
        *out = (Tokens){.u8 = text->bytes, .n = text->n};
        return 0;
    }
    if (tk->kind != TOK_BPE) return err_set(err, "%s: training needs bytes or a BPE vocabulary", text->spec);
    char path[4200];
    if (snprintf(path, sizeof path, "%s.bpe%d.tok", text->base, tk->vocab_size) >= (int)sizeof path)
        return err_set(err, "%s: path too long", text->base);
    if (ds->note[0]) note_add(ds, "\n");
    if (cache_read(ds, slot, path, text, tk, out, err)) return -1;
    if (out->n || !text->n) return 0;
    size_t nt;
    if (encode_chunked(tk, text, text->spec, verbose, &ds->owned[slot], &nt, err)) return -1;
    *out = (Tokens){.u16 = ds->owned[slot], .n = nt};
    TokCacheInfo info = {.vocab_size = tk->vocab_size, .n_tokens = nt, .tokenizer_checksum = tk->bpe->checksum,
                         .text_size = text->n, .text_hash = text->fingerprint};
    Error e;
    if (tokcache_save(path, &info, out->u16, &e)) note_add(ds, "; warning: not cached: %s", e.msg);
    else note_add(ds, "; wrote %zu tokens", nt);
    return 0;
}

static double bytes_per_token(const Tokenizer *tk, const Tokens *t) {
    if (tk->kind == TOK_BYTES) return 1.0;
    size_t bytes = 0;
    for (size_t i = 0; i < t->n; i++) {
        const unsigned char *b;
        bytes += tokenizer_decode(tk, i ? token_at(t, i - 1) : -1, token_at(t, i), &b);
    }
    return t->n ? (double)bytes / (double)t->n : 1.0;
}

int dataset_load(Dataset *ds, const TextFile *text, const TextFile *val, const Tokenizer *tk, int seq_len,
                 int verbose, Error *err) {
    memset(ds, 0, sizeof *ds);
    ds->fingerprint = text->fingerprint;
    if (text_tokens(ds, 0, text, tk, verbose, &ds->train, err) ||
        (val && text_tokens(ds, 1, val, tk, verbose, &ds->val, err))) {
        dataset_free(ds);
        return -1;
    }
    size_t need = (size_t)seq_len + 1, have = ds->train.n;
    if (val) {
        ds->val_fingerprint = val->fingerprint;
        const TextFile *short_one = ds->train.n < need ? text : ds->val.n < need ? val : NULL;
        if (short_one) {
            have = short_one == text ? ds->train.n : ds->val.n;
            dataset_free(ds);
            return err_set(err, "%s: %zu tokens is too short: --seq %d needs at least %zu", short_one->spec, have,
                           seq_len, need);
        }
    } else {
        size_t n_train = have / 10 * 9;
        ds->val = ds->train;
        ds->train.n = n_train;
        if (ds->val.u8) ds->val.u8 += n_train;
        else ds->val.u16 += n_train;
        ds->val.n = have - n_train;
        if (n_train < need || ds->val.n < need) {
            dataset_free(ds);
            return err_set(err, "%s: %zu tokens is too short: the 90/10 split needs at least %zu "
                           "tokens in each part for --seq %d (or give --val-data)", text->spec, have, need, seq_len);
        }
    }
    ds->val_bytes_per_token = bytes_per_token(tk, &ds->val);
    return 0;
}

// The sample the BPE trainer counts pairs on (see BPE_SAMPLE_BYTES): the
// whole text when it is small; else pieces spread evenly, cut at word
// boundaries, joined (*owned, caller frees).
static int bpe_sample(const TextFile *text, const unsigned char **s, size_t *n, unsigned char **owned, Error *err) {
    size_t limit = env_size("LLAMA_TEST_BPE_SAMPLE_BYTES", BPE_SAMPLE_BYTES);
    *s = text->bytes, *n = text->n, *owned = NULL;
    if (text->n <= limit) return 0;
    unsigned char *buf = malloc(limit);
    if (!buf) return err_set(err, "%s: out of memory for a %zu-byte sample", text->spec, limit);
    size_t piece = limit / BPE_SAMPLE_PIECES, used = 0;
    for (size_t k = 0; k < BPE_SAMPLE_PIECES; k++) {
        size_t at = (size_t)((double)k / BPE_SAMPLE_PIECES * (double)text->n);
        size_t a = bpe_split_point(text->bytes, text->n, at);
        size_t b = a + piece < text->n ? bpe_split_point(text->bytes, text->n, a + piece) : text->n;
        if (b - a > piece) b = a + piece; // a long line: cut mid-word (the sample only counts pairs)
        memcpy(buf + used, text->bytes + a, b - a);
        used += b - a;
    }
    *s = buf, *n = used, *owned = buf;
    return 0;
}

int bpe_for_text(Bpe *b, const TextFile *text, int vocab_size, int verbose, char *note, size_t note_cap, Error *err) {
    memset(b, 0, sizeof *b);
    char path[4200];
    if (snprintf(path, sizeof path, "%s.bpe%d", text->base, vocab_size) >= (int)sizeof path)
        return err_set(err, "%s: path too long", text->base);
    const char *why = "none yet";
    if (!access(path, F_OK)) {
        Error e;
        if (bpe_load(b, path, &e)) return err_set(err, "%s (delete the file to retrain it)", e.msg);
        if (b->text_size == text->n && b->text_hash == text->fingerprint && b->vocab_size == vocab_size) {
            snprintf(note, note_cap, "tokenizer %s: reused (%d tokens)", path, vocab_size);
            return 0;
        }
        why = b->vocab_size != vocab_size ? "stale: another vocab size" : "stale: the text changed";
        bpe_free(b);
    }
    double t0 = now_seconds();
    const unsigned char *sample;
    size_t n;
    unsigned char *owned;
    if (bpe_sample(text, &sample, &n, &owned, err)) return -1;
    Progress pr = progress_start(verbose, "training the vocabulary");
    BpeProgress bp = {bpe_progress, &pr};
    Error e;
    int rc = bpe_train_as(b, sample, n, vocab_size, text->n, text->fingerprint, &bp, &e);
    free(owned);
    if (rc) return err_set(err, "%s: %s", text->spec, e.msg);
    char on[64] = "";
    if (owned) snprintf(on, sizeof on, " on a %zu-byte sample", n);
    int len = snprintf(note, note_cap, "tokenizer %s: %s, trained %d tokens%s in %.2f s", path, why, vocab_size, on,
                       now_seconds() - t0);
    if (len < 0 || (size_t)len >= note_cap) return 0;
    if (bpe_save(b, path, &e)) snprintf(note + len, note_cap - (size_t)len, "; warning: not saved: %s", e.msg);
    return 0;
}

void dataset_free(Dataset *ds) {
    for (int i = 0; i < 2; i++) unmap_file(&ds->maps[i]), free(ds->owned[i]);
    memset(ds, 0, sizeof *ds);
}

static void window(const Tokens *t, size_t start, int T, int *inputs, int *targets) {
    for (int i = 0; i < T; i++) inputs[i] = token_at(t, start + (size_t)i), targets[i] = token_at(t, start + (size_t)i + 1);
}

void dataset_train_rows(const Dataset *ds, uint64_t key, int64_t step, int64_t row0, int B, int T,
                        int *inputs, int *targets) {
    size_t starts = ds->train.n - (size_t)T; // windows of T+1 tokens inside the train split
    for (int b = 0; b < B; b++) {
        Rng rng = rng_at(key, (uint64_t)step, (uint64_t)(row0 + b));
        window(&ds->train, rng_u64(&rng) % starts, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

void dataset_val_rows(const Dataset *ds, int index, int n_batches, int64_t global_B, int64_t row0, int B, int T,
                      int *inputs, int *targets) {
    size_t span = ds->val.n - (size_t)T - 1;
    size_t windows = (size_t)n_batches * (size_t)global_B;
    for (int b = 0; b < B; b++) {
        size_t w = (size_t)index * (size_t)global_B + (size_t)row0 + (size_t)b;
        size_t start = windows > 1 ? (size_t)((double)w / (double)(windows - 1) * span) : 0;
        window(&ds->val, start, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

// ----------------------------------------------------------------------------
// the data record of a checkpoint (docs/format.md)

#define DATA_RECORD_MAGIC 0x43455244u // "DREC"
#define DATA_RECORD_VERSION 1
#define DATA_RECORD_HEAD 16
#define DATA_ENTRY_HEAD 24
enum { ROLE_DATA_SPEC, ROLE_VAL_SPEC, ROLE_DATA_FILE, ROLE_VAL_FILE, N_ROLES };

static int put_entry(unsigned char **buf, size_t *n, size_t *cap, uint32_t role, const char *path, uint64_t size,
                     uint64_t hash) {
    uint32_t len = (uint32_t)strlen(path);
    size_t need = *n + DATA_ENTRY_HEAD + len;
    if (need > *cap) {
        size_t c = need > 2 * *cap ? need : 2 * *cap;
        unsigned char *q = realloc(*buf, c);
        if (!q) return -1;
        *buf = q, *cap = c;
    }
    unsigned char *p = *buf + *n;
    memcpy(p, &role, 4), memcpy(p + 4, &len, 4), memcpy(p + 8, &size, 8), memcpy(p + 16, &hash, 8);
    memcpy(p + DATA_ENTRY_HEAD, path, len);
    *n = need;
    return 0;
}

int data_record_pack(const TextFile *text, const TextFile *val, unsigned char **out, size_t *n, Error *err) {
    size_t cap = 0, used = DATA_RECORD_HEAD;
    unsigned char *buf = NULL;
    const TextFile *texts[2] = {text, val};
    int rc = 0;
    uint32_t count = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        const TextFile *t = texts[k];
        if (!t) continue;
        if (strlen(t->spec) > DATA_PATH_MAX) return free(buf), err_set(err, "%s: path too long to record", t->spec);
        rc = rc || put_entry(&buf, &used, &cap, k ? ROLE_VAL_SPEC : ROLE_DATA_SPEC, t->spec, t->n, t->fingerprint);
        count++;
        for (int i = 0; i < t->n_docs && !rc; i++, count++) {
            if (strlen(t->docs[i].path) > DATA_PATH_MAX)
                return free(buf), err_set(err, "%s: path too long to record", t->docs[i].path);
            rc = put_entry(&buf, &used, &cap, k ? ROLE_VAL_FILE : ROLE_DATA_FILE, t->docs[i].path, t->docs[i].size,
                           t->docs[i].hash);
        }
    }
    if (rc || !buf) return free(buf), err_set(err, "out of memory");
    uint32_t magic = DATA_RECORD_MAGIC, version = DATA_RECORD_VERSION, zero = 0;
    memcpy(buf, &magic, 4), memcpy(buf + 4, &version, 4), memcpy(buf + 8, &count, 4), memcpy(buf + 12, &zero, 4);
    *out = buf, *n = used;
    return 0;
}

void data_record_free(DataRecord *r) {
    free(r->data_spec), free(r->val_spec);
    for (int i = 0; i < r->n_docs + r->n_val_docs; i++) free(r->docs[i].path);
    free(r->docs);
    memset(r, 0, sizeof *r);
}

// Entries in this order: the --data spec, its files, then optionally the
// --val-data spec and its files; paths 1..4095 bytes without NUL.
int data_record_parse(DataRecord *r, const unsigned char *d, size_t n, const char *name, Error *err) {
    memset(r, 0, sizeof *r);
    uint32_t magic, version, count, zero;
    if (n < DATA_RECORD_HEAD) return err_set(err, "%s: data record: %zu bytes is too short", name, n);
    memcpy(&magic, d, 4), memcpy(&version, d + 4, 4), memcpy(&count, d + 8, 4), memcpy(&zero, d + 12, 4);
    if (magic != DATA_RECORD_MAGIC) return err_set(err, "%s: data record: bad magic 0x%08x", name, magic);
    if (version != DATA_RECORD_VERSION)
        return err_set(err, "%s: data record field version = %u is not supported (this build reads %d)", name,
                       version, DATA_RECORD_VERSION);
    if (zero) return err_set(err, "%s: data record bytes 12..15 are not zero (reserved)", name);
    if (count > (n - DATA_RECORD_HEAD) / DATA_ENTRY_HEAD)
        return err_set(err, "%s: data record field count = %u does not fit in %zu bytes", name, count, n);
    if (!(r->docs = calloc(count ? count : 1, sizeof *r->docs))) return err_set(err, "%s: out of memory", name);
    size_t at = DATA_RECORD_HEAD;
    int last = -1;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t role, len;
        uint64_t size, hash;
        if (n - at < DATA_ENTRY_HEAD) goto bad_size;
        memcpy(&role, d + at, 4), memcpy(&len, d + at + 4, 4), memcpy(&size, d + at + 8, 8), memcpy(&hash, d + at + 16, 8);
        at += DATA_ENTRY_HEAD;
        // roles follow each other: spec, files, (val spec, files); after[role]: what precedes it
        static const int8_t after[] = {[ROLE_DATA_SPEC] = -1, [ROLE_VAL_SPEC] = ROLE_DATA_FILE,
                                       [ROLE_DATA_FILE] = ROLE_DATA_SPEC, [ROLE_VAL_FILE] = ROLE_VAL_SPEC};
        _Static_assert(sizeof after / sizeof after[0] == N_ROLES, "after: a row per ROLE_");
        int ok = role < N_ROLES && (last == after[role] || (last == (int)role && (role == ROLE_DATA_FILE ||
                                                                                  role == ROLE_VAL_FILE)));
        if (!ok) {
            data_record_free(r);
            return err_set(err, "%s: data record entry %u: role %u out of order", name, i, role);
        }
        if (len < 1 || len > DATA_PATH_MAX || len > n - at || memchr(d + at, 0, len)) {
            data_record_free(r);
            return err_set(err, "%s: data record entry %u: path length %u is not 1..%d within the record (no NUL)",
                           name, i, len, DATA_PATH_MAX);
        }
        char *p = malloc(len + 1);
        if (!p) {
            data_record_free(r);
            return err_set(err, "%s: out of memory", name);
        }
        memcpy(p, d + at, len);
        p[len] = 0;
        at += len;
        last = (int)role;
        if (role == ROLE_DATA_SPEC) r->data_spec = p;
        else if (role == ROLE_VAL_SPEC) r->val_spec = p;
        else r->docs[r->n_docs + r->n_val_docs] = (DataDoc){p, size, hash}, *(role == ROLE_DATA_FILE ? &r->n_docs : &r->n_val_docs) += 1;
    }
    if (at != n) goto bad_size;
    if (!r->data_spec || !r->n_docs || (r->val_spec && !r->n_val_docs)) {
        data_record_free(r);
        return err_set(err, "%s: data record: a spec without files", name);
    }
    return 0;
bad_size:
    data_record_free(r);
    return err_set(err, "%s: data record: its entries do not fill its %zu bytes exactly", name, n);
}

static int docs_check(const DataDoc *want, int n_want, const TextFile *t, Error *err) {
    if (t->n_docs != n_want)
        return err_set(err, "%s: %d files, the checkpoint's data had %d", t->spec, t->n_docs, n_want);
    for (int i = 0; i < n_want; i++) {
        const DataDoc *d = &t->docs[i];
        if (d->size == want[i].size && d->hash == want[i].hash) continue;
        const char *what = d->size != want[i].size ? "size" : "fingerprint";
        if (!strcmp(d->path, want[i].path))
            return err_set(err, "%s: changed since the checkpoint (%s differs)", d->path, what);
        return err_set(err, "%s: not the checkpoint's file %d, %s (%s differs)", d->path, i + 1, want[i].path, what);
    }
    return 0;
}

int data_record_check(const DataRecord *r, const TextFile *text, const TextFile *val, Error *err) {
    if (!val != !r->val_spec)
        return err_set(err, "the checkpoint was validated on %s; this run %s", r->val_spec ? r->val_spec : "the last 10% of --data",
                       val ? "gives --val-data" : "lacks --val-data");
    return docs_check(r->docs, r->n_docs, text, err) ||
           (val && docs_check(r->docs + r->n_docs, r->n_val_docs, val, err)) ? -1 : 0;
}
