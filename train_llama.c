// train_llama: trains a small LLaMA (RoPE, grouped-query attention, SwiGLU,
// no biases) with any of the norm table's seven kinds at every norm site
// (RMSNorm, DyT, LayerNorm, Derf, ...: --list-norms) on a text (a file, a
// folder or a list): byte-level tokens, or a byte-level BPE vocabulary
// (--vocab-size) that travels inside the model file.
//
//   ./train_llama --data input.txt --norm dyt --out runs/dyt
//
// Writes OUT/log.csv (one row per step), OUT/checkpoint.bin (model, AdamW
// state, step, RNG), OUT/model.bin (what infer_llama reads), OUT/config.txt
// and OUT/result.txt. This file is the run: its set-up, the training loop,
// evaluation, checkpoints, signals and the processes' agreement; log.csv
// (src/runlog.c), the output folder (src/rundir.c) and the progress line
// (src/progress.c) are modules of their own.
// Threads: OpenBLAS's OpenMP build shares our OpenMP pool. Every sgemm is
// called from inside our own parallel regions, a slice of rows per thread,
// and OpenBLAS runs it single-threaded on the calling thread (src/layers.c),
// so the two never oversubscribe the cores.
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/common.h"
#include "src/data.h"
#include "src/dist.h"
#include "src/files.h"
#include "src/model.h"
#include "src/modelio.h"
#include "src/optim.h"
#include "src/options.h"
#include "src/progress.h"
#include "src/rundir.h"
#include "src/runlog.h"
#include "src/settings.h"
#include "src/threads.h"
#include "src/version.h"

// ----------------------------------------------------------------------------
// the training run

#define STEP_TIMES 65536 // result.txt's median covers at most this many recent steps

typedef struct {
    Settings s;
    Dist dist;      // this process among those training together (rank 0 of 1 without MPI)
    DistReqs reqs;  // gradient reductions in flight (--overlap)
    Model model;
    float *mom1, *mom2;
    Acts acts;
    Matmul mm; // --matmul, --precision: every product's backend and operands (acts.mm)
    TextFile text, val_text; // --data and --val-data, open for the whole run (bytes train straight from them)
    Dataset data;
    Bpe bpe;      // --vocab-size > 256: the vocabulary (also in the model's files)
    Tokenizer tk;
    TrainState st;
    int *inputs, *targets;
    double step_ms[STEP_TIMES]; // the latest step times (a ring), for the median in result.txt
    int64_t n_timed;
    DataHashes resume_hashes;    // the data the checkpoint was trained and validated on
    DataRecord resume_record;    // its files (none in a checkpoint from before the data record)
    int64_t resume_threads;      // the thread count the checkpoint was written with
    uint64_t *rank_hashes;       // rank 0: every rank's weight hash (check_same_weights)
    double reduce_s, step_s;     // this invocation: seconds waiting for gradient sums, seconds in steps
    char ckpt_dir[4096];         // resuming: the checkpoint's folder (--out's default)
    char out_dir[4096];          // a fresh run's default --out: runs/NORM
    int lock_fd;                 // OUT/.lock, held while this process lives (run_dir_lock)
    FILE *log;
    double best_val, last_val;
    int64_t last_val_step;  // the step last_val was measured at (-1: none yet)
    Progress progress;      // the progress line on stderr
    int64_t heap_ref; // heap in use after this invocation's first checkpoint (-1 before it)
    double load_start; // the machine's load average when this invocation began (result.txt)
    double t_start;    // and when (now_seconds): loadavg_span_s, for the load rule of speedcheck.py
    char path_ckpt[4096], path_model[4096], path_log[4096], path_result[4096];
} Run;

// The only global: set by the first SIGINT/SIGTERM, which lets the step in
// flight finish and a checkpoint be written. The handler is one-shot
// (SA_RESETHAND): a second signal ends the process at once, which loses
// nothing on disk because checkpoints are replaced by an atomic rename.
static volatile sig_atomic_t g_stop_signal = 0;
static void on_signal(int sig) { g_stop_signal = sig; }

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    // Past a file-size limit (ulimit -f) a write then fails with EFBIG, like
    // a full disk, and gets the same error path (the previous checkpoint
    // stays), instead of SIGXFSZ killing the process.
    signal(SIGXFSZ, SIG_IGN);
    // A reader of stdout or stderr that went away (`train_llama ... | head`)
    // must not kill the run: writes to the pipe then fail with EPIPE, which
    // nothing on the training path checks, and the run goes on to its results.
    signal(SIGPIPE, SIG_IGN);
}

// stdin, stdout and stderr closed at start (`2>&-`): the next files opened
// would take their numbers, and progress lines would be written into the
// lock file, log.csv or a checkpoint. Each closed one is opened on /dev/null
// instead, where its writes go nowhere. Returns -1 if /dev/null cannot be.
static int std_fds_open(void) {
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
        int got = open("/dev/null", O_RDWR); // the lowest free number: fd, as the lower ones are open
        if (got != fd) return -1;
    }
    return 0;
}

// A SIGINT or SIGTERM during set-up (loading data, training a vocabulary)
// ends the run before its first step, with exit 0 and a line saying so.
static int stopped_in_setup(Run *r) {
    if (!dist_max_int(&r->dist, g_stop_signal != 0)) return 0;
    if (r->dist.rank == 0 && r->s.resume)
        fprintf(stderr, "train_llama: stopped by a signal before the first step: nothing was trained yet; %s is "
                        "unchanged, resume with --resume %s\n", r->s.resume, r->s.resume);
    else if (r->dist.rank == 0)
        fprintf(stderr, "train_llama: stopped by a signal before the first step: nothing was trained yet, no "
                        "checkpoint written\n");
    return 1;
}

// Set-up errors are recorded, not printed: under MPI the ranks first agree
// which one reports (main), so a job prints one line, not one per process.
static int fail(Error *err, const char *msg) {
    if (msg != err->msg) snprintf(err->msg, sizeof err->msg, "%s", msg);
    return 1;
}

