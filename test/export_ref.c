// export_ref: our side of the export tests (test/test_export.py,
// test/test_gguf.mjs). For MODEL and a token sequence, prints our logits at
// every position and the greedy continuation, as JSON:
//   {"logits": [[V floats] x T], "greedy": [N ids]}
// Greedy takes the first maximum, as llama.cpp's greedy sampler does.
//   build/export_ref MODEL N_GREEDY TOKEN...
//   build/export_ref MODEL --encode TEXT_FILE    (the file's token ids, one line)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/bpe.h"
#include "../src/common.h"
#include "../src/data.h"
#include "../src/llama2c.h"
#include "../src/model.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: export_ref MODEL N_GREEDY TOKEN...\n");
        return 2;
    }
    Model m;
    ModelFormat fmt;
    Error err = {{0}};
    if (model_load_any(&m, argv[1], &fmt, &err)) {
        fprintf(stderr, "export_ref: %s\n", err.msg);
        return 1;
    }
    if (!strcmp(argv[2], "--encode")) {
        Bpe bpe = {0};
        Tokenizer tk = tokenizer_bytes();
        int *ids = NULL, rc = m.tokenizer && bpe_parse(&bpe, m.tokenizer, m.tokenizer_bytes, argv[1], &err);
        size_t n = 0;
        if (m.tokenizer && !rc) tk = tokenizer_bpe(&bpe);
        rc = rc || encode_file(argv[3], &tk, &ids, &n, &err);
        for (size_t i = 0; !rc && i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        if (rc) fprintf(stderr, "export_ref: %s\n", err.msg);
        free(ids);
        bpe_free(&bpe);
        model_free(&m);
        return rc ? 1 : 0;
    }
    int n_greedy = atoi(argv[2]), T = argc - 3, V = m.cfg.vocab_size, total = T + n_greedy;
    int *tok = malloc((size_t)total * sizeof(int));
    Acts a;
    if (!tok || total > m.cfg.seq_len || acts_create(&a, &m, 1, T, total, 0, &err)) {
        fprintf(stderr, "export_ref: %s\n", tok ? (total > m.cfg.seq_len ? "longer than the context" : err.msg) : "oom");
        return 1;
    }
    for (int t = 0; t < T; t++) tok[t] = atoi(argv[3 + t]);
    int rc = model_forward(&m, &a, tok, T, 0, 1, &err);
    printf("{\"logits\": [");
    for (int t = 0; t < T && !rc; t++) {
        printf("%s[", t ? ",\n" : "");
        for (int v = 0; v < V; v++) printf("%s%.9g", v ? "," : "", a.logits[(size_t)t * V + v]);
        printf("]");
    }
    printf("],\n\"greedy\": [");
    const float *logits = a.logits + (size_t)(T - 1) * V;
    for (int i = 0; i < n_greedy && !rc; i++) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        printf("%s%d", i ? "," : "", best);
        tok[T + i] = best;
        if (i + 1 < n_greedy) rc = model_forward(&m, &a, &tok[T + i], 1, T + i, 0, &err);
        logits = a.logits;
    }
    printf("]}\n");
    if (rc) fprintf(stderr, "export_ref: %s\n", err.msg);
    acts_free(&a);
    free(tok);
    model_free(&m);
    return rc ? 1 : 0;
}
