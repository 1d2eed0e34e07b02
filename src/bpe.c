#include "bpe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file formats are little-endian");

// ----------------------------------------------------------------------------
// pre-split

enum { C_LETTER, C_DIGIT, C_SPACE, C_NEWLINE, C_OTHER };

// The class of every byte (a constant table: the pre-split rule in bpe.h).
#define R10(x) x, x, x, x, x, x, x, x, x, x
static const unsigned char BYTE_CLASS[256] = {
    C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, // 0..8
    C_NEWLINE, C_NEWLINE, C_NEWLINE, C_NEWLINE, C_NEWLINE,                           // \t \n \v \f \r
    R10(C_OTHER), C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, // 14..31
    C_SPACE, R10(C_OTHER), C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER,              // ' ', !../
    R10(C_DIGIT),                                                                    // 0..9
    C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER,                   // :..@
    R10(C_LETTER), R10(C_LETTER), C_LETTER, C_LETTER, C_LETTER, C_LETTER, C_LETTER, C_LETTER, // A..Z
    C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER,                            // [..`
    R10(C_LETTER), R10(C_LETTER), C_LETTER, C_LETTER, C_LETTER, C_LETTER, C_LETTER, C_LETTER, // a..z
    C_OTHER, C_OTHER, C_OTHER, C_OTHER, C_OTHER,                                     // {..127
    R10(R10(C_LETTER)), R10(C_LETTER), R10(C_LETTER), C_LETTER, C_LETTER, C_LETTER, C_LETTER, C_LETTER,
    C_LETTER, C_LETTER, C_LETTER,                                                    // 128..255
};
#undef R10

static int byte_class(unsigned char c) { return BYTE_CLASS[c]; }

static size_t run_len(const unsigned char *t, size_t n, size_t i, int cls) {
    while (i < n && byte_class(t[i]) == cls) i++;
    return i;
}

size_t bpe_word_len(const unsigned char *t, size_t n) {
    // a word is cut at BPE_MAX_TOKEN_BYTES anyway: looking one byte further
    // decides every rule, and a long run costs no more than a short one
    if (n > BPE_MAX_TOKEN_BYTES + 1) n = BPE_MAX_TOKEN_BYTES + 1;
    size_t end;
    int c0 = byte_class(t[0]);
    if (c0 == C_SPACE && n > 1 && byte_class(t[1]) != C_SPACE && byte_class(t[1]) != C_NEWLINE) {
        end = run_len(t, n, 1, byte_class(t[1])); // " word"
    } else {
        end = run_len(t, n, 0, c0);
        // spaces before a word: the last one goes with the word
        if (c0 == C_SPACE && end < n && end > 1 && byte_class(t[end]) != C_NEWLINE) end--;
    }
    return end < BPE_MAX_TOKEN_BYTES ? end : BPE_MAX_TOKEN_BYTES;
}

size_t bpe_split_point(const unsigned char *t, size_t n, size_t from) {
    // a newline-like byte after a byte of another class ends every word (no
    // class but newline continues into it), so a word starts there whatever
    // came before
    if (!from) return 0;
    for (size_t i = from; i < n; i++)
        if (byte_class(t[i]) == C_NEWLINE && byte_class(t[i - 1]) != C_NEWLINE) return i;
    return n;
}

// ----------------------------------------------------------------------------
// word map: distinct words (pointing into a text that outlives the map) -> two ints

typedef struct {
    uint64_t hash; // 0 = empty slot
    const unsigned char *word;
    uint32_t len;
    int32_t a, b;
} WordSlot; // one cache line holds two: a probe touches one line

typedef struct {
    WordSlot *s;
    size_t cap, n;
} WordMap;

static void wordmap_free(WordMap *m) {
    free(m->s);
    memset(m, 0, sizeof *m);
}

static int wordmap_alloc(WordMap *m, size_t cap) {
    m->cap = cap, m->n = 0;
    m->s = calloc(cap, sizeof *m->s);
    return m->s ? 0 : -1;
}

static uint64_t word_hash(const unsigned char *w, size_t len) { return fnv1a64(w, len, FNV1A64_INIT) | 1; }

