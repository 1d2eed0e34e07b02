#include "settings.h"

#include "matmul.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// the table

#define OPT_BASE Settings
#define BIG 1e9
#define INT OPTION_INT
#define FLOAT OPTION_FLOAT
#define STR OPTION_STR
#define FLAG OPTION_FLAG
// where a checkpoint records it: run block slot s (added in block version v), header, data record
#define RUN(s, v) .rec = REC_RUN, .slot = s, .since = v
#define HEADER .rec = REC_HEADER
#define DATAREC .rec = REC_DATA
// on --resume: may differ from the checkpoint (the others must match it)
#define MAY_DIFFER .may_differ = 1

static const Option SETTINGS[] = {
    {STR("--data", data, NULL), DATAREC, MAY_DIFFER,
     .help = "text to train on (required unless resuming): a file, a folder (its files in name order) or files "
             "separated by commas; documents are joined by the bytes \\n 0x1E \\n"},
    {STR("--val-data", val_data, NULL), DATAREC, MAY_DIFFER,
     .help = "text to validate on, in the forms --data takes (default: the last 10% of --data's tokens)"},
    {INT("--vocab-size", vocab_size, 256, 65536, 256), HEADER,
     .help = "tokens: 256 = bytes; more = a byte-level BPE vocabulary, trained on --data (or reused) in DATA.bpeN "
             "(beside a folder; beside the first of several files), with the encoded text cached in DATA.bpeN.tok"},
    {STR("--out", out, NULL), MAY_DIFFER,
     .help = "output folder for log.csv, checkpoint.bin, model.bin, result.txt (default: runs/NORM); not on or "
             "inside --data or --val-data"},
    {STR("--norm", norm, "rmsnorm"), HEADER, .help = "the norm kind (the list below; --list-norms)"},
    {STR("--emb-scale", emb_scale, NULL), HEADER,
     .help = "on or off: the embedding output times a learnable scalar, init sqrt(dim) (default: on for the "
             "norm-free kinds, off for the normalizing ones)"},
    {INT("--dim", dim, 2, 65536, 256), HEADER, .help = "model width d"},
    {INT("--layers", layers, 1, 1024, 4), HEADER, .help = "transformer blocks"},
    {INT("--heads", heads, 1, 65536, 4), HEADER, .help = "query heads (d/heads must be even)"},
    {INT("--kv-heads", kv_heads, 0, 65536, 0), HEADER, .help = "key/value heads, divides --heads (0 = --heads)"},
    {STR("--mlp", mlp, "swiglu"), HEADER,
     .help = "MLP: swiglu (w2(silu(w1 n) * w3 n)) or gelu (w2(gelu(w1 n)), two matrices)"},
    {INT("--hidden", hidden, 0, 1048576, 0), HEADER,
     .help = "MLP hidden size (0 = SwiGLU: 8d/3 rounded up to 32; GELU: 4d)"},
    {INT("--seq", seq, 1, 65536, 256), HEADER, .help = "sequence length T (the model's context)"},
    {INT("--batch", batch, 1, 65536, 8), RUN(1, 2), .help = "sequences per micro-batch B"},
    {INT("--grad-accum", grad_accum, 1, 65536, 1), RUN(2, 2), .help = "micro-batches per optimizer step"},
    {INT("--steps", steps, 1, BIG, 1000), RUN(3, 2), .help = "optimizer steps"},
    {FLOAT("--lr", lr, 0, 10, 1e-3), RUN(7, 2), .help = "peak learning rate"},
    {INT("--warmup", warmup, 0, BIG, 100), RUN(4, 2), .help = "linear warmup steps, then cosine decay to lr/10"},
    {FLOAT("--weight-decay", weight_decay, 0, 10, 0.1), RUN(8, 2),
     .help = "AdamW weight decay (matrices and embeddings; every parameter with --norm-decay)"},
    {FLAG("--norm-decay", norm_decay), RUN(15, 3), .applies = APPLIES_UNDECAYED,
     .help = "weight decay also on the norm parameters, the embedding scale and the gates: one AdamW group, as "
             "the DyT authors' LLaMA code"},
    {FLOAT("--scalar-lr-mult", scalar_lr_mult, 0, 1e6, 1.0), RUN(16, 3), .applies = APPLIES_SCALARS,
     .help = "learning rate (and decay) of the scalar parameters (each alpha and shift, the embedding scale, the "
             "residual gates) as a multiple of --lr's"},
    {FLOAT("--beta2", beta2, 0, 0.99999, 0.95), RUN(17, 4),
     .help = "AdamW's second-moment decay (LLaMA's 0.95; PyTorch's default 0.999)"},
    {FLOAT("--clip", clip, 0, 1e30, 1.0), RUN(9, 2), .help = "global gradient-norm clip (0 = off)"},
    {STR("--matmul", matmul, NULL), RUN(18, 5), MAY_DIFFER, .choice = matmul_backend_name,
     .help = "who computes the matrix products: onednn by default where the build has it (1.7x faster training "
             "here), else openblas (docs/perf.md); a resume may change it, and the bits then differ"},
    {STR("--precision", precision, "fp32"), RUN(19, 5), MAY_DIFFER, .choice = precision_name,
     .help = "the matrix products' operands: fp32, or rounded to bf16 (weights, optimizer, norms, softmax and "
             "loss stay fp32); a resume may change it, and the bits then differ"},
    {STR("--save-dtype", save_dtype, "fp32"), MAY_DIFFER, .choice = dtype_name,
     .help = "the weights' type in model.bin: fp32, or bf16 (half the bytes, for generation: infer_llama keeps "
             "them bf16, with a bf16 KV cache); checkpoints stay fp32, and export_llama --format model converts "
             "a model.bin later"},
    {INT("--eval-every", eval_every, 1, BIG, 100), RUN(11, 2), MAY_DIFFER, .repeat = 1,
     .help = "steps between validation evaluations"},
    {INT("--eval-batches", eval_batches, 1, 65536, 8), RUN(5, 2), .help = "fixed validation batches per evaluation"},
    {INT("--ckpt-every", ckpt_every, 1, BIG, 500), MAY_DIFFER, .repeat = 1,
     .help = "steps between checkpoints (and at the end)"},
    {INT("--keep", keep, 1, 1e6, 1), MAY_DIFFER, .repeat = 1,
     .help = "checkpoints to keep: checkpoint.bin is the newest; N > 1 also keeps the last N as "
             "checkpoint-STEP.bin (not stored in the checkpoint: repeat it on resume)"},
    {STR("--resume", resume, NULL), MAY_DIFFER,
     .help = "continue from OUT/checkpoint.bin (settings come from it)"},
    {INT("--seed", seed, 0, 9.007199254740992e15, 0), RUN(6, 2), .help = "seed of weights and data order"},
    {INT("--threads", threads, 0, 1024, 0), MAY_DIFFER, .repeat = 1, .help = "threads (0 = all cores)"},
    {FLOAT("--alpha-attn", alpha_attn, -1e3, 1e3, NAN), HEADER, .applies = APPLIES_ALPHA,
     .help = "alpha0 of the attention-input norm (kinds with alpha; default: the kind's)"},
    {FLOAT("--alpha-ffn", alpha_ffn, -1e3, 1e3, NAN), HEADER, .applies = APPLIES_ALPHA,
     .help = "alpha0 of the FFN-input norm (kinds with alpha; default: the kind's)"},
    {FLOAT("--alpha-final", alpha_final, -1e3, 1e3, NAN), HEADER, .applies = APPLIES_ALPHA,
     .help = "alpha0 of the final norm (kinds with alpha; default: --alpha-ffn's)"},
    {FLAG("--no-dyt-beta", no_dyt_beta), HEADER, .applies = APPLIES_OPT_BETA,
     .help = "DyT without beta (as the authors' LLaMA code)"},
    {FLAG("--tie-embeddings", tie_embeddings), HEADER, .help = "output head shares the token embedding"},
    {FLAG("--residual-gate", residual_gate), HEADER,
     .help = "each block's attention and FFN branch times a learnable per-layer scalar, init 0 (ReZero)"},
    {FLAG("--list-norms", list_norms), .alone = 1,
     .help = "print the norm kinds, one name per line, and exit"},
    {INT("--stop-after", stop_after, 0, BIG, 0), MAY_DIFFER, .repeat = 1,
     .help = "stop after this many steps of this invocation, with a checkpoint (0 = run to --steps)"},
    {INT("--overlap", overlap, 0, 1, 0), MAY_DIFFER, .applies = APPLIES_RANKS,
     .help = "under MPI: 1 reduces each layer's gradients while the layers below are differentiated, 0 all at "
             "once after the backward pass"},
    {STR("--preset", preset, NULL),
     .help = "a named recipe (below): sets the flags it lists, except those given explicitly; files record the "
             "flags, not the name"},
    {STR("--print-config", print_config, NULL), .alone = 1,
     .help = "print the settings a checkpoint or model file records, as flags the trainer accepts (a model "
             "file: the model's), and exit"},
    {STR("--made-by", made_by, NULL), MAY_DIFFER,
     .help = "the build that wrote these settings (config.txt's first line): another build than this one "
             "(--version) is said in a note, as its numbers may differ"},
    {FLAG("--shared-flags", shared_flags), MAY_DIFFER,
     .help = "the flags are one set for runs of several kinds (as compare_norms.sh and sweep.sh pass them): a "
             "flag that does nothing in this run is dropped with a note instead of refused, and a repeated "
             "flag's last value is used"},
};
#define N_SETTINGS ((int)(sizeof SETTINGS / sizeof SETTINGS[0]))
_Static_assert(N_SETTINGS <= MAX_SETTINGS, "raise MAX_SETTINGS");

