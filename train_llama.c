// train_llama: trains a small LLaMA (RoPE, grouped-query attention, SwiGLU,
// no biases) with RMSNorm or DyT on a text file, byte-level tokens.
//
//   ./train_llama --data input.txt --norm dyt --out runs/dyt
//
// Writes OUT/log.csv (one row per step), OUT/checkpoint.bin (model, AdamW
// state, step, RNG), OUT/model.bin (what infer_llama reads) and
// OUT/result.txt. Threads: OpenBLAS's OpenMP build shares our OpenMP pool;
// sgemm runs outside our parallel regions, so the two never oversubscribe.
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common.h"
#include "src/data.h"
#include "src/model.h"
#include "src/modelio.h"
#include "src/optim.h"
#include "src/options.h"

// ----------------------------------------------------------------------------
// settings

typedef struct {
    const char *data, *out, *norm, *resume;
    int64_t dim, layers, heads, kv_heads, hidden, seq, batch, grad_accum, steps, warmup;
    int64_t eval_every, eval_batches, ckpt_every, seed, threads, stop_after;
    double lr, weight_decay, clip, alpha_attn, alpha_ffn;
    int no_dyt_beta, tie_embeddings;
} Settings;

#define OFF(f) offsetof(Settings, f)
#define BIG 1e9
static const Option OPTIONS[] = {
    {"--data", OPT_STR, OFF(data), 0, 0, "text file to train on (required; bytes are tokens)"},
    {"--out", OPT_STR, OFF(out), 0, 0, "output folder for log.csv, checkpoint.bin, model.bin, result.txt (default: runs/NORM)"},
    {"--norm", OPT_STR, OFF(norm), 0, 0, "rmsnorm or dyt"},
    {"--dim", OPT_INT, OFF(dim), 2, 65536, "model width d"},
    {"--layers", OPT_INT, OFF(layers), 1, 1024, "transformer blocks"},
    {"--heads", OPT_INT, OFF(heads), 1, 65536, "query heads (d/heads must be even)"},
    {"--kv-heads", OPT_INT, OFF(kv_heads), 0, 65536, "key/value heads, divides --heads (0 = --heads)"},
    {"--hidden", OPT_INT, OFF(hidden), 0, 1048576, "SwiGLU hidden size (0 = 8d/3 rounded up to 32)"},
    {"--seq", OPT_INT, OFF(seq), 1, 65536, "sequence length T (the model's context)"},
    {"--batch", OPT_INT, OFF(batch), 1, 65536, "sequences per micro-batch B"},
    {"--grad-accum", OPT_INT, OFF(grad_accum), 1, 65536, "micro-batches per optimizer step"},
    {"--steps", OPT_INT, OFF(steps), 1, BIG, "optimizer steps"},
    {"--lr", OPT_FLOAT, OFF(lr), 0, 10, "peak learning rate"},
    {"--warmup", OPT_INT, OFF(warmup), 0, BIG, "linear warmup steps, then cosine decay to lr/10"},
    {"--weight-decay", OPT_FLOAT, OFF(weight_decay), 0, 10, "AdamW weight decay (matrices and embeddings only)"},
    {"--clip", OPT_FLOAT, OFF(clip), 0, 1e30, "global gradient-norm clip (0 = off)"},
    {"--eval-every", OPT_INT, OFF(eval_every), 1, BIG, "steps between validation evaluations"},
    {"--eval-batches", OPT_INT, OFF(eval_batches), 1, 65536, "fixed validation batches per evaluation"},
    {"--ckpt-every", OPT_INT, OFF(ckpt_every), 1, BIG, "steps between checkpoints (and at the end)"},
    {"--resume", OPT_STR, OFF(resume), 0, 0, "continue from OUT/checkpoint.bin (settings come from it)"},
    {"--seed", OPT_INT, OFF(seed), 0, 9.007199254740992e15, "seed of weights and data order"},
    {"--threads", OPT_INT, OFF(threads), 0, 1024, "threads (0 = all cores)"},
    {"--alpha-attn", OPT_FLOAT, OFF(alpha_attn), -1e3, 1e3, "DyT alpha0 of the attention-input DyT"},
    {"--alpha-ffn", OPT_FLOAT, OFF(alpha_ffn), -1e3, 1e3, "DyT alpha0 of the FFN-input and final DyT"},
    {"--no-dyt-beta", OPT_FLAG, OFF(no_dyt_beta), 0, 0, "DyT without beta (as the authors' LLaMA code)"},
    {"--tie-embeddings", OPT_FLAG, OFF(tie_embeddings), 0, 0, "output head shares the token embedding"},
    {"--stop-after", OPT_INT, OFF(stop_after), 0, BIG, "stop after this many steps of this invocation, with a checkpoint (0 = run to --steps)"},
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))