// The slot of word w: its own, or the empty one where it would go.
static size_t wordmap_slot(const WordMap *m, const unsigned char *w, uint32_t len, uint64_t h) {
    size_t i = h & (m->cap - 1);
    while (m->s[i].hash && !(m->s[i].hash == h && m->s[i].len == len && !memcmp(m->s[i].word, w, len)))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int wordmap_grow(WordMap *m) {
    WordMap big;
    if (wordmap_alloc(&big, m->cap * 2)) return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->s[i].hash) big.s[wordmap_slot(&big, m->s[i].word, m->s[i].len, m->s[i].hash)] = m->s[i];
    big.n = m->n;
    wordmap_free(m);
    *m = big;
    return 0;
}

// Finds or inserts w; *fresh says which. Returns the slot, or -1 (out of memory).
static long wordmap_get(WordMap *m, const unsigned char *w, uint32_t len, int *fresh) {
    uint64_t h = word_hash(w, len);
    size_t i = wordmap_slot(m, w, len, h);
    *fresh = !m->s[i].hash;
    if (!*fresh) return (long)i;
    if (2 * (m->n + 1) > m->cap) {
        if (wordmap_grow(m)) return -1;
        i = wordmap_slot(m, w, len, h);
    }
    m->s[i] = (WordSlot){.hash = h, .word = w, .len = len};
    m->n++;
    return (long)i;
}

// ----------------------------------------------------------------------------
// merge lookup (left, right) -> merged token, for encoding and validation

static uint64_t pair_key(int32_t l, int32_t r) { return ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1; }

static size_t pair_hash(uint64_t k) { return (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 17); }

static int32_t merge_lookup(const Bpe *b, int32_t l, int32_t r) {
    uint64_t k = pair_key(l, r);
    for (size_t i = pair_hash(k) & (b->pair_cap - 1);; i = (i + 1) & (b->pair_cap - 1)) {
        if (b->pair_keys[i] == k) return b->pair_ids[i];
        if (!b->pair_keys[i]) return -1;
    }
}

// ----------------------------------------------------------------------------
// tokenizer file