int settings_count(void) { return N_SETTINGS; }
const Option *setting_row(int i) { return &SETTINGS[i]; }

int setting_index(const char *flag) {
    for (int i = 0; i < N_SETTINGS; i++)
        if (!strcmp(SETTINGS[i].name, flag)) return i;
    return -1;
}

Settings settings_defaults(void) {
    Settings s;
    memset(&s, 0, sizeof s);
    options_defaults(SETTINGS, N_SETTINGS, &s);
    s.matmul = matmul_backend_name(matmul_default_backend()); // the build's: no constant in the table
    s.ranks = 1;
    return s;
}

static void *field(const Settings *s, int i) { return option_field(&SETTINGS[i], s); }

// ----------------------------------------------------------------------------
// presets: named recipes, each a list of flags as on the command line

typedef struct {
    const char *name, *what;
    const char *const flags[16]; // NULL-terminated
    int alpha_by_width;          // alpha0 per site from the DyT paper's table for --dim (ALPHA_BY_WIDTH)
} Preset;

static const Preset PRESETS[] = {
    {"default", "this trainer's own recipe, no flag changed (DyT: with beta, alpha0 1, weight decay on "
     "matrices and embeddings only): what the others are compared with", {NULL}, 0},
    {"dyt-official", "the DyT authors' LLaMA code: DyT without beta, one AdamW group (weight decay 0.1 on "
     "every parameter, the scalars at the base lr), alpha0 per site for the width; their schedule (warmup, "
     "cosine to lr/10, AdamW 0.9/0.95, clip 1) is this trainer's",
     {"--norm", "dyt", "--no-dyt-beta", "--norm-decay", "--weight-decay", "0.1", "--scalar-lr-mult", "1",
      "--clip", "1", NULL}, 1},
    {"dyt-vision", "the DyT authors' vision code: DyT with beta, alpha0 0.5 at every site, 1-D parameters "
     "(gains, shifts, scalars) without weight decay (this trainer's default)",
     {"--norm", "dyt", "--alpha-attn", "0.5", "--alpha-ffn", "0.5", "--alpha-final", "0.5", NULL}, 0},
};
#define N_PRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))