static int usage_error(Error *err, const char *msg) {
    Error e;
    snprintf(e.msg, sizeof e.msg, "%s (see --help)", msg);
    *err = e;
    return 2;
}

// Over all processes: ranks x batch rows of seq tokens, grad-accum times.
static double tokens_per_step(const Settings *s) {
    return (double)s->ranks * (double)(s->batch * s->seq * s->grad_accum);
}

// Tokens after `steps` steps: steps x ranks x batch x seq x grad-accum,
// checked (-1 if it overflows int64): the count is stored in checkpoints.
static int token_count(const Settings *s, int64_t steps, int64_t *out) {
    int64_t per = s->ranks, n;
    const int64_t f[] = {s->batch, s->seq, s->grad_accum};
    for (int i = 0; i < 3; i++)
        if (__builtin_mul_overflow(per, f[i], &per)) return -1;
    if (__builtin_mul_overflow(s->steps, per, &n) || __builtin_mul_overflow(steps, per, &n)) return -1;
    if (out) *out = n;
    return 0;
}

// Validation loss over the fixed batches of ranks x batch rows; the std of
// each norm's input (diag[0..2L]) and, for the saturating kinds, the fraction
// of its inputs in saturation (diag[2L+1..4L+1]). Each process takes its --batch rows of every batch (as in
// training), and the sums are added up over processes: every rank gets the
// same numbers, which are those of one process with the whole global batch.
static double evaluate(Run *r, double *stds) {
    const Settings *s = &r->s;
    int L = r->model.cfg.n_layers, n = 2 * L + 1;
    double sums[3 * (2 * MAX_LAYERS + 1) + 1] = {0}; // loss, then s1 (n), s2 (n), saturated (n)
    double *s1 = sums + 1, *s2 = sums + 1 + n, *sat = sums + 1 + 2 * n;
    for (int i = 0; i < s->eval_batches; i++) {
        dataset_val_rows(&r->data, i, (int)s->eval_batches, s->ranks * s->batch, r->dist.rank * s->batch,
                         (int)s->batch, (int)s->seq, r->inputs, r->targets);
        model_forward(&r->model, &r->acts, r->inputs, (int)s->seq, 0, 1, NULL); // full shape: cannot fail
        sums[0] += model_loss(&r->model, &r->acts, r->targets);
        model_norm_input_moments(&r->model, &r->acts, s1, s2);
        model_norm_saturated(&r->model, &r->acts, sat);
    }
    dist_sum_doubles(&r->dist, sums, (size_t)(1 + 3 * n));
    double count = (double)s->eval_batches * s->ranks * s->batch * s->seq * r->model.cfg.dim;
    for (int k = 0; k < n; k++) {
        double mean = s1[k] / count, var = s2[k] / count - mean * mean;
        stds[k] = sqrt(var > 0 ? var : 0);
        stds[n + k] = sat[k] / count;
    }
    return sums[0] / (double)(s->eval_batches * s->ranks);
}

// Validation loss in bits per byte of text: comparable across vocabularies.
static double bits_per_byte(const Run *r, double nats) { return nats / log(2.0) / r->data.val_bytes_per_token; }

// The val_loss cell (4th column) of a kept log row, if any, into last/best
// (log_keep's KeptRowFn: ctx is the Run).
static void note_val_loss(void *ctx, const char *row, size_t len) {
    Run *r = ctx;
    int commas = 0;
    size_t i = 0;
    while (i < len && commas < 3) commas += row[i++] == ',';
    if (commas < 3 || i >= len || row[i] == ',') return;
    double v = strtod(row + i, NULL);
    r->last_val = v;
    r->last_val_step = strtoll(row, NULL, 10);
    if (!(v >= r->best_val)) r->best_val = v;
}

// On resume, keep only the complete log rows up to the checkpoint's step
// (log_keep: later rows are redone), so the log reads as one uninterrupted
// run. The rows come from the checkpoint's folder (resumed into another
// --out, the log continues there); without a log the new one starts at the
// checkpoint's step.
static int log_open(Run *r, int resuming, Error *err) {
    char src[RUN_PATH_MAX], *header = NULL;
    size_t len = 0;
    if (resuming && run_path(src, sizeof src, r->ckpt_dir, "log.csv", err)) return -1;
    if (!resuming || access(src, F_OK)) {
        if (resuming && r->dist.rank == 0)
            fprintf(stderr, "train_llama: %s: not found; %s starts at step %lld\n", src, r->path_log,
                    (long long)r->st.step);
        if (!(r->log = create_fresh(r->path_log, err))) return -1;
        log_header(r->log, &r->model);
        return 0;
    }
    FILE *f = open_memstream(&header, &len); // this run's header, to check the kept one against
    if (f) log_header(f, &r->model);
    if (!f || fclose(f)) {
        free(header);
        return err_set(err, "out of memory");
    }
    int rc = log_keep(r->path_log, src, header, r->st.step, note_val_loss, r, r->dist.rank == 0 ? stderr : NULL, err);
    free(header);
    if (rc) return -1;
    r->log = open_append(r->path_log, err);
    return r->log ? 0 : -1;
}

// --keep N > 1: checkpoint-STEP.bin names this checkpoint too. A hard link
// costs no space and stays valid: the next checkpoint replaces checkpoint.bin
// by rename, a new file, so the link keeps these bytes. Where links are not
// supported the checkpoint is written a second time.
static int keep_checkpoint(Run *r, const int64_t *rb, Error *err) {
    char path[RUN_PATH_MAX];
    if (numbered_slot(path, r->s.out, r->st.step, err)) return -1;
    if (link(r->path_ckpt, path) &&
        checkpoint_save(&r->model, r->mom1, r->mom2, &r->st, rb, path, err))
        return -1;
    numbered_prune(r->s.out, r->st.step, r->s.keep);
    fsync_parent_dir(r->path_ckpt); // the link and the deletions survive a crash; best effort
    return 0;
}

