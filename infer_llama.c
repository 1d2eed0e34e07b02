// infer_llama: generates text from a model trained by train_llama or a
// llama2.c checkpoint, or evaluates a text file's loss under it. (Exports to
// llama2.c, GGUF and Hugging Face are export_llama's.)
//
//   ./infer_llama runs/dyt/model.bin --prompt "ROMEO:" -n 300 --temperature 0.8 --top-p 0.9 --seed 7
//   ./infer_llama runs/dyt/model.bin --eval some.txt
//   ./infer_llama stories260K.bin -z tokenizer.bin --prompt "Once upon a time" -n 200 --temperature 0
//   ./infer_llama runs/dyt/model.bin --prompt-file scene.txt -n 1000    (or a prompt on stdin: --prompt -)
//
// The prompt goes through the model in one batched forward (sgemm), then one
// token at a time over the KV cache; past the context the window slides
// (src/sampler.h: the last half of the context is kept and recomputed).
// Generated text goes to stdout, statistics to stderr. The forward pass is the
// trainer's own (src/model.c).
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/common.h"
#include "src/data.h"
#include "src/llama2c.h"
#include "src/model.h"
#include "src/modelio.h"
#include "src/options.h"
#include "src/sampler.h"
#include "src/sptok.h"
#include "src/threads.h"
#include "src/version.h"

typedef struct {
    const char *prompt, *prompt_file, *eval, *tokenizer, *matmul;
    int64_t n, top_k, seed, threads;
    double temperature, top_p;
} Settings;