// alpha0 for LLaMA in the DyT paper (Zhu et al. 2025, "Transformers without
// Normalization", its table of alpha0 by width: attention input / FFN input
// and final): a width takes the row of the largest listed width not above
// it; narrower models the first row.
static const struct {
    int width;
    double attn, other;
} ALPHA_BY_WIDTH[] = {{1024, 1.0, 1.0}, {2048, 1.0, 0.5}, {4096, 0.8, 0.2}, {5120, 0.6, 0.15}, {8192, 0.2, 0.05}};

static const Preset *find_preset(const char *name) {
    for (int i = 0; i < N_PRESETS; i++)
        if (!strcmp(PRESETS[i].name, name)) return &PRESETS[i];
    return NULL;
}

// The preset's settings over those in s (a model of width s->dim): its flags,
// then the alpha0 of that width. set[i] marks the options it sets.
static int preset_settings(const Preset *p, Settings *s, unsigned char *set, Error *err) {
    const char *argv[32] = {"--preset"};
    int argc = 1, n_pos;
    while (p->flags[argc - 1]) argv[argc] = p->flags[argc - 1], argc++;
    const char *pos[1];
    // options_parse reads argv and keeps pointers to its strings: the literals above
    if (options_parse(SETTINGS, N_SETTINGS, s, set, argc, (char **)argv, pos, 0, &n_pos, err))
        return err_set(err, "--preset %s: %s", p->name, err->msg);
    if (!p->alpha_by_width) return 0;
    int row = 0;
    for (int i = 0; i < (int)(sizeof ALPHA_BY_WIDTH / sizeof ALPHA_BY_WIDTH[0]); i++)
        if (ALPHA_BY_WIDTH[i].width <= s->dim) row = i;
    s->alpha_attn = ALPHA_BY_WIDTH[row].attn, set[setting_index("--alpha-attn")] = 1;
    s->alpha_ffn = ALPHA_BY_WIDTH[row].other, set[setting_index("--alpha-ffn")] = 1;
    s->alpha_final = ALPHA_BY_WIDTH[row].other, set[setting_index("--alpha-final")] = 1;
    return 0;
}