static uint32_t rd_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static int32_t rd_i32(const unsigned char *p) { int32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

void bpe_free(Bpe *b) {
    free(b->merges), free(b->tok_off), free(b->tok_len), free(b->bytes);
    free(b->pair_keys), free(b->pair_ids), free(b->byte_pair), free(b->blob);
    memset(b, 0, sizeof *b);
}

// Builds the token table and the merge lookup from validated header fields.
static int bpe_build(Bpe *b, const unsigned char *m, const char *name, Error *err) {
    int V = b->vocab_size;
    for (b->pair_cap = 16; b->pair_cap < 2 * (size_t)b->n_merges; b->pair_cap *= 2) {}
    // at most some 17 MB (65536 tokens), checked all the same: the limit may be nearly spent
    size_t bytes = ((size_t)b->n_merges * 2 + 1) * sizeof(int32_t) + (size_t)V * (4 + 2 + BPE_MAX_TOKEN_BYTES) +
                   b->pair_cap * (sizeof(uint64_t) + sizeof(int32_t)) + 65536 * sizeof(int32_t);
    char what[4200];
    snprintf(what, sizeof what, "%.4000s: the vocabulary of %d tokens", name, V);
    if (memory_check(bytes, what, err)) return -1;
    b->merges = malloc(((size_t)b->n_merges * 2 + 1) * sizeof(int32_t));
    b->tok_off = malloc((size_t)V * sizeof(uint32_t));
    b->tok_len = malloc((size_t)V * sizeof(uint16_t));
    b->bytes = malloc((size_t)V * BPE_MAX_TOKEN_BYTES);
    b->pair_keys = calloc(b->pair_cap, sizeof(uint64_t));
    b->pair_ids = malloc(b->pair_cap * sizeof(int32_t));
    b->byte_pair = malloc(65536 * sizeof(int32_t));
    if (!b->byte_pair || !b->merges || !b->tok_off || !b->tok_len || !b->bytes || !b->pair_keys || !b->pair_ids)
        return err_set(err, "%s: out of memory for %d tokens", name, V);
    size_t used = 0;
    for (int t = 0; t < 256; t++) b->tok_off[t] = (uint32_t)t, b->tok_len[t] = 1, b->bytes[t] = (unsigned char)t;
    used = 256;
    for (int i = 0; i < 65536; i++) b->byte_pair[i] = -1;
    for (int i = 0; i < b->n_merges; i++) {
        int32_t l = rd_i32(m + 8 * (size_t)i), r = rd_i32(m + 8 * (size_t)i + 4), id = 256 + i;
        if (l < 0 || l >= id || r < 0 || r >= id)
            return err_set(err, "%s: merge %d (token %d) refers to token %d, not defined before it", name, i, id,
                           l < 0 || l >= id ? l : r);
        size_t len = (size_t)b->tok_len[l] + b->tok_len[r];
        if (len > BPE_MAX_TOKEN_BYTES)
            return err_set(err, "%s: merge %d (token %d) would be %zu bytes long, over the limit of %d", name, i,
                           id, len, BPE_MAX_TOKEN_BYTES);
        uint64_t k = pair_key(l, r);
        size_t s = pair_hash(k) & (b->pair_cap - 1);
        while (b->pair_keys[s] && b->pair_keys[s] != k) s = (s + 1) & (b->pair_cap - 1);
        if (b->pair_keys[s])
            return err_set(err, "%s: merge %d (token %d) repeats the pair (%d, %d) of token %d", name, i, id, l, r,
                           b->pair_ids[s]);
        b->pair_keys[s] = k, b->pair_ids[s] = id;
        if (l < 256 && r < 256) b->byte_pair[l << 8 | r] = id;
        b->merges[2 * i] = l, b->merges[2 * i + 1] = r;
        b->tok_off[id] = (uint32_t)used, b->tok_len[id] = (uint16_t)len;
        memcpy(b->bytes + used, b->bytes + b->tok_off[l], b->tok_len[l]);
        memcpy(b->bytes + used + b->tok_len[l], b->bytes + b->tok_off[r], b->tok_len[r]);
        used += len;
    }
    return 0;
}

// The first 12 bytes both our BPE files start with: magic, version, vocab size.
typedef struct {
    const char *what, *not_a; // "tokenizer" / "a BPE tokenizer file", for messages
    uint32_t magic;
    int32_t version;
    int header_bytes;
} FileKind;
static const FileKind BPE_FILE = {"tokenizer", "a BPE tokenizer file", BPE_MAGIC, BPE_VERSION, BPE_HEADER_BYTES};
static const FileKind TOKCACHE_FILE = {"token cache", "a token cache", TOKCACHE_MAGIC, TOKCACHE_VERSION,
                                       TOKCACHE_HEADER_BYTES};

static int parse_head(const unsigned char *d, size_t n, const char *name, const FileKind *k, int32_t *V, Error *err) {
    if (n < (size_t)k->header_bytes)
        return err_set(err, "%s: %zu bytes is shorter than the %d-byte %s header", name, n, k->header_bytes, k->what);
    uint32_t magic = rd_u32(d);
    if (magic != k->magic) return err_set(err, "%s: bad magic 0x%08x (not %s)", name, magic, k->not_a);
    int32_t version = rd_i32(d + 4);
    if (version != k->version)
        return err_set(err, "%s: %s field version = %d is not supported (this build reads version %d)", name, k->what,
                       version, k->version);
    *V = rd_i32(d + 8);
    if (*V < 256 || *V > BPE_MAX_VOCAB)
        return err_set(err, "%s: %s field vocab_size = %d is not in 256..%d", name, k->what, *V, BPE_MAX_VOCAB);
    return 0;
}

int bpe_parse(Bpe *b, const unsigned char *data, size_t n, const char *name, Error *err) {
    memset(b, 0, sizeof *b);
    int32_t V = 0;
    if (parse_head(data, n, name, &BPE_FILE, &V, err)) return -1;
    int32_t rule = rd_i32(data + 12);
    if (rule != BPE_SPLIT_RULE)
        return err_set(err, "%s: tokenizer field split_rule = %d is not supported (this build knows %d)", name, rule,
                       BPE_SPLIT_RULE);
    size_t want;
    if (size_mul((size_t)(V - 256), 8, &want) || size_add(want, BPE_HEADER_BYTES, &want) || n != want)
        return err_set(err, "%s: tokenizer file is %zu bytes but vocab_size = %d implies %zu (%s)", name, n, V, want,
                       n < want ? "truncated" : "trailing bytes");
    b->vocab_size = V, b->n_merges = V - 256;
    b->text_size = rd_u64(data + 16), b->text_hash = rd_u64(data + 24);
    b->checksum = fnv1a64(data, n, FNV1A64_INIT);
    if (bpe_build(b, data + BPE_HEADER_BYTES, name, err)) {
        bpe_free(b);
        return -1;
    }
    if (!(b->blob = malloc(n))) {
        bpe_free(b);
        return err_set(err, "%s: out of memory", name);
    }
    memcpy(b->blob, data, n);
    b->blob_bytes = n;
    return 0;
}

int bpe_load(Bpe *b, const char *path, Error *err) {
    size_t n;
    memset(b, 0, sizeof *b);
    FILE *f = open_regular(path, &n, err);
    if (!f) return -1;
    if (n >= LARGE_BYTES && memory_check(n, path, err)) return fclose(f), -1;
    unsigned char *data = malloc(n ? n : 1);
    int rc = !data ? err_set(err, "%s: out of memory", path) : read_exact(f, data, n, path, "the tokenizer", err);
    fclose(f);
    if (!rc) rc = bpe_parse(b, data, n, path, err);
    free(data);
    return rc;
}

int bpe_save(const Bpe *b, const char *path, Error *err) {
    Chunk c = {b->blob, b->blob_bytes};
    return write_file_atomic(path, &c, 1, err);
}

// Serializes merges and parses the result: one path builds every Bpe.
static int bpe_from_merges(Bpe *b, const int32_t *merges, int n_merges, uint64_t text_size, uint64_t text_hash,
                           Error *err) {
    size_t n = BPE_HEADER_BYTES + 8 * (size_t)n_merges;
    unsigned char *blob = malloc(n);
    if (!blob) return err_set(err, "out of memory");
    uint32_t magic = BPE_MAGIC;
    int32_t head[3] = {BPE_VERSION, 256 + n_merges, BPE_SPLIT_RULE};
    memcpy(blob, &magic, 4);
    memcpy(blob + 4, head, 12);
    memcpy(blob + 16, &text_size, 8);
    memcpy(blob + 24, &text_hash, 8);
    memcpy(blob + BPE_HEADER_BYTES, merges, 8 * (size_t)n_merges);
    int rc = bpe_parse(b, blob, n, "trained tokenizer", err);
    free(blob);
    return rc;
}

// ----------------------------------------------------------------------------
// training

typedef struct {
    uint64_t key;     // pair_key(left, right)
    int64_t count;    // sum of the frequencies of the words holding it, once per occurrence
    int32_t *words;   // words that held it when it appeared (may repeat, may be stale)
    size_t n_words, cap_words;
    uint32_t stamp;   // merge step that last touched it
} Pair;

typedef struct {
    int64_t count;
    uint64_t key;
} HeapItem;

typedef struct {
    // distinct words: frequency and current tokens (in place, shrinking)
    int64_t *freq;
    int32_t *tok;          // all words' tokens
    size_t *tok_start;
    uint32_t *n_tok, *stamp;
    size_t n_words;
    // pairs and their index
    Pair *pairs;
    size_t n_pairs, cap_pairs;
    uint64_t *slot_key;    // open addressing: pair key -> index in pairs
    uint32_t *slot_idx;
    size_t n_slots;
    HeapItem *heap;        // max by count, then min key; stale entries skipped on pop
    size_t n_heap, cap_heap;
    uint32_t *touched;     // pairs whose count changed in this merge
    size_t n_touched, cap_touched;
} Trainer;

static void trainer_free(Trainer *t) {
    for (size_t i = 0; i < t->n_pairs; i++) free(t->pairs[i].words);
    free(t->freq), free(t->tok), free(t->tok_start), free(t->n_tok), free(t->stamp);
    free(t->pairs), free(t->slot_key), free(t->slot_idx), free(t->heap), free(t->touched);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    if (c * elem >= LARGE_BYTES && memory_check(c * elem, "", NULL)) return -1;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q, *cap = c;
    return 0;
}

static int pairs_rehash(Trainer *t) {
    size_t n = t->n_slots ? t->n_slots * 2 : 1024;
    uint64_t *k = calloc(n, sizeof *k);
    uint32_t *x = malloc(n * sizeof *x);
    if (!k || !x) {
        free(k), free(x);
        return -1;
    }
    for (size_t i = 0; i < t->n_pairs; i++) {
        size_t s = pair_hash(t->pairs[i].key) & (n - 1);
        while (k[s]) s = (s + 1) & (n - 1);
        k[s] = t->pairs[i].key, x[s] = (uint32_t)i;
    }
    free(t->slot_key), free(t->slot_idx);
    t->slot_key = k, t->slot_idx = x, t->n_slots = n;
    return 0;
}

// Index of the pair, created with count 0 if new; -1 when out of memory.
static long pair_get(Trainer *t, uint64_t key) {
    size_t s = pair_hash(key) & (t->n_slots - 1);
    while (t->slot_key[s] && t->slot_key[s] != key) s = (s + 1) & (t->n_slots - 1);
    if (t->slot_key[s]) return t->slot_idx[s];
    if (2 * (t->n_pairs + 1) > t->n_slots) {
        if (pairs_rehash(t)) return -1;
        s = pair_hash(key) & (t->n_slots - 1);
        while (t->slot_key[s]) s = (s + 1) & (t->n_slots - 1);
    }
    if (grow((void **)&t->pairs, &t->cap_pairs, t->n_pairs + 1, sizeof(Pair))) return -1;
    t->pairs[t->n_pairs] = (Pair){.key = key};
    t->slot_key[s] = key, t->slot_idx[s] = (uint32_t)t->n_pairs;
    return (long)t->n_pairs++;
}

static int heap_better(const HeapItem *a, const HeapItem *b) {
    return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static int heap_push(Trainer *t, int64_t count, uint64_t key) {
    if (grow((void **)&t->heap, &t->cap_heap, t->n_heap + 1, sizeof(HeapItem))) return -1;
    size_t i = t->n_heap++;
    HeapItem x = {count, key};
    while (i > 0 && heap_better(&x, &t->heap[(i - 1) / 2])) {
        t->heap[i] = t->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->heap[i] = x;
    return 0;
}

static HeapItem heap_pop(Trainer *t) {
    HeapItem top = t->heap[0], x = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_better(&t->heap[c + 1], &t->heap[c])) c++;
        if (!heap_better(&t->heap[c], &x)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n) t->heap[i] = x;
    return top;
}

// Adds `sign` * freq of word w to each of its pairs; new pairs holding `fresh` list w.
static int word_pairs(Trainer *t, size_t w, int sign, int32_t fresh, uint32_t stamp) {
    const int32_t *tk = t->tok + t->tok_start[w];
    for (uint32_t i = 0; i + 1 < t->n_tok[w]; i++) {
        long p = pair_get(t, pair_key(tk[i], tk[i + 1]));
        if (p < 0) return -1;
        Pair *q = &t->pairs[p];
        q->count += sign * t->freq[w];
        if (sign > 0 && (tk[i] == fresh || tk[i + 1] == fresh)) {
            if (grow((void **)&q->words, &q->cap_words, q->n_words + 1, sizeof(int32_t))) return -1;
            q->words[q->n_words++] = (int32_t)w;
        }
        if (q->stamp != stamp) {
            q->stamp = stamp;
            if (grow((void **)&t->touched, &t->cap_touched, t->n_touched + 1, sizeof(uint32_t))) return -1;
            t->touched[t->n_touched++] = (uint32_t)p;
        }
    }
    return 0;
}

// Replaces every (l, r) in word w by id, left to right.
static void word_merge(Trainer *t, size_t w, int32_t l, int32_t r, int32_t id) {
    int32_t *tk = t->tok + t->tok_start[w];
    uint32_t n = t->n_tok[w], j = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + 1 < n && tk[i] == l && tk[i + 1] == r) tk[j++] = id, i++;
        else tk[j++] = tk[i];
    }
    t->n_tok[w] = j;
}

