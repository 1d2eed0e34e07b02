// export_llama: writes a model trained by train_llama (or a llama2.c
// checkpoint) in another program's format (docs/export.md):
//
//   ./export_llama runs/rms/model.bin --format gguf --out runs/rms/model.gguf     # llama.cpp
//   ./export_llama runs/rms/model.bin --format hf --out runs/rms/hf                # Hugging Face folder
//   ./export_llama runs/rms/model.bin --format llama2c --out runs/rms/llama2c.bin # llama2.c (+ .tokenizer.bin)
//   ./export_llama runs/rms/model.bin --format model --dtype bf16 --out runs/rms/model-bf16.bin  # bf16 weights
//
// Only RMSNorm models can go to llama.cpp, Hugging Face and llama2.c (they
// have no DyT); a model a target cannot run is refused with one line saying
// why, and nothing is written. Our own model.bin takes every model.
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "src/common.h"
#include "src/export.h"
#include "src/files.h"
#include "src/model.h"
#include "src/options.h"
#include "src/version.h"

typedef struct {
    const char *format, *out, *tokenizer, *dtype;
    int f16;
} Settings;

// What --help and the usage errors say about the targets comes from their
// table (src/export.c): describe_targets fills these before anything is
// parsed or printed.
static char FORMAT_HELP[160], OUT_HELP[160], DTYPE_HELP[400], Z_HELP[160];
static char NAMES[64];   // "llama2c, gguf or hf"
static char Z_NAMES[64]; // the targets that take -z: "llama2c"

#define OPT_BASE Settings
static const Option OPTIONS[] = {
    {OPTION_STR("--format", format, NULL), .help = FORMAT_HELP},
    {OPTION_STR("--out", out, NULL), .help = OUT_HELP},
    {OPTION_STR("--dtype", dtype, NULL), .choice = out_dtype_name, .help = DTYPE_HELP},
    {OPTION_FLAG("--f16", f16), .help = "the same as --dtype fp16"},
    {OPTION_STR("-z", tokenizer, NULL), .help = Z_HELP},
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

#define ALL_TARGETS ((1u << N_EXPORT_FORMATS) - 1)

// "gguf: the matrices, hf: every tensor": the targets storing dtype (OUT_*), and what.
static void which_tensors(char *buf, size_t cap, int dtype) {
    buf[0] = 0;
    for (int f = 0; f < N_EXPORT_FORMATS; f++) {
        int half = export_half((ExportFormat)f, dtype);
        if (half != HALF_NONE)
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s: %s", buf[0] ? ", " : "", EXPORT_TARGETS[f].name,
                     half == HALF_ALL ? "every tensor" : "the matrices");
    }
}

static void describe_targets(void) {
    unsigned folders = 0, sp = 0;
    for (int f = 0; f < N_EXPORT_FORMATS; f++) {
        const ExportTarget *t = &EXPORT_TARGETS[f];
        folders |= t->folder ? 1u << f : 0;
        sp |= t->vocab == VOCAB_LLAMA2C ? 1u << f : 0;
    }
    char files[64], dirs[64], f16[96], bf16[96];
    export_list(NAMES, sizeof NAMES, ALL_TARGETS, LIST_NAMES, ", ", " or ");
    export_list(Z_NAMES, sizeof Z_NAMES, sp, LIST_NAMES, ", ", " or ");
    export_list(FORMAT_HELP, sizeof FORMAT_HELP, ALL_TARGETS, LIST_HELP, ", ", " or ");
    export_list(files, sizeof files, ALL_TARGETS & ~folders, LIST_NAMES, ", ", ", ");
    export_list(dirs, sizeof dirs, folders, LIST_NAMES, ", ", ", ");
    which_tensors(f16, sizeof f16, OUT_FP16);
    which_tensors(bf16, sizeof bf16, OUT_BF16);
    snprintf(OUT_HELP, sizeof OUT_HELP, "output file (%s) or folder (%s)", files, dirs);
    snprintf(DTYPE_HELP, sizeof DTYPE_HELP, "the weights' type: fp16 (%s), bf16 (%s); default the model's own (fp32, "
             "or a bf16 model.bin's bf16 where the target has it)", f16, bf16);
    snprintf(Z_HELP, sizeof Z_HELP, "%s: the llama2.c tokenizer.bin of a llama2.c model with its own vocabulary",
             Z_NAMES);
}

// s in lines of at most `width` characters, broken at spaces
static void print_wrapped(FILE *f, const char *s, int width) {
    while (*s) {
        int n = (int)strlen(s), cut = n;
        if (n > width) {
            for (cut = width; cut > 0 && s[cut] != ' '; cut--) {}
            if (!cut) cut = width; // a word longer than the line
        }
        fprintf(f, "%.*s\n", cut, s);
        s += cut + (s[cut] == ' ');
    }
}

static void usage(FILE *f) {
    Settings d = {0};
    char names[64], readers[160], intro[320];
    export_list(names, sizeof names, ALL_TARGETS, LIST_NAMES, "|", "|");
    export_list(readers, sizeof readers, ALL_TARGETS, LIST_READERS, ", ", " or ");
    snprintf(intro, sizeof intro, "Writes MODEL (model.bin, checkpoint.bin or a llama2.c checkpoint) for %s.", readers);
    fprintf(f, "usage: export_llama MODEL --format %s --out PATH [options]\n", names);
    print_wrapped(f, intro, 80);
    fprintf(f, "\noptions:\n");
    options_usage(f, OPTIONS, N_OPTIONS, &d);
    fprintf(f, "  --help               this text\n  --version            the build: version and commit\nexit: 0 ok, 1 input/export error (nothing written), 2 usage\n");
}

