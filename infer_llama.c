// infer_llama: generates text from a model trained by train_llama, or
// evaluates a text file's loss under it.
//
//   ./infer_llama runs/dyt/model.bin --prompt "ROMEO:" -n 300 --temperature 0.8 --top-p 0.9 --seed 7
//   ./infer_llama runs/dyt/model.bin --eval some.txt
//
// The prompt goes through the model in one batched forward (sgemm), then one
// token at a time over the KV cache. Generated text goes to stdout, statistics
// to stderr. The forward pass is the trainer's own (src/model.c).
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/common.h"
#include "src/data.h"
#include "src/model.h"
#include "src/modelio.h"
#include "src/options.h"
#include "src/sampler.h"

typedef struct {
    const char *prompt, *eval;
    int64_t n, top_k, seed, threads;
    double temperature, top_p;
} Settings;

#define OFF(f) offsetof(Settings, f)
static const Option OPTIONS[] = {
    {"--prompt", OPT_STR, OFF(prompt), 0, 0, "text to continue (empty: start from a newline)"},
    {"-n", OPT_INT, OFF(n), 0, 1e9, "tokens to generate (stops early when the context is full)"},
    {"--temperature", OPT_FLOAT, OFF(temperature), 0, 100, "sampling temperature (0 = greedy)"},
    {"--top-p", OPT_FLOAT, OFF(top_p), 1e-6, 1, "nucleus sampling mass (1 = off)"},
    {"--top-k", OPT_INT, OFF(top_k), 0, 1e9, "sample among the k most likely tokens (0 = off)"},
    {"--seed", OPT_INT, OFF(seed), -1, 9.007199254740992e15, "sampling seed (-1 = from the clock, printed)"},
    {"--eval", OPT_STR, OFF(eval), 0, 0, "print the mean loss and perplexity of this file instead (generation flags unused)"},
    {"--threads", OPT_INT, OFF(threads), 0, 1024, "threads (0 = all cores)"},
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

static Settings default_settings(void) {
    return (Settings){.prompt = "", .n = 256, .top_k = 0, .seed = -1, .threads = 0,
                      .temperature = 1.0, .top_p = 0.9};
}

static void usage(FILE *f) {
    Settings d = default_settings();
    fprintf(f, "usage: infer_llama MODEL [options]\n"
               "Generates text from MODEL (model.bin or checkpoint.bin), or with --eval scores a file.\n\noptions:\n");
    options_usage(f, OPTIONS, N_OPTIONS, &d);
    fprintf(f, "  --help               this text\nexit: 0 ok, 1 input/runtime error, 2 usage\n");
}

// Mean next-token loss over the file, in consecutive windows of the context length.
static int eval_file(const Model *m, Acts *a, const Tokenizer *tk, const char *path, Error *err) {
    unsigned char *text;
    size_t n;
    if (read_file(path, &text, &n, err)) return -1;
    int *tokens = malloc((n ? n : 1) * sizeof(int));
    if (!tokens) {
        free(text);
        return err_set(err, "%s: out of memory", path);
    }
    size_t nt = tokenizer_encode(tk, text, n, tokens);
    free(text);
    if (nt < 2) {
        free(tokens);
        return err_set(err, "%s: needs at least 2 tokens to score, has %zu", path, nt);
    }
    double total = 0.0;
    size_t scored = 0, T_max = (size_t)m->cfg.seq_len;
    double t0 = now_seconds();
    for (size_t start = 0; start + 1 < nt; start += T_max) {
        int T = (int)(nt - 1 - start < T_max ? nt - 1 - start : T_max);
        if (model_forward(m, a, tokens + start, T, 0, 1, err)) {
            free(tokens);
            return -1;
        }
        // model_loss averages over the window; weight it by its length
        total += model_loss(m, a, tokens + start + 1) * T;
        scored += (size_t)T;
    }
    double dt = now_seconds() - t0;
    free(tokens);
    double loss = total / (double)scored;
    printf("%s: %zu tokens, loss %.4f, perplexity %.3f\n", path, scored, loss, exp(loss));
    fprintf(stderr, "eval: %.0f tok/s\n", scored / dt);
    return 0;
}

static int generate(const Model *m, Acts *a, const Tokenizer *tk, const Settings *s, Error *err) {
    int ctx = m->cfg.seq_len;
    const char *prompt = s->prompt[0] ? s->prompt : "\n";
    size_t plen = strlen(prompt);
    if (plen >= (size_t)ctx)
        return err_set(err, "--prompt: %zu tokens leave no room in the model's context of %d", plen, ctx);
    int *tokens = malloc((size_t)ctx * sizeof(int));
    Sampler sampler;
    uint64_t seed = s->seed >= 0 ? (uint64_t)s->seed : (uint64_t)time(NULL);
    if (!tokens || sampler_create(&sampler, m->cfg.vocab_size, (float)s->temperature, (float)s->top_p,
                                  (int)s->top_k, seed, err)) {
        free(tokens);
        return err_set(err, "out of memory");
    }
    int n = (int)tokenizer_encode(tk, (const unsigned char *)prompt, plen, tokens), n_prompt = n;
    if (s->prompt[0]) fwrite(prompt, 1, plen, stdout);
    // prefill: the whole prompt in one forward
    double t0 = now_seconds();
    int rc = model_forward(m, a, tokens, n, 0, 0, err);
    double t_prefill = now_seconds() - t0;
    const float *logits = a->logits + (size_t)(n - 1) * m->cfg.vocab_size;
    int produced = 0;
    t0 = now_seconds();
    while (!rc && produced < s->n && n < ctx) {
        int next = sampler_sample(&sampler, logits);
        unsigned char buf[16];
        fwrite(buf, 1, tokenizer_decode(tk, next, buf, sizeof buf), stdout);
        fflush(stdout);
        tokens[n] = next;
        produced++;
        if (produced == s->n || n + 1 >= ctx) break;
        rc = model_forward(m, a, &tokens[n], 1, n, 0, err);
        logits = a->logits;
        n++;
    }
    double dt = now_seconds() - t0;
    printf("\n");
    fprintf(stderr, "prompt %d tokens (%.0f tok/s prefill), generated %d tokens (%.1f tok/s), seed %llu%s\n",
            n_prompt, n_prompt / (t_prefill > 0 ? t_prefill : 1e-9),
            produced, produced / (dt > 0 ? dt : 1e-9), (unsigned long long)seed,
            produced < s->n ? " (context full)" : "");
    sampler_free(&sampler);
    free(tokens);
    return rc;
}

int main(int argc, char **argv) {
    Settings s = default_settings();
    unsigned char given[N_OPTIONS] = {0};
    const char *pos[1];
    int n_pos;
    Error err = {{0}};
    int rc = options_parse(OPTIONS, N_OPTIONS, &s, given, argc, argv, pos, 1, &n_pos, &err);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc == 0 && n_pos != 1) rc = err_set(&err, "MODEL is required");
    if (rc) {
        fprintf(stderr, "infer_llama: %s (see --help)\n", err.msg);
        return 2;
    }
    threads_setup(s.threads);
    Model m;
    Acts a;
    Tokenizer tk = tokenizer_bytes();
    if (model_load(&m, pos[0], &err)) {
        fprintf(stderr, "infer_llama: %s\n", err.msg);
        return 1;
    }
    if (m.cfg.vocab_size != tk.vocab_size) {
        fprintf(stderr, "infer_llama: %s: header field vocab_size = %d, but this build's tokenizer has %d tokens\n",
                pos[0], m.cfg.vocab_size, tk.vocab_size);
        model_free(&m);
        return 1;
    }
    rc = acts_create(&a, &m, 1, m.cfg.seq_len, m.cfg.seq_len, 0, &err);
    if (!rc) rc = s.eval ? eval_file(&m, &a, &tk, s.eval, &err) : generate(&m, &a, &tk, &s, &err);
    if (rc) fprintf(stderr, "infer_llama: %s\n", err.msg);
    acts_free(&a);
    model_free(&m);
    return rc ? 1 : 0;
}
