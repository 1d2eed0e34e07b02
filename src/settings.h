// The trainer's settings: ONE table (settings.c), a row per setting with its
// flag, type, field, range, default, help, where a checkpoint records it (run
// block slot, model header, data record or nowhere), its rule on --resume,
// when it does anything, and whether it may be repeated. Parsing, --help, the
// presets, the run block's packing and unpacking, config.txt and
// --print-config, the resume check and the check for flags that do nothing
// are loops over it. docs/adding-a-norm.md counts what a new setting costs.
#ifndef SETTINGS_H
#define SETTINGS_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "data.h"
#include "model.h"
#include "modelio.h" // RUN_BLOCK_SLOTS
#include "options.h"
#include "version.h"

typedef struct {
    const char *data, *val_data, *out, *norm, *resume, *emb_scale, *preset, *print_config, *mlp, *made_by;
    const char *matmul, *precision; // matmul.h's names
    const char *save_dtype;         // model.bin's weights: model.h's dtype names
    int64_t dim, layers, heads, kv_heads, hidden, seq, batch, grad_accum, steps, warmup;
    int64_t eval_every, eval_batches, ckpt_every, keep, seed, threads, stop_after, vocab_size;
    double lr, weight_decay, clip, alpha_attn, alpha_ffn, alpha_final, scalar_lr_mult, beta2;
    int no_dyt_beta, tie_embeddings, list_norms, residual_gate, norm_decay, shared_flags;
    int64_t overlap;
    int64_t ranks; // processes training together (not an option: mpirun -np); the global batch is ranks * batch
} Settings;

// Where a checkpoint records a setting (the table's `rec` column).
enum { REC_NONE, REC_RUN, REC_HEADER, REC_DATA };

// When a setting does anything (the `applies` column); a flag that does
// nothing is refused, or dropped with a note (settings_applicable).
enum { APPLIES_ALWAYS, APPLIES_ALPHA, APPLIES_OPT_BETA, APPLIES_SCALARS, APPLIES_UNDECAYED, APPLIES_RANKS,
       N_APPLIES };

// How an option got its value: the table's default, typed, or from --preset.
enum { FROM_DEFAULT, FROM_TYPED, FROM_PRESET };

// The run block of a checkpoint: RUN_BLOCK_SLOTS int64 slots (modelio.h).
// The settings' slots are the table's `slot` column; these hold the rest.
// Version 5 added --matmul and --precision (as their codes in matmul.h;
// older blocks read openblas fp32, what wrote them). Version 4 added --beta2 and the build
// that wrote the block (RB_BUILD: 64 bytes of text); 3 added the
// optimizer's parameter groups (--norm-decay, --scalar-lr-mult: a version 2
// block reads as their defaults); 2 drew training rows per (step, global
// row) and records the process count; version 1 sampled from one sequential
// stream. The validation text's fingerprint came later in version 2: 0 (all
// older checkpoints) means the last 10% of the training text.
#define RUN_BLOCK_VERSION 5
#define MAX_RANKS (1 << 20)
enum { RB_VERSION = 0, RB_DATA_HASH = 10, RB_THREADS = 12, RB_RANKS = 13, RB_VAL_HASH = 14, RB_BUILD = 120 };
#define RB_BUILD_SLOTS 8 // the build name (version.h), zero-padded

// The fingerprints of the training and validation texts (0: none).
typedef struct {
    uint64_t data, val;
} DataHashes;

// Bound on the table's rows, for arrays indexed by them (from[]).
#define MAX_SETTINGS 64

Settings settings_defaults(void);

// The command line into s (from the table's defaults), with --preset's flags
// where not typed, and the defaults that follow others (--alpha-final from
// --alpha-ffn). from[N_SETTINGS]: FROM_ per option. A repeated flag is
// refused unless its row allows it or --shared-flags is given (then the
// last wins, said in a note on notes, unless NULL). Returns 0, 1 after --help
// (the caller prints the text), or -1 with the message in err (a usage error).
int settings_parse(Settings *s, unsigned char *from, int argc, char **argv, FILE *notes, Error *err);
int settings_count(void);
int setting_index(const char *flag);
const Option *setting_row(int i);
void settings_usage(FILE *f, const Settings *d);

// The values the table's ranges do not check: --norm and --mlp name a kind,
// --emb-scale is on or off, no path is empty. Returns 0, or -1 with the
// message in err (a usage error).
int settings_check_values(const Settings *s, Error *err);
// The action options (--print-config, --list-norms) take no other flag.
int settings_check_alone(const unsigned char *from, Error *err);
// The flags that do nothing for s (an alpha0 for a kind without alpha) and
// its model (NULL: settings_config(s); on resume the checkpoint's): typed
// ones are refused (without --shared-flags), the others reset to their
// defaults, so that nothing records them, with one note on notes (NULL: no
// note). s has a known norm and MLP. Returns 0, or -1 with the message in err.
int settings_applicable(Settings *s, const ModelConfig *model, unsigned char *from, FILE *notes, Error *err);

// The model a run of s trains (--norm, --mlp known).
ModelConfig settings_config(const Settings *s);
// A model header's settings into s.
void settings_from_config(const ModelConfig *c, Settings *s);

// The block of s, written by this build (version.h).
void run_block_pack(const Settings *s, DataHashes h, int64_t *rb);
// The build that wrote a checked block into name ("" before version 4).
void run_block_build(const int64_t *rb, char name[BUILD_NAME_MAX + 1]);
// Settings as a checkpoint records them (its run block, its header's model,
// with rec its data record's files; rec NULL leaves s->data, s->val_data),
// range-checked like the command line. path names the file in errors.
int run_block_unpack(const int64_t *rb, const ModelConfig *c, const DataRecord *rec, Settings *s,
                     DataHashes *h, const char *path, Error *err);

// Each typed option that must match the checkpoint does (ck: its settings,
// cfg: its model). Agreement is on the recorded values: --kv-heads 0 means
// --heads, and alpha0 is compared as the float the file holds.
int settings_resume_check(const Settings *cli, const unsigned char *from, const Settings *ck,
                          const ModelConfig *cfg, Error *err);
// After the resume check: s (the checkpoint's) takes cli's typed options
// that may differ on resume.
void settings_resume_take(Settings *s, const Settings *cli, const unsigned char *from);

// What a file records of s, one flag per line, as the trainer reads them back
// (config.txt, --print-config); model_only: what a model file records.
// build: the build that wrote it, the first line (--made-by; NULL or "": none).
void settings_write(FILE *f, const Settings *s, int model_only, const char *build);
// --print-config FILE: a checkpoint's settings, or a model file's model's.
int settings_print_file(const char *path, Error *err);

#endif