// What the target refuses in the model, said about the model (not the
// output) before anything is written; an output that would land on an input.
static int export_inputs_check(const Model *m, const char *model_path, const Settings *s, ExportFormat f,
                               int dtype, Error *err) {
    if (export_check(m, f, model_path, err)) return -1;
    if (export_dtype_check(m, f, dtype, model_path, err)) return -1;
    if (EXPORT_TARGETS[f].vocab == VOCAB_BPE) { // the BPE vocabulary the target declares
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

// The usage errors (exit 2); *f is the format's row, *dtype the weights' type
// (OUT_*; -1 when neither --dtype nor --f16 is given: the model's own, decided
// once it is read).
static int args_check(const Settings *s, int n_pos, int *f, int *dtype, Error *err) {
    if (n_pos != 1) return err_set(err, "MODEL is required");
    if (!s->format) return err_set(err, "--format is required (%s)", NAMES);
    if ((*f = export_format_parse(s->format)) < 0) return err_set(err, "--format %s: must be %s", s->format, NAMES);
    const ExportTarget *t = &EXPORT_TARGETS[*f];
    if (!s->out) return err_set(err, "--out is required");
    if (!*s->out) return err_set(err, "--out: an empty path");
    if (t->vocab == VOCAB_BPE && s->tokenizer)
        return err_set(err, "-z: a llama2.c tokenizer cannot be written as byte-level BPE; only --format %s takes it",
                       Z_NAMES);
    if (t->vocab == VOCAB_OWN && s->tokenizer)
        return err_set(err, "-z: --format %s writes the model with the vocabulary it carries; only --format %s takes "
                       "a llama2.c tokenizer", t->name, Z_NAMES);
    if (s->f16 && s->dtype) return err_set(err, "--f16 and --dtype: give one of them (--f16 is --dtype fp16)");
    *dtype = -1; // options_parse let only out_dtype_name's names through
    for (int d = 0; s->dtype && d < N_OUT_DTYPES; d++)
        if (!strcmp(s->dtype, out_dtype_name(d))) *dtype = d;
    if (s->f16) *dtype = OUT_FP16;
    if (*dtype >= 0 && export_half((ExportFormat)*f, *dtype) == HALF_NONE) {
        char takes[64] = "fp32";
        for (int d = OUT_FP16; d < N_OUT_DTYPES; d++)
            if (export_half((ExportFormat)*f, d) != HALF_NONE)
                snprintf(takes + strlen(takes), sizeof takes - strlen(takes), " or %s", out_dtype_name(d));
        return err_set(err, "%s%s: %s's format has no %s weights (--dtype %s)", s->f16 ? "--f16" : "--dtype ",
                       s->f16 ? "" : s->dtype, t->target, out_dtype_name(*dtype), takes);
    }
    return 0;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); // a closed pipe is a failed write (exit 1, one line), not exit 141
    describe_targets();
    Settings s = {0};
    unsigned char given[N_OPTIONS] = {0};
    const char *pos[1];
    int n_pos, f = -1, dtype = -1;
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
    if (rc || args_check(&s, n_pos, &f, &dtype, &err)) {
        fprintf(stderr, "export_llama: %s (see --help)\n", err.msg);
        return 2;
    }
    // a file-size limit (a full disk) is a write error the writers report and
    // clean up after (nothing under the output name), not a fatal signal
    signal(SIGXFSZ, SIG_IGN);
    Model m;
    ExportArgs a = {s.out, dtype, s.tokenizer, FMT_LDYT};
    if (model_load_any(&m, pos[0], &a.model_format, &err)) {
        fprintf(stderr, "export_llama: %s\n", err.msg);
        return 1;
    }
    // by default the model's own type: a bf16 model.bin's stays bf16 where the target stores bf16
    int held = m.dtype, widened = held == DTYPE_BF16 && export_half((ExportFormat)f, OUT_BF16) == HALF_NONE;
    if (a.dtype < 0) a.dtype = held == DTYPE_BF16 && !widened ? OUT_BF16 : OUT_FP32;
    // the writers read fp32: a bf16 model's weights widened (exactly)
    if (model_set_dtype(&m, DTYPE_F32, &err)) {
        fprintf(stderr, "export_llama: %s\n", err.msg);
        model_free(&m);
        return 1;
    }
    if (widened && dtype < 0)
        fprintf(stderr, "export_llama: note: %s holds bf16 weights; %s's format has none, so they go out as float32 "
                "(exactly their values)\n", pos[0], EXPORT_TARGETS[f].target);
    rc = export_inputs_check(&m, pos[0], &s, (ExportFormat)f, a.dtype, &err) || EXPORT_TARGETS[f].write(&m, &a, &err);
    if (rc) fprintf(stderr, "export_llama: %s\n", err.msg);
    model_free(&m);
    return rc ? 1 : 0;
}