// The distinct words of the text with their frequencies, as byte tokens.
static int trainer_words(Trainer *t, const unsigned char *text, size_t n) {
    WordMap m;
    if (wordmap_alloc(&m, 1 << 16)) return -1;
    size_t cap = 0, total = 0;
    for (size_t i = 0; i < n;) {
        size_t len = bpe_word_len(text + i, n - i);
        int fresh;
        long s = wordmap_get(&m, text + i, (uint32_t)len, &fresh);
        if (s < 0 || (fresh && grow((void **)&t->freq, &cap, m.n, sizeof(int64_t)))) {
            wordmap_free(&m);
            return -1;
        }
        if (fresh) m.s[s].a = (int32_t)(m.n - 1), t->freq[m.n - 1] = 0, total += len;
        t->freq[m.s[s].a]++;
        i += len;
    }
    t->n_words = m.n;
    t->tok = malloc((total ? total : 1) * sizeof(int32_t));
    t->tok_start = malloc((m.n + 1) * sizeof(size_t));
    t->n_tok = malloc((m.n + 1) * sizeof(uint32_t));
    t->stamp = calloc(m.n + 1, sizeof(uint32_t));
    if (!t->tok || !t->tok_start || !t->n_tok || !t->stamp) {
        wordmap_free(&m);
        return -1;
    }
    for (size_t s = 0; s < m.cap; s++) // word ids were given in order of first appearance
        if (m.s[s].hash) t->n_tok[m.s[s].a] = m.s[s].len;
    // token storage in word-id order, so the layout does not depend on the hash table
    for (size_t w = 0, off = 0; w < m.n; w++) t->tok_start[w] = off, off += t->n_tok[w];
    for (size_t s = 0; s < m.cap; s++) {
        if (!m.s[s].hash) continue;
        size_t w = (size_t)m.s[s].a;
        for (uint32_t k = 0; k < m.s[s].len; k++) t->tok[t->tok_start[w] + k] = m.s[s].word[k];
    }
    wordmap_free(&m);
    return 0;
}

