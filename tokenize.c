// tokenize: trains a byte-level BPE vocabulary, encodes a text into a token
// cache and decodes one back, for inspection; `bench` measures training time,
// encoding speed and compression. train_llama --vocab-size does the same
// training and caching itself (src/bpe.h, docs/format.md).
//
//   ./tokenize train data/input.txt --vocab-size 1024            # -> data/input.txt.bpe1024
//   ./tokenize encode data/input.txt --tokenizer data/input.txt.bpe1024   # -> data/input.txt.bpe1024.tok
//   ./tokenize decode data/input.txt.bpe1024.tok --tokenizer data/input.txt.bpe1024 > copy.txt
//   ./tokenize bench data/input.txt --sizes 512,1024,4096
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/bpe.h"
#include "src/common.h"
#include "src/data.h"
#include "src/files.h"
#include "src/options.h"
#include "src/version.h"

typedef struct {
    const char *tokenizer, *out, *sizes;
    int64_t vocab_size, repeat;
} Settings;

#define OPT_BASE Settings
static const Option OPTIONS[] = {
    {OPTION_INT("--vocab-size", vocab_size, 256, 65536, 1024),
     .help = "train: tokens in the vocabulary (256 bytes + merges)"},
    {OPTION_STR("--tokenizer", tokenizer, NULL), .help = "encode, decode: the tokenizer file"},
    {OPTION_STR("--out", out, NULL), .help = "train: TEXT.bpeN by default; encode: TEXT.bpeN.tok by default"},
    {OPTION_STR("--sizes", sizes, "512,1024,4096"), .help = "bench: vocabulary sizes, comma-separated"},
    {OPTION_INT("--repeat", repeat, 1, 100, 3), .help = "bench: timed repetitions (the fastest is reported)"},
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

static Settings default_settings(void) {
    Settings s;
    options_defaults(OPTIONS, N_OPTIONS, &s);
    return s;
}

static void usage(FILE *f) {
    Settings d = default_settings();
    fprintf(f, "usage: tokenize train TEXT [--vocab-size N] [--out FILE]\n"
               "       tokenize encode TEXT --tokenizer FILE [--out FILE]\n"
               "       tokenize decode CACHE --tokenizer FILE     (the text to stdout)\n"
               "       tokenize bench TEXT [--sizes 512,1024,4096] [--repeat N]\n"
               "Byte-level BPE vocabularies and token caches (docs/format.md).\n\noptions:\n");
    options_usage(f, OPTIONS, N_OPTIONS, &d);
    fprintf(f, "  --help               this text\n  --version            the build: version and commit\nexit: 0 ok, 1 input/runtime error, 2 usage\n");
}

static int fail(const Error *err) {
    fprintf(stderr, "tokenize: %s\n", err->msg);
    return 1;
}

// Existing outputs are replaced only when they are of the format written (files.h).
static int bpe_probe(const char *path, void *ctx, Error *err) {
    (void)ctx;
    Bpe b;
    if (bpe_load(&b, path, err)) return -1;
    bpe_free(&b);
    return 0;
}

static int tokcache_probe(const char *path, void *ctx, Error *err) {
    (void)ctx;
    Mapped m;
    TokCacheInfo info;
    const uint16_t *tokens;
    int rc = tokcache_open(&m, path, &info, &tokens, err);
    unmap_file(&m);
    return rc < 0 ? -1 : 0; // 1 is a cache of ours from an older version, or damaged: ours to replace
}

// OUT: given (--out) or beside the text; never on or inside an input, and
// replaced only when what stands there is a file of the kind written.
static int out_path(char *out, size_t cap, const Settings *s, const char *text_path, const char *suffix, int vocab,
                    const char *what, OursFn ours, Error *err) {
    if (s->out && !*s->out) return err_set(err, "--out: an empty path");
    int n = s->out ? snprintf(out, cap, "%s", s->out) : snprintf(out, cap, "%s.bpe%d%s", text_path, vocab, suffix);
    if (n < 0 || (size_t)n >= cap) return err_set(err, "%s: path too long", s->out ? s->out : text_path);
    const char *inputs[2] = {text_path, s->tokenizer};
    for (int i = 0; i < 2; i++) {
        int in = inputs[i] ? path_within(out, inputs[i], err) : 0;
        if (in) return in < 0 ? -1 : err_set(err, "%s: the output lands on or inside the input %s", out, inputs[i]);
    }
    return output_check_ours(out, what, ours, NULL, err);
}

static int cmd_train(const char *text_path, const Settings *s) {
    Error err = {{0}};
    unsigned char *text;
    size_t n;
    char out[4200];
    if (out_path(out, sizeof out, s, text_path, "", (int)s->vocab_size, "a BPE vocabulary", bpe_probe, &err) ||
        read_file(text_path, &text, &n, &err))
        return fail(&err);
    Bpe b;
    double t0 = now_seconds();
    int rc = bpe_train(&b, text, n, (int)s->vocab_size, &err);
    double dt = now_seconds() - t0;
    free(text);
    if (rc) return fprintf(stderr, "tokenize: %s: %s\n", text_path, err.msg), 1;
    rc = bpe_save(&b, out, &err);
    if (!rc) fprintf(stderr, "tokenize: trained %d tokens on %zu bytes in %.3f s; wrote %s\n", b.vocab_size, n, dt, out);
    bpe_free(&b);
    return rc ? fail(&err) : 0;
}

static int cmd_encode(const char *text_path, const Settings *s) {
    Error err = {{0}};
    Bpe b;
    if (bpe_load(&b, s->tokenizer, &err)) return fail(&err);
    unsigned char *text = NULL;
    size_t n = 0, nt = 0;
    char out[4200];
    int *tokens = NULL, rc = out_path(out, sizeof out, s, text_path, ".tok", b.vocab_size, "a token cache",
                                      tokcache_probe, &err);
    if (!rc) rc = read_file(text_path, &text, &n, &err);
    if (!rc && !(tokens = malloc((n + 1) * sizeof(int)))) rc = err_set(&err, "out of memory");
    double t0 = now_seconds();
    if (!rc) rc = bpe_encode(&b, text, n, tokens, &nt, &err);
    double dt = now_seconds() - t0;
    if (!rc) {
        TokCacheInfo info = {.vocab_size = b.vocab_size, .n_tokens = nt, .tokenizer_checksum = b.checksum,
                             .text_size = n, .text_hash = fnv1a64(text, n, FNV1A64_INIT)};
        uint16_t *t16 = (uint16_t *)tokens; // ids < 65536: narrowed in place, front to back
        for (size_t i = 0; i < nt; i++) t16[i] = (uint16_t)tokens[i];
        rc = tokcache_save(out, &info, t16, &err);
    }
    if (!rc)
        fprintf(stderr, "tokenize: %zu bytes -> %zu tokens (%.3f bytes/token) in %.3f s (%.1f MB/s); wrote %s\n", n, nt,
                nt ? (double)n / (double)nt : 0.0, dt, (double)n / 1e6 / (dt > 0 ? dt : 1e-9), out);
    if (rc) fail(&err);
    free(text);
    free(tokens);
    bpe_free(&b);
    return rc ? 1 : 0;
}

static int cmd_decode(const char *cache_path, const Settings *s) {
    Error err = {{0}};
    Bpe b;
    if (bpe_load(&b, s->tokenizer, &err)) return fail(&err);
    TokCacheInfo info;
    const uint16_t *tokens = NULL;
    Mapped map;
    int rc = tokcache_open(&map, cache_path, &info, &tokens, &err);
    if (!rc && (info.tokenizer_checksum != b.checksum || info.vocab_size != b.vocab_size))
        rc = err_set(&err, "%s: was encoded with another tokenizer than %s (checksum differs)", cache_path,
                     s->tokenizer);
    if (!rc) {
        for (uint64_t i = 0; i < info.n_tokens; i++) {
            const unsigned char *p;
            size_t len = bpe_decode(&b, tokens[i], &p);
            fwrite(p, 1, len, stdout);
        }
        rc = stream_check(stdout, "stdout", &err);
    }
    unmap_file(&map);
    bpe_free(&b);
    return rc ? fail(&err) : 0;
}

// Train time, encode speed and bytes per token for each size.
static int cmd_bench(const char *text_path, const Settings *s) {
    Error err = {{0}};
    unsigned char *text;
    size_t n;
    if (read_file(text_path, &text, &n, &err)) return fail(&err);
    int *tokens = malloc((n + 1) * sizeof(int));
    if (!tokens) return free(text), fprintf(stderr, "tokenize: out of memory\n"), 1;
    printf("%s: %zu bytes, best of %d\n%8s %10s %12s %12s %10s\n", text_path, n, (int)s->repeat, "vocab", "train_s",
           "encode_MB/s", "tokens", "bytes/tok");
    int rc = 0;
    for (const char *p = s->sizes; *p && !rc;) {
        int64_t V;
        char buf[32];
        size_t len = strcspn(p, ",");
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 31 ? len : 31), p);
        p += len + (p[len] == ',');
        if (parse_i64(buf, 256, 65536, &V)) {
            fprintf(stderr, "tokenize: --sizes '%s' is not a vocabulary size (256..65536) (see --help)\n", buf);
            rc = 2;
            break;
        }
        double best_train = 1e30, best_enc = 1e30;
        size_t nt = 0;
        for (int r = 0; r < s->repeat && !rc; r++) {
            Bpe b;
            double t0 = now_seconds();
            if (bpe_train(&b, text, n, (int)V, &err)) {
                rc = fail(&err);
                break;
            }
            double t1 = now_seconds();
            rc = bpe_encode(&b, text, n, tokens, &nt, &err) ? fail(&err) : 0;
            double t2 = now_seconds();
            bpe_free(&b);
            if (t1 - t0 < best_train) best_train = t1 - t0;
            if (t2 - t1 < best_enc) best_enc = t2 - t1;
        }
        if (!rc)
            printf("%8d %10.3f %12.1f %12zu %10.3f\n", (int)V, best_train, (double)n / 1e6 / best_enc, nt,
                   (double)n / (double)nt);
    }
    free(text);
    free(tokens);
    return rc;
}