// The log first: rows up to this step must be on disk before a checkpoint
// says the run got there (a resume keeps the rows up to its step; a power
// cut after a checkpoint but before the log reached the disk lost rows).
static int save_checkpoint(Run *r, Error *err) {
    int64_t rb[RUN_BLOCK_SLOTS];
    // ferror too: a failed flush drops its rows and the next flush succeeds,
    // so a write error since the last checkpoint shows only in the sticky flag
    int earlier = ferror(r->log);
    errno = 0;
    if (earlier || fflush(r->log) || fsync(fileno(r->log)))
        return err_set(err, "%s: write failed: %s (the last checkpoint is unchanged)", r->path_log,
                       earlier || !errno ? "an earlier write of it failed" : strerror(errno));
    run_block_pack(&r->s, (DataHashes){r->data.fingerprint, r->data.val_fingerprint}, rb);
    if (checkpoint_save(&r->model, r->mom1, r->mom2, &r->st, rb, r->path_ckpt, err)) return -1;
    return r->s.keep > 1 ? keep_checkpoint(r, rb, err) : 0;
}

// Median over the latest STEP_TIMES steps of this invocation (nan if none ran).
static double median_step_ms(Run *r) {
    size_t n = (size_t)(r->n_timed < STEP_TIMES ? r->n_timed : STEP_TIMES);
    if (!n) return NAN;
    return select_kth(r->step_ms, n, n / 2);
}

static int write_result(Run *r, const char *status, Error *err) {
    double med = median_step_ms(r);
    // heap growth since the first checkpoint: 0 when a run holds steady
    int64_t heap = heap_in_use_bytes(), growth = r->heap_ref >= 0 && heap >= 0 ? heap - r->heap_ref : 0;
    char text[1024];
    int len = snprintf(text, sizeof text,
                       "status=%s\nsteps=%lld\nfinal_val_loss=%.6f\nbest_val_loss=%.6f\nmedian_ms=%.3f\n"
                       "tok_s=%.1f\nparams=%zu\nnorm=%s\nseed=%lld\nvocab_size=%d\n"
                       "final_val_bpb=%.6f\nbest_val_bpb=%.6f\npeak_rss_kb=%lld\nheap_growth_bytes=%lld\n"
                       "loadavg_start=%.2f\nloadavg_end=%.2f\nloadavg_span_s=%.1f\ncores=%d\nthreads=%d\nbuild=%s\n"
                       "matmul=%s\nprecision=%s\nmatmul_emulated=%d\n",
                       status, (long long)r->st.step, r->last_val, r->best_val, med,
                       tokens_per_step(&r->s) / (med / 1000.0), r->model.n_params, r->s.norm,
                       (long long)r->s.seed, r->model.cfg.vocab_size, bits_per_byte(r, r->last_val),
                       bits_per_byte(r, r->best_val), (long long)peak_rss_kb(), (long long)growth,
                       r->load_start, load_average(), now_seconds() - r->t_start, omp_get_num_procs(),
                       omp_get_max_threads(), build_name(), r->s.matmul, r->s.precision, r->mm.emulated);
    Chunk c = {text, (size_t)len};
    return write_file_atomic(r->path_result, &c, 1, err);
}

// --overlap: starts the sum over processes of the gradients model_backward
// reports complete (model.h): a layer's slice of every per-layer tensor, or
// the final norm's and the untied head's.
// (the model says which slices: model_grad_slices).
static void reduce_part(Run *r, int part) {
    Slice sl[N_TENSORS];
    int n = model_grad_slices(&r->model, part, sl);
    for (int i = 0; i < n; i++) dist_isum_floats(&r->dist, &r->reqs, sl[i].p, sl[i].n);
}

static void reduce_ready(void *ctx, int layer) {
    Run *r = ctx;
    reduce_part(r, layer);
    dist_progress(&r->reqs);
}

// What reduce_ready did not cover (the embedding, its scale, a tied head),
// then waits for every reduction.
static void reduce_rest(Run *r) {
    reduce_part(r, GRADS_REST);
    dist_wait_all(&r->reqs);
}

// One optimizer step: grad-accum micro-batches, clip, AdamW. Returns the mean
// loss. Under MPI each process differentiates its rows of the global batch
// with the loss scaled by 1/ranks, so that the sum of the gradients over
// processes is the gradient of the global mean; clipping and AdamW then see
// identical gradients on every rank, which keeps the weights identical.
static double train_step(Run *r, float lr, double *gnorm) {
    const Settings *s = &r->s;
    Model *m = &r->model;
    const Dist *d = &r->dist;
    int overlap = d->size > 1 && s->overlap;
    model_zero_grad(m);
    double loss = 0.0;
    for (int64_t k = 0; k < s->grad_accum; k++) {
        // rows of this step, numbered over micro-batches and processes
        int64_t row0 = (k * s->ranks + d->rank) * s->batch;
        dataset_train_rows(&r->data, r->st.rng_state, r->st.step, row0, (int)s->batch, (int)s->seq,
                           r->inputs, r->targets);
        model_forward(m, &r->acts, r->inputs, (int)s->seq, 0, 1, NULL); // full shape: cannot fail
        float scale = 1.0f / (float)(s->grad_accum * s->ranks);
        int last = k == s->grad_accum - 1;
        loss += model_backward_hooked(m, &r->acts, r->inputs, r->targets, scale,
                                      overlap && last ? reduce_ready : NULL, r);
    }
    double t0 = now_seconds(); // what the step waits for communication, not what overlaps
    if (overlap) reduce_rest(r);
    else dist_sum_floats(d, m->grads, m->n_params);
    dist_sum_doubles(d, &loss, 1);
    r->reduce_s += now_seconds() - t0;
    *gnorm = s->clip > 0 ? grad_clip(m->grads, m->n_params, (float)s->clip) : grad_norm(m->grads, m->n_params);
    AdamW opt = {.lr = lr, .beta1 = 0.9f, .beta2 = (float)s->beta2, .eps = 1e-8f, .weight_decay = (float)s->weight_decay,
                 .all_decay = s->norm_decay, .scalar_lr_mult = (float)s->scalar_lr_mult};
    adamw_step(m, r->mom1, r->mom2, r->st.step + 1, &opt);
    return loss / (double)(s->grad_accum * s->ranks);
}