#define OPT_BASE Settings
static const Option OPTIONS[] = {
    {OPTION_STR("--prompt", prompt, NULL),
     .help = "text to continue ('-': read it from standard input; empty: a newline; with -z, just BOS)"},
    {OPTION_STR("--prompt-file", prompt_file, NULL), .help = "read the text to continue from this file"},
    {OPTION_INT("-n", n, 0, 1e9, 256),
     .help = "tokens to generate (past the context the window slides, keeping its last half; fewer only at "
             "BOS/EOS with -z)"},
    {OPTION_FLOAT("--temperature", temperature, 0, 100, 1.0), .help = "sampling temperature (0 = greedy)"},
    {OPTION_FLOAT("--top-p", top_p, 1e-6, 1, 0.9), .help = "nucleus sampling mass (1 = off)"},
    {OPTION_INT("--top-k", top_k, 0, 1e9, 0), .help = "sample among the k most likely tokens (0 = off)"},
    {OPTION_INT("--seed", seed, -1, 9.007199254740992e15, -1), .help = "sampling seed (-1 = from the clock, printed)"},
    {OPTION_STR("--eval", eval, NULL),
     .help = "print the mean loss and perplexity of this file instead (generation flags unused)"},
    {OPTION_INT("--threads", threads, 0, 1024, 0),
     .help = "threads (0 = all cores; each decoded token then runs on all or on one, whichever was faster, and "
             "on one while other processes hold the cores)"},
    {OPTION_STR("--matmul", matmul, "openblas"), .choice = matmul_backend_name,
     .help = "who computes a prompt's and --eval's matrix products (decoding streams the weights through its own "
             "products either way): onednn scores a long --eval 1.25x faster here, but its first product compiles "
             "kernels for about 0.25 s, longer than a short prompt's whole prefill"},
    {OPTION_STR("-z", tokenizer, NULL),
     .help = "llama2.c tokenizer.bin (default: the model's own BPE vocabulary, or bytes for models with 256 "
             "tokens)"},
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

static Settings default_settings(void) {
    Settings s;
    options_defaults(OPTIONS, N_OPTIONS, &s);
    return s;
}

static void usage(FILE *f) {
    Settings d = default_settings();
    fprintf(f, "usage: infer_llama MODEL [options]\n"
               "Generates text from MODEL (model.bin, checkpoint.bin or a llama2.c checkpoint),\n"
               "or with --eval scores a file.\n\noptions:\n");
    options_usage(f, OPTIONS, N_OPTIONS, &d);
    fprintf(f, "  --help               this text\n  --version            the build: version and commit\nexit: 0 ok, 1 input/runtime error, 2 usage\n");
}

// Activations for windows of T tokens, checked before they are allocated
// (acts_create: memory_check). The attention keeps no T x T scores here
// (store_all 0), so a long context (a legal header allows 2^20) costs memory
// linear in T: logits, keys and values, a block of score rows per thread.
static int eval_acts(Acts *a, const Model *m, const char *path, size_t T, Error *err) {
    Error e;
    if (!acts_create(a, m, 1, (int)T, (int)T, 0, &e)) return 0;
    return err_set(err, "--eval %s: windows of %zu tokens (the model's context is %d): %s", path, T,
                   m->cfg.seq_len, e.msg);
}

// Mean next-token loss over the file, in consecutive windows of the context length.
static int eval_file(const Model *m, Matmul *mm, const Tokenizer *tk, const char *path, Error *err) {
    int *tokens, rc = 0;
    size_t nt;
    if (encode_file(path, tk, &tokens, &nt, err)) return -1;
    if (nt < 2) {
        free(tokens);
        return err_set(err, "%s: needs at least 2 tokens to score, has %zu", path, nt);
    }
    double total = 0.0;
    size_t scored = 0, T_max = nt - 1 < (size_t)m->cfg.seq_len ? nt - 1 : (size_t)m->cfg.seq_len;
    Acts a; // sized to the longest window, not the whole context
    if (eval_acts(&a, m, path, T_max, err)) {
        free(tokens);
        return -1;
    }
    a.mm = mm;
    double t0 = now_seconds();
    for (size_t start = 0; !rc && start + 1 < nt; start += T_max) {
        int T = (int)(nt - 1 - start < T_max ? nt - 1 - start : T_max);
        rc = model_forward(m, &a, tokens + start, T, 0, 1, err);
        // model_loss averages over the window; weight it by its length
        if (!rc) total += model_loss(m, &a, tokens + start + 1) * T;
        scored += (size_t)T;
    }
    double dt = now_seconds() - t0;
    size_t bytes = 0; // of the scored (predicted) tokens: loss per byte compares across vocabularies
    for (size_t i = 1; i <= scored; i++) {
        const unsigned char *b;
        bytes += tokenizer_decode(tk, tokens[i - 1], tokens[i], &b);
    }
    acts_free(&a);
    free(tokens);
    if (rc) return -1;
    double loss = total / (double)scored;
    printf("%s: %zu tokens, loss %.4f, perplexity %.3f, %.4f bits per byte\n", path, scored, loss, exp(loss),
           bytes ? total / log(2.0) / (double)bytes : NAN);
    fprintf(stderr, "eval: %.0f tok/s\n", scored / dt);
    return 0;
}

// The text to continue: --prompt's, standard input's (--prompt -) or a file's
// (--prompt-file); name says where it came from, for messages.
typedef struct {
    const char *name;
    unsigned char *bytes; // not NUL-terminated: a file may hold any byte
    size_t n;
    int owned; // bytes were allocated here
} Text;

// The buffer of a stream read so far, doubled; large ones checked first (a
// prompt on a pipe has no size to check up front, as a file has).
static int grow_stream(Text *t, size_t *cap, Error *err) {
    size_t c = *cap * 2;
    char what[160];
    snprintf(what, sizeof what, "%s: reading past %zu bytes", t->name, *cap);
    if (c >= LARGE_BYTES && memory_check(c, what, err)) return -1;
    unsigned char *more = realloc(t->bytes, c);
    if (!more) return err_set(err, "%s: out of memory (%zu bytes)", t->name, c);
    t->bytes = more, *cap = c;
    return 0;
}

static int read_stream(FILE *f, const char *name, Text *t, Error *err) {
    size_t cap = 4096;
    int rc = 0;
    *t = (Text){.name = name, .bytes = malloc(cap), .owned = 1};
    if (!t->bytes) return err_set(err, "%s: out of memory", name);
    for (size_t got; !rc && (got = fread(t->bytes + t->n, 1, cap - t->n, f)) > 0;) {
        t->n += got;
        if (t->n == cap) rc = grow_stream(t, &cap, err);
    }
    if (!rc && ferror(f)) rc = err_set(err, "%s: read failed", name);
    if (rc) {
        free(t->bytes);
        t->bytes = NULL;
        return -1;
    }
    // what is unused goes back (up to half the buffer): the checks that follow see what a file would take
    unsigned char *fit = realloc(t->bytes, t->n ? t->n : 1);
    if (fit) t->bytes = fit;
    return 0;
}

static int read_prompt(const Settings *s, Text *t, Error *err) {
    if (s->prompt_file) {
        *t = (Text){.name = s->prompt_file};
        if (read_file(s->prompt_file, &t->bytes, &t->n, err)) return -1;
        t->owned = 1;
        return 0;
    }
    if (s->prompt && !strcmp(s->prompt, "-")) return read_stream(stdin, "--prompt - (standard input)", t, err);
    const char *p = s->prompt ? s->prompt : "";
    *t = (Text){.name = "--prompt", .bytes = (unsigned char *)p, .n = strlen(p)};
    return 0;
}

// The prompt's tokens. A byte model needs a token to start from: there an
// empty prompt starts a line (llama2.c's tokenizer starts every text with BOS).
static int encode_prompt(const Tokenizer *tk, const Text *prompt, int **out, int *n_out, Error *err) {
    size_t n = 0;
    int *tokens;
    if (encode_text(tk, prompt->bytes, prompt->n, prompt->name, &tokens, &n, err)) return -1;
    if (n == 0) {
        free(tokens);
        if (encode_text(tk, (const unsigned char *)"\n", 1, prompt->name, &tokens, &n, err)) return -1;
    }
    if (n > INT_MAX) {
        free(tokens);
        return err_set(err, "%s: %zu tokens, more than the %d a prompt can have", prompt->name, n, INT_MAX);
    }
    *out = tokens;
    *n_out = (int)n;
    return 0;
}

static int generate(const Model *m, Matmul *mm, const Tokenizer *tk, const Settings *s, const Text *prompt,
                    Error *err) {
    int n_prompt = 0, dropped = 0, *tokens = NULL;
    if (encode_prompt(tk, prompt, &tokens, &n_prompt, err)) return -1;
    Sampler sampler;
    uint64_t seed = s->seed >= 0 ? (uint64_t)s->seed : (uint64_t)time(NULL);
    if (sampler_create(&sampler, m->cfg.vocab_size, (float)s->temperature, (float)s->top_p, (int)s->top_k,
                       seed, err)) {
        free(tokens);
        return -1;
    }
    fwrite(prompt->bytes, 1, prompt->n, stdout);
    // prefill: the whole prompt in one forward
    double t0 = now_seconds();
    Window w;
    // llama2.c's tokenizer starts every text with BOS: a sliding window keeps it
    int sink = tk->kind == TOK_SP && tokens[0] == SP_BOS;
    Error e;
    int rc = window_create(&w, m, mm, tokens, n_prompt, s->n, 0, sink, &dropped, &e);
    free(tokens);
    if (rc) {
        sampler_free(&sampler);
        return err_set(err, "%s (%d tokens) and -n %lld: %s", prompt->name, n_prompt, (long long)s->n, e.msg);
    }
    double t_prefill = now_seconds() - t0;
    if (dropped)
        fprintf(stderr, "infer_llama: the prompt's %d tokens exceed the model's context of %d: it sees %sthe last %d\n",
                n_prompt, m->cfg.seq_len, sink ? "BOS and " : "", n_prompt - dropped - sink);
    int produced = 0, stopped = 0;
    int64_t heap0 = heap_in_use_bytes(); // generating allocates nothing: the window holds it all
    // Decoding's bits do not depend on the thread count, so by default it
    // runs on whichever of all cores or one is faster now (src/threads.h):
    // on a shared machine the other cores may be busy. --threads N fixes N.
    ThreadTuner tuner;
    int max = s->threads ? 1 : omp_get_max_threads();
    tuner_init(&tuner, max, threads_crowded);
    t0 = now_seconds();
    while (!rc && produced < s->n) {
        int next = sampler_sample(&sampler, w.logits);
        if ((stopped = tokenizer_is_stop(tk, next))) break;
        const unsigned char *piece;
        fwrite(piece, 1, tokenizer_decode(tk, w.tokens[w.n - 1], next, &piece), stdout);
        if (fflush(stdout)) break; // nobody reads the text any more: stream_check says so
        produced++;
        if (produced == s->n) break;
        tuner_next(&tuner);
        double t1 = now_seconds();
        rc = window_push(&w, next, err);
        tuner_done(&tuner, now_seconds() - t1);
    }
    tuner_end(&tuner);
    double dt = now_seconds() - t0;
    printf("\n");
    int64_t heap1 = heap_in_use_bytes();
    char slid[96] = "";
    if (w.slides)
        snprintf(slid, sizeof slid, ", the window slid %lld time%s (keeping %d tokens)", (long long)w.slides,
                 w.slides == 1 ? "" : "s", w.keep);
    fprintf(stderr, "prompt %d tokens (%.0f tok/s prefill), generated %d tokens (%.1f tok/s)%s, seed %llu%s; "
                    "peak memory %.1f MB, heap %+lld bytes while generating\n",
            n_prompt, (n_prompt - dropped) / (t_prefill > 0 ? t_prefill : 1e-9), // of the tokens it ran
            produced, produced / (dt > 0 ? dt : 1e-9), slid, (unsigned long long)seed,
            stopped ? " (end of text)" : "", peak_rss_kb() / 1024.0, (long long)(heap1 - heap0));
    sampler_free(&sampler);
    window_free(&w);
    return rc;
}

// A model trained with BPE carries its vocabulary; -z selects a llama2.c
// tokenizer; otherwise the model must have the byte vocabulary.
static int make_tokenizer(const Model *m, const char *model_path, const char *tok_path, SpTok *sp, Bpe *bpe,
                          Tokenizer *tk, Error *err) {
    if (m->tokenizer) {
        if (tok_path)
            return err_set(err, "-z %s: %s carries its own BPE tokenizer; -z is for llama2.c models", tok_path,
                           model_path);
        if (bpe_parse(bpe, m->tokenizer, m->tokenizer_bytes, model_path, err)) return -1;
        *tk = tokenizer_bpe(bpe);
        return 0;
    }
    if (tok_path) {
        if (sptok_load(sp, tok_path, m->cfg.vocab_size, err)) return -1;
        *tk = tokenizer_sp(sp);
        return 0;
    }
    *tk = tokenizer_bytes();
    if (m->cfg.vocab_size != tk->vocab_size)
        return err_set(err, "%s: vocab_size = %d, but the byte tokenizer has %d tokens: give the model's "
                       "tokenizer with -z TOKENIZER", model_path, m->cfg.vocab_size, tk->vocab_size);
    return 0;
}

static int run(const Model *m, const Settings *s, const char *model_path, Error *err) {
    SpTok sp = {0};
    Bpe bpe = {0};
    Tokenizer tk;
    Matmul mm = {0};
    int rc = make_tokenizer(m, model_path, s->tokenizer, &sp, &bpe, &tk, err) ||
             matmul_init(&mm, matmul_backend_find(s->matmul), PREC_FP32, err);
    if (!rc && s->eval) rc = eval_file(m, &mm, &tk, s->eval, err);
    else if (!rc) {
        Text prompt = {0};
        rc = read_prompt(s, &prompt, err);
        if (!rc) rc = generate(m, &mm, &tk, s, &prompt, err);
        if (prompt.owned) free(prompt.bytes);
    }
    sptok_free(&sp);
    bpe_free(&bpe);
    matmul_free(&mm);
    return rc ? -1 : 0;
}

int main(int argc, char **argv) {
    threads_wait_policy(argv); // before anything else: it may start the program again
    stdout_buffer();
    // a reader that went away (| head) is a failed write of stdout, said in one
    // line with exit 1 (stream_check), not a death by SIGPIPE (exit 141)
    signal(SIGPIPE, SIG_IGN);
    Settings s = default_settings();
    unsigned char given[N_OPTIONS] = {0};
    const char *pos[1];
    int n_pos;
    Error err = {{0}};
    int rc = options_parse(OPTIONS, N_OPTIONS, &s, given, argc, argv, pos, 1, &n_pos, &err);
    if (rc == 0) rc = options_check_repeats(OPTIONS, N_OPTIONS, given, &err);
    if (rc == 2) return print_version("infer_llama");
    if (rc == 1) {
        usage(stdout);
        if (!stream_check(stdout, "stdout", &err)) return 0;
        fprintf(stderr, "infer_llama: %s\n", err.msg);
        return 1;
    }
    if (rc == 0 && n_pos != 1) rc = err_set(&err, "MODEL is required");
    if (rc == 0 && s.prompt && s.prompt_file) rc = err_set(&err, "--prompt and --prompt-file: give one of them");
    if (rc) {
        fprintf(stderr, "infer_llama: %s (see --help)\n", err.msg);
        return 2;
    }
    if (threads_start(s.threads, "infer_llama", &err)) {
        fprintf(stderr, "infer_llama: %s\n", err.msg);
        return 1;
    }
    Model m;
    ModelFormat format;
    if (model_load_any(&m, pos[0], &format, &err)) {
        fprintf(stderr, "infer_llama: %s\n", err.msg);
        return 1;
    }
    rc = run(&m, &s, pos[0], &err);
    // generated text or scores that did not reach stdout's file are a failure (> /dev/full)
    if (!rc) rc = stream_check(stdout, "stdout", &err);
    if (rc) fprintf(stderr, "infer_llama: %s\n", err.msg);
    model_free(&m);
    return rc ? 1 : 0;
}
