// export_llama: writes a model trained by train_llama (or a llama2.c
// checkpoint) in another program's format (docs/export.md):
//
//   ./export_llama runs/rms/model.bin --format gguf --out runs/rms/model.gguf     # llama.cpp
//   ./export_llama runs/rms/model.bin --format hf --out runs/rms/hf                # Hugging Face folder
//   ./export_llama runs/rms/model.bin --format llama2c --out runs/rms/llama2c.bin # llama2.c (+ .tokenizer.bin)
//
// Only RMSNorm models can go out (the targets have no DyT); a model a target
// cannot run is refused with one line saying why, and nothing is written.
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "src/common.h"
#include "src/export.h"
#include "src/files.h"
#include "src/llama2c.h"
#include "src/model.h"
#include "src/options.h"
#include "src/sptok.h"
#include "src/version.h"

typedef struct {
    const char *format, *out, *tokenizer;
    int f16;
} Settings;

#define OPT_BASE Settings
static const Option OPTIONS[] = {
    {OPTION_STR("--format", format, NULL), .help = "llama2c, gguf (llama.cpp) or hf (Hugging Face folder)"},
    {OPTION_STR("--out", out, NULL), .help = "output file (llama2c, gguf) or folder (hf)"},
    {OPTION_FLAG("--f16", f16), .help = "store the matrices as float16 (gguf, hf; default float32)"},
    {OPTION_STR("-z", tokenizer, NULL),
     .help = "llama2c: the llama2.c tokenizer.bin of a llama2.c model with its own vocabulary"},
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

static void usage(FILE *f) {
    Settings d = {0};
    fprintf(f, "usage: export_llama MODEL --format llama2c|gguf|hf --out PATH [options]\n"
               "Writes MODEL (model.bin, checkpoint.bin or a llama2.c checkpoint) for llama2.c,\n"
               "llama.cpp (GGUF v3) or Hugging Face transformers (safetensors folder).\n\noptions:\n");
    options_usage(f, OPTIONS, N_OPTIONS, &d);
    fprintf(f, "  --help               this text\nexit: 0 ok, 1 input/export error (nothing written), 2 usage\n");
}

// A llama2.c tokenizer file of exactly V tokens. run.c reads only the first
// vocab_size of a longer one, so Llama 2's 32000 would pass for a byte
// model's 256 (<unk>, <s>, </s>, <0x00>, ...) and every token's text would be
// wrong.
static int sptok_load_exact(SpTok *sp, const char *path, int V, Error *err) {
    if (sptok_load(sp, path, V, err)) return -1;
    if (sp->file_tokens == V) return 0;
    if (sp->file_tokens < 0)
        err_set(err, "%s: the bytes after the model's %d tokens are not whole entries", path, V);
    else
        err_set(err, "%s: holds %d tokens, the model has %d: not this model's tokenizer", path, sp->file_tokens, V);
    sptok_free(sp);
    return -1;
}

// An existing OUT.tokenizer.bin is replaced only when it is the model's (files.h).
static int sptok_probe(const char *path, void *vocab_size, Error *err) {
    SpTok sp;
    if (sptok_load_exact(&sp, path, *(const int *)vocab_size, err)) return -1;
    sptok_free(&sp);
    return 0;
}

// The tokenizer for llama2.c: the byte vocabulary of a byte model, or -z for a
// llama2.c model with its own (exactly the model's tokens).
static int export_tokenizer(SpTok *sp, const Model *m, ModelFormat format, const char *tok_path, const char *out,
                            Error *err) {
    int V = m->cfg.vocab_size, bytes = V == 256 && format == FMT_LDYT;
    if (tok_path && bytes)
        return err_set(err, "-z %s: the model's vocabulary is our 256 bytes, written without -z; -z is for a "
                       "llama2.c model's own tokenizer", tok_path);
    if (!tok_path && V != 256)
        return err_set(err, "%s: vocab_size = %d is not the byte tokenizer's 256: give the model's tokenizer with "
                       "-z TOKENIZER", out, V);
    if (!tok_path) return sptok_bytes(sp, err);
    if (!sptok_load_exact(sp, tok_path, V, err)) return 0;
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return err_set(err, "-z %s", msg);
}

// The model for llama2.c and its tokenizer beside it (OUT.bin ->
// OUT.tokenizer.bin).
static int export_llama2c(const Model *m, ModelFormat format, const char *out, const char *tok_path, Error *err) {
    char tok_out[4096];
    size_t len = strlen(out);
    int stem = (int)(len > 4 && !strcmp(out + len - 4, ".bin") ? len - 4 : len);
    if (snprintf(tok_out, sizeof tok_out, "%.*s.tokenizer.bin", stem, out) >= (int)sizeof tok_out)
        return err_set(err, "%s: path too long", out);
    int vocab = m->cfg.vocab_size;
    if (output_check_ours(tok_out, "a llama2.c tokenizer", sptok_probe, &vocab, err)) return -1;
    SpTok sp;
    if (export_tokenizer(&sp, m, format, tok_path, out, err)) return -1;
    int rc = llama2c_export(m, out, err);
    if (!rc) rc = sptok_save(&sp, tok_out, err);
    if (!rc) fprintf(stderr, "wrote %s (llama2.c legacy format) and its tokenizer %s\n", out, tok_out);
    sptok_free(&sp);
    return rc;
}

// What the target refuses in the model, said about the model (not the
// output) before anything is written; an output that would land on an input.
static int export_inputs_check(const Model *m, const char *model_path, const Settings *s, ExportFormat f,
                               Error *err) {
    if (export_check(m, f, model_path, err)) return -1;
    if (s->f16 && export_f16_check(m, f, model_path, err)) return -1;
    if (f != EXPORT_LLAMA2C) { // the BPE vocabulary the target declares
        ExportVocab voc;
        if (export_vocab(&voc, m, model_path, err)) return -1;
        export_vocab_free(&voc);
    }
    const char *inputs[2] = {model_path, s->tokenizer};
    for (int i = 0; i < 2; i++) {
        int in = inputs[i] ? path_within(s->out, inputs[i], err) : 0;
        if (in < 0) return -1;
        if (in) return err_set(err, "--out %s: lands on or inside the input %s", s->out, inputs[i]);
    }
    return 0;
}

static int export_model(const Model *m, ModelFormat format, const Settings *s, ExportFormat f, Error *err) {
    int rc = f == EXPORT_LLAMA2C ? export_llama2c(m, format, s->out, s->tokenizer, err)
             : f == EXPORT_GGUF  ? gguf_export(m, s->out, s->f16, err)
                                 : hf_export(m, s->out, s->f16, err);
    if (!rc && f != EXPORT_LLAMA2C)
        fprintf(stderr, "wrote %s (%s, %s)\n", s->out, f == EXPORT_GGUF ? "GGUF v3, llama" : "Hugging Face LlamaForCausalLM",
                s->f16 ? "float16" : "float32");
    return rc;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); // a closed pipe is a failed write (exit 1, one line), not exit 141
    Settings s = {0};
    unsigned char given[N_OPTIONS] = {0};
    const char *pos[1];
    int n_pos, f = -1;
    Error err = {{0}};
    int rc = options_parse(OPTIONS, N_OPTIONS, &s, given, argc, argv, pos, 1, &n_pos, &err);
    if (rc == 0) rc = options_check_repeats(OPTIONS, N_OPTIONS, given, &err);
    if (rc == 2) return print_version("export_llama");
    if (rc == 1) {
        usage(stdout);
        if (!stream_check(stdout, "stdout", &err)) return 0;
        fprintf(stderr, "export_llama: %s\n", err.msg);
        return 1;
    }
    if (rc == 0 && n_pos != 1) rc = err_set(&err, "MODEL is required");
    if (rc == 0 && !s.format) rc = err_set(&err, "--format is required (llama2c, gguf or hf)");
    if (rc == 0 && (f = export_format_parse(s.format)) < 0)
        rc = err_set(&err, "--format %s: must be llama2c, gguf or hf", s.format);
    if (rc == 0 && !s.out) rc = err_set(&err, "--out is required");
    if (rc == 0 && !*s.out) rc = err_set(&err, "--out: an empty path");
    if (rc == 0 && f != EXPORT_LLAMA2C && s.tokenizer)
        rc = err_set(&err, "-z: a llama2.c tokenizer cannot be written as byte-level BPE; only --format llama2c takes it");
    if (rc == 0 && f == EXPORT_LLAMA2C && s.f16) rc = err_set(&err, "--f16: llama2.c's format is float32 only");
    if (rc) {
        fprintf(stderr, "export_llama: %s (see --help)\n", err.msg);
        return 2;
    }
    // a file-size limit (a full disk) is a write error the writers report and
    // clean up after (nothing under the output name), not a fatal signal
    signal(SIGXFSZ, SIG_IGN);
    Model m;
    ModelFormat format;
    if (model_load_any(&m, pos[0], &format, &err)) {
        fprintf(stderr, "export_llama: %s\n", err.msg);
        return 1;
    }
    rc = export_inputs_check(&m, pos[0], &s, (ExportFormat)f, &err) ||
         export_model(&m, format, &s, (ExportFormat)f, &err);
    if (rc) fprintf(stderr, "export_llama: %s\n", err.msg);
    model_free(&m);
    return rc ? 1 : 0;
}