// Under MPI the ranks' weights must stay the same bits (identical gradients,
// identical updates); if they ever differed, the processes would silently
// train different models. Rank 0 compares the FNV-1a hash of every rank's
// parameters (collective). Returns 0, or -1 on rank 0 naming a rank.
static int check_same_weights(Run *r, uint64_t *hash, Error *err) {
    const Dist *d = &r->dist;
    *hash = 0;
    if (d->size == 1) return 0; // nothing to compare: no time spent
    *hash = fnv1a64(r->model.params, r->model.n_params * sizeof(float), FNV1A64_INIT);
    dist_gather_u64(d, *hash, r->rank_hashes);
    for (int k = 1; d->rank == 0 && k < d->size; k++)
        if (r->rank_hashes[k] != *hash)
            return err_set(err, "after step %lld the weights of rank %d differ from rank 0's (fnv1a64 %016llx, "
                           "%016llx)", (long long)r->st.step, k, (unsigned long long)r->rank_hashes[k],
                           (unsigned long long)*hash);
    return 0;
}

// After work only some ranks do (rank 0 writes the files): every rank learns
// whether any failed, so that none goes on into a collective the failed one
// never joins. Returns 0, or -1 on every rank; the message stays only on the
// lowest failed rank (main prints it).
static int sync_failure(Run *r, int rc, Error *err) {
    int first;
    if (!dist_agree(&r->dist, rc ? 1 : 0, &first)) return 0;
    if (first != r->dist.rank) err->msg[0] = 0;
    return -1;
}

// test hooks: LLAMA_TEST_POISON_STEP=N puts a NaN in a weight before step N,
// to check that divergence is caught, reported and leaves a good checkpoint
// (under MPI only on rank LLAMA_TEST_POISON_RANK if set); LLAMA_TEST_CRASH_RANK=R
// with LLAMA_TEST_CRASH_STEP=N kills rank R before step N, as a crash would.
static int64_t env_i64(const char *name) {
    const char *v = getenv(name);
    return v ? strtoll(v, NULL, 10) : -1;
}

static int train_loop(Run *r, Error *err) {
    const Settings *s = &r->s;
    const Dist *d = &r->dist;
    int root = d->rank == 0;
    double stds[2 * (2 * MAX_LAYERS + 1)]; // evaluate's diagnostics
    double elapsed = r->st.elapsed_s, t_first = elapsed;
    int64_t first = r->st.step;
    r->progress.t = now_seconds();
    if (first == 0) {
        r->last_val = r->best_val = evaluate(r, stds);
        r->last_val_step = 0;
        if (root)
            log_row(r->log, &r->model, &(LogRow){.step = 0, .tokens = r->st.tokens, .has_val = 1,
                                                  .val_loss = r->last_val, .val_bpb = bits_per_byte(r, r->last_val),
                                                  .stds = stds});
    }
    int64_t poison_step = env_i64("LLAMA_TEST_POISON_STEP"), poison_rank = env_i64("LLAMA_TEST_POISON_RANK");
    int64_t crash_step = env_i64("LLAMA_TEST_CRASH_STEP"), crash_rank = env_i64("LLAMA_TEST_CRASH_RANK");
    while (r->st.step < s->steps) {
        float lr = lr_at(r->st.step, s->steps, s->warmup, (float)s->lr);
        if (r->st.step + 1 == poison_step && (poison_rank < 0 || poison_rank == d->rank))
            r->model.w.t[T_FINAL_GAIN][0] = NAN; // every position reads it
        if (r->st.step + 1 == crash_step && crash_rank == d->rank) raise(SIGKILL);
        double t0 = now_seconds(), gnorm;
        double loss = train_step(r, lr, &gnorm);
        double ms = 1000.0 * (now_seconds() - t0);
        elapsed += ms / 1000.0;
        r->st.step++;
        token_count(s, r->st.step, &r->st.tokens); // checked at set-up for the whole run
        r->st.elapsed_s = elapsed;
        r->step_ms[r->n_timed++ % STEP_TIMES] = ms;
        r->step_s += ms / 1000.0;
        LogRow row = {.step = r->st.step, .tokens = r->st.tokens, .has_train = 1, .train_loss = loss, .lr = lr,
                      .grad_norm = gnorm, .ms = ms, .tok_s = tokens_per_step(s) / (ms / 1000.0),
                      .elapsed = elapsed, .stds = stds};
        // loss and gradients were summed over ranks: every rank takes the same decisions
        int diverged = !isfinite(loss) || !isfinite(gnorm), last = r->st.step == s->steps;
        if (!diverged && (r->st.step % s->eval_every == 0 || last)) {
            row.has_val = 1;
            row.val_loss = r->last_val = evaluate(r, stds);
            row.val_bpb = bits_per_byte(r, row.val_loss);
            r->last_val_step = r->st.step;
            if (!(r->last_val >= r->best_val)) r->best_val = r->last_val; // NaN-safe
            diverged = !isfinite(r->last_val);
        }
        if (root) {
            log_row(r->log, &r->model, &row);
            double eta = (double)(s->steps - r->st.step) * (elapsed - t_first) / (double)(r->st.step - first);
            ProgressLine line = {.step = r->st.step, .steps = s->steps, .loss = loss, .eta_s = eta,
                                 .tok_s = tokens_per_step(s) / (ms / 1000.0), .val = r->last_val,
                                 .val_bpb = bits_per_byte(r, r->last_val), .val_step = r->last_val_step};
            progress_show(&r->progress, &line, last, now_seconds());
        }
        if (diverged) {
            err->msg[0] = 0; // rank 0 reports
            if (root && write_result(r, "diverged", err)) return -1;
            if (!root) return -1;
            return err_set(err, "diverged at step %lld (loss %g, grad norm %g); log in %s",
                           (long long)r->st.step, loss, gnorm, r->path_log);
        }
        // a stop request on the last step just finishes the run normally; a
        // signal to any rank stops every rank after this same step
        int signal = dist_max_int(d, g_stop_signal != 0);
        int stop = !last && (signal || (s->stop_after && r->st.step - first >= s->stop_after));
        if (stop || r->st.step % s->ckpt_every == 0 || last) {
            uint64_t hash;
            int rc = check_same_weights(r, &hash, err);
            if (!rc && root) rc = save_checkpoint(r, err);
            if (sync_failure(r, rc, err)) return -1;
        }
        if (r->heap_ref < 0 && r->st.step % s->ckpt_every == 0) r->heap_ref = heap_in_use_bytes();
        if (stop) {
            progress_end(&r->progress);
            if (root)
                fprintf(stderr, "train_llama: stopped after step %lld%s; resume with --resume %s\n",
                        (long long)r->st.step, signal ? " (signal)" : "", r->path_ckpt);
            return 0;
        }
    }
    uint64_t hash;
    int rc = check_same_weights(r, &hash, err);
    if (!rc && root) {
        if (ferror(r->log)) rc = err_set(err, "%s: write failed", r->path_log);
        if (!rc)
            rc = model_save_as(&r->model, dtype_find(r->s.save_dtype), r->path_model, err) ||
                         write_result(r, "finished", err) ? -1 : 0;
    }
    if (sync_failure(r, rc, err)) return -1;
    if (root && d->size > 1) {
        fprintf(stderr, "train_llama: the weights are the same on all %d ranks (fnv1a64 of the parameters %016llx)\n",
                d->size, (unsigned long long)hash);
        // the wait includes the time the slower rank takes to get there
        double n = (double)(r->st.step - first);
        if (n > 0) fprintf(stderr, "train_llama: rank 0 waited for the gradient sums (%.1f MB per step) %.1f ms of a "
                        "%.1f ms step on average\n", r->model.n_params * 4e-6, 1000.0 * r->reduce_s / n,
                1000.0 * r->step_s / n);
    }
    if (root)
        fprintf(stderr, "train_llama: done: %s (val loss %.4f, %.4f bits per byte), log %s\n", r->path_model,
                r->last_val, bits_per_byte(r, r->last_val), r->path_log);
    return 0;
}