// The flags a preset sets for a model of width dim, as they would be typed.
static void preset_text(const Preset *p, int64_t dim, char *buf, size_t cap) {
    Settings t = settings_defaults();
    t.dim = dim;
    unsigned char set[N_SETTINGS] = {0};
    Error e;
    size_t n = 0;
    buf[0] = 0;
    if (preset_settings(p, &t, set, &e)) return; // the table's own flags: tested to parse
    for (int i = 0; i < N_SETTINGS && n < cap; i++) {
        char one[512];
        if (set[i] && option_flag_text(&SETTINGS[i], &t, 0, one, sizeof one))
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " " : "", one);
    }
}

// Sets the preset's flags that were not typed (from[] marks them
// FROM_PRESET). The alpha0 of the width follows the resolved --dim. A recipe
// applies to any kind: what it sets that does nothing for the run's kind
// (`--preset dyt-official --norm rmsnorm`: --no-dyt-beta, alpha0) is dropped
// later, with a note (settings_applicable).
static int apply_preset(Settings *s, unsigned char *from, Error *err) {
    const Preset *p = find_preset(s->preset);
    if (!p) {
        char names[512] = "";
        for (int i = 0, n = 0; i < N_PRESETS; i++)
            n += snprintf(names + n, sizeof names - (size_t)n, "%s%s", i ? ", " : "", PRESETS[i].name);
        char shown[80];
        return err_set(err, "--preset '%s' unknown (known: %s)", printable(s->preset, -1, shown, sizeof shown), names);
    }
    Settings t = *s;
    unsigned char set[N_SETTINGS] = {0};
    if (preset_settings(p, &t, set, err)) return -1;
    for (int i = 0; i < N_SETTINGS; i++)
        if (set[i] && !from[i]) option_copy(&SETTINGS[i], s, &t), from[i] = FROM_PRESET;
    return 0;
}

// ----------------------------------------------------------------------------
// the command line

// The defaults that follow another setting: --alpha-final, when not given, is --alpha-ffn's.
static void follow_defaults(Settings *s, const unsigned char *from) {
    if (!from[setting_index("--alpha-final")]) s->alpha_final = s->alpha_ffn;
}

// Repeats allowed by the row or by --shared-flags: the last value is used, said.
static void note_repeats(const Settings *s, const unsigned char *given, FILE *notes) {
    for (int i = 0; i < N_SETTINGS && notes; i++) {
        char v[128];
        if (given[i] < 2 || SETTINGS[i].type == OPT_FLAG) continue;
        option_format(&SETTINGS[i], s, v, sizeof v);
        fprintf(notes, "train_llama: note: %s given %d times: the last, %s, is used\n", SETTINGS[i].name, given[i], v);
    }
}

int settings_parse(Settings *s, unsigned char *from, int argc, char **argv, FILE *notes, Error *err) {
    *s = settings_defaults();
    unsigned char given[N_SETTINGS] = {0};
    const char *pos[1];
    int n_pos, rc = options_parse(SETTINGS, N_SETTINGS, s, given, argc, argv, pos, 0, &n_pos, err);
    if (rc < 0) return -1;
    if (!rc && !s->shared_flags && options_check_repeats(SETTINGS, N_SETTINGS, given, err)) return -1;
    if (!rc) note_repeats(s, given, notes);
    for (int i = 0; i < N_SETTINGS; i++) from[i] = given[i] ? FROM_TYPED : FROM_DEFAULT;
    if (s->preset) { // before --help: it shows the preset's values
        if (s->resume) return err_set(err, "--preset with --resume: the checkpoint holds the settings");
        if (apply_preset(s, from, err)) return -1;
    }
    follow_defaults(s, from);
    return rc;
}