static int push_touched(Trainer *t) {
    for (size_t i = 0; i < t->n_touched; i++) {
        const Pair *q = &t->pairs[t->touched[i]];
        if (q->count > 0 && heap_push(t, q->count, q->key)) return -1;
    }
    t->n_touched = 0;
    return 0;
}

// One merge: the best pair becomes token id. Returns 1 when no pair is left.
static int train_step(Trainer *t, int32_t id, int32_t *merge, Error *err) {
    for (;;) {
        if (!t->n_heap) return 1;
        HeapItem top = heap_pop(t);
        long p = pair_get(t, top.key);
        if (p < 0) return err_set(err, "out of memory");
        if (t->pairs[p].count != top.count || top.count <= 0) continue; // stale entry
        int32_t l = (int32_t)((top.key - 1) >> 32), r = (int32_t)(uint32_t)(top.key - 1);
        merge[0] = l, merge[1] = r;
        uint32_t stamp = (uint32_t)id; // ids only grow: unique per step
        int32_t *words = t->pairs[p].words;
        size_t n_words = t->pairs[p].n_words;
        t->pairs[p].words = NULL, t->pairs[p].n_words = t->pairs[p].cap_words = 0;
        int rc = 0;
        for (size_t k = 0; k < n_words && !rc; k++) {
            size_t w = (size_t)words[k];
            if (t->stamp[w] == stamp) continue;
            t->stamp[w] = stamp;
            rc = word_pairs(t, w, -1, -1, stamp);
            word_merge(t, w, l, r, id);
            rc = rc || word_pairs(t, w, +1, id, stamp);
        }
        free(words);
        if (rc || push_touched(t)) return err_set(err, "out of memory");
        return 0;
    }
}

