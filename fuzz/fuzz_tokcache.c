// libFuzzer target: the token-cache loader (src/bpe.c, mapped by src/data.c). Properties: no crash,
// no undefined behaviour, no leak; a refusal is a one-line error naming the
// file; a loaded cache is exactly as long as its header says and every token
// id is below its vocab_size, and the tokens match their checksum.
#define _GNU_SOURCE // memfd_create
#include "../src/bpe.h"
#include "../src/data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    TokCacheInfo info;
    const uint16_t *tokens;
    Mapped map;
    Error err = {{0}};
    if (tokcache_open(&map, path, &info, &tokens, &err)) {
        fuzz_check_error(&err, path);
        return 0;
    }
    if (TOKCACHE_HEADER_BYTES + 2 * info.n_tokens != size || info.n_tokens > info.text_size) __builtin_trap();
    for (uint64_t i = 0; i < info.n_tokens; i++)
        if (tokens[i] >= info.vocab_size) __builtin_trap();
    if (tokcache_hash(tokens, (size_t)info.n_tokens) != info.tokens_hash) __builtin_trap();
    unmap_file(&map);
    return 0;
}