void settings_usage(FILE *f, const Settings *d) {
    fprintf(f, "usage: train_llama --data FILE|FOLDER|FILE,FILE... [options]\n"
               "       train_llama --resume OUT/checkpoint.bin [options]\n"
               "Trains a small LLaMA with a choice of norm; docs/usage.md explains the options.\n\noptions%s:\n",
            d->preset ? " (defaults: with the preset)" : "");
    options_usage(f, SETTINGS, N_SETTINGS, d);
    fprintf(f, "  --help               this text (after --preset NAME: with the preset's flags)\n"
               "  --version            the build: version and commit\n"
               "A flag that does nothing in the run (an alpha0 for a kind without alpha) is refused, and so is\n"
               "one given twice, unless it says \"the last wins\" (or with --shared-flags).\n"
               "norm kinds (--norm; alpha, shift and beta are learnable):\n");
    for (int k = 0; k < N_NORMS; k++) fprintf(f, "  %-20s %s\n", NORM_KINDS[k].name, NORM_KINDS[k].help);
    fprintf(f, "MLP kinds (--mlp):\n");
    for (int k = 0; k < N_MLPS; k++) fprintf(f, "  %-20s %s\n", MLP_KINDS[k].name, MLP_KINDS[k].help);
    fprintf(f, "presets (--preset):\n");
    for (int i = 0; i < N_PRESETS; i++) {
        char text[1024];
        preset_text(&PRESETS[i], d->dim, text, sizeof text);
        fprintf(f, "  %-20s %s\n  %-20s sets: %s%s\n", PRESETS[i].name, PRESETS[i].what, "",
                text[0] ? text : "no flag", PRESETS[i].alpha_by_width ? " (alpha0 for this --dim)" : "");
    }
    fprintf(f, "  (flags given explicitly override a preset's)\n"
               "Under MPI (make MPI=1; mpirun -np N ./train_llama ...) N processes each take --batch rows\n"
               "of a global batch of N x --batch; see docs/mpi.md.\n"
               "exit: 0 done (or stopped by a signal after a checkpoint), 1 input/runtime error or divergence, 2 usage\n");
}

