// libFuzzer target: the data record a checkpoint carries after its tokenizer
// (src/data.c data_record_parse; docs/format.md, "data record"), which a
// resume reads to find its data. Properties: no crash, no undefined
// behaviour, no leak; a refusal is a one-line error naming the checkpoint; a
// record that parses has a data spec with at least one file, a validation
// spec only with files of its own, and every path 1..DATA_PATH_MAX bytes
// without NUL.
#define _GNU_SOURCE // memfd_create (fuzz_util.h)
#include "../src/data.h"
#include "fuzz_util.h"

#define NAME "ckpt.bin"

static int path_ok(const char *p) { return p && strlen(p) >= 1 && strlen(p) <= DATA_PATH_MAX; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    DataRecord r;
    Error err = {{0}};
    if (data_record_parse(&r, data, size, NAME, &err)) {
        fuzz_check_error(&err, NAME);
        return 0;
    }
    if (!path_ok(r.data_spec) || r.n_docs < 1 || (r.val_spec && (!path_ok(r.val_spec) || r.n_val_docs < 1)) ||
        (!r.val_spec && r.n_val_docs))
        __builtin_trap();
    for (int i = 0; i < r.n_docs + r.n_val_docs; i++)
        if (!path_ok(r.docs[i].path)) __builtin_trap();
    data_record_free(&r);
    return 0;
}