// ----------------------------------------------------------------------------
// set-up

// The training block of a checkpoint against its run settings: the step is
// within the run, the token count is exactly the steps' tokens (so it cannot
// overflow before the run ends), the seconds are a real duration.
static int check_train_block(const Run *r, Error *err) {
    const Settings *s = &r->s;
    const TrainState *st = &r->st;
    int64_t want;
    if (token_count(s, st->step, &want))
        return err_set(err, "%s: training block: %lld steps of %.0f tokens overflow the token count", s->resume,
                       (long long)st->step, tokens_per_step(s));
    if (st->tokens != want)
        return err_set(err, "%s: training block field tokens = %lld, but %lld steps of %.0f tokens make %lld",
                       s->resume, (long long)st->tokens, (long long)st->step, tokens_per_step(s), (long long)want);
    if (!isfinite(st->elapsed_s) || st->elapsed_s < 0 || st->elapsed_s > 1e12)
        return err_set(err, "%s: training block field elapsed_s = %g is not a duration in 0..1e12 s", s->resume,
                       st->elapsed_s);
    return 0;
}

// Loads the checkpoint and takes the run's settings from it, keeping the
// options that may differ. Returns 0, or an exit code.
static int resume_settings(Run *r, unsigned char *from, Error *err) {
    Settings *s = &r->s, ck = *s, cli = *s;
    int64_t rb[RUN_BLOCK_SLOTS];
    if (checkpoint_load(&r->model, &r->mom1, &r->mom2, &r->st, rb, s->resume, err) ||
        run_block_unpack(rb, &r->model.cfg, NULL, &ck, &r->resume_hashes, s->resume, err) ||
        (r->st.data_record &&
         data_record_parse(&r->resume_record, r->st.data_record, r->st.data_record_bytes, s->resume, err)))
        return fail(err, err->msg);
    if (r->st.step > ck.steps) {
        err_set(err, "%s: step %lld is past the run's %lld steps", s->resume, (long long)r->st.step,
                (long long)ck.steps);
        return fail(err, err->msg);
    }
    if (settings_applicable(&cli, &r->model.cfg, from, r->dist.rank == 0 ? stderr : NULL, err) ||
        settings_resume_check(&cli, from, &ck, &r->model.cfg, err))
        return usage_error(err, err->msg);
    // the global batch is ranks x --batch, and every rank's rows follow from
    // its rank: another count would be another run
    if (ck.ranks != cli.ranks) {
        char msg[512];
        snprintf(msg, sizeof msg, "--resume %.300s: the checkpoint was written by %lld processes, this job has %lld; "
                 "resume it with mpirun -np %lld", s->resume, (long long)ck.ranks, (long long)cli.ranks,
                 (long long)ck.ranks);
        return usage_error(err, msg);
    }
    r->resume_threads = rb[RB_THREADS];
    char build[BUILD_NAME_MAX + 1];
    run_block_build(rb, build);
    if (r->dist.rank == 0 && build[0] && strcmp(build, build_name()))
        fprintf(stderr, "train_llama: note: %s was written by build %s, this is %s: the resumed run matches an "
                        "uninterrupted one bit for bit only within one build\n", s->resume, build, build_name());
    *s = ck;
    settings_resume_take(s, &cli, from);
    if (r->dist.rank == 0 && (strcmp(s->matmul, ck.matmul) || strcmp(s->precision, ck.precision)))
        fprintf(stderr, "train_llama: note: resuming with --matmul %s --precision %s, the checkpoint was written "
                        "with %s %s: losses will not match an uninterrupted run bit for bit\n",
                s->matmul, s->precision, ck.matmul, ck.precision);
    // the data: as given, else where the checkpoint says it was
    if (!s->data && !r->resume_record.data_spec) {
        char msg[512];
        snprintf(msg, sizeof msg, "--resume %.300s: the checkpoint does not record its data (written by an older "
                 "train_llama): give --data", s->resume);
        return usage_error(err, msg);
    }
    if (!s->data) s->data = r->resume_record.data_spec;
    if (!s->val_data) s->val_data = r->resume_record.val_spec;
    const char *slash = strrchr(s->resume, '/');
    size_t n = slash ? (size_t)(slash - s->resume) : 1;
    if (n >= sizeof r->ckpt_dir) return fail(err, "--resume: path too long");
    memcpy(r->ckpt_dir, slash ? s->resume : ".", n);
    r->ckpt_dir[n] = 0;
    if (!r->ckpt_dir[0]) strcpy(r->ckpt_dir, "/"); // --resume /checkpoint.bin
    if (!s->out) s->out = r->ckpt_dir; // the checkpoint's own folder
    return check_train_block(r, err) ? fail(err, err->msg) : 0;
}