static Settings default_settings(void) {
    return (Settings){.out = NULL, .norm = "rmsnorm", .dim = 256, .layers = 4, .heads = 4,
                      .kv_heads = 0, .hidden = 0, .seq = 256, .batch = 8, .grad_accum = 1,
                      .steps = 1000, .warmup = 100, .eval_every = 100, .eval_batches = 8,
                      .ckpt_every = 500, .seed = 0, .threads = 0, .stop_after = 0,
                      .lr = 1e-3, .weight_decay = 0.1, .clip = 1.0, .alpha_attn = 1.0, .alpha_ffn = 1.0};
}

static void usage(FILE *f) {
    Settings d = default_settings();
    fprintf(f, "usage: train_llama --data FILE [options]\n"
               "Trains a small LLaMA with RMSNorm or DyT; see README.md.\n\noptions:\n");
    options_usage(f, OPTIONS, N_OPTIONS, &d);
    fprintf(f, "  --help               this text\n"
               "exit: 0 done (or stopped by a signal after a checkpoint), 1 input/runtime error or divergence, 2 usage\n");
}

// Options that only change how a run is observed or where it writes: a
// resumed run may set them differently from the run it continues.
static int may_differ_on_resume(const char *name) {
    const char *ok[] = {"--data", "--out", "--resume", "--threads", "--ckpt-every", "--stop-after", "--eval-every"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(name, ok[i])) return 1;
    return 0;
}

// The run block of a checkpoint: the settings that determine the run's numbers.
enum { RB_VERSION, RB_BATCH, RB_GRAD_ACCUM, RB_STEPS, RB_WARMUP, RB_EVAL_BATCHES, RB_SEED,
       RB_LR, RB_WD, RB_CLIP, RB_DATA_HASH, RB_EVAL_EVERY };

static void run_block_pack(const Settings *s, uint64_t data_hash, int64_t *rb) {
    memset(rb, 0, RUN_BLOCK_SLOTS * sizeof(int64_t));
    rb[RB_VERSION] = 1, rb[RB_BATCH] = s->batch, rb[RB_GRAD_ACCUM] = s->grad_accum;
    rb[RB_STEPS] = s->steps, rb[RB_WARMUP] = s->warmup, rb[RB_EVAL_BATCHES] = s->eval_batches;
    rb[RB_SEED] = s->seed, rb[RB_EVAL_EVERY] = s->eval_every;
    memcpy(&rb[RB_LR], &s->lr, 8);
    memcpy(&rb[RB_WD], &s->weight_decay, 8);
    memcpy(&rb[RB_CLIP], &s->clip, 8);
    memcpy(&rb[RB_DATA_HASH], &data_hash, 8);
}

