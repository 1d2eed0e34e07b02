// libFuzzer target: the BPE tokenizer-file loader (src/bpe.c), and encoding
// and decoding with whatever it loads. Properties:
//  - no crash, no undefined behaviour, no leak; a refusal is a one-line
//    error naming the file;
//  - a loaded vocabulary keeps the file's bytes; every token is 1 to
//    BPE_MAX_TOKEN_BYTES bytes; encoding a text (a fixed one, and the input's
//    own bytes) gives in-range tokens that decode back to exactly the text.
#define _GNU_SOURCE // memfd_create
#include "../src/bpe.h"
#include "fuzz_util.h"

static void round_trip(const Bpe *b, const unsigned char *text, size_t n) {
    int *tokens = malloc((n + 1) * sizeof(int));
    size_t nt, at = 0;
    Error err;
    if (!tokens) abort();
    if (bpe_encode(b, text, n, tokens, &nt, &err)) __builtin_trap(); // only out of memory can fail
    for (size_t i = 0; i < nt; i++) {
        if (tokens[i] < 0 || tokens[i] >= b->vocab_size) __builtin_trap();
        const unsigned char *p;
        size_t len = bpe_decode(b, tokens[i], &p);
        if (!len || at + len > n || memcmp(text + at, p, len)) __builtin_trap();
        at += len;
    }
    if (at != n) __builtin_trap();
    free(tokens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const unsigned char text[] = "Hello, w\xc3\xb6rld!  the\xff\x80 end\n\0 42x  ";
    const char *path = fuzz_file(data, size);
    Bpe b;
    Error err = {{0}};
    if (bpe_load(&b, path, &err)) {
        fuzz_check_error(&err, path);
        return 0;
    }
    if (b.blob_bytes != size || memcmp(b.blob, data, size) || b.vocab_size != 256 + b.n_merges) __builtin_trap();
    for (int t = 0; t < b.vocab_size; t++) {
        const unsigned char *p;
        size_t len = bpe_decode(&b, t, &p);
        if (len < 1 || len > BPE_MAX_TOKEN_BYTES) __builtin_trap();
    }
    round_trip(&b, text, sizeof text - 1);
    round_trip(&b, data, size < 512 ? size : 512); // the input's own bytes as a text
    bpe_free(&b);
    return 0;
}