// An output folder on or inside an input is refused before anything is
// written (run_dir_check_inputs), as a usage error. Returns 0 or 2.
static int check_out_inputs(const Settings *s, Error *err) {
    return run_dir_check_inputs(s->out, s->data, s->val_data, s->resume, err) ? usage_error(err, err->msg) : 0;
}

// Parses and checks the command line (and, on resume, the checkpoint).
// Returns 0, an exit code with the message in err, or -1 after --help.
static int setup_settings(Run *r, int argc, char **argv, Error *err) {
    Settings *s = &r->s;
    unsigned char from[MAX_SETTINGS];
    FILE *notes = r->dist.rank == 0 ? stderr : NULL;
    int rc = settings_parse(s, from, argc, argv, notes, err);
    s->ranks = r->dist.size;
    if (rc < 0) return usage_error(err, err->msg);
    if (rc == 2) return r->dist.rank == 0 && print_version("train_llama") ? 1 : -1;
    if (rc == 1) {
        if (r->dist.rank == 0) settings_usage(stdout, s);
        return r->dist.rank == 0 && stream_check(stdout, "stdout", err) ? 1 : -1;
    }
    if (settings_check_alone(from, err)) return usage_error(err, err->msg);
    if (notes && s->made_by && strcmp(s->made_by, build_name()))
        fprintf(notes, "train_llama: note: --made-by %.64s: the settings come from another build than this one "
                       "(%s): the numbers may differ\n", s->made_by, build_name());
    if (s->print_config) {
        if (r->dist.rank == 0 && settings_print_file(s->print_config, err)) return fail(err, err->msg);
        return -1;
    }
    if (s->list_norms) {
        for (int k = 0; k < N_NORMS && r->dist.rank == 0; k++) printf("%s\n", NORM_KINDS[k].name);
        return r->dist.rank == 0 && stream_check(stdout, "stdout", err) ? 1 : -1;
    }
    if (!s->data && !s->resume) return usage_error(err, "--data FILE is required");
    if (settings_check_values(s, err)) return usage_error(err, err->msg);
    if (s->resume) return (rc = resume_settings(r, from, err)) ? rc : check_out_inputs(s, err);
    if (settings_applicable(s, NULL, from, notes, err)) return usage_error(err, err->msg);
    ModelConfig c = settings_config(s);
    Error e;
    if (config_validate(&c, &e)) {
        err_set(err, "model shape (--dim --heads --kv-heads --hidden --layers --seq): %s", e.msg);
        return usage_error(err, err->msg);
    }
    if (token_count(s, s->steps, NULL)) {
        err_set(err, "--steps %lld x %.0f tokens per step overflows the 64-bit token count", (long long)s->steps,
                tokens_per_step(s));
        return usage_error(err, err->msg);
    }
    if (!s->out) {
        snprintf(r->out_dir, sizeof r->out_dir, "runs/%s", s->norm);
        s->out = r->out_dir;
    }
    return check_out_inputs(s, err);
}

// The vocabulary: bytes; on resume the checkpoint's own; else with
// --vocab-size > 256 a BPE vocabulary for the data, kept beside it as
// DATA.bpeN (reused while the text is unchanged).
static int setup_tokenizer(Run *r, Error *err) {
    const Settings *s = &r->s;
    r->tk = tokenizer_bytes();
    if (s->resume && r->model.tokenizer) {
        if (bpe_parse(&r->bpe, r->model.tokenizer, r->model.tokenizer_bytes, s->resume, err)) return -1;
    } else if (s->resume && r->model.cfg.vocab_size != 256) {
        return err_set(err, "%s: vocab_size = %d but the checkpoint holds no tokenizer", s->resume,
                       r->model.cfg.vocab_size);
    } else if (!s->resume && s->vocab_size != 256) {
        char note[2048];
        if (bpe_for_text(&r->bpe, &r->text, (int)s->vocab_size, r->dist.rank == 0, note, sizeof note, err)) return -1;
        if (r->dist.rank == 0) fprintf(stderr, "train_llama: %s\n", note);
    }
    if (r->bpe.blob) r->tk = tokenizer_bpe(&r->bpe);
    return 0;
}

// On resume: the texts must be the checkpoint's (its data record names the
// file that differs; the fingerprints in the run block decide).
static int check_resume_data(Run *r, Error *err) {
    const Settings *s = &r->s;
    const TextFile *val = s->val_data ? &r->val_text : NULL;
    if (r->resume_record.data_spec && data_record_check(&r->resume_record, &r->text, val, err)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return err_set(err, "--resume %.200s: %.280s", s->resume, msg);
    }
    if (r->text.fingerprint != r->resume_hashes.data)
        return err_set(err, "%s: not the data the checkpoint %s was trained on (fingerprint differs)", s->data,
                       s->resume);
    if ((val ? val->fingerprint : 0) != r->resume_hashes.val)
        return err_set(err, "%s: not the validation data the checkpoint %s was validated on (%s)",
                       val ? s->val_data : s->data, s->resume,
                       !val ? "it was given --val-data" : !r->resume_hashes.val ? "it validated on --data's last 10%"
                                                                                 : "fingerprint differs");
    return 0;
}

