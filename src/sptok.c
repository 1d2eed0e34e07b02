#include "sptok.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

#define MAX_TOKEN_LENGTH_LIMIT 65536

// ----------------------------------------------------------------------------
// the vocabulary in memory

static int alloc_vocab(SpTok *t, int vocab_size, size_t text_cap) {
    memset(t, 0, sizeof *t);
    t->vocab_size = vocab_size;
    size_t V = (size_t)vocab_size;
    t->scores = calloc(V, sizeof(float));
    t->text = malloc(text_cap ? text_cap : 1);
    t->pieces = calloc(V, sizeof(SpPiece));
    t->sorted = calloc(V, sizeof(SpPiece));
    t->byte_value = calloc(V, sizeof(int16_t));
    if (t->scores && t->text && t->pieces && t->sorted && t->byte_value) return 0;
    sptok_free(t);
    return -1;
}

// What alloc_vocab takes, checked before it is asked for: a model's
// vocab_size goes up to 2^20, the text up to the file's size.
static int vocab_memory_check(int vocab_size, size_t text_cap, const char *path, Error *err) {
    size_t per = sizeof(float) + 2 * sizeof(SpPiece) + sizeof(int16_t);
    char what[4200];
    snprintf(what, sizeof what, "%.4000s: the vocabulary of %d tokens", path, vocab_size);
    return memory_check((size_t)vocab_size * per + text_cap, what, err);
}

void sptok_free(SpTok *t) {
    free(t->scores);
    free(t->text);
    free(t->pieces);
    free(t->sorted);
    free(t->byte_value);
    memset(t, 0, sizeof *t);
}

static int piece_cmp(const SpPiece *a, const unsigned char *s, size_t n) {
    size_t m = a->len < n ? a->len : n;
    int c = m ? memcmp(a->p, s, m) : 0;
    if (c) return c;
    return a->len < n ? -1 : a->len > n ? 1 : 0;
}

static int by_bytes_then_id(const void *x, const void *y) {
    const SpPiece *a = x, *b = y;
    int c = piece_cmp(a, b->p, b->len);
    return c ? c : a->id - b->id;
}