int bpe_train(Bpe *b, const unsigned char *text, size_t n, int vocab_size, Error *err) {
    return bpe_train_as(b, text, n, vocab_size, n, fnv1a64(text, n, FNV1A64_INIT), NULL, err);
}

int bpe_train_as(Bpe *b, const unsigned char *text, size_t n, int vocab_size, uint64_t text_size, uint64_t text_hash,
                 const BpeProgress *progress, Error *err) {
    memset(b, 0, sizeof *b);
    if (vocab_size < 256 || vocab_size > BPE_MAX_VOCAB)
        return err_set(err, "vocab size %d is not in 256..%d", vocab_size, BPE_MAX_VOCAB);
    Trainer t = {0};
    int n_merges = vocab_size - 256, done = 0, rc = 0;
    int32_t *merges = malloc(((size_t)n_merges * 2 + 1) * sizeof(int32_t));
    if (!merges || trainer_words(&t, text, n) || pairs_rehash(&t)) {
        rc = err_set(err, "out of memory");
    } else {
        for (size_t w = 0; w < t.n_words && !rc; w++) rc = word_pairs(&t, w, +1, -1, 1);
        // every word listed under each of its pairs
        for (size_t w = 0; w < t.n_words && !rc; w++) {
            const int32_t *tk = t.tok + t.tok_start[w];
            for (uint32_t i = 0; i + 1 < t.n_tok[w] && !rc; i++) {
                Pair *q = &t.pairs[pair_get(&t, pair_key(tk[i], tk[i + 1]))];
                rc = grow((void **)&q->words, &q->cap_words, q->n_words + 1, sizeof(int32_t));
                if (!rc) q->words[q->n_words++] = (int32_t)w;
            }
        }
        if (rc || push_touched(&t)) rc = err_set(err, "out of memory");
        for (; !rc && done < n_merges; done++) {
            if (progress) progress->fn(progress->ctx, (size_t)done, (size_t)n_merges);
            int s = train_step(&t, 256 + done, merges + 2 * done, err);
            if (s == 1)
                rc = err_set(err, "the %zu-byte text has only %d pairs to merge: vocab size at most %d", n, done,
                             256 + done);
            else if (s)
                rc = -1;
        }
    }
    if (!rc) rc = bpe_from_merges(b, merges, n_merges, text_size, text_hash, err);
    free(merges);
    trainer_free(&t);
    return rc;
}