int main(int argc, char **argv) {
    Settings s = default_settings();
    stdout_buffer();
    signal(SIGPIPE, SIG_IGN); // a closed pipe is a failed write (exit 1, one line), not exit 141
    unsigned char given[N_OPTIONS] = {0};
    const char *pos[2];
    int n_pos;
    Error err = {{0}};
    int rc = options_parse(OPTIONS, N_OPTIONS, &s, given, argc, argv, pos, 2, &n_pos, &err);
    if (rc == 0) rc = options_check_repeats(OPTIONS, N_OPTIONS, given, &err);
    if (rc == 2) return print_version("tokenize");
    if (rc == 1) {
        usage(stdout);
        return stream_check(stdout, "stdout", &err) ? fail(&err) : 0;
    }
    static const struct {
        const char *name;
        int (*run)(const char *path, const Settings *s);
    } CMDS[] = {{"train", cmd_train}, {"encode", cmd_encode}, {"decode", cmd_decode}, {"bench", cmd_bench}};
    const char *cmd = n_pos > 0 ? pos[0] : "";
    int which = -1;
    for (int i = 0; i < (int)(sizeof CMDS / sizeof CMDS[0]); i++)
        if (!strcmp(cmd, CMDS[i].name)) which = i;
    if (!rc && which < 0) rc = err_set(&err, n_pos ? "unknown command '%.100s'" : "a command is required", cmd);
    if (!rc && n_pos != 2) rc = err_set(&err, "%s needs one file", cmd);
    if (!rc && (!strcmp(cmd, "encode") || !strcmp(cmd, "decode")) && !s.tokenizer)
        rc = err_set(&err, "%s needs --tokenizer FILE", cmd);
    if (rc) {
        fprintf(stderr, "tokenize: %s (see --help)\n", err.msg);
        return 2;
    }
    rc = CMDS[which].run(pos[1], &s);
    // a table or text on stdout that did not reach its file is a failure (> /dev/full)
    if (!rc && stream_check(stdout, "stdout", &err)) rc = fail(&err);
    return rc;
}