static int hex_digit(unsigned char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// The byte a piece "<0xHH>" stands for, or -1.
static int byte_piece_value(const SpPiece *p) {
    if (p->len != 6 || memcmp(p->p, "<0x", 3) || p->p[5] != '>') return -1;
    int hi = hex_digit(p->p[3]), lo = hex_digit(p->p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Builds the lookup table and the raw-byte maps once the pieces are in.
static void finish_vocab(SpTok *t) {
    int V = t->vocab_size;
    memcpy(t->sorted, t->pieces, (size_t)V * sizeof(SpPiece));
    qsort(t->sorted, (size_t)V, sizeof(SpPiece), by_bytes_then_id);
    for (int b = 0; b < 256; b++) t->raw[b] = (unsigned char)b, t->byte_token[b] = -1;
    for (int i = 0; i < V; i++) {
        int b = byte_piece_value(&t->pieces[i]);
        t->byte_value[i] = (int16_t)b;
        if (b >= 0 && t->byte_token[b] < 0) t->byte_token[b] = i;
    }
    // a vocabulary without <0xHH> pieces (ours) falls back to single-byte pieces
    for (int b = 0; b < 256; b++)
        if (t->byte_token[b] < 0) t->byte_token[b] = sptok_lookup(t, t->raw + b, 1);
}

int sptok_lookup(const SpTok *t, const unsigned char *s, size_t n) {
    size_t lo = 0, hi = (size_t)t->vocab_size; // first piece >= s
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (piece_cmp(&t->sorted[mid], s, n) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < (size_t)t->vocab_size && piece_cmp(&t->sorted[lo], s, n) == 0 ? t->sorted[lo].id : -1;
}

// ----------------------------------------------------------------------------
// files

static int read_entry(SpTok *t, FILE *f, int i, size_t *left, size_t *used, const char *path, Error *err) {
    unsigned char h[8];
    if (*left < 8)
        return err_set(err, "%s: truncated at token %d: the file holds fewer tokens than the model's vocab_size = %d",
                       path, i, t->vocab_size);
    if (read_exact(f, h, 8, path, "a token's score and length", err)) return -1;
    *left -= 8;
    float score;
    int32_t len;
    memcpy(&score, h, 4);
    memcpy(&len, h + 4, 4);
    if (!isfinite(score)) return err_set(err, "%s: token %d: score = %g is not finite", path, i, score);
    if (len < 0 || len > t->max_token_length)
        return err_set(err, "%s: token %d: length = %d is out of range [0, max_token_length = %d]", path, i, len,
                       t->max_token_length);
    if ((size_t)len > *left)
        return err_set(err, "%s: token %d: length = %d runs past the end of the file (%zu bytes left)", path, i,
                       len, *left);
    if (read_exact(f, t->text + *used, (size_t)len, path, "a token's bytes", err)) return -1;
    t->scores[i] = score;
    t->pieces[i] = (SpPiece){t->text + *used, (uint32_t)len, i};
    *used += (size_t)len, *left -= (size_t)len;
    return 0;
}

// The entries in the `left` bytes after the model's (their lengths only), or
// -1 when those bytes do not end on an entry's end.
static int count_rest(FILE *f, size_t left) {
    int n = 0;
    unsigned char h[8];
    while (left >= 8 && fread(h, 1, 8, f) == 8) {
        int32_t len;
        memcpy(&len, h + 4, 4);
        if (len < 0 || (size_t)len > left - 8 || fseek(f, (long)len, SEEK_CUR) || n == INT_MAX) return -1;
        left -= 8 + (size_t)len, n++;
    }
    return left ? -1 : n;
}

static int read_vocab(SpTok *t, FILE *f, size_t size, int vocab_size, const char *path, Error *err) {
    unsigned char h[4];
    int32_t max_len;
    if (size < 4) return err_set(err, "%s: %zu bytes is shorter than the 4-byte tokenizer header", path, size);
    if (read_exact(f, h, 4, path, "the header", err)) return -1;
    memcpy(&max_len, h, 4);
    if (max_len < 1 || max_len > MAX_TOKEN_LENGTH_LIMIT)
        return err_set(err, "%s: tokenizer header field max_token_length = %d is out of range [1, %d]", path,
                       max_len, MAX_TOKEN_LENGTH_LIMIT);
    // the pieces' bytes come from the file, so the file's size bounds them
    size_t cap = (size_t)vocab_size * (size_t)max_len;
    if (vocab_memory_check(vocab_size, cap < size ? cap : size, path, err)) return -1;
    if (alloc_vocab(t, vocab_size, cap < size ? cap : size))
        return err_set(err, "%s: out of memory for %d tokens", path, vocab_size);
    t->max_token_length = max_len;
    size_t left = size - 4, used = 0;
    for (int i = 0; i < vocab_size; i++)
        if (read_entry(t, f, i, &left, &used, path, err)) return -1;
    int rest = count_rest(f, left);
    t->file_tokens = rest < 0 || rest > INT_MAX - vocab_size ? -1 : vocab_size + rest;
    finish_vocab(t);
    return 0;
}

int sptok_load(SpTok *t, const char *path, int vocab_size, Error *err) {
    memset(t, 0, sizeof *t);
    if (vocab_size < 3)
        return err_set(err, "%s: the model's vocab_size = %d is too small for a llama2.c tokenizer (BOS 1, EOS 2)",
                       path, vocab_size);
    size_t size;
    FILE *f = open_regular(path, &size, err);
    if (!f) return -1;
    int rc = read_vocab(t, f, size, vocab_size, path, err);
    fclose(f);
    if (rc) sptok_free(t);
    return rc;
}

int sptok_bytes(SpTok *t, Error *err) {
    if (alloc_vocab(t, 256, 6 + 255)) return err_set(err, "out of memory for the byte vocabulary");
    t->max_token_length = 6, t->file_tokens = 256;
    memcpy(t->text, "<0x00>", 6);
    t->pieces[0] = (SpPiece){t->text, 6, 0};
    for (int b = 1; b < 256; b++) {
        t->text[5 + b] = (unsigned char)b;
        t->pieces[b] = (SpPiece){t->text + 5 + b, 1, b};
    }
    finish_vocab(t);
    return 0;
}

int sptok_save(const SpTok *t, const char *path, Error *err) {
    size_t bytes = 4;
    for (int i = 0; i < t->vocab_size; i++) bytes += 8 + t->pieces[i].len;
    unsigned char *buf = malloc(bytes), *p = buf;
    if (!buf) return err_set(err, "%s: out of memory", path);
    int32_t max_len = t->max_token_length;
    memcpy(p, &max_len, 4), p += 4;
    for (int i = 0; i < t->vocab_size; i++) {
        int32_t len = (int32_t)t->pieces[i].len;
        memcpy(p, &t->scores[i], 4), memcpy(p + 4, &len, 4), p += 8;
        memcpy(p, t->pieces[i].p, t->pieces[i].len), p += t->pieces[i].len;
    }
    Chunk c = {buf, bytes};
    int rc = write_file_atomic(path, &c, 1, err);
    free(buf);
    return rc;
}

// ----------------------------------------------------------------------------
// encoding: llama2.c's greedy merges, with a heap instead of rescanning

typedef struct {
    float score;
    int left, right, ltok, rtok, id; // the pair (left, right) had tokens (ltok, rtok)
} Cand;

// llama2.c merges the best score, the leftmost among equals; a node's index
// only grows to the right, so it orders pairs by position.
static int cand_first(const Cand *a, const Cand *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct {
    int *tok, *prev, *next; // a linked list of symbols; tok -1 = merged away
    Cand *heap;
    size_t n_heap;
    unsigned char *buf; // two pieces side by side
} Merger;

static void heap_push(Merger *g, Cand c) {
    size_t i = g->n_heap++;
    while (i > 0 && cand_first(&c, &g->heap[(i - 1) / 2])) {
        g->heap[i] = g->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    g->heap[i] = c;
}

static Cand heap_pop(Merger *g) {
    Cand top = g->heap[0], last = g->heap[--g->n_heap];
    size_t i = 0, n = g->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_first(&g->heap[c + 1], &g->heap[c])) c++;
        if (!cand_first(&g->heap[c], &last)) break;
        g->heap[i] = g->heap[c];
        i = c;
    }
    if (n) g->heap[i] = last;
    return top;
}

// Offers the merge of node l with its right neighbour, if the vocabulary has it.
static void offer_pair(const SpTok *t, Merger *g, int l) {
    if (l < 0 || g->next[l] < 0) return;
    int r = g->next[l];
    const SpPiece *a = &t->pieces[g->tok[l]], *b = &t->pieces[g->tok[r]];
    memcpy(g->buf, a->p, a->len);
    memcpy(g->buf + a->len, b->p, b->len);
    int id = sptok_lookup(t, g->buf, (size_t)a->len + b->len);
    // llama2.c starts its search at -1e10: scores at or below it never merge
    if (id >= 0 && t->scores[id] > -1e10f) heap_push(g, (Cand){t->scores[id], l, r, g->tok[l], g->tok[r], id});
}

static void merge_all(const SpTok *t, Merger *g, int n) {
    for (int i = 0; i + 1 < n; i++) offer_pair(t, g, i);
    while (g->n_heap) {
        Cand c = heap_pop(g);
        if (g->tok[c.left] != c.ltok || g->next[c.left] != c.right || g->tok[c.right] != c.rtok) continue; // stale
        g->tok[c.left] = c.id;
        g->tok[c.right] = -1;
        g->next[c.left] = g->next[c.right];
        if (g->next[c.right] >= 0) g->prev[g->next[c.right]] = c.left;
        offer_pair(t, g, g->prev[c.left]);
        offer_pair(t, g, c.left);
    }
}

// The initial symbols of s, as llama2.c forms them: each UTF-8 character
// (a byte and up to three continuation bytes) if the vocabulary has it, else
// its bytes one by one. Returns the count, or -1 for a byte without a piece.
static int initial_symbols(const SpTok *t, const unsigned char *s, size_t n, int *tok, Error *err) {
    int k = 0;
    for (size_t i = 0; i < n;) {
        size_t len = 1;
        while (i + len < n && (s[i + len] & 0xC0) == 0x80 && len < 4) len++;
        int id = sptok_lookup(t, s + i, len);
        if (id >= 0) {
            tok[k++] = id;
        } else {
            for (size_t j = 0; j < len; j++) {
                if (t->byte_token[s[i + j]] < 0)
                    return err_set(err, "byte 0x%02x has no token in the tokenizer's first %d entries",
                                   s[i + j], t->vocab_size);
                tok[k++] = t->byte_token[s[i + j]];
            }
        }
        i += len;
    }
    return k;
}

int sptok_encode(const SpTok *t, const unsigned char *text, size_t n, int *tokens, size_t *n_tokens,
                 Error *err) {
    tokens[0] = SP_BOS;
    *n_tokens = 1;
    if (n == 0) return 0;
    if (n > (size_t)1 << 30) return err_set(err, "text of %zu bytes is too long to encode", n);
    size_t ns = n + 1; // the dummy prefix: llama2.c (sentencepiece) encodes " " + text
    // the text, its linked list and heap: some 80 bytes a byte, checked first
    size_t scratch = ns * (1 + 2 * sizeof(int) + 3 * sizeof(Cand)) + 2 * (size_t)t->max_token_length;
    char what[96];
    snprintf(what, sizeof what, "encoding %zu bytes (llama2.c tokenizer)", n);
    if (memory_check(scratch, what, err)) return -1;
    unsigned char *s = malloc(ns);
    Merger g = {.tok = tokens + 1, .prev = malloc(ns * sizeof(int)), .next = malloc(ns * sizeof(int)),
                .heap = malloc(3 * ns * sizeof(Cand)), .buf = malloc(2 * (size_t)t->max_token_length)};
    int rc = -1, k = -1;
    if (!s || !g.prev || !g.next || !g.heap || !g.buf) {
        err_set(err, "out of memory encoding %zu bytes", n);
    } else {
        s[0] = ' ';
        memcpy(s + 1, text, n);
        k = initial_symbols(t, s, ns, g.tok, err);
    }
    if (k >= 0) {
        for (int i = 0; i < k; i++) g.prev[i] = i - 1, g.next[i] = i + 1 < k ? i + 1 : -1;
        merge_all(t, &g, k);
        size_t w = 0; // compact the list in place: node 0 is the head, nodes only move left
        for (int i = k > 0 ? 0 : -1; i >= 0; i = g.next[i]) g.tok[w++] = g.tok[i];
        *n_tokens = 1 + w;
        rc = 0;
    }
    free(s), free(g.prev), free(g.next), free(g.heap), free(g.buf);
    return rc;
}

size_t sptok_decode(const SpTok *t, int prev, int token, const unsigned char **bytes) {
    if (token < 0 || token >= t->vocab_size) return 0;
    if (t->byte_value[token] >= 0) {
        *bytes = &t->raw[t->byte_value[token]];
        return 1;
    }
    const SpPiece *p = &t->pieces[token];
    *bytes = p->p;
    // sentencepiece drops the dummy prefix's space at the start of a text
    if (prev == SP_BOS && p->len > 0 && p->p[0] == ' ') {
        (*bytes)++;
        return p->len - 1;
    }
    return p->len;
}