// Settings as the checkpoint records them (model shape from its header).
static int run_block_unpack(const int64_t *rb, const ModelConfig *c, Settings *s, uint64_t *data_hash,
                            const char *path, Error *err) {
    if (rb[RB_VERSION] != 1) return err_set(err, "%s: run settings version %lld unknown", path, (long long)rb[RB_VERSION]);
    s->batch = rb[RB_BATCH], s->grad_accum = rb[RB_GRAD_ACCUM], s->steps = rb[RB_STEPS];
    s->warmup = rb[RB_WARMUP], s->eval_batches = rb[RB_EVAL_BATCHES], s->seed = rb[RB_SEED];
    s->eval_every = rb[RB_EVAL_EVERY];
    memcpy(&s->lr, &rb[RB_LR], 8);
    memcpy(&s->weight_decay, &rb[RB_WD], 8);
    memcpy(&s->clip, &rb[RB_CLIP], 8);
    memcpy(data_hash, &rb[RB_DATA_HASH], 8);
    if (s->batch < 1 || s->batch > 65536 || s->grad_accum < 1 || s->grad_accum > 65536 || s->steps < 1 ||
        s->warmup < 0 || s->eval_batches < 1 || s->eval_batches > 65536 || s->eval_every < 1 ||
        s->seed < 0 || !isfinite(s->lr) || !isfinite(s->weight_decay) || !isfinite(s->clip))
        return err_set(err, "%s: run settings block is invalid", path);
    s->dim = c->dim, s->layers = c->n_layers, s->heads = c->n_heads, s->kv_heads = c->n_kv_heads;
    s->hidden = c->hidden_dim, s->seq = c->seq_len, s->norm = c->norm == NORM_DYT ? "dyt" : "rmsnorm";
    s->alpha_attn = c->alpha_attn0, s->alpha_ffn = c->alpha_ffn0;
    s->no_dyt_beta = c->norm == NORM_DYT && !c->dyt_beta, s->tie_embeddings = c->tie_embeddings;
    return 0;
}

// ----------------------------------------------------------------------------
// the training run

typedef struct {
    Settings s;
    Model model;
    float *mom1, *mom2;
    Acts acts;
    Dataset data;
    TrainState st;
    int *inputs, *targets;
    double *step_ms; // this invocation's step times
    int64_t n_timed;
    FILE *log;
    double best_val, last_val;
    char path_ckpt[4096], path_model[4096], path_log[4096], path_result[4096];
} Run;

static volatile sig_atomic_t g_stop_signal = 0; // set by SIGINT/SIGTERM: finish the step, checkpoint, exit
static void on_signal(int sig) { g_stop_signal = sig; }

static int fail(const char *msg) {
    fprintf(stderr, "train_llama: %s\n", msg);
    return 1;
}

static int usage_error(const char *msg) {
    fprintf(stderr, "train_llama: %s (see --help)\n", msg);
    return 2;
}

static ModelConfig config_from_settings(const Settings *s) {
    return (ModelConfig){
        .dim = (int)s->dim, .hidden_dim = s->hidden ? (int)s->hidden : default_hidden_dim((int)s->dim),
        .n_layers = (int)s->layers, .n_heads = (int)s->heads,
        .n_kv_heads = s->kv_heads ? (int)s->kv_heads : (int)s->heads, .vocab_size = 256,
        .seq_len = (int)s->seq, .norm = !strcmp(s->norm, "dyt") ? NORM_DYT : NORM_RMS,
        .tie_embeddings = s->tie_embeddings, .dyt_beta = !strcmp(s->norm, "dyt") && !s->no_dyt_beta,
        .norm_eps = 1e-5f, .rope_theta = 10000.0f,
        .alpha_attn0 = (float)s->alpha_attn, .alpha_ffn0 = (float)s->alpha_ffn};
}

// Validation loss over the fixed batches; accumulates each norm input's moments.
static double evaluate(Run *r, double *stds) {
    const Settings *s = &r->s;
    int L = r->model.cfg.n_layers, n = 2 * L + 1;
    double s1[2 * 1024 + 1] = {0}, s2[2 * 1024 + 1] = {0}, loss = 0.0;
    for (int i = 0; i < s->eval_batches; i++) {
        dataset_val_batch(&r->data, i, (int)s->eval_batches, (int)s->batch, (int)s->seq, r->inputs, r->targets);
        model_forward(&r->model, &r->acts, r->inputs, (int)s->seq, 0, 1);
        loss += model_loss(&r->model, &r->acts, r->targets);
        model_norm_input_moments(&r->model, &r->acts, s1, s2);
    }
    double count = (double)s->eval_batches * s->batch * s->seq * r->model.cfg.dim;
    for (int k = 0; k < n; k++) {
        double mean = s1[k] / count, var = s2[k] / count - mean * mean;
        stds[k] = sqrt(var > 0 ? var : 0);
    }
    return loss / (double)s->eval_batches;
}