// The texts (memory-mapped), the vocabulary (setup_tokenizer) and the
// tokens (the text itself, or encoded, or read from the cache); the data
// record that checkpoints carry.
static int setup_data(Run *r, Error *err) {
    const Settings *s = &r->s;
    int root = r->dist.rank == 0;
    if (text_open(&r->text, s->data, err) || (s->val_data && text_open(&r->val_text, s->val_data, err))) return -1;
    if (s->resume && check_resume_data(r, err)) return -1;
    if (setup_tokenizer(r, err) || dataset_load(&r->data, &r->text, s->val_data ? &r->val_text : NULL, &r->tk,
                                                (int)s->seq, root, err))
        return -1;
    if (r->data.note[0] && root) {
        for (char *line = r->data.note, *nl; line; line = nl ? nl + 1 : NULL) {
            if ((nl = strchr(line, '\n'))) *nl = 0;
            fprintf(stderr, "train_llama: %s\n", line);
        }
    }
    free(r->st.data_record);
    r->st.data_record = NULL;
    return data_record_pack(&r->text, s->val_data ? &r->val_text : NULL, &r->st.data_record,
                            &r->st.data_record_bytes, err);
}

// Resuming a run that has reached its last step changes nothing: its model,
// log and result stay as they are. (If its model.bin was never written, a
// crash at the very end, the resume writes it.)
static int finished_already(Run *r) {
    char model[RUN_PATH_MAX];
    Error e;
    if (!r->s.resume || r->st.step < r->s.steps || run_path(model, sizeof model, r->s.out, "model.bin", &e) ||
        access(model, F_OK))
        return 0;
    if (r->dist.rank == 0)
        fprintf(stderr, "train_llama: %s: the run is finished (step %lld of %lld); nothing to do (model: %s)\n",
                r->s.resume, (long long)r->st.step, (long long)r->s.steps, model);
    return 1;
}

// OUT/config.txt: the run's settings as the checkpoint records them (what
// --print-config prints from it), written at the start of every invocation.
static int write_config_file(Run *r, Error *err) {
    char path[RUN_PATH_MAX], *text = NULL;
    size_t len = 0;
    int64_t rb[RUN_BLOCK_SLOTS];
    Settings t = settings_defaults();
    DataHashes h;
    if (run_path(path, sizeof path, r->s.out, "config.txt", err)) return -1;
    run_block_pack(&r->s, (DataHashes){r->data.fingerprint, r->data.val_fingerprint}, rb);
    DataRecord rec; // the one the checkpoints will carry
    if (data_record_parse(&rec, r->st.data_record, r->st.data_record_bytes, r->s.out, err)) return -1;
    FILE *f = NULL;
    int rc = run_block_unpack(rb, &r->model.cfg, &rec, &t, &h, path, err);
    if (!rc && !(f = open_memstream(&text, &len))) rc = err_set(err, "out of memory");
    if (f) {
        settings_write(f, &t, 0, build_name());
        rc = fclose(f) ? err_set(err, "out of memory") : write_file_atomic(path, &(Chunk){text, len}, 1, err);
    }
    data_record_free(&rec);
    free(text);
    return rc;
}

// Rank 0 alone writes the run's files (log, checkpoints, model, result).
static int setup_run(Run *r, Error *err) {
    Settings *s = &r->s;
    int root = r->dist.rank == 0;
    // several processes on one machine: share its cores (without MPI, or with
    // mpirun binding each process to a core, this is OpenMP's own default)
    int64_t threads = s->threads;
    if (!threads && r->dist.local_size > 1) {
        threads = omp_get_num_procs() / r->dist.local_size;
        if (threads < 1) threads = 1;
    }
    if (threads_start(threads, "train_llama", err)) return -1;
    if (run_path(r->path_ckpt, sizeof r->path_ckpt, s->out, "checkpoint.bin", err) ||
        run_path(r->path_model, sizeof r->path_model, s->out, "model.bin", err) ||
        run_path(r->path_log, sizeof r->path_log, s->out, "log.csv", err) ||
        run_path(r->path_result, sizeof r->path_result, s->out, "result.txt", err))
        return -1;
    // the folder first, before any work: a second run on it is refused at once
    if (root && (run_dir_make(s->out, err) || (r->lock_fd = run_dir_lock(s->out, err)) < 0 ||
                 run_dir_check_free(s->out, s->keep, s->resume ? r->ckpt_dir : NULL, err)))
        return -1;
    // touch the step-time ring now, like the activations: memory then stays
    // flat over a long run instead of creeping up as the ring fills
    memset(r->step_ms, 0, sizeof r->step_ms);
    int resuming = s->resume != NULL;
    if (root && resuming && r->resume_threads != omp_get_max_threads())
        fprintf(stderr, "train_llama: warning: resuming with %d threads, the checkpoint was written with %lld: "
                        "losses will not match an uninterrupted run bit for bit\n",
                omp_get_max_threads(), (long long)r->resume_threads);
    // The vocabulary and the token cache are written beside the data: rank 0
    // makes (or checks) them first, then the others read them, so that no two
    // processes write one file. A failure on rank 0 is reported by rank 0.
    int first, failed = root && setup_data(r, err);
    if (dist_agree(&r->dist, failed, &first) || (!root && setup_data(r, err))) return -1;
    if (!resuming) {
        ModelConfig c = settings_config(s);
        if (model_create(&r->model, &c, err)) return -1;
        model_init(&r->model, (uint64_t)s->seed);
        if (r->bpe.blob) { // the vocabulary travels with the model
            if (!(r->model.tokenizer = malloc(r->bpe.blob_bytes))) return err_set(err, "out of memory");
            memcpy(r->model.tokenizer, r->bpe.blob, r->bpe.blob_bytes);
            r->model.tokenizer_bytes = r->bpe.blob_bytes;
        }
        r->mom1 = alloc_floats(r->model.n_params);
        r->mom2 = alloc_floats(r->model.n_params);
        r->st.step = 0, r->st.rng_state = rng_make((uint64_t)s->seed, 0xDA7A).state, r->st.tokens = 0;
        r->st.elapsed_s = 0;
    }
    size_t bt = (size_t)s->batch * s->seq;
    r->inputs = malloc(bt * sizeof(int));
    r->targets = malloc(bt * sizeof(int));
    if (root) r->rank_hashes = malloc((size_t)r->dist.size * sizeof(uint64_t));
    if (!r->mom1 || !r->mom2 || !r->inputs || !r->targets || (root && !r->rank_hashes))
        return err_set(err, "out of memory");
    if (model_alloc_grads(&r->model, err)) return -1;
    if (acts_create(&r->acts, &r->model, (int)s->batch, (int)s->seq, (int)s->seq, 1, err) ||
        matmul_init(&r->mm, matmul_backend_find(s->matmul), precision_find(s->precision), err))
        return -1;
    r->acts.mm = &r->mm;
    const char *note = matmul_note(&r->mm);
    if (root && note) fprintf(stderr, "train_llama: note: %s\n", note);
    r->best_val = r->last_val = NAN;
    r->last_val_step = -1;
    r->heap_ref = -1;
    r->load_start = load_average();
    r->t_start = now_seconds();
    if (progress_init(&r->progress, err)) return -1;
    if (!root) return 0;
    if (write_config_file(r, err)) return -1;
    return log_open(r, resuming, err);
}

