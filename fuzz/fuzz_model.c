// libFuzzer target: the model and checkpoint loaders (src/modelio.c,
// src/llama2c.c). Every input goes through model_load_any (our format,
// llama2.c legacy and ak42) and checkpoint_load. Properties:
//  - no crash, no undefined behaviour, no leak (ASan/UBSan/LSan);
//  - a refusal is a one-line error naming the file;
//  - a header claiming a huge model is refused by the size check before any
//    allocation: run.sh sets -malloc_limit_mb, so a large malloc driven by a
//    small input is reported as a crash;
//  - a model that loads also runs: one token through the forward pass.
#define _GNU_SOURCE // memfd_create
#include <cblas.h>

#include "../src/data.h"
#include "../src/llama2c.h"
#include "../src/model.h"
#include "../src/modelio.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    threads_setup(1); // OpenBLAS: no thread pool next to the fuzzer
    return 0;
}

// The forward pass accepts whatever the loader accepted: one token, position 0.
static void forward_one(const Model *m) {
    Acts a;
    Error err;
    int token = 0;
    if (acts_create(&a, m, 1, 1, 1, 0, &err)) {
        fprintf(stderr, "acts_create refused a loaded model: %s\n", err.msg);
        __builtin_trap();
    }
    if (model_forward(m, &a, &token, 1, 0, 0, &err)) {
        fprintf(stderr, "forward refused a loaded model: %s\n", err.msg);
        __builtin_trap();
    }
    acts_free(&a);
}

static void try_model(const char *path) {
    Model m;
    ModelFormat fmt;
    Error err = {{0}};
    if (model_load_any(&m, path, &fmt, &err)) {
        fuzz_check_error(&err, path);
        return;
    }
    forward_one(&m);
    model_free(&m);
}

static void try_checkpoint(const char *path) {
    Model m;
    float *m1, *m2;
    TrainState st;
    int64_t run[RUN_BLOCK_SLOTS];
    Error err = {{0}};
    if (checkpoint_load(&m, &m1, &m2, &st, run, path, &err)) {
        fuzz_check_error(&err, path);
        return;
    }
    if (st.data_record) { // the trainer's data record (src/data.c)
        DataRecord r;
        if (data_record_parse(&r, st.data_record, st.data_record_bytes, path, &err)) fuzz_check_error(&err, path);
        else data_record_free(&r);
        free(st.data_record);
    }
    model_free(&m);
    free(m1);
    free(m2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size);
    try_model(path);
    try_checkpoint(path);
    return 0;
}