static void log_header(Run *r) {
    const ModelConfig *c = &r->model.cfg;
    fprintf(r->log, "step,tokens,train_loss,val_loss,lr,grad_norm,ms,tok_s,elapsed_s");
    if (c->norm == NORM_DYT) {
        for (int l = 0; l < c->n_layers; l++) fprintf(r->log, ",alpha_attn_%d", l);
        for (int l = 0; l < c->n_layers; l++) fprintf(r->log, ",alpha_ffn_%d", l);
        fprintf(r->log, ",alpha_final");
    }
    for (int l = 0; l < c->n_layers; l++) fprintf(r->log, ",std_attn_%d", l);
    for (int l = 0; l < c->n_layers; l++) fprintf(r->log, ",std_ffn_%d", l);
    fprintf(r->log, ",std_final\n");
}

typedef struct {
    double train_loss, val_loss, grad_norm, ms, elapsed;
    float lr;
    int has_train, has_val;
    const double *stds;
} LogRow;

static void log_row(Run *r, const LogRow *x) {
    const ModelConfig *c = &r->model.cfg;
    FILE *f = r->log;
    fprintf(f, "%lld,%lld,", (long long)r->st.step, (long long)r->st.tokens);
    if (x->has_train) fprintf(f, "%.6f", x->train_loss);
    fputc(',', f);
    if (x->has_val) fprintf(f, "%.6f", x->val_loss);
    if (x->has_train)
        fprintf(f, ",%.6g,%.6f,%.3f,%.1f,%.3f", x->lr, x->grad_norm, x->ms,
                r->s.batch * r->s.seq * r->s.grad_accum / (x->ms / 1000.0), x->elapsed);
    else
        fprintf(f, ",,,,,%.3f", x->elapsed);
    if (c->norm == NORM_DYT) {
        const float *const al[] = {r->model.w.t[T_ATTN_ALPHA], r->model.w.t[T_FFN_ALPHA]};
        for (int k = 0; k < 2; k++)
            for (int l = 0; l < c->n_layers; l++) fprintf(f, ",%.6f", al[k][l]);
        fprintf(f, ",%.6f", r->model.w.t[T_FINAL_ALPHA][0]);
    }
    for (int k = 0; k < 2 * c->n_layers + 1; k++) {
        fputc(',', f);
        if (x->has_val) fprintf(f, "%.6f", x->stds[k]);
    }
    fputc('\n', f);
    fflush(f);
}

static void join(char *dst, size_t cap, const char *dir, const char *name) {
    snprintf(dst, cap, "%s/%s", dir, name);
}

static int make_dir(const char *path, Error *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) { // mkdir -p
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST) return err_set(err, "%s: cannot create: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return err_set(err, "%s: cannot create: %s", buf, strerror(errno));
    if (access(buf, W_OK)) return err_set(err, "%s: not writable", buf);
    return 0;
}

// The val_loss cell (4th column) of a log row, if any, into last/best.
static void note_val_loss(Run *r, const char *row, size_t len) {
    int commas = 0;
    size_t i = 0;
    while (i < len && commas < 3) commas += row[i++] == ',';
    if (commas < 3 || i >= len || row[i] == ',') return;
    double v = strtod(row + i, NULL);
    r->last_val = v;
    if (!(v >= r->best_val)) r->best_val = v;
}