// ----------------------------------------------------------------------------
// encode and decode

static int32_t rank_of(const Bpe *b, int32_t l, int32_t r) {
    int32_t id = l < 256 && r < 256 ? b->byte_pair[l << 8 | r] : merge_lookup(b, l, r);
    return id < 0 ? INT32_MAX : id;
}

// Applies merges by rank to one word (at most BPE_MAX_TOKEN_BYTES bytes);
// returns the token count. Each round merges every occurrence of the
// lowest-ranked pair left to right, as training did; a pair made by that merge
// holds the new token, so its rank is higher and it waits for a later round.
static uint32_t encode_word(const Bpe *b, const unsigned char *w, uint32_t len, int32_t *tk) {
    int32_t rank[BPE_MAX_TOKEN_BYTES]; // rank[i]: of the pair (tk[i], tk[i+1])
    for (uint32_t i = 0; i < len; i++) tk[i] = w[i];
    for (uint32_t i = 0; i + 1 < len; i++) rank[i] = rank_of(b, tk[i], tk[i + 1]);
    uint32_t n = len;
    while (n > 1) {
        int32_t best = INT32_MAX;
        for (uint32_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) best = rank[i];
        if (best == INT32_MAX) break;
        for (uint32_t i = 0; i + 1 < n; i++) {
            if (rank[i] != best) continue;
            tk[i] = best;
            memmove(tk + i + 1, tk + i + 2, (n - i - 2) * sizeof(int32_t));
            memmove(rank + i + 1, rank + i + 2, (n - i - 2) * sizeof(int32_t));
            n--;
            if (i > 0) rank[i - 1] = rank_of(b, tk[i - 1], tk[i]);
            if (i + 1 < n) rank[i] = rank_of(b, tk[i], tk[i + 1]);
        }
    }
    return n;
}

int bpe_encode(const Bpe *b, const unsigned char *text, size_t n, int *tokens, size_t *n_tokens, Error *err) {
    *n_tokens = 0;
    if (b->n_merges == 0) { // no merges: bytes
        for (size_t i = 0; i < n; i++) tokens[i] = text[i];
        *n_tokens = n;
        return 0;
    }
    // words repeat: each distinct word is encoded once; the map points at its
    // tokens (a, b = start, count) in a pool small enough to stay in cache
    WordMap cache;
    size_t cap = 1024, pool_n = 0, pool_cap = 0;
    int32_t *pool = NULL;
    while (cap < n / 32 && cap < ((size_t)1 << 16)) cap *= 2; // distinct words are few; it grows if not
    if (wordmap_alloc(&cache, cap)) return err_set(err, "out of memory");
    size_t out = 0;
    int32_t tk[BPE_MAX_TOKEN_BYTES];
    for (size_t i = 0; i < n;) {
        uint32_t len = (uint32_t)bpe_word_len(text + i, n - i);
        int fresh;
        // the pool is capped at 2^24 tokens; later new words are encoded each time
        long s = pool_n < ((size_t)1 << 24) ? wordmap_get(&cache, text + i, len, &fresh) : -2;
        if (s == -1 || (s >= 0 && fresh && grow((void **)&pool, &pool_cap, pool_n + len, sizeof(int32_t)))) {
            wordmap_free(&cache);
            free(pool);
            return err_set(err, "out of memory");
        }
        const int32_t *src = tk;
        uint32_t k;
        if (s >= 0 && !fresh) {
            src = pool + cache.s[s].a, k = (uint32_t)cache.s[s].b;
        } else {
            k = encode_word(b, text + i, len, tk);
            if (s >= 0) {
                memcpy(pool + pool_n, tk, k * sizeof(int32_t));
                cache.s[s].a = (int32_t)pool_n, cache.s[s].b = (int32_t)k;
                pool_n += k;
            }
        }
        for (uint32_t j = 0; j < k; j++) tokens[out + j] = src[j];
        out += k;
        i += len;
    }
    free(pool);
    wordmap_free(&cache);
    *n_tokens = out;
    return 0;
}

