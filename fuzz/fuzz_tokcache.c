// libFuzzer target: the token-cache loader (src/bpe.c). Properties: no crash,
// no undefined behaviour, no leak; a refusal is a one-line error naming the
// file; a loaded cache is exactly as long as its header says and every token
// id is below its vocab_size.
#define _GNU_SOURCE // memfd_create
#include "../src/bpe.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    TokCacheInfo info;
    int *tokens;
    Error err = {{0}};
    if (tokcache_load(path, &info, &tokens, &err)) {
        fuzz_check_error(&err, path);
        return 0;
    }
    if (TOKCACHE_HEADER_BYTES + 2 * info.n_tokens != size || info.n_tokens > info.text_size) __builtin_trap();
    for (uint64_t i = 0; i < info.n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= info.vocab_size) __builtin_trap();
    free(tokens);
    return 0;
}