// On resume, keep only the log rows up to the checkpoint's step (rows after it
// are redone), so the log reads as one uninterrupted run.
static int log_open(Run *r, int resuming, Error *err) {
    if (!resuming) {
        r->log = fopen(r->path_log, "w");
        if (!r->log) return err_set(err, "%s: cannot write: %s", r->path_log, strerror(errno));
        log_header(r);
        return 0;
    }
    unsigned char *text;
    size_t n;
    if (read_file(r->path_log, &text, &n, err)) return -1;
    r->log = fopen(r->path_log, "w");
    if (!r->log) {
        free(text);
        return err_set(err, "%s: cannot write: %s", r->path_log, strerror(errno));
    }
    size_t i = 0;
    for (int line = 0; i < n; line++) {
        size_t j = i;
        while (j < n && text[j] != '\n') j++;
        long long step = line == 0 ? -1 : strtoll((const char *)text + i, NULL, 10);
        if (step > r->st.step) break;
        if (line > 0) note_val_loss(r, (const char *)text + i, j - i);
        fwrite(text + i, 1, j - i, r->log);
        fputc('\n', r->log);
        i = j + 1;
    }
    free(text);
    fflush(r->log);
    return 0;
}

static int save_checkpoint(Run *r, Error *err) {
    int64_t rb[RUN_BLOCK_SLOTS];
    run_block_pack(&r->s, r->data.fingerprint, rb);
    return checkpoint_save(&r->model, r->mom1, r->mom2, &r->st, rb, r->path_ckpt, err);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void write_result(Run *r, const char *status) {
    double med = 0.0;
    if (r->n_timed) {
        qsort(r->step_ms, (size_t)r->n_timed, sizeof(double), cmp_double);
        med = r->step_ms[r->n_timed / 2];
    }
    FILE *f = fopen(r->path_result, "w");
    if (!f) return;
    fprintf(f, "status=%s\nsteps=%lld\nfinal_val_loss=%.6f\nbest_val_loss=%.6f\nmedian_ms=%.3f\n"
               "tok_s=%.1f\nparams=%zu\nnorm=%s\nseed=%lld\n",
            status, (long long)r->st.step, r->last_val, r->best_val, med,
            med > 0 ? r->s.batch * r->s.seq * r->s.grad_accum / (med / 1000.0) : 0.0,
            r->model.n_params, r->s.norm, (long long)r->s.seed);
    fclose(f);
}

static void progress(const Run *r, double loss, double val, double tok_s, double eta_s, int final) {
    int tty = isatty(STDERR_FILENO);
    if (!tty && !final && r->st.step % r->s.eval_every) return; // logs get a line per evaluation
    fprintf(stderr, "%sstep %lld/%lld | loss %.4f | val %.4f | %.0f tok/s | ETA %dm%02ds%s",
            tty ? "\r" : "", (long long)r->st.step, (long long)r->s.steps, loss, val, tok_s,
            (int)(eta_s / 60), (int)eta_s % 60, tty && !final ? "  " : "\n");
}

// One optimizer step: grad-accum micro-batches, clip, AdamW. Returns the mean loss.
static double train_step(Run *r, Rng *rng, float lr, double *gnorm) {
    const Settings *s = &r->s;
    Model *m = &r->model;
    model_zero_grad(m);
    double loss = 0.0;
    for (int64_t k = 0; k < s->grad_accum; k++) {
        dataset_train_batch(&r->data, rng, (int)s->batch, (int)s->seq, r->inputs, r->targets);
        model_forward(m, &r->acts, r->inputs, (int)s->seq, 0, 1);
        loss += model_backward(m, &r->acts, r->inputs, r->targets, 1.0f / (float)s->grad_accum);
    }
    *gnorm = s->clip > 0 ? grad_clip(m->grads, m->n_params, (float)s->clip) : grad_norm(m->grads, m->n_params);
    AdamW opt = {.lr = lr, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = (float)s->weight_decay};
    adamw_step(m, r->mom1, r->mom2, r->st.step + 1, &opt);
    return loss / (double)s->grad_accum;
}

static int train_loop(Run *r, Error *err) {
    const Settings *s = &r->s;
    double stds[2 * 1024 + 1];
    Rng rng = {r->st.rng_state};
    double elapsed = r->st.elapsed_s;
    int64_t first = r->st.step;
    double t_first = elapsed;
    if (first == 0) {
        r->last_val = r->best_val = evaluate(r, stds);
        log_row(r, &(LogRow){.has_val = 1, .val_loss = r->last_val, .stds = stds});
    }
    while (r->st.step < s->steps) {
        float lr = lr_at(r->st.step, s->steps, s->warmup, (float)s->lr);
        double t0 = now_seconds(), gnorm;
        double loss = train_step(r, &rng, lr, &gnorm);
        double ms = 1000.0 * (now_seconds() - t0);
        elapsed += ms / 1000.0;
        r->st.step++;
        r->st.tokens += s->batch * s->seq * s->grad_accum;
        r->st.rng_state = rng.state;
        r->st.elapsed_s = elapsed;
        r->step_ms[r->n_timed++] = ms;
        LogRow row = {.has_train = 1, .train_loss = loss, .lr = lr, .grad_norm = gnorm, .ms = ms,
                      .elapsed = elapsed, .stds = stds};
        int diverged = !isfinite(loss) || !isfinite(gnorm);
        if (!diverged && (r->st.step % s->eval_every == 0 || r->st.step == s->steps)) {
            row.has_val = 1;
            row.val_loss = r->last_val = evaluate(r, stds);
            if (!(r->last_val >= r->best_val)) r->best_val = r->last_val; // NaN-safe
            diverged = !isfinite(r->last_val);
        }
        log_row(r, &row);
        double tok_s = s->batch * s->seq * s->grad_accum / (ms / 1000.0);
        double eta = (double)(s->steps - r->st.step) * (elapsed - t_first) / (double)(r->st.step - first);
        progress(r, loss, r->last_val, tok_s, eta, r->st.step == s->steps);
        if (diverged) {
            write_result(r, "diverged");
            return err_set(err, "diverged at step %lld (loss %g, grad norm %g); log in %s",
                           (long long)r->st.step, loss, gnorm, r->path_log);
        }
        int stop = g_stop_signal || (s->stop_after && r->st.step - first >= s->stop_after);
        if (stop || r->st.step % s->ckpt_every == 0 || r->st.step == s->steps) {
            if (save_checkpoint(r, err)) return -1;
        }
        if (stop) {
            fprintf(stderr, "train_llama: stopped after step %lld%s; resume with --resume %s\n",
                    (long long)r->st.step, g_stop_signal ? " (signal)" : "", r->path_ckpt);
            return 0;
        }
    }
    if (model_save(&r->model, r->path_model, err)) return -1;
    write_result(r, "finished");
    fprintf(stderr, "train_llama: done: %s (val loss %.4f), log %s\n", r->path_model, r->last_val, r->path_log);
    return 0;
}

// ----------------------------------------------------------------------------
// set-up

// Parses and checks the command line; on resume, loads the checkpoint and
// takes the run's settings from it. Returns 0, or an exit code.
static int setup_settings(Run *r, int argc, char **argv, Error *err) {
    Settings *s = &r->s;
    *s = default_settings();
    unsigned char given[N_OPTIONS] = {0};
    const char *pos[1];
    int n_pos;
    int rc = options_parse(OPTIONS, N_OPTIONS, s, given, argc, argv, pos, 0, &n_pos, err);
    if (rc == 1) {
        usage(stdout);
        exit(0);
    }
    if (rc) return usage_error(err->msg);
    if (!s->data) return usage_error("--data FILE is required");
    if (strcmp(s->norm, "rmsnorm") && strcmp(s->norm, "dyt"))
        return usage_error("--norm must be rmsnorm or dyt");
    if (s->resume) {
        Settings ck = *s;
        uint64_t hash = 0;
        int64_t rb[RUN_BLOCK_SLOTS];
        if (checkpoint_load(&r->model, &r->mom1, &r->mom2, &r->st, rb, s->resume, err))
            return fail(err->msg);
        if (run_block_unpack(rb, &r->model.cfg, &ck, &hash, s->resume, err)) return fail(err->msg);
        for (int i = 0; i < N_OPTIONS; i++) {
            if (!given[i] || may_differ_on_resume(OPTIONS[i].name)) continue;
            char a[128], b[128];
            option_format(&OPTIONS[i], s, a, sizeof a);
            option_format(&OPTIONS[i], &ck, b, sizeof b);
            if (strcmp(a, b)) {
                snprintf(err->msg, sizeof err->msg, "%.32s %.128s differs from the checkpoint's %.128s", OPTIONS[i].name, a, b);
                return usage_error(err->msg);
            }
        }
        *s = ck;
        r->data.fingerprint = hash; // checked against the data file below
    }
    if (!s->out) s->out = !strcmp(s->norm, "dyt") ? "runs/dyt" : "runs/rmsnorm";
    if (s->layers > 1024) return usage_error("--layers must be at most 1024");
    return 0;
}

static int setup_run(Run *r, Error *err) {
    Settings *s = &r->s;
    if (s->threads > 0) {
        omp_set_num_threads((int)s->threads);
        openblas_set_num_threads((int)s->threads);
    }
    int resuming = s->resume != NULL;
    uint64_t want_hash = r->data.fingerprint;
    Tokenizer tk = tokenizer_bytes();
    if (dataset_load(&r->data, s->data, &tk, (int)s->seq, err)) return -1;
    if (resuming && r->data.fingerprint != want_hash)
        return err_set(err, "%s: not the data the checkpoint %s was trained on (fingerprint differs)", s->data, s->resume);
    if (!resuming) {
        ModelConfig c = config_from_settings(s);
        Error e;
        if (config_validate(&c, &e)) return err_set(err, "invalid model: %s", e.msg);
        if (model_create(&r->model, &c, err)) return -1;
        model_init(&r->model, (uint64_t)s->seed);
        r->mom1 = alloc_floats(r->model.n_params);
        r->mom2 = alloc_floats(r->model.n_params);
        r->st = (TrainState){.step = 0, .rng_state = rng_make((uint64_t)s->seed, 0xDA7A).state, .tokens = 0};
    }
    size_t bt = (size_t)s->batch * s->seq;
    r->inputs = malloc(bt * sizeof(int));
    r->targets = malloc(bt * sizeof(int));
    r->step_ms = malloc((size_t)(s->steps + 1) * sizeof(double));
    if (!r->mom1 || !r->mom2 || !r->inputs || !r->targets || !r->step_ms)
        return err_set(err, "out of memory");
    if (model_alloc_grads(&r->model, err)) return -1;
    if (acts_create(&r->acts, &r->model, (int)s->batch, (int)s->seq, (int)s->seq, 1, err)) return -1;
    if (make_dir(s->out, err)) return -1;
    join(r->path_ckpt, sizeof r->path_ckpt, s->out, "checkpoint.bin");
    join(r->path_model, sizeof r->path_model, s->out, "model.bin");
    join(r->path_log, sizeof r->path_log, s->out, "log.csv");
    join(r->path_result, sizeof r->path_result, s->out, "result.txt");
    r->best_val = r->last_val = NAN;
    return log_open(r, resuming, err);
}

static void run_free(Run *r) {
    if (r->log) fclose(r->log);
    model_free(&r->model);
    acts_free(&r->acts);
    dataset_free(&r->data);
    free(r->mom1);
    free(r->mom2);
    free(r->inputs);
    free(r->targets);
    free(r->step_ms);
}

int main(int argc, char **argv) {
    Run r;
    memset(&r, 0, sizeof r);
    Error err = {{0}};
    int rc = setup_settings(&r, argc, argv, &err);
    if (rc) return rc;
    if (setup_run(&r, &err)) {
        run_free(&r);
        return fail(err.msg);
    }
    const ModelConfig *c = &r.model.cfg;
    fprintf(stderr, "train_llama: %s, d %d, %d layers, %d/%d heads, hidden %d, %zu params, "
                    "%d threads (OpenBLAS %s), %s step %lld/%lld\n",
            r.s.norm, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, r.model.n_params,
            omp_get_max_threads(), openblas_get_corename(), r.s.resume ? "resuming at" : "from",
            (long long)r.st.step, (long long)r.s.steps);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = train_loop(&r, &err);
    run_free(&r);
    return rc ? fail(err.msg) : 0;
}