size_t bpe_decode(const Bpe *b, int token, const unsigned char **bytes) {
    if (token < 0 || token >= b->vocab_size) return 0;
    *bytes = b->bytes + b->tok_off[token];
    return b->tok_len[token];
}

// ----------------------------------------------------------------------------
// token cache

uint64_t tokcache_hash(const uint16_t *tokens, size_t n) { return fnv1a64(tokens, n * sizeof(uint16_t), FNV1A64_INIT); }

int tokcache_save(const char *path, const TokCacheInfo *info, const uint16_t *tokens, Error *err) {
    unsigned char h[TOKCACHE_HEADER_BYTES] = {0};
    uint32_t magic = TOKCACHE_MAGIC;
    int32_t version = TOKCACHE_VERSION, V = info->vocab_size;
    uint64_t hash = tokcache_hash(tokens, (size_t)info->n_tokens);
    memcpy(h, &magic, 4), memcpy(h + 4, &version, 4), memcpy(h + 8, &V, 4);
    memcpy(h + 16, &info->n_tokens, 8), memcpy(h + 24, &info->tokenizer_checksum, 8);
    memcpy(h + 32, &info->text_size, 8), memcpy(h + 40, &info->text_hash, 8), memcpy(h + 48, &hash, 8);
    Chunk c[] = {{h, sizeof h}, {tokens, (size_t)info->n_tokens * sizeof(uint16_t)}};
    return write_file_atomic(path, c, 2, err);
}

int tokcache_parse(const unsigned char *d, size_t n, const char *name, TokCacheInfo *info, const uint16_t **tokens,
                   Error *err) {
    *tokens = NULL;
    // version 1 had no checksum: its tokens cannot be verified, so it is rebuilt
    if (n >= 8 && rd_u32(d) == TOKCACHE_MAGIC && rd_i32(d + 4) == 1)
        return err_set(err, "%s: token cache version 1 (written before the checksum)", name), 1;
    int32_t V = 0;
    if (parse_head(d, n, name, &TOKCACHE_FILE, &V, err)) return -1;
    int32_t pad = rd_i32(d + 12);
    if (pad) return err_set(err, "%s: token cache bytes 12..15 are not zero (reserved)", name);
    info->vocab_size = V;
    info->n_tokens = rd_u64(d + 16), info->tokenizer_checksum = rd_u64(d + 24);
    info->text_size = rd_u64(d + 32), info->text_hash = rd_u64(d + 40), info->tokens_hash = rd_u64(d + 48);
    size_t want;
    if (info->n_tokens > SIZE_MAX || size_mul((size_t)info->n_tokens, 2, &want) ||
        size_add(want, TOKCACHE_HEADER_BYTES, &want))
        return err_set(err, "%s: token cache field n_tokens = %llu is too large", name,
                       (unsigned long long)info->n_tokens);
    if (n != want)
        return err_set(err, "%s: token cache is %zu bytes but n_tokens = %llu implies %zu (%s)", name, n,
                       (unsigned long long)info->n_tokens, want, n < want ? "truncated" : "trailing bytes");
    if (info->n_tokens > info->text_size)
        return err_set(err, "%s: token cache field n_tokens = %llu exceeds text_size = %llu (a token is a byte or more)",
                       name, (unsigned long long)info->n_tokens, (unsigned long long)info->text_size);
    size_t nt = (size_t)info->n_tokens;
    const uint16_t *t = (const uint16_t *)(const void *)(d + TOKCACHE_HEADER_BYTES); // d is 8-aligned (mmap, malloc)
    for (size_t i = 0; i < nt; i++)
        if (t[i] >= V) return err_set(err, "%s: token id %u at index %zu is >= vocab_size %d", name, t[i], i, V);
    uint64_t hash = tokcache_hash(t, nt);
    if (hash != info->tokens_hash)
        return err_set(err, "%s: the tokens are damaged (checksum %016llx, the header says %016llx)", name,
                       (unsigned long long)hash, (unsigned long long)info->tokens_hash), 1;
    *tokens = t;
    return 0;
}