static void run_free(Run *r) {
    if (r->log) fclose(r->log);
    if (r->lock_fd >= 0) close(r->lock_fd);
    model_free(&r->model);
    acts_free(&r->acts);
    matmul_free(&r->mm);
    dataset_free(&r->data);
    text_close(&r->text);
    text_close(&r->val_text);
    data_record_free(&r->resume_record);
    free(r->st.data_record);
    bpe_free(&r->bpe);
    free(r->mom1);
    free(r->mom2);
    free(r->inputs);
    free(r->targets);
    free(r->rank_hashes);
    dist_reqs_free(&r->reqs);
}

// The lowest failed rank prints its message (prefixed with its rank when
// there are several): a job reports a failure once, not once per process.
static int report(const Run *r, int rc, const Error *err) {
    if (err->msg[0]) {
        if (r->dist.size > 1) fprintf(stderr, "train_llama: rank %d: %s\n", r->dist.rank, err->msg);
        else fprintf(stderr, "train_llama: %s\n", err->msg);
    }
    return rc;
}

// Set-up may fail on some ranks only (a file one machine cannot read): all
// ranks agree, the lowest failed one reports, and all exit with its code.
static int setup_agree(Run *r, int rc, Error *err) {
    int first, worst = dist_agree(&r->dist, rc, &first);
    if (worst && first != r->dist.rank) err->msg[0] = 0;
    return worst;
}

int main(int argc, char **argv) {
    static Run r; // static: it holds the step-time ring (512 KB)
    Error err = {{0}};
    if (std_fds_open()) {
        fprintf(stderr, "train_llama: /dev/null: cannot open it for a closed stdin, stdout or stderr\n");
        return 1;
    }
    threads_wait_policy(argv); // before anything else: it may start the program again
    stdout_buffer();
    r.lock_fd = -1;
    dist_init(&r.dist, &argc, &argv);
    install_signal_handlers(); // first: a signal during set-up still ends in order (stopped_in_setup)
    int rc = setup_settings(&r, argc, argv, &err); // -1: --help (the same on every rank)
    if (rc >= 0) rc = setup_agree(&r, rc, &err);
    if (!rc && finished_already(&r)) rc = -1;
    if (!rc) rc = setup_agree(&r, setup_run(&r, &err) ? 1 : 0, &err);
    if (!rc && stopped_in_setup(&r)) rc = -1;
    if (rc) {
        run_free(&r);
        dist_finalize(&r.dist);
        return rc < 0 ? 0 : report(&r, rc, &err);
    }
    const ModelConfig *c = &r.model.cfg;
    char mmdesc[64];
    if (r.dist.rank == 0)
        fprintf(stderr, "train_llama: %s, d %d, %d layers, %d/%d heads, hidden %d, %zu params, "
                        "%d threads, matmul %s%s%s%s, %s step %lld/%lld\n",
                r.s.norm, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, r.model.n_params,
                omp_get_max_threads(), matmul_describe(&r.mm, mmdesc, sizeof mmdesc),
                r.mm.backend == MM_OPENBLAS ? " (OpenBLAS " : "",
                r.mm.backend == MM_OPENBLAS ? openblas_get_corename() : "", r.mm.backend == MM_OPENBLAS ? ")" : "",
                r.s.resume ? "resuming at" : "from",
                (long long)r.st.step, (long long)r.s.steps);
    if (r.dist.rank == 0 && r.dist.size > 1)
        fprintf(stderr, "train_llama: %d processes x batch %lld = global batch %lld, gradients reduced %s\n",
                r.dist.size, (long long)r.s.batch, (long long)(r.s.batch * r.dist.size),
                r.s.overlap ? "layer by layer during the backward pass" : "after the backward pass");
    rc = train_loop(&r, &err) ? 1 : 0;
    progress_end(&r.progress); // an error message starts on its own line
    // The exit status is the run's own. A training run prints nothing on
    // stdout, and a stderr that failed (EPIPE: its reader went away) lost
    // progress lines only: the results are in OUT, so neither fails the run.
    run_free(&r);
    dist_finalize(&r.dist);
    return report(&r, rc, &err);
}
