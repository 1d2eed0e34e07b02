// libFuzzer target: the llama2.c tokenizer loader (src/sptok.c), and the
// encoder and decoder on whatever it loads. Each input is read with a few
// model vocab sizes (the loader reads only the first vocab_size entries, so
// each size parses a different prefix). Properties:
//  - no crash, no undefined behaviour, no leak; a refusal is a one-line
//    error naming the file;
//  - lookup finds every piece (at its own id or a lower one with the same
//    bytes); encoding a text gives in-range tokens whose decoded bytes are
//    readable (ASan checks every byte).
//
// The BPE tokenizer file and the token cache have their own targets
// (fuzz_bpe.c, fuzz_tokcache.c).
#define _GNU_SOURCE // memfd_create
#include "../src/sptok.h"
#include "fuzz_util.h"

static const int VOCAB_SIZES[] = {3, 7, 32, 256, 300};
static volatile size_t sink;

static void check_lookup(const SpTok *t) {
    for (int i = 0; i < t->vocab_size; i++) {
        int id = sptok_lookup(t, t->pieces[i].p, t->pieces[i].len);
        if (id < 0 || id > i || t->pieces[id].len != t->pieces[i].len ||
            memcmp(t->pieces[id].p, t->pieces[i].p, t->pieces[i].len))
            __builtin_trap();
    }
}

// Encodes text, then decodes every token after its predecessor.
static void encode_decode(const SpTok *t, const unsigned char *text, size_t n) {
    int *tokens = malloc((n + 2) * sizeof(int));
    size_t n_tokens, sum = 0;
    Error err;
    if (!tokens) abort();
    if (!sptok_encode(t, text, n, tokens, &n_tokens, &err)) {
        if (n_tokens > n + 2) __builtin_trap();
        for (size_t i = 0; i < n_tokens; i++) {
            if (tokens[i] < 0 || tokens[i] >= t->vocab_size) __builtin_trap();
            const unsigned char *b;
            size_t len = sptok_decode(t, i ? tokens[i - 1] : -1, tokens[i], &b);
            for (size_t j = 0; j < len; j++) sum += b[j];
        }
    }
    free(tokens);
    sink += sum; // keeps the reads from being optimised away
}

static void try_vocab(const char *path, int vocab, const uint8_t *data, size_t size) {
    static const unsigned char text[] = "Hello, w\xc3\xb6rld!  the\xff\x80 end\n";
    SpTok t;
    Error err = {{0}};
    if (sptok_load(&t, path, vocab, &err)) {
        fuzz_check_error(&err, path);
        return;
    }
    check_lookup(&t);
    encode_decode(&t, text, sizeof text - 1);
    encode_decode(&t, data, size < 64 ? size : 64); // the input's own bytes as a text
    sptok_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    for (size_t i = 0; i < sizeof VOCAB_SIZES / sizeof VOCAB_SIZES[0]; i++)
        try_vocab(path, VOCAB_SIZES[i], data, size);
    return 0;
}