int settings_check_values(const Settings *s, Error *err) {
    const char *paths[][2] = {{"--out", s->out}, {"--data", s->data}, {"--val-data", s->val_data}, {"--resume", s->resume}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (paths[i][1] && !*paths[i][1]) return err_set(err, "%s: an empty path", paths[i][0]);
    char shown[210], names[512];
    if (norm_find(s->norm) < 0) {
        norm_names(names, sizeof names);
        return err_set(err, "--norm %s: unknown kind; known: %s", printable(s->norm, -1, shown, sizeof shown), names);
    }
    if (s->emb_scale && strcmp(s->emb_scale, "on") && strcmp(s->emb_scale, "off"))
        return err_set(err, "--emb-scale must be on or off");
    if (mlp_find(s->mlp) < 0) {
        for (int k = 0, n = 0; k < N_MLPS; k++)
            n += snprintf(names + n, sizeof names - (size_t)n, "%s%s", k ? ", " : "", MLP_KINDS[k].name);
        return err_set(err, "--mlp '%s' unknown (known: %s)", printable(s->mlp, 64, shown, sizeof shown), names);
    }
    return 0;
}

int settings_check_alone(const unsigned char *from, Error *err) {
    for (int a = 0; a < N_SETTINGS; a++) {
        if (!SETTINGS[a].alone || from[a] != FROM_TYPED) continue;
        for (int i = 0; i < N_SETTINGS; i++)
            if (i != a && from[i] == FROM_TYPED)
                return err_set(err, "%s takes no other option (got %s)", SETTINGS[a].name, SETTINGS[i].name);
    }
    return 0;
}

// ----------------------------------------------------------------------------
// flags that do nothing

// Whether the model has a present tensor of which pick() says yes.
static int has_tensor(const ModelConfig *c, int (*pick)(int)) {
    size_t sizes[N_TENSORS], n;
    Error e;
    if (config_layout(c, sizes, &n, &e)) return 1; // an invalid shape: reported later, by its own check
    for (int t = 0; t < N_TENSORS; t++)
        if (sizes[t] && pick(t)) return 1;
    return 0;
}
static int tensor_undecayed(int t) { return !tensor_decays(t); }
static int with_alpha(const Settings *s, const ModelConfig *c) { (void)s; return norm_has(c->norm, NP_ALPHA, 1); }
static int with_opt_beta(const Settings *s, const ModelConfig *c) { (void)s; return NORM_KINDS[c->norm].optional != 0; }
static int with_scalars(const Settings *s, const ModelConfig *c) { (void)s; return has_tensor(c, tensor_is_scalar); }
static int with_undecayed(const Settings *s, const ModelConfig *c) { (void)s; return has_tensor(c, tensor_undecayed); }
static int with_ranks(const Settings *s, const ModelConfig *c) { (void)c; return s->ranks > 1; }

// When each APPLIES_ rule holds, and what it needs (said when it does not).
static const struct {
    int (*holds)(const Settings *s, const ModelConfig *c);
    const char *needs;
} APPLIES[N_APPLIES] = {
    [APPLIES_ALWAYS] = {NULL, NULL},
    [APPLIES_ALPHA] = {with_alpha, "a norm kind with alpha"},
    [APPLIES_OPT_BETA] = {with_opt_beta, "a norm kind with an optional beta"},
    [APPLIES_SCALARS] = {with_scalars, "a model with scalar parameters (alpha, shift, --emb-scale on, --residual-gate)"},
    [APPLIES_UNDECAYED] = {with_undecayed, "a model with parameters besides matrices and embeddings"},
    [APPLIES_RANKS] = {with_ranks, "a run of 2 or more processes (mpirun -np N)"},
};
_Static_assert(sizeof APPLIES / sizeof APPLIES[0] == N_APPLIES, "a row per APPLIES_ rule");

static int applies(int i, const Settings *s, const ModelConfig *c) {
    int rule = SETTINGS[i].applies;
    return !APPLIES[rule].holds || APPLIES[rule].holds(s, c);
}

// The setting's value as the table's default (what is recorded when unset).
static void reset_to_default(Settings *s, int i) {
    Settings d = settings_defaults();
    option_copy(&SETTINGS[i], s, &d);
}

int settings_applicable(Settings *s, const ModelConfig *model, unsigned char *from, FILE *notes, Error *err) {
    ModelConfig c = model ? *model : settings_config(s);
    char dropped[1024] = "";
    size_t n = 0;
    for (int i = 0; i < N_SETTINGS; i++) {
        if (!from[i] || applies(i, s, &c)) continue;
        const char *needs = APPLIES[SETTINGS[i].applies].needs;
        if (from[i] == FROM_TYPED && !s->shared_flags)
            return err_set(err, "%s does nothing in this run (--norm %s): it applies to %s", SETTINGS[i].name,
                           NORM_KINDS[c.norm].name, needs);
        if (n < sizeof dropped)
            n += (size_t)snprintf(dropped + n, sizeof dropped - n, "%s%s%s", n ? ", " : "", SETTINGS[i].name,
                                  from[i] == FROM_PRESET ? " (from --preset)" : "");
        reset_to_default(s, i), from[i] = FROM_DEFAULT;
    }
    follow_defaults(s, from); // an --alpha-ffn dropped takes the --alpha-final that followed it
    if (n && notes)
        fprintf(notes, "train_llama: note: dropped, as they do nothing in this run (--norm %s): %s\n",
                NORM_KINDS[c.norm].name, dropped);
    return 0;
}

// ----------------------------------------------------------------------------
// the model header's settings

ModelConfig settings_config(const Settings *s) {
    ModelConfig c = {
        .dim = (int)s->dim, .hidden_dim = s->hidden ? (int)s->hidden : default_hidden_dim((int)s->dim, mlp_find(s->mlp)),
        .n_layers = (int)s->layers, .n_heads = (int)s->heads,
        .n_kv_heads = s->kv_heads ? (int)s->kv_heads : (int)s->heads, .vocab_size = (int)s->vocab_size,
        .seq_len = (int)s->seq, .tie_embeddings = s->tie_embeddings, .norm_eps = NORM_EPS_DEFAULT, .rope_theta = ROPE_THETA_DEFAULT,
        .mlp = mlp_find(s->mlp)};
    config_set_norm(&c, norm_find(s->norm));
    if (s->no_dyt_beta) c.opt_beta = 0;
    c.residual_gate = s->residual_gate;
    if (s->emb_scale) c.emb_scale = !strcmp(s->emb_scale, "on");
    if (!isnan(s->alpha_attn)) c.alpha_attn0 = (float)s->alpha_attn;
    if (!isnan(s->alpha_ffn)) c.alpha_ffn0 = (float)s->alpha_ffn;
    if (!isnan(s->alpha_final)) c.alpha_final0 = (float)s->alpha_final;
    return c;
}

void settings_from_config(const ModelConfig *c, Settings *s) {
    s->dim = c->dim, s->layers = c->n_layers, s->heads = c->n_heads, s->kv_heads = c->n_kv_heads;
    s->hidden = c->hidden_dim, s->seq = c->seq_len, s->vocab_size = c->vocab_size, s->norm = NORM_KINDS[c->norm].name;
    s->alpha_attn = c->alpha_attn0, s->alpha_ffn = c->alpha_ffn0, s->alpha_final = c->alpha_final0;
    s->mlp = MLP_KINDS[c->mlp].name, s->emb_scale = c->emb_scale ? "on" : "off";
    s->no_dyt_beta = NORM_KINDS[c->norm].optional && !c->opt_beta, s->tie_embeddings = c->tie_embeddings;
    s->residual_gate = c->residual_gate;
}

// ----------------------------------------------------------------------------
// the run block

void run_block_pack(const Settings *s, DataHashes h, int64_t *rb) {
    memset(rb, 0, RUN_BLOCK_SLOTS * sizeof(int64_t));
    rb[RB_VERSION] = RUN_BLOCK_VERSION, rb[RB_RANKS] = s->ranks, rb[RB_THREADS] = omp_get_max_threads();
    memcpy(&rb[RB_DATA_HASH], &h.data, 8);
    memcpy(&rb[RB_VAL_HASH], &h.val, 8);
    memcpy(&rb[RB_BUILD], build_name(), strlen(build_name())); // <= 63 bytes (version.c), zero after
    for (int i = 0; i < N_SETTINGS; i++) {
        if (SETTINGS[i].rec != REC_RUN) continue;
        int64_t *slot = &rb[SETTINGS[i].slot];
        if (SETTINGS[i].type == OPT_FLAG) *slot = *(const int *)field(s, i);
        else if (SETTINGS[i].choice) *slot = option_choice_index(&SETTINGS[i], s);
        else memcpy(slot, field(s, i), 8); // int64_t, or a double's bits
    }
}

// Whether slot k holds something in a block of this version.
static int slot_used(int k, int64_t version) {
    if (k == RB_VERSION || k == RB_DATA_HASH || k == RB_THREADS || k == RB_RANKS || k == RB_VAL_HASH) return 1;
    if (k >= RB_BUILD && k < RB_BUILD + RB_BUILD_SLOTS) return version >= 4;
    for (int i = 0; i < N_SETTINGS; i++)
        if (SETTINGS[i].rec == REC_RUN && SETTINGS[i].slot == k && SETTINGS[i].since <= version) return 1;
    return 0;
}

static int run_block_check(const int64_t *rb, const char *path, Error *err) {
    if (rb[RB_VERSION] == 1)
        return err_set(err, "%s: run settings version 1: written by a train_llama that sampled batches "
                       "differently; it cannot be resumed by this one", path);
    if (rb[RB_VERSION] < 2 || rb[RB_VERSION] > RUN_BLOCK_VERSION)
        return err_set(err, "%s: run settings version %lld unknown (this build reads 2 to %d)", path,
                       (long long)rb[RB_VERSION], RUN_BLOCK_VERSION);
    if (rb[RB_RANKS] < 1 || rb[RB_RANKS] > MAX_RANKS)
        return err_set(err, "%s: run settings: process count %lld out of range 1..%d", path,
                       (long long)rb[RB_RANKS], MAX_RANKS);
    for (int k = 0; k < RUN_BLOCK_SLOTS; k++)
        if (rb[k] && !slot_used(k, rb[RB_VERSION]))
            return err_set(err, "%s: run settings slot %d is not zero (reserved)", path, k);
    // the build's name: printable text, then zeros
    const unsigned char *b = (const unsigned char *)&rb[RB_BUILD];
    size_t len = strnlen((const char *)b, RB_BUILD_SLOTS * 8);
    int text = len < RB_BUILD_SLOTS * 8 && (len > 0 || rb[RB_VERSION] < 4);
    for (size_t j = 0; j < RB_BUILD_SLOTS * 8; j++)
        text = text && (j < len ? b[j] > 0x20 && b[j] < 0x7f : b[j] == 0);
    if (!text)
        return err_set(err, "%s: run settings slots %d to %d: the build's name is not text of 1 to %d bytes", path,
                       RB_BUILD, RB_BUILD + RB_BUILD_SLOTS - 1, BUILD_NAME_MAX);
    for (int i = 0; i < N_SETTINGS; i++) {
        int64_t v = rb[SETTINGS[i].slot];
        if (SETTINGS[i].rec == REC_RUN && SETTINGS[i].type == OPT_FLAG && v != 0 && v != 1)
            return err_set(err, "%s: run settings: %s %lld is not 0 or 1", path, SETTINGS[i].name + 2, (long long)v);
    }
    return 0;
}

int run_block_unpack(const int64_t *rb, const ModelConfig *c, const DataRecord *rec, Settings *s,
                     DataHashes *h, const char *path, Error *err) {
    if (run_block_check(rb, path, err)) return -1;
    for (int i = 0; i < N_SETTINGS; i++) {
        if (SETTINGS[i].rec != REC_RUN) continue;
        // an older block: the default; a choice, its code 0 (what builds before it did: openblas, fp32)
        if (SETTINGS[i].since > rb[RB_VERSION] && SETTINGS[i].choice)
            *(const char **)field(s, i) = SETTINGS[i].choice(0);
        else if (SETTINGS[i].since > rb[RB_VERSION]) reset_to_default(s, i);
        else if (SETTINGS[i].type == OPT_FLAG) *(int *)field(s, i) = (int)rb[SETTINGS[i].slot];
        else if (SETTINGS[i].choice) {
            int64_t code = rb[SETTINGS[i].slot];
            const char *name = code >= 0 && code <= INT_MAX ? SETTINGS[i].choice((int)code) : NULL;
            if (!name)
                return err_set(err, "%s: run settings: %s code %lld unknown to this build", path, SETTINGS[i].name,
                               (long long)code);
            *(const char **)field(s, i) = name;
        } else memcpy(field(s, i), &rb[SETTINGS[i].slot], 8);
    }
    s->ranks = rb[RB_RANKS];
    settings_from_config(c, s);
    if (rec) s->data = rec->data_spec, s->val_data = rec->val_spec;
    memcpy(&h->data, &rb[RB_DATA_HASH], 8);
    memcpy(&h->val, &rb[RB_VAL_HASH], 8);
    Error e;
    if (options_check_ranges(SETTINGS, N_SETTINGS, s, &e)) return err_set(err, "%s: run settings: %s", path, e.msg);
    return 0;
}

void run_block_build(const int64_t *rb, char name[BUILD_NAME_MAX + 1]) {
    memcpy(name, &rb[RB_BUILD], BUILD_NAME_MAX);
    name[BUILD_NAME_MAX] = 0;
}

// ----------------------------------------------------------------------------
// resuming

int settings_resume_check(const Settings *cli, const unsigned char *from, const Settings *ck,
                          const ModelConfig *cfg, Error *err) {
    int64_t want[RUN_BLOCK_SLOTS], got[RUN_BLOCK_SLOTS];
    run_block_pack(ck, (DataHashes){0, 0}, want);
    for (int i = 0; i < N_SETTINGS; i++) {
        if (from[i] != FROM_TYPED || SETTINGS[i].may_differ) continue;
        Settings t = *ck;
        option_copy(&SETTINGS[i], &t, cli);
        ModelConfig c = settings_config(&t);
        run_block_pack(&t, (DataHashes){0, 0}, got);
        // ModelConfig holds 4-byte ints and floats only: no padding to compare
        if (memcmp(&c, cfg, sizeof c) || memcmp(want, got, sizeof want)) {
            char a[128], b[128];
            option_format(&SETTINGS[i], cli, a, sizeof a);
            option_format(&SETTINGS[i], ck, b, sizeof b);
            return err_set(err, "%.32s %.128s differs from the checkpoint's %.128s", SETTINGS[i].name, a, b);
        }
    }
    return 0;
}

void settings_resume_take(Settings *s, const Settings *cli, const unsigned char *from) {
    for (int i = 0; i < N_SETTINGS; i++)
        if (from[i] == FROM_TYPED && SETTINGS[i].may_differ) option_copy(&SETTINGS[i], s, cli);
}

// ----------------------------------------------------------------------------
// the record as flags: config.txt and --print-config

// One flag per line, in --help's order, exactly as the trainer reads them
// back; the model's numbers at the float32 precision its header holds them.
// A setting that does nothing for this model (an alpha0 without alpha) is
// not written: the trainer would refuse it.
void settings_write(FILE *f, const Settings *s, int model_only, const char *build) {
    ModelConfig c = settings_config(s);
    Settings b = {.made_by = build && *build ? build : NULL};
    char line[4300];
    if (option_flag_text(&SETTINGS[setting_index("--made-by")], &b, 0, line, sizeof line)) fprintf(f, "%s\n", line);
    for (int i = 0; i < N_SETTINGS; i++) {
        int rec = SETTINGS[i].rec;
        if (rec == REC_NONE || (model_only && rec != REC_HEADER) || !applies(i, s, &c)) continue;
        if (option_flag_text(&SETTINGS[i], s, rec == REC_HEADER, line, sizeof line)) fprintf(f, "%s\n", line);
    }
}

int settings_print_file(const char *path, Error *err) {
    ModelConfig c;
    int kind;
    int64_t rb[RUN_BLOCK_SLOTS];
    DataHashes hash;
    DataRecord rec = {0}; // none in a checkpoint from before the data record: no --data line
    unsigned char *blob;
    size_t blob_bytes;
    Settings s = settings_defaults();
    if (settings_read(path, &c, &kind, rb, &blob, &blob_bytes, err)) return -1;
    int rc = blob && data_record_parse(&rec, blob, blob_bytes, path, err);
    free(blob);
    if (!rc && kind == KIND_CHECKPOINT) {
        rc = run_block_unpack(rb, &c, &rec, &s, &hash, path, err);
    } else if (!rc) {
        settings_from_config(&c, &s);
        fprintf(stderr, "train_llama: %s is a model file: it records the model's settings only\n", path);
    }
    char build[BUILD_NAME_MAX + 1] = "";
    if (!rc && kind == KIND_CHECKPOINT) run_block_build(rb, build);
    if (!rc) settings_write(stdout, &s, kind == KIND_MODEL, build);
    data_record_free(&rec);
    return rc ? -1 : fflush(stdout) ? err_set(err, "standard output: write failed") : 0;
}
