// Unit and reference tests of the model code. Prints one line per check,
// "ok - NAME" or "FAIL - NAME: why"; test/run_tests.sh counts them.
//
//   build/test_core [test/ref [../shared/data]]
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../dyt.h"
#include "../src/bf16.h"
#include "../src/bpe.h"
#include "../src/data.h"
#include "../src/export.h"
#include "../src/layers.h"
#include "../src/llama2c.h"
#include "../src/matmul.h"
#include "../src/model.h"
#include "../src/modelio.h"
#include "../src/optim.h"
#include "../src/options.h"
#include "../src/settings.h"
#include "../src/rng.h"
#include "../src/sampler.h"
#include "../src/sptok.h"
#include "../src/threads.h"
#include "../src/vmath.h"

static int n_pass = 0, n_fail = 0, n_skip = 0;

// A check that cannot run here (its data is absent) says so: never "ok".
static void skip(const char *name, const char *why) {
    n_skip++;
    printf("skip - %s: %s\n", name, why);
}

static void check(int ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(int ok, const char *name, const char *fmt, ...) {
    if (ok) {
        n_pass++;
        printf("ok - %s\n", name);
        return;
    }
    n_fail++;
    printf("FAIL - %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

// ----------------------------------------------------------------------------
// reference vectors from scripts/ref_torch.py (float64 PyTorch)

// The C code is float32; the reference float64. Every tensor must satisfy
// max|c - ref| <= REL_TOL * max|ref|. The issue allows 1e-4; the worst error
// seen is 1.6e-6 (float32 rounding), so 1e-5 keeps a 6x margin and catches more.
#define REL_TOL 1e-5

typedef struct {
    int B, T, n_steps;
    float lr, wd, clip, beta1, beta2, eps;
    int *tokens;                 // (B, T+1)
    float *logits, loss, *grads; // (B,T,V), (P)
    float *step_losses, *params_after;
} Ref;

static int read_ref(const char *path, size_t n_params, int V, Ref *r) {
    unsigned char *buf;
    size_t n;
    Error err;
    if (read_file(path, &buf, &n, &err)) return -1;
    int32_t head[5];
    float hyper[6];
    if (n < 44) return -1;
    memcpy(head, buf, 20);
    memcpy(hyper, buf + 20, 24);
    if ((uint32_t)head[0] != 0x46455244u || head[1] != 1) return -1;
    r->B = head[2], r->T = head[3], r->n_steps = head[4];
    r->lr = hyper[0], r->wd = hyper[1], r->clip = hyper[2], r->beta1 = hyper[3], r->beta2 = hyper[4], r->eps = hyper[5];
    size_t nt = (size_t)r->B * (r->T + 1), nl = (size_t)r->B * r->T * V;
    size_t want = 44 + 4 * (nt + nl + 1 + n_params + r->n_steps + n_params);
    if (n != want) {
        free(buf);
        return -1;
    }
    unsigned char *p = buf + 44;
#define TAKE(dst, count) do { dst = malloc((count) * 4); memcpy(dst, p, (count) * 4); p += (count) * 4; } while (0)
    TAKE(r->tokens, nt);
    TAKE(r->logits, nl);
    memcpy(&r->loss, p, 4), p += 4;
    TAKE(r->grads, n_params);
    TAKE(r->step_losses, (size_t)r->n_steps);
    TAKE(r->params_after, n_params);
#undef TAKE
    free(buf);
    return 0;
}

// max|a - b| / max|b| (0/0 = 0)
static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0.0, mr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        mr = fabs(b[i]) > mr ? fabs(b[i]) : mr;
    }
    return mr > 0 ? md / mr : md;
}

// Compares every present tensor of `got` against `want` (both n_params, file order).
static void check_tensors(const Model *m, const float *got, const float *want, const char *what,
                          const char *case_name, double *worst) {
    size_t off = 0;
    for (int t = 0; t < N_TENSORS; t++) {
        size_t n = m->sizes[t];
        if (!n) continue;
        double e = rel_err(got + off, want + off, n);
        if (e > *worst) *worst = e;
        char name[160];
        snprintf(name, sizeof name, "ref %s: %s %s", case_name, what, tensor_name(t));
        check(e <= REL_TOL, name, "max|c - ref| / max|ref| = %.3g > %.0e", e, REL_TOL);
        off += n;
    }
}

// A case of scripts/ref_torch.py: its initial model (NAME.model.bin), a
// reference file (NAME.ref.bin, or NAME.ref-bf16.bin) and its batch as inputs
// and targets.
typedef struct {
    Model m;
    Ref r;
    int *in, *tg; // (B, T)
    float *params0; // the initial weights, restored after each run
} RefCase;

static void ref_case_free(RefCase *c) {
    free(c->in), free(c->tg), free(c->params0);
    free(c->r.tokens), free(c->r.logits), free(c->r.grads), free(c->r.step_losses), free(c->r.params_after);
    model_free(&c->m);
}

// 0, or -1 with why in msg.
static int ref_case_load(RefCase *c, const char *dir, const char *case_name, const char *suffix, char *msg,
                         size_t cap) {
    char path[1024];
    Error err;
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/%s.model.bin", dir, case_name);
    if (model_load(&c->m, path, &err)) return snprintf(msg, cap, "%s", err.msg), -1;
    snprintf(path, sizeof path, "%s/%s%s", dir, case_name, suffix);
    if (read_ref(path, c->m.n_params, c->m.cfg.vocab_size, &c->r)) {
        snprintf(msg, cap, "%s: unreadable or wrong size", path);
        return model_free(&c->m), -1;
    }
    int B = c->r.B, T = c->r.T;
    c->in = malloc(sizeof(int) * B * T), c->tg = malloc(sizeof(int) * B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            c->in[b * T + t] = c->r.tokens[b * (T + 1) + t];
            c->tg[b * T + t] = c->r.tokens[b * (T + 1) + t + 1];
        }
    c->params0 = alloc_floats(c->m.n_params);
    memcpy(c->params0, c->m.params, c->m.n_params * sizeof(float));
    if (model_alloc_grads(&c->m, &err)) return snprintf(msg, cap, "%s", err.msg), ref_case_free(c), -1;
    return 0;
}

// The C run of a case, its products through mm (NULL: OpenBLAS fp32): logits,
// loss and gradient of the initial model, then n_steps of clip + AdamW on the
// same batch (the loss before each, the parameters after). The model's weights
// are the initial ones again after.
typedef struct {
    float *logits, *grads; // (B,T,V), (P)
    double loss, step_loss[8];
    float *params; // after the steps (P)
} RefRun;

static void ref_run_free(RefRun *o) { free(o->logits), free(o->grads), free(o->params); }

static int ref_case_run(RefCase *c, Matmul *mm, int n_steps, RefRun *o, Error *err) {
    Model *m = &c->m;
    const Ref *r = &c->r;
    int B = r->B, T = r->T;
    size_t P = m->n_params, nl = (size_t)B * T * m->cfg.vocab_size;
    Acts a;
    memset(o, 0, sizeof *o);
    if (n_steps > 8) return err_set(err, "%d steps: at most 8", n_steps);
    if (acts_create(&a, m, B, T, T, 1, err)) return -1;
    a.mm = mm;
    o->logits = alloc_floats(nl), o->grads = alloc_floats(P), o->params = alloc_floats(P);
    float *m1 = alloc_floats(P), *m2 = alloc_floats(P);
    model_zero_grad(m);
    model_forward(m, &a, c->in, T, 0, 1, err);
    memcpy(o->logits, a.logits, nl * sizeof(float));
    o->loss = model_backward(m, &a, c->in, c->tg, 1.0f);
    memcpy(o->grads, m->grads, P * sizeof(float));
    AdamW opt = {r->lr, r->beta1, r->beta2, r->eps, r->wd, .all_decay = 0, .scalar_lr_mult = 1.0f};
    for (int s = 0; s < n_steps; s++) {
        model_zero_grad(m);
        model_forward(m, &a, c->in, T, 0, 1, err);
        o->step_loss[s] = model_backward(m, &a, c->in, c->tg, 1.0f);
        grad_clip(m->grads, P, r->clip);
        adamw_step(m, m1, m2, s + 1, &opt);
    }
    memcpy(o->params, m->params, P * sizeof(float));
    memcpy(m->params, c->params0, P * sizeof(float));
    free(m1), free(m2);
    acts_free(&a);
    return 0;
}

// The case's config (for the coverage check), or a zero one on failure.
static ModelConfig test_reference_case(const char *dir, const char *case_name) {
    char name[160], msg[1100];
    Error err;
    RefCase c;
    snprintf(name, sizeof name, "ref %s: load", case_name);
    if (ref_case_load(&c, dir, case_name, ".ref.bin", msg, sizeof msg)) {
        check(0, name, "%s", msg);
        return (ModelConfig){0};
    }
    check(1, name, " ");
    const Ref *r = &c.r;
    size_t nl = (size_t)r->B * r->T * c.m.cfg.vocab_size;
    double worst = 0.0;
    RefRun o;
    if (ref_case_run(&c, NULL, r->n_steps, &o, &err)) {
        check(0, name, "%s", err.msg);
        ref_case_free(&c);
        return (ModelConfig){0};
    }
    // logits, loss and every gradient at the initial weights
    double e = rel_err(o.logits, r->logits, nl);
    worst = e > worst ? e : worst;
    snprintf(name, sizeof name, "ref %s: logits", case_name);
    check(e <= REL_TOL, name, "rel err %.3g", e);
    snprintf(name, sizeof name, "ref %s: loss", case_name);
    check(fabs(o.loss - r->loss) <= REL_TOL * fabs(r->loss), name, "%.7f vs %.7f", o.loss, r->loss);
    check_tensors(&c.m, o.grads, r->grads, "grad", case_name, &worst);
    // n_steps of clip + AdamW on the same batch
    double worst_step_loss = 0.0;
    for (int s = 0; s < r->n_steps; s++) {
        double d = fabs(o.step_loss[s] - r->step_losses[s]) / fabs(r->step_losses[s]);
        worst_step_loss = d > worst_step_loss ? d : worst_step_loss;
    }
    snprintf(name, sizeof name, "ref %s: losses of %d AdamW steps", case_name, r->n_steps);
    check(worst_step_loss <= REL_TOL, name, "rel err %.3g", worst_step_loss);
    check_tensors(&c.m, o.params, r->params_after, "after AdamW", case_name, &worst);
    printf("# ref %s: worst relative error over logits, grads, params %.3g\n", case_name, worst);
    ref_run_free(&o);
    ModelConfig cfg = c.m.cfg;
    ref_case_free(&c);
    return cfg;
}

// ----------------------------------------------------------------------------
// the matmul backends and bf16 (src/matmul.h) against the PyTorch references

// bfloat16 keeps 8 significant bits (7 stored): rounding to nearest errs by
// at most u = 2^-8 of the value (its unit roundoff), and one step between
// neighbours is at most 2u of it.
#define BF16_U 0x1p-8

// The largest max|got - want| / max|want| over the present tensors, and which.
static double worst_tensor(const Model *m, const float *got, const float *want, int *which) {
    double worst = 0.0;
    size_t off = 0;
    *which = -1;
    for (int t = 0; t < N_TENSORS; t++) {
        if (!m->sizes[t]) continue;
        double e = rel_err(got + off, want + off, m->sizes[t]);
        if (e >= worst) worst = e, *which = t;
        off += m->sizes[t];
    }
    return worst;
}

static const char *tensor_or_none(int t) { return t >= 0 ? tensor_name(t) : "-"; }

// A Matmul for backend x precision (0), or a skip line naming why not (-1).
static int mm_open(Matmul *mm, int backend, int precision, const char *what) {
    const MatmulBackend *be = MATMUL_BACKENDS[backend];
    const char *why = be->unavailable ? be->unavailable() : NULL;
    Error err;
    if (why) return skip(what, why), -1;
    if (matmul_init(mm, backend, precision, &err)) return check(0, what, "%s", err.msg), -1;
    return 0;
}

// bf16's tolerances (docs/tests.md, "bf16 and the matmul backends"). A case's
// bf16 run is compared with two references of scripts/ref_torch.py: the
// float64 model (NAME.ref.bin), and the same model whose every product rounds
// its operands to bf16 first (NAME.ref-bf16.bin, one AdamW step).
//
// Against the rounded model (tight). A product of two bf16 values is exact in
// float32, so the bf16 path is that model up to float32 arithmetic, as the
// fp32 path is the float64 model: within REL_TOL. Except for a flip: an
// operand that C holds in float32 and the reference in float64 may lie within
// float32's error (a few 2^-24 of it) of a midpoint between two bf16 values
// (about 2^-8 of it apart) and be rounded up by one, down by the other. That
// moves the operand by one bf16 step, at most 2u of it, and what depends on it
// by about as much of its size, or less. Flips are rare and random: of the 18
// cases (all of them tried) 2 showed one, moving a gradient by 0.1u and 0.4u,
// and rounding that element the other way in the reference brought each back
// within 1e-6. So at least half the cases must be within REL_TOL, and the
// others' logits, loss and gradients within BF16_FLIP = 2u of their largest
// values (not the parameters: AdamW's first step moves each by lr times the
// sign of its gradient, which a flip may turn where the gradient is near 0).
// A product that missed its rounding, or a backward product the rounding of
// its incoming gradient, moves every case by 0.8u to 13u (ref_torch.py checks
// that each moves each case by at least 100 REL_TOL).
#define BF16_FLIP (2 * BF16_U)
// Against the float64 model (loose). Rounding errs by at most u, so a product's
// terms by at most 2u, and its result by at most 2u of sum |a_k b_k| (about its
// size here: no strong cancellation). 13 products lie in series from the
// embedding to the logits (6 a layer, 2 layers, the classifier), 13 more back
// to a gradient; their errors have random signs and add as the square root of
// their count: about sqrt(13) 2u = 7u and sqrt(26) 2u = 10u. The tolerances
// are the next powers of two above (measured worst: 2.7u and 8.8u), and the
// logits must differ by at least u/16 (the fp32 path: below REL_TOL = u/390):
// the rounding happened. Not hardtanh's gradient: its derivative jumps at
// |alpha x| = 1, so an input within O(u) of it changes a gradient by O(1)
// (49u in hardtanh_untied).
#define BF16_LOOSE_LOGITS (8 * BF16_U)
#define BF16_LOOSE_GRAD (16 * BF16_U)
#define BF16_ROUNDED (BF16_U / 16)

// The products each case also runs with (the run above is OpenBLAS fp32).
static const struct {
    int backend, precision;
} REF_MODES[] = {{MM_ONEDNN, PREC_FP32}, {MM_OPENBLAS, PREC_BF16}, {MM_ONEDNN, PREC_BF16}};
enum { N_REF_MODES = sizeof REF_MODES / sizeof REF_MODES[0] };

// The errors of a run against a reference, relative to max|ref| (per tensor);
// the steps' only when it ran them.
typedef struct {
    double logits, loss, grad, steps, params; // steps: the losses before each step
    int grad_t, params_t;                     // the worst tensors
} RefErr;

static RefErr ref_errors(const RefCase *c, const RefRun *o, int n_steps) {
    const Ref *r = &c->r;
    RefErr e = {rel_err(o->logits, r->logits, (size_t)r->B * r->T * c->m.cfg.vocab_size),
                fabs(o->loss - r->loss) / fabs(r->loss), 0, 0, 0, -1, -1};
    e.grad = worst_tensor(&c->m, o->grads, r->grads, &e.grad_t);
    if (n_steps != r->n_steps) return e;
    for (int s = 0; s < n_steps; s++)
        e.steps = fmax(e.steps, fabs(o->step_loss[s] - r->step_losses[s]) / fabs(r->step_losses[s]));
    e.params = worst_tensor(&c->m, o->params, r->params_after, &e.params_t);
    return e;
}

// The worst of every compared quantity: logits, loss, gradients, step losses, parameters.
static double ref_err_max(const RefErr *e) {
    return fmax(fmax(fmax(e->logits, e->loss), fmax(e->grad, e->steps)), e->params);
}

static void ref_err_text(char *buf, size_t cap, const RefErr *e, double unit, const char *in) {
    snprintf(buf, cap, "logits %.3g, loss %.3g, grad %.3g (%s), step losses %.3g, params %.3g (%s)%s", e->logits / unit,
             e->loss / unit, e->grad / unit, tensor_or_none(e->grad_t), e->steps / unit, e->params / unit,
             tensor_or_none(e->params_t), in);
}

// One case under mm (fp32: against the float64 model; bf16: against both
// references). The initial model's logits, loss and gradient; the optimizer's
// steps (whose arithmetic no backend changes) only against the bf16
// reference, where they follow gradients of another precision. exact counts
// the bf16 cases within REL_TOL of the rounded model, tight those compared.
static void test_reference_mode(RefCase *c, RefCase *cb, Matmul *mm, const char *case_name, int *exact,
                                int *tight) {
    char desc[64], name[256], why[512];
    Error err;
    RefRun o;
    matmul_describe(mm, desc, sizeof desc);
    if (ref_case_run(c, mm, 0, &o, &err)) {
        snprintf(name, sizeof name, "ref %s [%s]: run", case_name, desc);
        return check(0, name, "%s", err.msg);
    }
    RefErr e = ref_errors(c, &o, 0);
    if (mm->precision == PREC_FP32) {
        snprintf(name, sizeof name, "ref %s [%s]: logits, loss, every gradient within 1e-05 of float64", case_name,
                 desc);
        ref_err_text(why, sizeof why, &e, 1, "");
        check(ref_err_max(&e) <= REL_TOL, name, "%s", why);
        return ref_run_free(&o);
    }
    snprintf(name, sizeof name, "ref %s [%s]: against float64, logits within u/16..8u, loss within 8u (u = 2^-8)",
             case_name, desc);
    check(e.logits >= BF16_ROUNDED && e.logits <= BF16_LOOSE_LOGITS && e.loss <= BF16_LOOSE_LOGITS, name,
          "logits %.3gu, loss %.3gu", e.logits / BF16_U, e.loss / BF16_U);
    if (c->m.cfg.norm != NORM_HARDTANH) {
        snprintf(name, sizeof name, "ref %s [%s]: against float64, every gradient within 16u", case_name, desc);
        check(e.grad <= BF16_LOOSE_GRAD, name, "%s %.3gu", tensor_or_none(e.grad_t), e.grad / BF16_U);
    }
    ref_run_free(&o);
    if (!cb) return;
    if (ref_case_run(cb, mm, cb->r.n_steps, &o, &err)) {
        snprintf(name, sizeof name, "ref %s [%s]: run", case_name, desc);
        return check(0, name, "%s", err.msg);
    }
    e = ref_errors(cb, &o, cb->r.n_steps);
    int same = ref_err_max(&e) <= REL_TOL;
    (*tight)++, *exact += same;
    snprintf(name, sizeof name, "ref %s [%s]: against float64 with bf16 operands, logits, loss, every gradient, "
             "%d AdamW step within 1e-5, or (a rounding flip) logits, loss, gradients within 2u", case_name, desc,
             cb->r.n_steps);
    ref_err_text(why, sizeof why, &e, BF16_U, " (in u)");
    check(same || fmax(fmax(e.logits, e.loss), e.grad) <= BF16_FLIP, name, "%s", why);
    if (!same) printf("# ref %s [%s]: a rounding flip? %s\n", case_name, desc, why);
    ref_run_free(&o);
}

// A case under every mode of REF_MODES this build has (mms[i] NULL: not);
// whether it has a bf16 reference.
static int test_reference_modes(const char *dir, const char *case_name, Matmul *const mms[], int exact[],
                                int tight[]) {
    char msg[1100], path[1024], name[256];
    RefCase c, cb;
    if (ref_case_load(&c, dir, case_name, ".ref.bin", msg, sizeof msg)) return 0; // reported above
    snprintf(path, sizeof path, "%s/%s.ref-bf16.bin", dir, case_name);
    int has_bf16 = !access(path, R_OK);
    if (has_bf16 && ref_case_load(&cb, dir, case_name, ".ref-bf16.bin", msg, sizeof msg)) {
        snprintf(name, sizeof name, "ref %s: load the bf16 reference", case_name);
        check(0, name, "%s", msg);
        has_bf16 = 0;
    }
    for (int i = 0; i < N_REF_MODES; i++)
        if (mms[i]) test_reference_mode(&c, has_bf16 ? &cb : NULL, mms[i], case_name, &exact[i], &tight[i]);
    if (has_bf16) ref_case_free(&cb);
    ref_case_free(&c);
    return has_bf16;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Every NAME.ref.bin of scripts/ref_torch.py in dir (not llama2.c's l2c_*),
// in name order; then every kind of the norm table must have been checked
// with and without the residual gate, and with and without the embedding scale.
static void test_reference_all(const char *dir) {
    DIR *d = opendir(dir);
    char *names[256];
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) && n < 256;) {
        size_t len = strlen(e->d_name);
        if (len > 8 && !strcmp(e->d_name + len - 8, ".ref.bin") && strncmp(e->d_name, "l2c_", 4))
            names[n++] = strndup(e->d_name, len - 8);
    }
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    int seen[N_NORMS][2][2] = {{{0}}}; // [kind][gate][emb_scale]
    int mlps[N_MLPS] = {0};
    Matmul mm[N_REF_MODES], *mms[N_REF_MODES];
    int exact[N_REF_MODES] = {0}, tight[N_REF_MODES] = {0};
    for (int i = 0; i < N_REF_MODES; i++) {
        char what[96];
        snprintf(what, sizeof what, "ref [%s %s]", matmul_backend_name(REF_MODES[i].backend),
                 precision_name(REF_MODES[i].precision));
        mms[i] = mm_open(&mm[i], REF_MODES[i].backend, REF_MODES[i].precision, what) ? NULL : &mm[i];
    }
    int bf16_kinds[N_NORMS] = {0};
    for (int i = 0; i < n; i++) {
        ModelConfig c = test_reference_case(dir, names[i]);
        if (c.dim) seen[c.norm][c.residual_gate][c.emb_scale] = 1, mlps[c.mlp]++;
        if (c.dim && test_reference_modes(dir, names[i], mms, exact, tight)) bf16_kinds[c.norm] = 1;
        free(names[i]);
    }
    int missing = -1;
    for (int k = 0; k < N_NORMS; k++)
        if (!bf16_kinds[k]) missing = k;
    check(missing < 0, "ref: every kind of the norm table has a bf16 reference (NAME.ref-bf16.bin)",
          "none for %s (scripts/ref_torch.py BF16_CASES)", missing >= 0 ? NORM_KINDS[missing].name : "");
    for (int i = 0; i < N_REF_MODES; i++) {
        if (!mms[i] || REF_MODES[i].precision != PREC_BF16) continue;
        char desc[64], name[256];
        matmul_describe(mms[i], desc, sizeof desc);
        snprintf(name, sizeof name, "ref [%s]: against float64 with bf16 operands, at least half the cases within "
                 "1e-5 (the rest rounding flips)", desc);
        check(tight[i] >= 4 && 2 * exact[i] >= tight[i], name, "%d of %d cases (at least 4 needed)", exact[i],
              tight[i]);
        printf("# ref [%s]: %d of %d cases within 1e-5 of the bf16 reference\n", desc, exact[i], tight[i]);
    }
    for (int i = 0; i < N_REF_MODES; i++) matmul_free(mms[i]);
    for (int k = 0; k < N_MLPS; k++) {
        char name[160];
        snprintf(name, sizeof name, "ref: the %s MLP is checked", MLP_KINDS[k].name);
        check(mlps[k] > 0, name, "no case in %s (scripts/ref_torch.py CASES)", dir);
    }
    for (int k = 0; k < N_NORMS; k++) {
        char name[160];
        snprintf(name, sizeof name, "ref: %s is checked with and without the residual gate and the embedding scale",
                 NORM_KINDS[k].name);
        int gate = (seen[k][0][0] || seen[k][0][1]) && (seen[k][1][0] || seen[k][1][1]);
        int emb = (seen[k][0][0] || seen[k][1][0]) && (seen[k][0][1] || seen[k][1][1]);
        check(gate && emb, name, "cases missing in %s (scripts/ref_torch.py CASES)", dir);
    }
}

// ----------------------------------------------------------------------------
// finite differences of DyT and the embedding scale, in float64 arithmetic on
// the float32 functions: L = sum(w * DyT(x)) with random w

static double dyt_objective(const float *x, float alpha, const float *g, const float *b,
                            const float *w, int N, int C, float *buf) {
    dyt_forward(buf, x, alpha, g, b, (size_t)N, C);
    double s = 0.0;
    for (int i = 0; i < N * C; i++) s += (double)w[i] * buf[i];
    return s;
}

static void test_dyt_finite_differences(void) {
    enum { N = 6, C = 20 };
    Rng rng = rng_make(7, 1);
    float x[N * C], w[N * C], g[C], b[C], buf[N * C];
    for (int i = 0; i < N * C; i++) x[i] = 1.5f * (float)rng_normal(&rng), w[i] = (float)rng_normal(&rng);
    for (int c = 0; c < C; c++) g[c] = 1.0f + 0.3f * (float)rng_normal(&rng), b[c] = 0.2f * (float)rng_normal(&rng);
    float alpha = 0.7f;
    float dx[N * C] = {0}, dg[C] = {0}, db[C] = {0}, da = 0.0f;
    float scratch[1024];
    check(dyt_scratch_floats(N, C) <= 1024, "dyt scratch fits the test's buffer", "%zu floats", dyt_scratch_floats(N, C));
    dyt_backward(dx, &da, dg, db, w, x, alpha, g, N, C, scratch);
    // central differences with h = 1e-2: truncation error O(h^2) ~ 1e-4 relative,
    // float32 forward rounding ~1e-7 * |L| / h ~ 1e-4; so a 2e-3 bound has margin
    const float h = 1e-2f;
    double worst = 0.0;
    float *params[] = {x, g, b, &alpha};
    float *grads[] = {dx, dg, db, &da};
    int sizes[] = {N * C, C, C, 1};
    const char *names[] = {"x", "gamma", "beta", "alpha"};
    for (int k = 0; k < 4; k++) {
        worst = 0.0;
        for (int i = 0; i < sizes[k]; i++) {
            float keep = params[k][i];
            params[k][i] = keep + h;
            double lp = dyt_objective(x, alpha, g, b, w, N, C, buf);
            params[k][i] = keep - h;
            double lm = dyt_objective(x, alpha, g, b, w, N, C, buf);
            params[k][i] = keep;
            double fd = (lp - lm) / (2.0 * h), an = grads[k][i];
            double e = fabs(fd - an) / fmax(1.0, fabs(an));
            worst = e > worst ? e : worst;
        }
        char name[64];
        snprintf(name, sizeof name, "dyt finite differences: d%s", names[k]);
        check(worst <= 2e-3, name, "worst error %.3g > 2e-3", worst);
    }
    // embedding scale: L = sum(w * s * e)
    float e[N * C], de[N * C], ds = 0.0f, s = 8.0f;
    for (int i = 0; i < N * C; i++) e[i] = 0.1f * (float)rng_normal(&rng);
    embscale_backward(de, &ds, w, e, s, N * C);
    double lp = 0, lm = 0;
    for (int i = 0; i < N * C; i++) lp += (double)w[i] * ((s + h) * e[i]), lm += (double)w[i] * ((s - h) * e[i]);
    double fd = (lp - lm) / (2.0 * h);
    check(fabs(fd - ds) <= 2e-3 * fmax(1.0, fabs(ds)), "embedding scale finite differences: dscale", "fd %.6g vs %.6g", fd, ds);
    int ok = 1;
    for (int i = 0; i < N * C; i++) ok &= de[i] == s * w[i];
    check(ok, "embedding scale backward: dinp = scale * dout", "mismatch");
    // DyT forward against the formula, beta absent
    dyt_forward(buf, x, alpha, g, NULL, N, C);
    double fe = 0;
    for (int i = 0; i < N * C; i++) fe = fmax(fe, fabs(buf[i] - g[i % C] * tanh((double)alpha * x[i])));
    check(fe < 1e-6, "dyt forward = gamma * tanh(alpha x) without beta", "max error %.3g", fe);
}

// ----------------------------------------------------------------------------
// attention (sgemm per batch and head, row blocks) against a float64 loop
// version of the formulas; T is not a multiple of the row block, so partial
// blocks and the causal cut of each block are exercised

// out (B,T,NH*HS), p (B,NH,T,kv) in double; queries at pos0.., keys 0..pos0+t
static void attention_naive(double *out, double *p, const float *q, const float *k, const float *v,
                            int B, int T, int pos0, int kv, int NH, int NKV, int HS) {
    int C = NH * HS, KVC = NKV * HS;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qv = q + ((size_t)b * T + t) * C + h * HS;
                double *pr = p + (((size_t)b * NH + h) * T + t) * kv, mx = -INFINITY, sum = 0.0;
                int kh = h / (NH / NKV), tk = pos0 + t + 1;
                for (int j = 0; j < kv; j++) {
                    double s = 0.0;
                    for (int i = 0; i < HS; i++) s += (double)qv[i] * k[((size_t)b * kv + j) * KVC + kh * HS + i];
                    pr[j] = j < tk ? s / sqrt((double)HS) : -INFINITY;
                    mx = j < tk && pr[j] > mx ? pr[j] : mx;
                }
                for (int j = 0; j < kv; j++) sum += pr[j] = j < tk ? exp(pr[j] - mx) : 0.0;
                for (int j = 0; j < kv; j++) pr[j] /= sum;
                for (int i = 0; i < HS; i++) {
                    double o = 0.0;
                    for (int j = 0; j < tk; j++) o += pr[j] * v[((size_t)b * kv + j) * KVC + kh * HS + i];
                    out[((size_t)b * T + t) * C + h * HS + i] = o;
                }
            }
}

static double max_rel_diff(const float *got, const double *want, size_t n) {
    double e = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(got[i] - want[i])), m = fmax(m, fabs(want[i]));
    return e / m;
}

static void fill_normal(float *x, size_t n, Rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(r);
}

// Without the probabilities kept (evaluation, prefill), a block of rows per
// thread: the same bits as the full (B,NH,T,kv_len) array, on 1 and 2 threads
// (blocks), for the training shape and for 40 queries over a KV cache at 100.
// att: the full array, for the reference.
static void test_attention_blocks(const float *q, const float *k, const float *v, float *att) {
    enum { B = 2, T = 150, NH = 4, NKV = 2, HS = 8, C = NH * HS };
    static const int SHAPE[2][4] = {{B, T, 0, T}, {1, 40, 100, T}}; // B, T, pos0, kv_len
    size_t nq = (size_t)B * T * C;
    float *ref = calloc(nq, 4), *out = calloc(nq, 4), *rows = calloc(2 * attention_rows_floats(T, T), 4);
    int same = ref && out && rows, saved = omp_get_max_threads();
    for (int s = 0; same && s < 2; s++) {
        const int *z = SHAPE[s];
        size_t n = (size_t)z[0] * z[1] * C;
        attention_forward(NULL, ref, att, q, k, v, z[0], z[1], z[2], z[3], NH, NKV, HS, NULL, 0);
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(2); // more threads than blocks: the team is cut to the blocks
            memset(out, 0xff, n * 4);
            attention_forward(NULL, out, rows, q, k, v, z[0], z[1], z[2], z[3], NH, NKV, HS, NULL, th);
            same &= !memcmp(out, ref, n * 4);
        }
    }
    omp_set_num_threads(saved);
    check(same, "attention forward with a block of rows per thread = the full probabilities, bit for bit "
          "(T 150 and 40 queries at 100; 1 and 2 blocks)", "outputs differ");
    free(ref), free(out), free(rows);
}

static void test_attention(void) {
    enum { B = 2, T = 150, NH = 4, NKV = 2, HS = 8, C = NH * HS, KVC = NKV * HS };
    size_t nq = (size_t)B * T * C, nk = (size_t)B * T * KVC, np = (size_t)B * NH * T * T;
    float *q = calloc(nq, 4), *k = calloc(nk, 4), *v = calloc(nk, 4), *out = calloc(nq, 4), *att = calloc(np, 4);
    float *dout = calloc(nq, 4), *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4);
    float *scratch = calloc(attention_scratch_floats(T) * 64, 4);
    double *o64 = calloc(nq, 8), *p64 = calloc(np, 8);
    Rng r = rng_make(11, 2);
    fill_normal(q, nq, &r), fill_normal(k, nk, &r), fill_normal(v, nk, &r), fill_normal(dout, nq, &r);
    attention_forward(NULL, out, att, q, k, v, B, T, 0, T, NH, NKV, HS, NULL, 0);
    attention_naive(o64, p64, q, k, v, B, T, 0, T, NH, NKV, HS);
    double eo = max_rel_diff(out, o64, nq), ep = max_rel_diff(att, p64, np);
    check(eo < 1e-5 && ep < 1e-5, "attention forward (T 150, GQA) = float64 formula within 1e-5",
          "out %.3g, probabilities %.3g", eo, ep);
    // backward: the gradient of L = sum(dout * out) by central differences of
    // the float64 forward would be slow; instead the analytic float64 backward
    double *dq64 = calloc(nq, 8), *dk64 = calloc(nk, 8), *dv64 = calloc(nk, 8);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const double *pr = p64 + (((size_t)b * NH + h) * T + t) * T;
                const float *dy = dout + ((size_t)b * T + t) * C + h * HS;
                size_t kh = (size_t)h / (NH / NKV), qo = ((size_t)b * T + t) * C + h * HS;
                double dp[T], dot = 0.0;
                for (int j = 0; j <= t; j++) {
                    size_t ko = ((size_t)b * T + j) * KVC + kh * HS;
                    dp[j] = 0.0;
                    for (int i = 0; i < HS; i++) dp[j] += (double)dy[i] * v[ko + i], dv64[ko + i] += pr[j] * dy[i];
                    dot += pr[j] * dp[j];
                }
                for (int j = 0; j <= t; j++) {
                    size_t ko = ((size_t)b * T + j) * KVC + kh * HS;
                    double ds = pr[j] * (dp[j] - dot) / sqrt((double)HS);
                    for (int i = 0; i < HS; i++) dq64[qo + i] += ds * k[ko + i], dk64[ko + i] += ds * q[qo + i];
                }
            }
    attention_backward(NULL, dq, dk, dv, dout, att, q, k, v, B, T, NH, NKV, HS, scratch);
    double eq = max_rel_diff(dq, dq64, nq), ek = max_rel_diff(dk, dk64, nk), ev = max_rel_diff(dv, dv64, nk);
    check(eq < 1e-5 && ek < 1e-5 && ev < 1e-5, "attention backward (T 150, GQA) = float64 formula within 1e-5",
          "dq %.3g, dk %.3g, dv %.3g", eq, ek, ev);
    // generation's shape: 40 new queries at position 100 against a cache of 150
    attention_forward(NULL, out, att, q, k, v, 1, 40, 100, T, NH, NKV, HS, NULL, 0);
    attention_naive(o64, p64, q, k, v, 1, 40, 100, T, NH, NKV, HS);
    eo = max_rel_diff(out, o64, (size_t)40 * C);
    check(eo < 1e-5, "attention forward over a KV cache (40 queries at 100) within 1e-5", "out %.3g", eo);
    test_attention_blocks(q, k, v, att);
    free(q), free(k), free(v), free(out), free(att), free(dout), free(dq), free(dk), free(dv);
    free(scratch), free(o64), free(p64), free(dq64), free(dk64), free(dv64);
}

// A decoded token's attention (one query per batch row, chunks of keys): the
// float64 formula at the cache's first and last position and one short of a
// chunk's end, head sizes below and above the dot product's 16 lanes, and the
// same bits on 1 and 2 threads
static void test_attention_one_query(void) {
    enum { B = 2, KV = 150, NH = 4, NKV = 2 };
    for (int HS = 8; HS <= 40; HS += 32) {
        int C = NH * HS, KVC = NKV * HS;
        size_t nk = (size_t)B * KV * KVC, np = (size_t)B * NH * KV;
        float *q = calloc((size_t)B * C, 4), *k = calloc(nk, 4), *v = calloc(nk, 4), *att = calloc(np, 4);
        float *out[2] = {calloc((size_t)B * C, 4), calloc((size_t)B * C, 4)};
        float *scratch = calloc(attention_one_scratch_floats(B, KV, NH, HS), 4);
        double *o64 = calloc((size_t)B * C, 8), *p64 = calloc(np, 8), eo = 0.0;
        Rng r = rng_make(12, (uint64_t)HS);
        fill_normal(q, (size_t)B * C, &r), fill_normal(k, nk, &r), fill_normal(v, nk, &r);
        int same = 1, saved = omp_get_max_threads();
        double ep = 0.0;
        // the first key; one chunk short of full, full, and one key into the next;
        // two chunks full; the cache's last position
        static const int POS[] = {0, 62, 63, 64, 127, KV - 1};
        for (size_t pi = 0; pi < sizeof POS / sizeof POS[0]; pi++) {
            int pos = POS[pi];
            for (int th = 0; th < 2; th++) {
                omp_set_num_threads(th + 1);
                attention_forward(NULL, out[th], att, q, k, v, B, 1, pos, KV, NH, NKV, HS, scratch, 0);
            }
            omp_set_num_threads(saved);
            same &= !memcmp(out[0], out[1], sizeof(float) * B * C);
            attention_naive(o64, p64, q, k, v, B, 1, pos, KV, NH, NKV, HS);
            eo = fmax(eo, max_rel_diff(out[1], o64, (size_t)B * C)), ep = fmax(ep, max_rel_diff(att, p64, np));
        }
        check(eo < 1e-5 && ep < 1e-5 && same,
              "attention of one query (decoding) = float64 formula within 1e-5 (out, probabilities); "
              "1 and 2 threads agree", "HS %d: out %.3g, probabilities %.3g, threads %s", HS, eo, ep,
              same ? "agree" : "differ");
        free(q), free(k), free(v), free(att), free(out[0]), free(out[1]), free(scratch), free(o64), free(p64);
    }
}

// the norms' backward over several row chunks and channel blocks (N 100, C 40):
// weight gradients against float64 sums, and the same bits with 1 and 2 threads
static void norm_backward_pair(float *dx, float *dg, float *db, float *da, const float *x, const float *dy,
                               const float *g, const float *rstd, float *scratch, int dyt, int N, int C) {
    memset(dx, 0, sizeof(float) * N * C), memset(dg, 0, sizeof(float) * C), memset(db, 0, sizeof(float) * C);
    *da = 0.0f;
    if (dyt)
        dyt_backward(dx, da, dg, db, dy, x, 0.8f, g, (size_t)N, C, scratch);
    else
        rmsnorm_backward(dx, dg, dy, x, g, rstd, (size_t)N, C, scratch);
}

static void test_norm_backward_chunks(void) {
    enum { N = 900, C = 40 }; // 29 row chunks, the last one short; 2 lane blocks and a tail of 8
    _Static_assert(N * C >= PAR_MIN, "smaller runs on one thread: the 1-vs-2-thread check would test nothing");
    static float x[N * C], dy[N * C], dx[2][N * C], scratch[2 * 3 * N * C];
    float g[C], rstd[N], dg[2][C], db[2][C], da[2], y[N * C];
    Rng r = rng_make(5, 9);
    fill_normal(x, N * C, &r), fill_normal(dy, N * C, &r), fill_normal(g, C, &r);
    check(dyt_scratch_floats(N, C) <= 2 * 3 * N * C && rmsnorm_scratch_floats(N, C) <= 2 * 3 * N * C,
          "norm backward scratch fits the test's buffer", "too small");
    rmsnorm_forward(y, rstd, x, g, N, C, 1e-5f);
    for (int dyt = 0; dyt < 2; dyt++) {
        int saved = omp_get_max_threads();
        for (int th = 0; th < 2; th++) {
            omp_set_num_threads(th + 1);
            norm_backward_pair(dx[th], dg[th], db[th], &da[th], x, dy, g, rstd, scratch, dyt, N, C);
        }
        omp_set_num_threads(saved);
        double eg = 0.0, eb = 0.0, sa = 0.0, mg = 0.0;
        for (int c = 0; c < C; c++) {
            double sg = 0.0, sb = 0.0;
            for (int n = 0; n < N; n++) {
                double xv = x[n * C + c], d = dy[n * C + c], t = tanh(0.8 * xv);
                sg += dyt ? d * t : d * xv * rstd[n];
                sb += d;
                sa += d * g[c] * xv * (1.0 - t * t);
            }
            eg = fmax(eg, fabs(dg[0][c] - sg)), eb = fmax(eb, fabs(db[0][c] - sb)), mg = fmax(mg, fabs(sg));
        }
        double ea = dyt ? fabs(da[0] - sa) / fabs(sa) : 0.0;
        eb = dyt ? eb : 0.0;
        char name[128];
        snprintf(name, sizeof name, "%s backward, 29 row chunks: weight gradients = float64 sums within 1e-5",
                 dyt ? "dyt" : "rmsnorm");
        check(eg / mg < 1e-5 && eb / mg < 1e-5 && ea < 1e-5, name, "gain %.3g, beta %.3g, alpha %.3g", eg / mg, eb / mg, ea);
        snprintf(name, sizeof name, "%s backward: the same bits with 1 and 2 threads", dyt ? "dyt" : "rmsnorm");
        check(!memcmp(dx[0], dx[1], sizeof dx[0]) && !memcmp(dg[0], dg[1], sizeof dg[0]) &&
              !memcmp(db[0], db[1], sizeof db[0]) && da[0] == da[1], name, "differ");
    }
}

// Every kind of the norm table, through its table entry: finite differences
// of L = sum(w * y) in float64 on the float32 forward against the backward,
// for the input and every parameter the kind has; and the same bits of every
// gradient with 1 and 2 threads.
static double kind_objective(const NormKind *k, const float *x, const NormW *p, const float *w, int N, int C,
                             float *y, float *stats) {
    k->forward(y, stats, x, p, (size_t)N, C);
    double s = 0.0;
    for (int i = 0; i < N * C; i++) s += (double)w[i] * y[i];
    return s;
}

// kind's forward, then its backward into zeroed gradients (the ones it has)
static void kind_backward(int kind, const float *x, const float *w, const NormW *p, int N, int C, float *dx,
                          float *dg, float *db, float *da, float *ds, float *y, float *stats, float *scratch) {
    const NormKind *k = &NORM_KINDS[kind];
    memset(dx, 0, (size_t)N * C * sizeof(float)), memset(dg, 0, (size_t)C * sizeof(float));
    memset(db, 0, (size_t)C * sizeof(float)), *da = *ds = 0.0f;
    NormG gr = {norm_has(kind, NP_GAIN, 1) ? dg : NULL, p->beta ? db : NULL, norm_has(kind, NP_ALPHA, 1) ? da : NULL,
                norm_has(kind, NP_SHIFT, 1) ? ds : NULL};
    k->forward(y, stats, x, p, (size_t)N, C);
    k->backward(dx, &gr, w, x, stats, p, (size_t)N, C, scratch);
}

static void test_norm_kinds(void) {
    enum { N = 70, C = 20 }; // 3 row chunks
    static float x[N * C], w[N * C], y[N * C], dx[1][N * C], stats[4 * N], scratch[8 * N * C];
    float g[C], b[C], dg[1][C], db[1][C], da[1], ds[1];
    Rng rng = rng_make(7, 2);
    for (int i = 0; i < N * C; i++) x[i] = 1.5f * (float)rng_normal(&rng), w[i] = (float)rng_normal(&rng);
    for (int c = 0; c < C; c++) g[c] = 1.0f + 0.3f * (float)rng_normal(&rng), b[c] = 0.2f * (float)rng_normal(&rng);
    // The kinks of the kinds: hardtanh's slope jumps at |alpha x| = 1, softsign's
    // curvature at alpha x = 0 (u - u|u| near it: a central difference across 0
    // errs by up to alpha h in the slope). Keep every input 5% away from 1 and
    // at least 0.02 from 0 in alpha x, so that no difference below (h = 1e-2 on x
    // or alpha) crosses one. A kind with a kink elsewhere adds it here.
    const float alpha = 0.7f;
    for (int i = 0; i < N * C; i++) {
        if (fabsf(fabsf(alpha * x[i]) - 1.0f) < 0.05f) x[i] *= 1.1f;
        if (fabsf(alpha * x[i]) < 0.02f) x[i] = copysignf(0.03f / alpha, x[i]);
    }
    for (int kind = 0; kind < N_NORMS; kind++) {
        const NormKind *k = &NORM_KINDS[kind];
        char name[160];
        snprintf(name, sizeof name, "%s: scratch and stats fit the test's buffers", k->name);
        if (k->scratch_floats(N, C) > 8 * N * C || k->stats > 4) {
            check(0, name, "%zu floats", k->scratch_floats(N, C));
            continue;
        }
        NormW p = {.gain = g, .beta = b, .alpha = alpha, .shift = 0.15f, .eps = 1e-5f};
        if (!norm_has(kind, NP_BETA, 1)) p.beta = NULL;
        kind_backward(kind, x, w, &p, N, C, dx[0], dg[0], db[0], &da[0], &ds[0], y, stats, scratch);
        // central differences with h = 1e-2: truncation O(h^2) ~ 1e-4 relative, float32
        // rounding ~1e-7 |L| / h
        const float h = 1e-2f;
        struct { const char *what; float *v; const float *grad; int n, has; } t[] = {
            {"x", x, dx[0], N * C, 1}, {"gain", g, dg[0], C, norm_has(kind, NP_GAIN, 1)},
            {"beta", b, db[0], C, p.beta != NULL}, {"alpha", &p.alpha, &da[0], 1, norm_has(kind, NP_ALPHA, 1)},
            {"shift", &p.shift, &ds[0], 1, norm_has(kind, NP_SHIFT, 1)}};
        for (size_t j = 0; j < sizeof t / sizeof t[0]; j++) {
            if (!t[j].has) continue;
            double worst = 0.0;
            for (int i = 0; i < t[j].n; i++) {
                float keep = t[j].v[i];
                t[j].v[i] = keep + h;
                double lp = kind_objective(k, x, &p, w, N, C, y, stats);
                t[j].v[i] = keep - h;
                double lm = kind_objective(k, x, &p, w, N, C, y, stats);
                t[j].v[i] = keep;
                double fd = (lp - lm) / (2.0 * h), an = t[j].grad[i];
                double e = fabs(fd - an) / fmax(1.0, fabs(an));
                worst = e > worst ? e : worst;
            }
            double tol = 2e-3;
            snprintf(name, sizeof name, "%s finite differences: d%s", k->name, t[j].what);
            check(worst <= tol, name, "worst error %.3g > %.0e", worst, tol);
        }
    }
}

// Every kind's backward gives the same bits with 1 and 2 threads, at a size
// that runs in parallel (PAR_MIN), with a short last chunk and a lane tail.
static void test_norm_kinds_threads(void) {
    enum { N = 1000, C = 40 };
    _Static_assert(N * C >= PAR_MIN, "smaller runs on one thread: the check would test nothing");
    static float x[N * C], w[N * C], y[N * C], dx[2][N * C], stats[4 * N], scratch[8 * N * C];
    float g[C], b[C], dg[2][C], db[2][C], da[2], ds[2];
    Rng rng = rng_make(8, 3);
    fill_normal(x, N * C, &rng), fill_normal(w, N * C, &rng);
    for (int c = 0; c < C; c++) g[c] = 1.0f + 0.3f * (float)rng_normal(&rng), b[c] = 0.2f * (float)rng_normal(&rng);
    for (int kind = 0; kind < N_NORMS; kind++) {
        const NormKind *k = &NORM_KINDS[kind];
        char name[160];
        if (k->scratch_floats(N, C) > 8 * N * C || k->stats > 4) {
            snprintf(name, sizeof name, "%s: scratch and stats fit the thread test's buffers", k->name);
            check(0, name, "%zu floats", k->scratch_floats(N, C));
            continue;
        }
        NormW p = {.gain = g, .beta = norm_has(kind, NP_BETA, 1) ? b : NULL, .alpha = 0.7f, .shift = 0.15f, .eps = 1e-5f};
        int saved = omp_get_max_threads();
        for (int th = 0; th < 2; th++) {
            omp_set_num_threads(th + 1);
            kind_backward(kind, x, w, &p, N, C, dx[th], dg[th], db[th], &da[th], &ds[th], y, stats, scratch);
        }
        omp_set_num_threads(saved);
        snprintf(name, sizeof name, "%s backward: the same bits with 1 and 2 threads (%d rows of %d)", k->name, N, C);
        check(!memcmp(dx[0], dx[1], sizeof dx[0]) && !memcmp(dg[0], dg[1], sizeof dg[0]) &&
              !memcmp(db[0], db[1], sizeof db[0]) && !memcmp(da, da + 1, 4) && !memcmp(ds, ds + 1, 4), name, "differ");
    }
}

// tanh_approx and erf_approx (src/vmath.h) against double precision, dense
// near 0, over the range where they saturate, and their edges
static void test_tanh_erf(void) {
    double wt = 0.0, wtr = 0.0, we = 0.0, wer = 0.0, wd = 0.0;
    float big = 0.0f; // the largest |tanh| or |erf| seen: never above 1
    for (int i = -240000; i <= 240000; i++) {
        float v = i * 5e-5f;
        big = fmaxf(big, fmaxf(fabsf(tanh_approx(v)), fabsf(erf_approx(v))));
        double t = tanh((double)v), e = erf((double)v);
        wt = fmax(wt, fabs(tanh_approx(v) - t));
        if (v != 0.0f) wtr = fmax(wtr, fabs(tanh_approx(v) - t) / fabs(t));
        we = fmax(we, fabs(erf_approx(v) - e));
        if (v != 0.0f) wer = fmax(wer, fabs(erf_approx(v) - e) / fabs(e));
        float d = erf_deriv(v);
        wd = fmax(wd, fabs(d - 1.1283791670955126 * exp(-(double)v * v))); // 2 / sqrt(pi)
    }
    check(wt < 5e-7 && wtr < 1e-6, "tanh_approx: |error| < 5e-7 absolute, < 1e-6 relative on [-12, 12]",
          "abs %.3g rel %.3g", wt, wtr);
    check(we < 5e-7 && wer < 1e-6 && wd < 3e-7, "erf_approx, erf_deriv: |error| of erf < 5e-7 (relative 1e-6), of erf' < 3e-7 on [-12, 12]",
          "erf %.3g (relative %.3g), erf' %.3g", we, wer, wd);
    // and every float around the saturation points, where a fit's rounding may
    // overshoot 1 (the clamps differ with and without FMA: src/vmath.h)
    for (float v = 3.4f; v <= 3.8f; v = nextafterf(v, 4.0f)) big = fmaxf(big, fabsf(erf_approx(v)));
    for (float v = 7.6f; v <= 8.2f; v = nextafterf(v, 9.0f)) big = fmaxf(big, fabsf(tanh_approx(v)));
    check(big <= 1.0f, "tanh_approx, erf_approx: never above 1 in magnitude on [-12, 12] (every float near saturation)",
          "max %.9g", big);
    // small arguments down to the smallest normal float: x times the fit's ratio
    // keeps the relative error (x P / Q lost it below about 1e-38 / 5e-3)
    double st = 0.0, se = 0.0;
    for (float v = 1e-3f; v >= FLT_MIN; v *= 0.37f) {
        st = fmax(st, fabs(tanh_approx(-v) - tanh(-(double)v)) / tanh((double)v));
        se = fmax(se, fabs(erf_approx(v) - erf((double)v)) / erf((double)v));
    }
    check(st < 1e-6 && se < 1e-6, "tanh_approx, erf_approx: relative error < 1e-6 from 1e-3 down to FLT_MIN",
          "tanh %.3g, erf %.3g", st, se);
    check(tanh_approx(0.0f) == 0.0f && tanh_approx(100.0f) == 1.0f && tanh_approx(-INFINITY) == -1.0f &&
              isnan(tanh_approx(NAN)) && erf_approx(0.0f) == 0.0f && erf_approx(100.0f) == 1.0f &&
              erf_approx(-INFINITY) == -1.0f && isnan(erf_approx(NAN)),
          "tanh_approx, erf_approx: 0, saturation, infinity, NaN", "wrong limits");
}

// exp_approx against double exp over its range: relative error, and the edges
static void test_exp_approx(void) {
    double worst = 0.0;
    for (int i = -873000; i <= 880000; i++) {
        float x = i * 1e-4f;
        double ref = exp((double)x), got = exp_approx(x);
        worst = fmax(worst, fabs(got - ref) / ref);
    }
    check(worst < 3e-7, "exp_approx: relative error < 3e-7 on [-87.3, 88]", "worst %.3g", worst);
    check(exp_approx(0.0f) == 1.0f && exp_approx(-100.0f) == 0.0f && exp_approx(-INFINITY) == 0.0f &&
          isinf(exp_approx(100.0f)) && isnan(exp_approx(NAN)), "exp_approx: 1 at 0, 0 below, inf above, NaN kept",
          "wrong limits");
}

// expf_vec against libm's expf, bit for bit: every float with |x| in [2^-26,
// 104] (half a billion: below, exp rounds to 1 or its neighbour; above, to 0
// or inf), every 251st of the rest, and 4096 either side of the edges (glibc's
// thresholds, the first subnormal results, 0, inf, NaN). Its bits are the
// trainer's (SwiGLU); a libm whose expf differs (a glibc before 2.27, another
// libc) fails here, loudly, rather than in a loss curve. The FMA and generic
// builds of glibc's expf differ only at 2 floats: each build of ours is pinned
// at those to its own variant's values (the sanitizer builds, without
// -march=native, are generic while libm on this machine runs its FMA build),
// and the comparison with libm leaves them out. EXPF_ALL=1: all 2^32 floats.
static const uint32_t EXPF_SPLIT[2] = {0x4202422f, 0xc27c65d9}; // 0x1.04845ep+5, -0x1.f8cbb2p+5

static void expf_vec_compare(uint32_t u, long *bad, float *first) {
    float x, got, want;
    if (u == EXPF_SPLIT[0] || u == EXPF_SPLIT[1]) return;
    memcpy(&x, &u, sizeof x);
    got = expf_vec(x), want = expf(x);
    if (memcmp(&got, &want, sizeof got) && (*bad)++ == 0) *first = x;
}

static void test_expf_vec(void) {
    long bad = 0;
    float first = 0.0f;
    int all = getenv("EXPF_ALL") != NULL;
    const uint32_t lo = 0x32800000u, hi = 0x42d00000u; // |x| bits: 2^-26, 104
    for (uint32_t sign = 0; sign < 2 && !all; sign++)
        for (uint32_t mag = lo; mag <= hi; mag++) expf_vec_compare(sign << 31 | mag, &bad, &first);
    for (uint64_t u = 0; u < (1ull << 32); u += all ? 1 : 251) { // the rest: every 251st
        uint32_t mag = (uint32_t)u & 0x7fffffffu;
        if (all || mag < lo || mag > hi) expf_vec_compare((uint32_t)u, &bad, &first);
    }
    const float edges[] = {0x1.62e42ep6f, -0x1.9fe368p6f, -87.33655f, -103.2789f, 0.0f, -0.0f,
                           INFINITY, -INFINITY, NAN};
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
        uint32_t c;
        memcpy(&c, &edges[e], sizeof c);
        for (uint32_t d = 0; d <= 8192; d++) expf_vec_compare(c - 4096 + d, &bad, &first);
    }
    check(bad == 0, "expf_vec: libm's expf bit for bit (|x| in [2^-26, 104], a sample elsewhere, the edges)",
          "%ld differ, the first at %a", bad, first);
#ifdef __FMA__
    const uint32_t want[2] = {0x56fc9f1c, 0x11fa2993}; // glibc's FMA build: 0x1.f93e38p+46, 0x1.f45326p-92
#else
    const uint32_t want[2] = {0x56fc9f1b, 0x11fa2992}; // its generic build: 0x1.f93e36p+46, 0x1.f45324p-92
#endif
    uint32_t got[2];
    for (int i = 0; i < 2; i++) {
        float x, y;
        memcpy(&x, &EXPF_SPLIT[i], sizeof x);
        y = expf_vec(x);
        memcpy(&got[i], &y, sizeof y);
    }
    check(got[0] == want[0] && got[1] == want[1], "expf_vec: the 2 floats where glibc's FMA and generic builds differ",
          "bits %08x %08x, want %08x %08x", got[0], got[1], want[0], want[1]);
}

// ----------------------------------------------------------------------------
// sampler

static void test_sampler(void) {
    enum { V = 300 };
    float logits[V];
    Rng rng = rng_make(3, 3);
    Sampler greedy, k1, a, b;
    Error err;
    sampler_create(&greedy, V, 0.0f, 1.0f, 0, 1, &err);
    sampler_create(&k1, V, 1.0f, 1.0f, 1, 99, &err);
    sampler_create(&a, V, 0.9f, 0.9f, 40, 1234, &err);
    sampler_create(&b, V, 0.9f, 0.9f, 40, 1234, &err);
    int same_k1 = 1, same_seed = 1, in_top = 1;
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < V; i++) logits[i] = 3.0f * (float)rng_normal(&rng);
        int g = sampler_sample(&greedy, logits);
        same_k1 &= sampler_sample(&k1, logits) == g;
        int x = sampler_sample(&a, logits);
        same_seed &= x == sampler_sample(&b, logits);
        int above = 0; // x must be among the 40 most likely
        for (int i = 0; i < V; i++) above += logits[i] > logits[x];
        in_top &= above < 40;
    }
    check(same_k1, "sampler: top-k 1 equals greedy", "differs");
    check(same_seed, "sampler: a seed reproduces the samples", "differs");
    check(in_top, "sampler: top-k 40 samples only among the 40 most likely", "outside");
    sampler_free(&greedy), sampler_free(&k1), sampler_free(&a), sampler_free(&b);
}

// ----------------------------------------------------------------------------
// generation past the context: the sliding window

// Logits for the last of tokens[0..n) from a fresh forward over them alone
// (own activations, positions from 0), into out (V).
static int fresh_logits(const Model *m, const int *tokens, int n, float *out) {
    Acts a;
    Error err;
    if (acts_create(&a, m, 1, n, n, 0, &err)) return -1;
    int rc = model_forward(m, &a, tokens, n, 0, 0, &err);
    if (!rc) memcpy(out, a.logits + (size_t)(n - 1) * m->cfg.vocab_size, (size_t)m->cfg.vocab_size * sizeof(float));
    acts_free(&a);
    return rc;
}

// A window over a 16-token context fed 3 prompt tokens and 41 more slides
// (to 8 tokens) at the 14th, 23rd, 32nd and 41st push; for DyT it also keeps
// its first token (a sink, as the BOS of llama2.c's tokenizer). After each
// slide its logits must equal a fresh forward over the tokens it kept to the
// bit: the slide is that forward (same code, same shapes). The step after a
// slide decodes one token over the recomputed cache; it must match a fresh
// batched forward over those 9 tokens to 1e-5 of the largest logit (REL_TOL:
// one token against a batch of 9 sums in another order).
static void test_window(void) {
    for (int norm = NORM_RMS; norm <= NORM_DYT; norm++) {
        ModelConfig c = {.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                         .vocab_size = 40, .seq_len = 16, .norm = norm, .opt_beta = norm == NORM_DYT,
                         .norm_eps = 1e-5f, .rope_theta = 10000.0f, .alpha_attn0 = 1.0f, .alpha_ffn0 = 1.0f, .alpha_final0 = 1.0f};
        Model m;
        Error err;
        Window w;
        enum { N = 44, PROMPT = 3, KEEP = 8 };
        int seq[N], kept[16], slides = 0, exact = 1, after_ok = 1, held_ok = 1, sink = norm == NORM_DYT;
        const char *what = norm == NORM_RMS ? "rmsnorm" : "dyt, sink 1";
        double worst = 0.0;
        float want[40];
        Rng rng = rng_make(11, 2);
        for (int i = 0; i < N; i++) seq[i] = (int)(rng_uniform(&rng) * 40);
        if (model_create(&m, &c, &err)) {
            check(0, "window: model", "%s", err.msg);
            return;
        }
        model_init(&m, 5);
        int rc = window_create(&w, &m, NULL, seq, PROMPT, N - PROMPT, 0, sink, NULL, &err);
        int64_t last_slides = 0;
        for (int i = PROMPT; !rc && i < N; i++) {
            rc = window_push(&w, seq[i], &err);
            if (rc) break;
            int n = i + 1; // tokens of seq pushed so far; the window should hold the sink and the last ones
            memcpy(kept, seq, (size_t)sink * sizeof(int));
            memcpy(kept + sink, seq + n - (w.n - sink), (size_t)(w.n - sink) * sizeof(int));
            held_ok &= w.n <= 16 && !memcmp(w.tokens, kept, (size_t)w.n * sizeof(int));
            if (w.slides != last_slides) { // this push slid
                last_slides = w.slides, slides++;
                exact &= w.n == KEEP && !fresh_logits(&m, kept, KEEP, want) && !memcmp(w.logits, want, sizeof want);
            } else if (w.slides && w.n == KEEP + 1) { // the first step after a slide
                after_ok &= !fresh_logits(&m, kept, w.n, want);
                double e = rel_err(w.logits, want, 40);
                worst = e > worst ? e : worst;
            }
        }
        char name[160];
        snprintf(name, sizeof name, "window (%s): 41 tokens past a 16-token context slide 4 times to %d tokens",
                 what, KEEP);
        check(!rc && slides == 4 && w.keep == KEEP && held_ok, name, "rc %d (%s), %d slides, keep %d, window %s",
              rc, rc ? err.msg : "", slides, w.keep, held_ok ? "ok" : "wrong tokens");
        snprintf(name, sizeof name, "window (%s): logits after a slide equal a fresh forward over the kept tokens "
                 "(bit for bit)", what);
        check(exact, name, "differ");
        snprintf(name, sizeof name, "window (%s): the step after a slide matches a fresh forward (max rel err %.2g)",
                 what, worst);
        check(after_ok && worst <= REL_TOL, name, "%.3g > %.0e", worst, REL_TOL);
        if (!rc) window_free(&w);
        model_free(&m);
    }
}

// ----------------------------------------------------------------------------
// command-line options: --name value and --name=value

typedef struct {
    int64_t n;
    double x;
    const char *s;
    int flag;
} OptTest;

#define OPT_BASE OptTest
static const Option OPT_TEST[] = {
    {OPTION_INT("--n", n, 0, 100, 7), .help = "an int"},
    {OPTION_FLOAT("--x", x, 0, 1, 0.5), .help = "a float"},
    {OPTION_STR("--s", s, "default"), .help = "a string"},
    {OPTION_STR("-z", s, "default"), .help = "a short string option"},
    {OPTION_FLAG("--flag", flag), .help = "a flag"},
    {OPTION_INT("--again", n, 0, 100, 7), .repeat = 1, .help = "an int that may be repeated"},
};
#define N_OPT_TEST ((int)(sizeof OPT_TEST / sizeof OPT_TEST[0]))

// Parses the arguments (after a program name); returns options_parse's code,
// the message in err and the positional arguments in pos.
static int parse_test(OptTest *o, Error *err, const char **pos, int *n_pos, int argc, ...) {
    char *argv[16] = {"prog"};
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) argv[i + 1] = va_arg(ap, char *);
    va_end(ap);
    unsigned char given[N_OPT_TEST] = {0};
    options_defaults(OPT_TEST, N_OPT_TEST, o);
    err->msg[0] = 0;
    int rc = options_parse(OPT_TEST, N_OPT_TEST, o, given, argc + 1, argv, pos, 2, n_pos, err);
    return rc ? rc : options_check_repeats(OPT_TEST, N_OPT_TEST, given, err);
}

static void test_options(void) {
    OptTest a, b;
    Error e;
    const char *pos[2];
    int np;
    int ra = parse_test(&a, &e, pos, &np, 7, "--n", "42", "--x", "0.25", "--s", "a=b", "--flag");
    int rb = parse_test(&b, &e, pos, &np, 5, "--n=42", "--x=0.25", "--s=a=b", "--flag", "-");
    check(!ra && !rb && a.n == 42 && b.n == 42 && a.x == 0.25 && b.x == 0.25 && !strcmp(a.s, "a=b") &&
          !strcmp(b.s, "a=b") && a.flag && b.flag && np == 1 && !strcmp(pos[0], "-"),
          "options: --name=value equals --name value (value split at the first '=', '-' is positional)",
          "rc %d %d, n %lld %lld, s '%s' '%s', %d positional", ra, rb, (long long)a.n, (long long)b.n, a.s,
          b.s, np);
    int r = parse_test(&a, &e, pos, &np, 1, "--s=");
    check(!r && !strcmp(a.s, ""), "options: --s= gives an empty string", "rc %d, '%s'", r, a.s);
    r = parse_test(&a, &e, pos, &np, 2, "--s", "--n=3");
    check(!r && !strcmp(a.s, "--n=3") && a.n == 7, "options: the value after --s is taken whole", "rc %d", r);
    struct { const char *arg, *msg; } bad[] = {
        {"--flag=1", "--flag takes no value (got '--flag=1')"},
        {"--flag=", "--flag takes no value (got '--flag=')"},
        {"--n=", "--n '': expected an integer in [0, 100]"},
        {"--n=101", "--n '101': expected an integer in [0, 100]"},
        {"--x=nan", "--x 'nan': expected a finite number in [0, 1]"},
        {"--nope=3", "unknown option '--nope'"},
        {"--=3", "unknown option '--'"},
        {"-z=tok", "unknown option '-z=tok'"}, // short options take their value apart, like getopt's
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = parse_test(&a, &e, pos, &np, 1, bad[i].arg);
        char name[128];
        snprintf(name, sizeof name, "options: %s is refused with one line", bad[i].arg);
        check(r == -1 && !strcmp(e.msg, bad[i].msg), name, "rc %d, '%s'", r, e.msg);
    }
    r = parse_test(&a, &e, pos, &np, 3, "--n", "1", "--n=2");
    check(r == -1 && !strcmp(e.msg, "--n given 2 times: give it once"), "options: a flag given twice is refused",
          "rc %d, '%s'", r, e.msg);
    r = parse_test(&a, &e, pos, &np, 2, "--n", "3\n4");
    check(r == -1 && !strcmp(e.msg, "--n '3\\n4': expected an integer in [0, 100]"),
          "options: a value with a newline is shown escaped, on one line", "'%s'", e.msg);
    r = parse_test(&a, &e, pos, &np, 3, "--again", "1", "--again=2");
    check(!r && a.n == 2, "options: a row with .repeat takes the last value", "rc %d, n %lld", r, (long long)a.n);
}

// ----------------------------------------------------------------------------
// the trainer's settings table: every row's record column says what the code does

// s with row i set to another legal value than it has (the number + 2, or
// its range's low end; a flag on; an alpha0 0.25; a choice, another). 0 for
// another string row.
static int settings_nudge(Settings *s, int i) {
    const Option *o = setting_row(i);
    void *p = option_field(o, s);
    switch (o->type) {
    case OPT_INT: *(int64_t *)p = *(int64_t *)p + 2 <= o->hi ? *(int64_t *)p + 2 : (int64_t)o->lo; return 1;
    case OPT_FLOAT: *(double *)p = isnan(*(double *)p) ? 0.25 : *(double *)p + 0.25; return 1;
    case OPT_FLAG: *(int *)p = !*(int *)p; return 1;
    case OPT_STR: // a choice: the next one
        if (!o->choice) return 0;
        int n = 0;
        while (o->choice(n)) n++;
        *(const char **)p = o->choice((option_choice_index(o, s) + 1) % n);
        return 1;
    default: return 0;
    }
}

static void test_settings_table(void) {
    Settings base = settings_defaults();
    base.norm = "dyt"; // a kind with alpha and an optional beta: every header row acts
    ModelConfig c0 = settings_config(&base);
    int64_t rb0[RUN_BLOCK_SLOTS], rb[RUN_BLOCK_SLOTS];
    run_block_pack(&base, (DataHashes){0, 0}, rb0);
    int bad = 0, slots[RUN_BLOCK_SLOTS] = {0};
    for (int i = 0; i < settings_count(); i++) {
        const Option *o = setting_row(i);
        Settings s = base;
        if (o->rec == REC_RUN) {
            int ok = o->slot > 0 && o->slot < RUN_BLOCK_SLOTS && !slots[o->slot]++ && o->since >= 2 &&
                     o->since <= RUN_BLOCK_VERSION && o->slot != RB_DATA_HASH && o->slot != RB_THREADS &&
                     o->slot != RB_RANKS && o->slot != RB_VAL_HASH;
            settings_nudge(&s, i);
            run_block_pack(&s, (DataHashes){0, 0}, rb);
            if (!ok || rb[o->slot] == rb0[o->slot]) bad++, printf("  run block row %s: slot %d\n", o->name, o->slot);
        } else if (o->rec == REC_HEADER && settings_nudge(&s, i)) {
            ModelConfig c = settings_config(&s), back;
            Settings t = base;
            settings_from_config(&c, &t);
            back = settings_config(&t);
            if (!memcmp(&c, &c0, sizeof c) || memcmp(&c, &back, sizeof c))
                bad++, printf("  header row %s: not written, or not read back\n", o->name);
        }
    }
    check(!bad, "settings: each run-block row has a slot of its own that it fills, each header row a field that "
          "reads back", "%d rows", bad);
    Settings s = base, t = settings_defaults();
    DataHashes h;
    Error e;
    settings_nudge(&s, setting_index("--lr")), settings_nudge(&s, setting_index("--norm-decay"));
    run_block_pack(&s, (DataHashes){1, 2}, rb);
    int rc = run_block_unpack(rb, &c0, NULL, &t, &h, "x", &e);
    check(!rc && t.lr == s.lr && t.norm_decay == s.norm_decay && t.batch == s.batch && h.data == 1 && h.val == 2,
          "settings: the run block reads back what was packed", "rc %d", rc);
}

// ----------------------------------------------------------------------------
// learning-rate schedule

static void test_schedule(void) {
    float lr = 1e-3f;
    check(fabsf(lr_at(0, 100, 10, lr) - 1e-4f) < 1e-9f, "lr: warmup starts at lr/warmup", "%g", lr_at(0, 100, 10, lr));
    check(lr_at(9, 100, 10, lr) == lr, "lr: warmup reaches lr", "%g", lr_at(9, 100, 10, lr));
    check(fabsf(lr_at(10, 100, 10, lr) - lr) < 1e-9f, "lr: cosine starts at lr", "%g", lr_at(10, 100, 10, lr));
    check(fabsf(lr_at(99, 100, 10, lr) - 1e-4f) < 1e-9f, "lr: cosine ends at lr/10", "%g", lr_at(99, 100, 10, lr));
}

// ----------------------------------------------------------------------------
// SwiGLU against float64: silu(h1) h3 and its two gradients in closed form, on
// [-100, 100] (past expf's overflow at 88.72 and its subnormal results) and NaN

static double sigmoid64(double x) { return 1.0 / (1.0 + exp(-x)); }

static void test_swiglu(void) {
    enum { N = 402 };
    float h1[N], h3[N], y[N], dy[N], d1[N], d3[N];
    for (int i = 0; i < N - 1; i++)
        h1[i] = -100.0f + 0.5f * (float)i, h3[i] = 1.5f - 0.01f * (float)i, dy[i] = 0.5f + 0.002f * (float)i;
    h1[N - 1] = NAN, h3[N - 1] = 1.0f, dy[N - 1] = 1.0f;
    swiglu_forward(y, h1, h3, N);
    swiglu_backward(d1, d3, dy, h1, h3, N);
    double worst[3] = {0.0, 0.0, 0.0}; // out, dh1, dh3
    for (int i = 0; i < N - 1; i++) {
        double x = h1[i], s = sigmoid64(x), g = dy[i];
        double want[3] = {x * s * h3[i], g * h3[i] * s * (1.0 + x * (1.0 - s)), g * x * s}, got[3] = {y[i], d1[i], d3[i]};
        for (int k = 0; k < 3; k++) worst[k] = fmax(worst[k], fabs(got[k] - want[k]) / (fabs(want[k]) + 1e-3));
    }
    check(worst[0] < 3e-7 && worst[2] < 3e-7, "swiglu: forward and dh3 against float64 on [-100, 100]",
          "rel err %.3g, %.3g", worst[0], worst[2]);
    // dh1's 1 - s loses digits as s nears 1 (7e-7 at x = 13.5, with libm's expf alike)
    check(worst[1] < 1.5e-6, "swiglu: dh1 against float64 on [-100, 100]", "rel err %.3g", worst[1]);
    check(isnan(y[N - 1]) && isnan(d1[N - 1]) && isnan(d3[N - 1]), "swiglu: NaN in, NaN out (forward, backward)",
          "%g %g %g", y[N - 1], d1[N - 1], d3[N - 1]);
}

// ----------------------------------------------------------------------------
// GELU against float64: the value, and the derivative against central
// differences of the float64 function

static double gelu64(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

static void test_gelu(void) {
    enum { N = 241 };
    float x[N], y[N], dy[N], dx[N];
    for (int i = 0; i < N; i++) x[i] = -6.0f + 0.05f * (float)i, dy[i] = 1.0f;
    gelu_forward(y, x, N);
    gelu_backward(dx, dy, x, N);
    double worst_y = 0.0, worst_d = 0.0;
    for (int i = 0; i < N; i++) {
        double h = 1e-5, want_d = (gelu64(x[i] + h) - gelu64(x[i] - h)) / (2 * h);
        worst_y = fmax(worst_y, fabs(y[i] - gelu64(x[i])) / (fabs(gelu64(x[i])) + 1e-3));
        worst_d = fmax(worst_d, fabs(dx[i] - want_d) / (fabs(want_d) + 1e-3));
    }
    check(worst_y < 1e-6, "gelu: forward against float64 erf on [-6, 6]", "rel err %.3g", worst_y);
    check(worst_d < 1e-5, "gelu: backward against central differences on [-6, 6]", "rel err %.3g", worst_d);
}

// ----------------------------------------------------------------------------
// AdamW's parameter groups (--norm-decay, --scalar-lr-mult): one step from
// zero moments against the closed form in float64, p * (1 - lr_g wd_g) -
// lr_g / (1 - b1) * m / (sqrt(v / (1 - b2)) + eps), with the group's lr_g =
// lr * mult for the scalar tensors and wd_g = wd for the decaying ones (all
// with all_decay), as torch.optim.AdamW does for a parameter group

static void test_adamw_groups(void) {
    ModelConfig c = {.dim = 8, .hidden_dim = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 2, .vocab_size = 8,
                     .seq_len = 4, .norm = NORM_DYT, .opt_beta = 1, .norm_eps = 1e-5f, .rope_theta = 1e4f,
                     .alpha_attn0 = 0.5f, .alpha_ffn0 = 0.5f, .alpha_final0 = 0.5f};
    const struct { int all_decay; float mult; } groups[] = {{0, 1.0f}, {1, 1.0f}, {0, 10.0f}, {1, 100.0f}};
    for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
        Model m;
        Error err;
        if (model_create(&m, &c, &err) || model_alloc_grads(&m, &err)) {
            check(0, "adamw groups: a model", "%s", err.msg);
            return;
        }
        model_init(&m, 3);
        Rng rng = rng_make(11, 2);
        fill_normal(m.grads, m.n_params, &rng);
        float *p0 = alloc_floats(m.n_params), *m1 = alloc_floats(m.n_params), *m2 = alloc_floats(m.n_params);
        memcpy(p0, m.params, m.n_params * sizeof(float));
        AdamW opt = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f,
                     .all_decay = groups[k].all_decay, .scalar_lr_mult = groups[k].mult};
        adamw_step(&m, m1, m2, 1, &opt);
        double worst = 0.0, moved_scalar = 0.0;
        size_t off = 0;
        for (int t = 0; t < N_TENSORS; off += m.sizes[t], t++) {
            double lr = (double)opt.lr * (tensor_is_scalar(t) ? opt.scalar_lr_mult : 1.0f);
            double wd = opt.all_decay || tensor_decays(t) ? opt.weight_decay : 0.0;
            for (size_t i = off; i < off + m.sizes[t]; i++) {
                double g = m.grads[i], mm = 0.1 * g, vv = 0.05 * g * g;
                double want = p0[i] * (1.0 - lr * wd) - lr / 0.1 * mm / (sqrt(vv / 0.05) + 1e-8);
                double e = fabs(m.params[i] - want) / (fabs(want) + 1e-3);
                worst = e > worst ? e : worst;
                if (tensor_is_scalar(t)) moved_scalar = fmax(moved_scalar, fabs(m.params[i] - p0[i] * (1.0 - lr * wd)));
            }
        }
        char name[160];
        snprintf(name, sizeof name, "adamw groups: decay on %s, scalars at %g x lr: one step as the closed form",
                 groups[k].all_decay ? "every tensor" : "matrices", groups[k].mult);
        // besides its decay a scalar moves by lr_g (Adam's first step is lr * sign(g))
        check(worst < 1e-5 && fabs(moved_scalar - 1e-2 * groups[k].mult) < 1e-2 * groups[k].mult * 0.2, name,
              "rel err %.3g, largest scalar move %.4g", worst, moved_scalar);
        free(p0), free(m1), free(m2);
        model_free(&m);
    }
}

// select_kth against a sort: random values, many ties, every k, sizes 1..40

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_select_kth(void) {
    Rng rng = rng_make(11, 0);
    int bad = 0, cases = 0;
    double x[40], sorted[40];
    for (int n = 1; n <= 40; n++)
        for (int rep = 0; rep < 20; rep++)
            for (int k = 0; k < n; k++) {
                for (int i = 0; i < n; i++) // rep odd: only 3 distinct values
                    sorted[i] = x[i] = rep & 1 ? (double)(rng_u64(&rng) % 3) : rng_normal(&rng);
                qsort(sorted, (size_t)n, sizeof(double), cmp_dbl);
                bad += select_kth(x, (size_t)n, (size_t)k) != sorted[k];
                cases++;
            }
    check(bad == 0, "select_kth equals the k-th of a sort (16400 cases, with ties)", "%d of %d wrong", bad, cases);
}

// ----------------------------------------------------------------------------
// batches: a row's window must not depend on how the global batch is split
// into micro-batches or processes (data-parallel runs rely on it)

static void test_batch_rows(void) {
    enum { N = 10000, T = 16, GB = 8 };
    uint16_t *tok = malloc(N * sizeof *tok);
    for (int i = 0; i < N; i++) tok[i] = (uint16_t)i; // a token is its position: windows are readable
    Dataset ds = {.train = {.u16 = tok, .n = 9000}, .val = {.u16 = tok + 9000, .n = N - 9000}};
    int whole[GB * T], part[GB * T], tg[GB * T], tg_part[GB * T], other[GB * T];
    dataset_train_rows(&ds, 0x1234, 7, 0, GB, T, whole, tg);
    for (int r = 0; r < 4; r++) // 4 processes (or micro-batches) of 2 rows
        dataset_train_rows(&ds, 0x1234, 7, 2 * r, 2, T, part + 2 * r * T, tg_part + 2 * r * T);
    int inside = 1, shifted = 1, distinct = 0;
    for (int b = 0; b < GB; b++) {
        inside &= whole[b * T] >= 0 && whole[b * T] + T < 9000; // targets too stay in the train split
        for (int t = 0; t < T; t++) shifted &= tg[b * T + t] == whole[b * T + t] + 1 && whole[b * T + t] == whole[b * T] + t;
        distinct += b > 0 && whole[b * T] != whole[(b - 1) * T];
    }
    check(!memcmp(whole, part, sizeof whole) && !memcmp(tg, tg_part, sizeof tg),
          "train rows: 8 rows at once equal 4 x 2 rows (row0 0, 2, 4, 6)", "rows differ");
    check(inside && shifted && distinct == GB - 1, "train rows: windows in the train split, targets shifted by one",
          "inside %d, shifted %d, distinct %d", inside, shifted, distinct);
    dataset_train_rows(&ds, 0x1234, 8, 0, GB, T, other, tg_part);
    check(memcmp(whole, other, sizeof whole) != 0, "train rows: the next step draws other windows", "same");
    dataset_train_rows(&ds, 0x1235, 7, 0, GB, T, other, tg_part);
    check(memcmp(whole, other, sizeof whole) != 0, "train rows: another key draws other windows", "same");

    // validation: 3 batches of 8 global rows, each process its 4
    size_t span = N - 9000 - T - 1;
    int ok = 1, first = -1, last = -1;
    for (int i = 0; i < 3; i++) {
        dataset_val_rows(&ds, i, 3, GB, 0, GB, T, whole, tg);
        dataset_val_rows(&ds, i, 3, GB, 0, 4, T, part, tg_part);
        dataset_val_rows(&ds, i, 3, GB, 4, 4, T, part + 4 * T, tg_part + 4 * T);
        ok &= !memcmp(whole, part, sizeof whole) && !memcmp(tg, tg_part, sizeof tg);
        if (i == 0) first = whole[0];
        if (i == 2) last = whole[(GB - 1) * T];
    }
    check(ok && first == 9000 && last == 9000 + (int)span, "val rows: a batch of 8 equals 2 x 4 rows; windows span the split",
          "equal %d, first %d, last %d (want 9000, %d)", ok, first, last, 9000 + (int)span);
    free(tok);
}

// ----------------------------------------------------------------------------
// llama2.c checkpoints against scripts/ref_llama2c.py (float64 PyTorch), the
// exporter's round trip, malformed files; llama2.c tokenizers

static char TMP_DIR[] = "/tmp/test_core_XXXXXX";

static void tmp_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", TMP_DIR, name); }

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

typedef struct {
    int n_seq, T, V;
    int *tokens;   // (n_seq, T)
    float *logits; // (n_seq, T, V)
} L2cRef;

static int read_l2c_ref(const char *path, L2cRef *r) {
    unsigned char *buf;
    size_t n;
    Error err;
    int32_t h[5];
    if (read_file(path, &buf, &n, &err)) return -1;
    if (n < 20) return free(buf), -1;
    memcpy(h, buf, 20);
    r->n_seq = h[2], r->T = h[3], r->V = h[4];
    size_t nt = (size_t)r->n_seq * r->T, nl = nt * r->V;
    if ((uint32_t)h[0] != 0x5243324Cu || h[1] != 1 || h[2] < 1 || h[3] < 1 || h[4] < 1 || n != 20 + 4 * (nt + nl))
        return free(buf), -1;
    r->tokens = malloc(nt * 4);
    r->logits = malloc(nl * 4);
    memcpy(r->tokens, buf + 20, nt * 4);
    memcpy(r->logits, buf + 20 + nt * 4, nl * 4);
    free(buf);
    return 0;
}

static double max_abs(const float *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

// Our logits for the reference sequences two ways: every position in one
// forward, and one token at a time over the KV cache (the generator's path).
// Each is one tensor: max|c - ref| <= REL_TOL * max|ref|.
static void l2c_compare(const Model *m, const L2cRef *r, const char *name) {
    size_t row = (size_t)r->V, n = (size_t)r->n_seq * r->T * row;
    float *batched = calloc(n, 4), *stepwise = calloc(n, 4); // zeroed: -O1 cannot see n_seq > 0
    Acts a;
    Error err;
    if (acts_create(&a, m, 1, r->T, r->T, 0, &err)) {
        check(0, name, "%s", err.msg);
        return;
    }
    int fwd_fail = 0; // a refused forward leaves stale logits: fail the checks below
    for (int s = 0; s < r->n_seq; s++) {
        const int *tok = r->tokens + (size_t)s * r->T;
        fwd_fail |= model_forward(m, &a, tok, r->T, 0, 1, &err);
        memcpy(batched + (size_t)s * r->T * row, a.logits, r->T * row * 4);
        for (int t = 0; t < r->T; t++) {
            fwd_fail |= model_forward(m, &a, tok + t, 1, t, 0, &err);
            memcpy(stepwise + ((size_t)s * r->T + t) * row, a.logits, row * 4);
        }
    }
    double eb = rel_err(batched, r->logits, n), es = rel_err(stepwise, r->logits, n), mr = max_abs(r->logits, n);
    char label[200];
    snprintf(label, sizeof label, "llama2c %s: logits of %d sequences of %d tokens", name, r->n_seq, r->T);
    check(!fwd_fail && eb <= REL_TOL, label, "max|c - ref| / max|ref| = %.3g > %.0e (forward refused: %d)", eb, REL_TOL, fwd_fail);
    snprintf(label, sizeof label, "llama2c %s: logits one token at a time over the KV cache", name);
    check(!fwd_fail && es <= REL_TOL, label, "max|c - ref| / max|ref| = %.3g > %.0e", es, REL_TOL);
    printf("# llama2c %s: max|c - ref| = %.3g (batched), %.3g (KV cache); max|ref| = %.3g; relative %.3g, %.3g\n",
           name, eb * mr, es * mr, mr, eb, es);
    acts_free(&a);
    free(batched), free(stepwise);
}

static void test_llama2c_case(const char *model_path, const char *ref_path, const char *name, ModelFormat want_fmt,
                              int want_tied) {
    char label[200];
    Model m;
    ModelFormat fmt;
    Error err;
    L2cRef r;
    snprintf(label, sizeof label, "llama2c %s: loads as %s, %s classifier", name, model_format_name(want_fmt),
             want_tied ? "shared" : "separate");
    if (model_load_any(&m, model_path, &fmt, &err)) {
        check(0, label, "%s", err.msg);
        return;
    }
    check(fmt == want_fmt && m.cfg.tie_embeddings == want_tied && m.cfg.norm == NORM_RMS, label,
          "format %s, tie %d", model_format_name(fmt), m.cfg.tie_embeddings);
    if (read_l2c_ref(ref_path, &r) || r.V != m.cfg.vocab_size || r.T > m.cfg.seq_len) {
        check(0, label, "%s: unreadable or does not fit the model", ref_path);
    } else {
        l2c_compare(&m, &r, name);
        free(r.tokens), free(r.logits);
    }
    model_free(&m);
}

static void test_llama2c_logits(const char *dir, const char *data_dir) {
    char model[1024], ref[1024];
    struct { const char *file, *ref, *name; ModelFormat fmt; int tied; } cases[] = {
        {"l2c_untied.legacy.bin", "l2c_untied", "untied legacy", FMT_LLAMA2C_LEGACY, 0},
        {"l2c_untied.ak42.bin", "l2c_untied", "untied ak42", FMT_LLAMA2C_AK42, 0},
        {"l2c_tied.ak42.bin", "l2c_tied", "tied ak42", FMT_LLAMA2C_AK42, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(model, sizeof model, "%s/%s", dir, cases[i].file);
        snprintf(ref, sizeof ref, "%s/%s.ref.bin", dir, cases[i].ref);
        test_llama2c_case(model, ref, cases[i].name, cases[i].fmt, cases[i].tied);
    }
    // the same weights in both formats
    Model a, b;
    ModelFormat f;
    Error err;
    snprintf(model, sizeof model, "%s/l2c_untied.legacy.bin", dir);
    snprintf(ref, sizeof ref, "%s/l2c_untied.ak42.bin", dir);
    if (!model_load_any(&a, model, &f, &err)) {
        if (!model_load_any(&b, ref, &f, &err)) {
            check(a.n_params == b.n_params && !memcmp(a.params, b.params, a.n_params * 4),
                  "llama2c: legacy and ak42 files of one model load to identical parameters", "differ");
            model_free(&b);
        }
        model_free(&a);
    }
    snprintf(model, sizeof model, "%s/stories260K.bin", data_dir);
    snprintf(ref, sizeof ref, "%s/l2c_stories260K.ref.bin", dir);
    if (!file_exists(model)) {
        skip("llama2c stories260K: logits", model);
        return;
    }
    test_llama2c_case(model, ref, "stories260K", FMT_LLAMA2C_LEGACY, 1);
}

// Greedy continuation of token 1 for n steps (the generator's loop, argmax).
static void greedy_tokens(const Model *m, int n, int *tok) {
    Acts a;
    Error err;
    acts_create(&a, m, 1, n + 1, n + 1, 0, &err);
    tok[0] = 1 % m->cfg.vocab_size;
    for (int i = 0; i < n; i++) // -1 marks a refused forward: no model yields it
        tok[i + 1] = model_forward(m, &a, tok + i, 1, i, 0, &err) ? -1 : sampler_argmax(a.logits, m->cfg.vocab_size);
    acts_free(&a);
}

static int same_file(const char *p, const char *q) {
    unsigned char *a, *b;
    size_t na, nb;
    Error err;
    if (read_file(p, &a, &na, &err)) return 0;
    if (read_file(q, &b, &nb, &err)) return free(a), 0;
    int same = na == nb && !memcmp(a, b, na);
    free(a), free(b);
    return same;
}

// Export, read back: same config and parameters, bit-identical logits and
// greedy tokens; exporting the file read back gives the same bytes.
static void test_llama2c_roundtrip(const char *src, const char *name) {
    char label[200], out1[1024], out2[1024];
    Model a, b;
    ModelFormat fb;
    Error err;
    tmp_path(out1, sizeof out1, "rt1.bin");
    tmp_path(out2, sizeof out2, "rt2.bin");
    snprintf(label, sizeof label, "llama2c round trip %s: export, read back", name);
    if (model_load_any(&a, src, &fb, &err) || llama2c_export(&a, out1, &err)) {
        check(0, label, "%s", err.msg);
        return;
    }
    if (model_load_any(&b, out1, &fb, &err)) {
        check(0, label, "%s", err.msg);
        model_free(&a);
        return;
    }
    const ModelConfig *x = &a.cfg, *y = &b.cfg;
    int same_cfg = fb == FMT_LLAMA2C_LEGACY && x->dim == y->dim && x->hidden_dim == y->hidden_dim &&
                   x->n_layers == y->n_layers && x->n_heads == y->n_heads && x->n_kv_heads == y->n_kv_heads &&
                   x->vocab_size == y->vocab_size && x->seq_len == y->seq_len &&
                   x->tie_embeddings == y->tie_embeddings && y->norm == NORM_RMS;
    check(same_cfg && a.n_params == b.n_params && !memcmp(a.params, b.params, a.n_params * 4), label,
          "config or parameters differ");
    int T = a.cfg.seq_len < 17 ? a.cfg.seq_len : 17, ta[17], tb[17];
    greedy_tokens(&a, T - 1, ta);
    greedy_tokens(&b, T - 1, tb);
    Acts aa, ab;
    acts_create(&aa, &a, 1, T, T, 0, &err);
    acts_create(&ab, &b, 1, T, T, 0, &err);
    int fwd_fail = model_forward(&a, &aa, ta, T, 0, 1, &err) | model_forward(&b, &ab, ta, T, 0, 1, &err);
    snprintf(label, sizeof label, "llama2c round trip %s: identical logits and %d greedy tokens", name, T - 1);
    check(!fwd_fail && !memcmp(aa.logits, ab.logits, (size_t)T * a.cfg.vocab_size * 4) && !memcmp(ta, tb, sizeof(int) * T),
          label, "differ");
    snprintf(label, sizeof label, "llama2c round trip %s: exporting the export gives the same bytes", name);
    check(!llama2c_export(&b, out2, &err) && same_file(out1, out2), label, "differ");
    acts_free(&aa), acts_free(&ab);
    model_free(&a), model_free(&b);
    remove(out1), remove(out2);
}

static void test_llama2c_export_refusals(const char *dir) {
    char path[1024], out[1024];
    Model m;
    Error err = {{0}};
    tmp_path(out, sizeof out, "refused.bin");
    snprintf(path, sizeof path, "%s/dyt_beta_untied.model.bin", dir);
    if (!model_load(&m, path, &err)) {
        int rc = llama2c_export(&m, out, &err);
        check(rc && strstr(err.msg, "cannot export to llama2c: the model has a dyt norm") && !file_exists(out), "llama2c export refuses a DyT model",
              "rc %d: %s", rc, err.msg);
        model_free(&m);
    }
    snprintf(path, sizeof path, "%s/rms_gelu_untied.model.bin", dir);
    if (!model_load(&m, path, &err)) {
        int rc = llama2c_export(&m, out, &err);
        check(rc && strstr(err.msg, "cannot export to llama2c: the model has a gelu MLP (the targets have SwiGLU only)") &&
              !file_exists(out), "llama2c export refuses a GELU model (EXPORT_FEATURES' row)", "rc %d: %s", rc, err.msg);
        model_free(&m);
    }
    snprintf(path, sizeof path, "%s/rms_tied.model.bin", dir);
    if (!model_load(&m, path, &err)) {
        m.cfg.norm_eps = 1e-6f;
        int rc = llama2c_export(&m, out, &err);
        check(rc && strstr(err.msg, "norm_eps") && !file_exists(out),
              "llama2c export refuses an epsilon other than 1e-5", "rc %d: %s", rc, err.msg);
        m.cfg.norm_eps = 1e-5f, m.cfg.rope_theta = 5e5f;
        rc = llama2c_export(&m, out, &err);
        check(rc && strstr(err.msg, "rope_theta") && !file_exists(out),
              "llama2c export refuses a RoPE theta other than 10000", "rc %d: %s", rc, err.msg);
        model_free(&m);
    }
}

// A copy of src (n bytes, cut or extended to `len`) with an int32 or a byte
// patched at `off` (off < 0: none), written to the temp folder.
static void variant(const unsigned char *src, size_t n, size_t len, long off, int32_t v, int as_byte,
                    const char *name, char *path, size_t cap) {
    unsigned char *b = calloc(len + 4, 1);
    memcpy(b, src, n < len ? n : len);
    if (off >= 0 && as_byte) b[off] = (unsigned char)v;
    else if (off >= 0) memcpy(b + off, &v, 4);
    tmp_path(path, cap, name);
    write_bytes(path, b, len);
    free(b);
}

static void expect_model_error(const char *path, const char *field, const char *what) {
    Model m;
    ModelFormat f;
    Error err = {{0}};
    int rc = model_load_any(&m, path, &f, &err);
    if (!rc) model_free(&m);
    char label[200];
    snprintf(label, sizeof label, "llama2c rejects %s", what);
    check(rc && strstr(err.msg, path) && strstr(err.msg, field) && !strchr(err.msg, '\n'), label,
          "rc %d, message: %s", rc, err.msg);
    remove(path);
}

static void test_llama2c_malformed(const char *dir) {
    char src[1024], p[1024];
    unsigned char *b;
    size_t n;
    Error err;
    snprintf(src, sizeof src, "%s/l2c_untied.legacy.bin", dir);
    if (read_file(src, &b, &n, &err)) {
        check(0, "llama2c malformed files", "%s", err.msg);
        return;
    }
    struct { size_t len; long off; int32_t v; const char *field, *what; } legacy[] = {
        {n - 1, -1, 0, "(truncated)", "a legacy file truncated by one byte"},
        {n + 1, -1, 0, "(trailing bytes)", "a legacy file with one trailing byte"},
        {n, 0, 0, "dim = 0", "legacy dim 0"},
        {n, 4, -1, "hidden_dim = -1", "legacy hidden_dim -1"},
        {n, 0, 18, "does not divide dim", "legacy n_heads not dividing dim"},
        {n, 16, 3, "n_kv_heads = 3", "legacy n_kv_heads not dividing n_heads"},
        {n, 20, INT32_MIN, "vocab_size = -2147483648", "legacy vocab_size INT32_MIN"},
        {n, 20, -33, "header implies", "legacy vocab_size not matching the size"},
        {n, 24, 0, "seq_len = 0", "legacy seq_len 0"},
        {n, 8, 1024, "header implies", "legacy 1024 layers (size mismatch, nothing allocated)"},
        {10, -1, 0, "shorter than the 256-byte header", "a 10-byte file"},
    };
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++) {
        variant(b, n, legacy[i].len, legacy[i].off, legacy[i].v, 0, "bad.bin", p, sizeof p);
        expect_model_error(p, legacy[i].field, legacy[i].what);
    }
    free(b);
    snprintf(src, sizeof src, "%s/l2c_tied.ak42.bin", dir);
    if (read_file(src, &b, &n, &err)) {
        check(0, "llama2c malformed files", "%s", err.msg);
        return;
    }
    struct { size_t len; long off; int32_t v; int as_byte; const char *field, *what; } ak42[] = {
        {n, 4, 2, 0, "version = 2", "ak42 version 2 (int8)"},
        {n, 36, 2, 1, "shared_classifier = 2", "ak42 shared_classifier 2"},
        {n, 100, 1, 1, "header byte 100", "ak42 non-zero padding"},
        {n, 20, 0, 0, "n_heads = 0", "ak42 n_heads 0"},
        {n - 4, -1, 0, 0, "(truncated)", "an ak42 file missing its last float"},
        {100, -1, 0, 0, "shorter than the 256-byte ak42 header", "an ak42 file cut inside the header"},
    };
    for (size_t i = 0; i < sizeof ak42 / sizeof ak42[0]; i++) {
        variant(b, n, ak42[i].len, ak42[i].off, ak42[i].v, ak42[i].as_byte, "bad.bin", p, sizeof p);
        expect_model_error(p, ak42[i].field, ak42[i].what);
    }
    free(b);
}

// llama2.c run.c's encode(), literally: quadratic rescans, BOS inside the
// merge loop, the text as a C string; only its lookup is ours.
static size_t naive_encode(const SpTok *t, const char *text, int *tok) {
    size_t n = strlen(text), k = 0, len = 0;
    tok[k++] = SP_BOS;
    if (n == 0) return k;
    unsigned char *s = malloc(n + 2), buf[8], *pair = malloc(2 * (size_t)t->max_token_length + 1);
    s[0] = ' ';
    memcpy(s + 1, text, n + 1);
    for (size_t i = 0; s[i]; i++) {
        if ((s[i] & 0xC0) != 0x80) len = 0;
        buf[len++] = s[i];
        if ((s[i + 1] & 0xC0) == 0x80 && len < 4) continue;
        int id = sptok_lookup(t, buf, len);
        if (id >= 0) tok[k++] = id;
        else
            for (size_t j = 0; j < len; j++) tok[k++] = t->byte_token[buf[j]];
        len = 0;
    }
    for (;;) {
        float best = -1e10f;
        int best_id = -1;
        size_t best_i = 0;
        for (size_t i = 0; i + 1 < k; i++) {
            const SpPiece *x = &t->pieces[tok[i]], *y = &t->pieces[tok[i + 1]];
            memcpy(pair, x->p, x->len);
            memcpy(pair + x->len, y->p, y->len);
            int id = sptok_lookup(t, pair, x->len + y->len);
            if (id >= 0 && t->scores[id] > best) best = t->scores[id], best_id = id, best_i = i;
        }
        if (best_id < 0) break;
        tok[best_i] = best_id;
        memmove(tok + best_i + 1, tok + best_i + 2, (k - best_i - 2) * sizeof(int));
        k--;
    }
    free(s), free(pair);
    return k;
}

// Our heap-based encoder against the literal one on random texts: words,
// spaces, newlines, multi-byte UTF-8, a stray continuation byte, an invalid byte.
static void test_sptok_vs_naive(const SpTok *t, const char *name) {
    static const char *frag[] = {"a", "b", "e", "n", "t", "h", " ", "  ", "\n", "Once", " upon", "ing", " the",
                                 "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80", "\x80", "\xff", "x"};
    Rng rng = rng_make(11, 2);
    char text[256];
    int a[300], b[300], worst_ok = 1, trials = 300;
    for (int it = 0; it < trials && worst_ok; it++) {
        text[0] = 0;
        int nf = (int)(rng_u64(&rng) % 30);
        for (int f = 0; f < nf; f++) strcat(text, frag[rng_u64(&rng) % (sizeof frag / sizeof frag[0])]);
        size_t na = 0, nb = naive_encode(t, text, b);
        Error err;
        worst_ok = !sptok_encode(t, (const unsigned char *)text, strlen(text), a, &na, &err) && na == nb &&
                   !memcmp(a, b, na * sizeof(int));
    }
    char label[160];
    snprintf(label, sizeof label, "sptok %s: encoding equals llama2.c's on %d random texts", name, trials);
    check(worst_ok, label, "differs on \"%s\"", text);
}

static int encodes_to(const SpTok *t, const char *text, const int *want, size_t n_want) {
    int got[64];
    size_t n = 0;
    Error err;
    return !sptok_encode(t, (const unsigned char *)text, strlen(text), got, &n, &err) && n == n_want &&
           !memcmp(got, want, n * sizeof(int));
}

static int decodes_to(const SpTok *t, int prev, int token, const char *want) {
    const unsigned char *p;
    size_t n = sptok_decode(t, prev, token, &p);
    return n == strlen(want) && !memcmp(p, want, n);
}

static void test_sptok_llama(const char *data_dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.bin", data_dir);
    if (!file_exists(path)) {
        skip("sptok: the Llama 2 tokenizer", path);
        return;
    }
    SpTok t;
    Error err;
    if (sptok_load(&t, path, 32000, &err)) {
        check(0, "sptok: loads tokenizer.bin (32000 entries)", "%s", err.msg);
        return;
    }
    const int once[] = {1, 9038, 2501, 263, 931}, hello[] = {1, 15043, 3186}, bos[] = {1};
    check(encodes_to(&t, "Once upon a time", once, 5) && encodes_to(&t, "Hello world", hello, 3) &&
          encodes_to(&t, "", bos, 1), "sptok: Llama 2 encodings of \"Once upon a time\", \"Hello world\", \"\"",
          "differ");
    check(decodes_to(&t, 1, 9038, "Once") && decodes_to(&t, 9038, 2501, " upon") && decodes_to(&t, 5, 13, "\n") &&
          decodes_to(&t, 1, 13, "\n"), "sptok: decoding drops the space after BOS, <0x0A> is a newline", "differs");
    test_sptok_vs_naive(&t, "32000 entries");
    sptok_free(&t);
    // the first 512 entries (stories260K's vocabulary size): only byte pieces fit " Once upon a time"
    if (sptok_load(&t, path, 512, &err)) {
        check(0, "sptok: loads the first 512 entries", "%s", err.msg);
        return;
    }
    const char *s = " Once upon a time";
    int want[32];
    want[0] = 1;
    for (size_t i = 0; s[i]; i++) want[i + 1] = (unsigned char)s[i] + 3;
    check(encodes_to(&t, s + 1, want, strlen(s) + 1), "sptok: 512 entries encode the prompt as bytes (+3)",
          "differs");
    test_sptok_vs_naive(&t, "512 entries");
    sptok_free(&t);
}

static void test_sptok_bytes(void) {
    SpTok t, u;
    Error err;
    char path[1024];
    tmp_path(path, sizeof path, "bytes.tok");
    if (sptok_bytes(&t, &err) || sptok_save(&t, path, &err) || sptok_load(&u, path, 256, &err)) {
        check(0, "sptok: the byte vocabulary saves and loads", "%s", err.msg);
        return;
    }
    int same = 1, decodes = 1;
    for (int i = 0; i < 256; i++) {
        same &= t.pieces[i].len == u.pieces[i].len && !memcmp(t.pieces[i].p, u.pieces[i].p, t.pieces[i].len);
        const unsigned char *p;
        decodes &= sptok_decode(&u, 7, i, &p) == 1 && *p == i;
    }
    check(same, "sptok: the byte vocabulary saves and loads", "pieces differ");
    check(decodes, "sptok: byte vocabulary token b decodes to byte b", "differs");
    const unsigned char text[] = {'a', 'b', 0, 0xc3, 0xa9};
    int tok[8], want[] = {1, ' ', 'a', 'b', 0, 0xc3, 0xa9};
    size_t n = 0;
    check(!sptok_encode(&u, text, sizeof text, tok, &n, &err) && n == 7 && !memcmp(tok, want, sizeof want),
          "sptok: byte vocabulary encodes BOS, a space, then the bytes (NUL via <0x00>)", "differs");
    test_sptok_vs_naive(&u, "byte vocabulary");
    sptok_free(&t), sptok_free(&u);
    remove(path);
}

static void expect_tok_error(const char *path, int vocab, const char *field, const char *what) {
    SpTok t;
    Error err = {{0}};
    int rc = sptok_load(&t, path, vocab, &err);
    if (!rc) sptok_free(&t);
    char label[200];
    snprintf(label, sizeof label, "sptok rejects %s", what);
    check(rc && strstr(err.msg, path) && strstr(err.msg, field), label, "rc %d, message: %s", rc, err.msg);
}

static void test_sptok_malformed(void) {
    SpTok t;
    Error err;
    char good[1024], p[1024];
    unsigned char *b;
    size_t n;
    tmp_path(good, sizeof good, "good.tok");
    if (sptok_bytes(&t, &err) || sptok_save(&t, good, &err) || read_file(good, &b, &n, &err)) {
        check(0, "sptok malformed files", "%s", err.msg);
        return;
    }
    sptok_free(&t);
    // entries: token 0 ("<0x00>") at 4, token b >= 1 at 18 + 9 (b - 1); last (255) at n - 9
    float nan_score = NAN;
    int32_t nan_bits;
    memcpy(&nan_bits, &nan_score, 4);
    struct { size_t len; long off; int32_t v; int vocab; const char *field, *what; } cases[] = {
        {n, 0, 0, 256, "max_token_length = 0", "max_token_length 0"},
        {n, 0, 1 << 20, 256, "max_token_length = 1048576", "a huge max_token_length"},
        {n, 18 + 9 * 9 + 4, -1, 256, "token 10: length = -1", "a negative length"},
        {n, 18 + 9 * 9 + 4, 7, 256, "token 10: length = 7 is out of range", "a length above max_token_length"},
        {n, 18 + 9 * 9, nan_bits, 256, "token 10: score = nan", "a NaN score"},
        {n - 1, -1, 0, 256, "token 255: length = 1 runs past the end", "a file cut inside the last token"},
        {n, -1, 0, 300, "truncated at token 256", "fewer tokens than the model's vocab_size"},
        {n, -1, 0, 2, "vocab_size = 2", "a model vocabulary without BOS and EOS"},
        {2, -1, 0, 256, "shorter than the 4-byte", "a 2-byte file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        variant(b, n, cases[i].len, cases[i].off, cases[i].v, 0, "bad.tok", p, sizeof p);
        expect_tok_error(p, cases[i].vocab, cases[i].field, cases[i].what);
        remove(p);
    }
    // a file may hold more entries than the model uses (llama2.c reads the first vocab_size)
    check(!sptok_load(&t, good, 100, &err) && t.vocab_size == 100, "sptok: reads only the model's first entries",
          "%s", err.msg);
    sptok_free(&t);
    free(b);
    remove(good);
}

// ----------------------------------------------------------------------------
// byte-level BPE (src/bpe.c)

static int merges_are(const Bpe *b, const int32_t *want, int n) {
    return b->n_merges == n && !memcmp(b->merges, want, (size_t)n * 2 * sizeof(int32_t));
}

// Decodes every token on its own (as generation prints them) and compares
// the concatenation with the text.
static int decodes_back(const Bpe *b, const int *tok, size_t nt, const unsigned char *text, size_t n) {
    Tokenizer tk = tokenizer_bpe(b);
    size_t at = 0;
    for (size_t i = 0; i < nt; i++) {
        const unsigned char *p;
        size_t len = tokenizer_decode(&tk, i ? tok[i - 1] : -1, tok[i], &p);
        if (len == 0 || at + len > n || memcmp(text + at, p, len)) return 0;
        at += len;
    }
    return at == n;
}

static void test_bpe_small(void) {
    Error err = {{0}};
    Bpe b;
    // words "ab", " ab", " ab", " abc": (a,b) 4 times, then (" ", ab) 3, then (" ab", c) 1
    const char *t1 = "ab ab ab abc";
    const int32_t want1[] = {'a', 'b', ' ', 256, 257, 'c'};
    int ok = !bpe_train(&b, (const unsigned char *)t1, strlen(t1), 259, &err);
    check(ok && merges_are(&b, want1, 3), "bpe: hand example: merges (a,b), (' ',ab), (' ab',c)", "%s",
          ok ? "merges differ" : err.msg);
    int tok[16];
    size_t nt = 0;
    ok = ok && !bpe_encode(&b, (const unsigned char *)"ab abc", 6, tok, &nt, &err);
    check(ok && nt == 2 && tok[0] == 256 && tok[1] == 258, "bpe: hand example: 'ab abc' encodes to [256, 258]",
          "got %zu tokens, first %d", nt, nt ? tok[0] : -1);
    bpe_free(&b);
    // no pair is left after 3 merges: asking for 4 fails with a clear error
    ok = bpe_train(&b, (const unsigned char *)t1, strlen(t1), 260, &err) != 0;
    check(ok && strstr(err.msg, "only 3 pairs to merge"), "bpe: a vocab the text cannot fill is refused", "%s", err.msg);
    // ties: equal counts go to the lowest (left, right)
    const char *t2 = "xy zw";
    const int32_t want2[] = {' ', 'z', 'x', 'y', 256, 'w'};
    ok = !bpe_train(&b, (const unsigned char *)t2, strlen(t2), 259, &err);
    check(ok && merges_are(&b, want2, 3), "bpe: ties go to the lowest pair: (' ',z), (x,y), (' z',w)", "%s",
          ok ? "merges differ" : err.msg);
    bpe_free(&b);
    // the pre-split rule
    const char *t3 = "Hi,  you 42x\n\nend";
    const char *words[] = {"Hi", ",", " ", " you", " 42", "x", "\n\n", "end"};
    size_t at = 0, k = 0, n3 = strlen(t3);
    int split_ok = 1;
    while (at < n3 && k < 8) {
        size_t len = bpe_word_len((const unsigned char *)t3 + at, n3 - at);
        split_ok &= len == strlen(words[k]) && !memcmp(t3 + at, words[k], len);
        at += len, k++;
    }
    check(split_ok && k == 8 && at == n3, "bpe: pre-split of 'Hi,  you 42x\\n\\nend'", "word %zu differs", k);
}

// Training's own tokenization, word by word: every merge in order over the word.
static size_t naive_word(const Bpe *b, const unsigned char *w, size_t len, int *tk) {
    for (size_t i = 0; i < len; i++) tk[i] = w[i];
    size_t n = len;
    for (int m = 0; m < b->n_merges; m++) {
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n && tk[i] == b->merges[2 * m] && tk[i + 1] == b->merges[2 * m + 1]) tk[j++] = 256 + m, i++;
            else tk[j++] = tk[i];
        }
        n = j;
    }
    return n;
}

static void test_bpe_text(const char *data_dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tinyshakespeare.txt", data_dir);
    unsigned char *text;
    size_t n;
    Error err = {{0}};
    if (!file_exists(path) || read_file(path, &text, &n, &err)) {
        skip("bpe: Tiny Shakespeare tests", path);
        return;
    }
    Bpe a, b;
    int ok = !bpe_train(&a, text, n, 1024, &err) && !bpe_train(&b, text, n, 1024, &err);
    check(ok && a.blob_bytes == b.blob_bytes && !memcmp(a.blob, b.blob, a.blob_bytes) && a.checksum == b.checksum,
          "bpe: training twice gives the same vocabulary (1024 tokens, Tiny Shakespeare)", "%s", err.msg);
    if (!ok) return;
    int *tok = malloc((n + 1) * sizeof(int));
    size_t nt = 0;
    ok = tok && !bpe_encode(&a, text, n, tok, &nt, &err);
    check(ok && decodes_back(&a, tok, nt, text, n) && nt < n / 2,
          "bpe: Tiny Shakespeare round trip, token by token, under 0.5 tokens per byte", "%zu tokens", nt);
    // the encoder (merges by rank, word cache) equals training's merge order, word by word
    size_t at = 0, pos = 0, bad = 0;
    int w[BPE_MAX_TOKEN_BYTES];
    for (; at < 100000 && !bad; ) {
        size_t len = bpe_word_len(text + at, n - at), k = naive_word(&a, text + at, len, w);
        if (pos + k > nt || memcmp(tok + pos, w, k * sizeof(int))) bad = at + 1;
        at += len, pos += k;
    }
    check(!bad, "bpe: encoding equals applying every merge in order (first 100 KB, word by word)", "at byte %zu",
          bad - 1);
    // any bytes: random, with NULs and invalid UTF-8
    Rng rng = rng_make(7, 1);
    size_t nr = 100000;
    unsigned char *rnd = malloc(nr);
    for (size_t i = 0; i < nr; i++) {
        uint64_t r = rng_u64(&rng);
        rnd[i] = r % 4 == 0 ? text[r % n] : (unsigned char)(r >> 8); // some text, some noise
    }
    ok = !bpe_encode(&a, rnd, nr, tok, &nt, &err);
    check(ok && decodes_back(&a, tok, nt, rnd, nr), "bpe: random bytes (NUL, invalid UTF-8) round trip", "%s", err.msg);
    int single_ok = 1;
    for (int c = 0; c < 256; c++) {
        unsigned char byte = (unsigned char)c;
        single_ok &= !bpe_encode(&a, &byte, 1, tok, &nt, &err) && nt == 1 && tok[0] == c &&
                     decodes_back(&a, tok, nt, &byte, 1);
    }
    check(single_ok, "bpe: each of the 256 single bytes is its own token and decodes back", "%s", err.msg);
    // the file round trip keeps every byte (and so the checksum)
    char fpath[1024];
    tmp_path(fpath, sizeof fpath, "v.bpe");
    Bpe c;
    ok = !bpe_save(&a, fpath, &err) && !bpe_load(&c, fpath, &err);
    check(ok && c.checksum == a.checksum && c.vocab_size == 1024 && c.text_size == n &&
              c.text_hash == fnv1a64(text, n, FNV1A64_INIT),
          "bpe: tokenizer file save/load keeps checksum, vocab and text fingerprint", "%s", err.msg);
    if (ok) bpe_free(&c);
    // the token cache keeps the tokens and the header
    ok = !bpe_encode(&a, text, n, tok, &nt, &err);
    TokCacheInfo info = {.vocab_size = 1024, .n_tokens = nt, .tokenizer_checksum = a.checksum, .text_size = n,
                         .text_hash = 42}, got;
    const uint16_t *back = NULL;
    uint16_t *t16 = malloc((nt + 1) * sizeof *t16);
    for (size_t i = 0; ok && i < nt; i++) t16[i] = (uint16_t)tok[i];
    Mapped map = {0};
    tmp_path(fpath, sizeof fpath, "t.tok");
    ok = ok && t16 && !tokcache_save(fpath, &info, t16, &err) && !tokcache_open(&map, fpath, &got, &back, &err);
    check(ok && got.n_tokens == nt && got.tokenizer_checksum == a.checksum && got.text_hash == 42 &&
              got.tokens_hash == tokcache_hash(t16, nt) && !memcmp(back, t16, nt * sizeof *t16),
          "bpe: token cache save/load keeps every token and field", "%s", err.msg);
    unmap_file(&map);
    // one token changed to another valid id: the checksum catches it (a warning and a rebuild, not an error)
    if (ok && nt > 10) {
        t16[10] = (uint16_t)(t16[10] == 300 ? 301 : 300);
        info.n_tokens = nt;
        unsigned char *bytes = NULL;
        size_t nb = 0;
        ok = !tokcache_save(fpath, &info, t16, &err) && !read_file(fpath, &bytes, &nb, &err);
        if (ok) { // restore the header's checksum of the original tokens
            t16[10] = (uint16_t)tok[10];
            uint64_t h = tokcache_hash(t16, nt);
            memcpy(bytes + 48, &h, 8);
        }
        unsigned char *aligned = ok ? malloc(nb + 8) : NULL;
        if (aligned) memcpy(aligned, bytes, nb);
        int rc = aligned ? tokcache_parse(aligned, nb, "t.tok", &got, &back, &err) : -1;
        check(rc == 1 && strstr(err.msg, "t.tok: the tokens are damaged (checksum"),
              "bpe: a token cache whose tokens fail the checksum is untrustworthy (1), not broken (-1)", "rc %d: %s", rc,
              err.msg);
        free(aligned);
        free(bytes);
    }
    free(t16);
    remove(fpath);
    tmp_path(fpath, sizeof fpath, "v.bpe");
    remove(fpath);
    free(rnd);
    free(tok);
    free(text);
    bpe_free(&a);
    bpe_free(&b);
}


// ----------------------------------------------------------------------------
// data sources: chunked encoding, folders and lists, --val-data, the data record

static void test_data_sources(void) {
    Error err = {{0}};
    // encoding two halves cut at any split point gives the tokens of the whole
    const char *txt = "The quick  brown fox,\n\n  jumps 42 over\r\n\tthe lazy dog.\nEnd.  \n x\n";
    size_t n = strlen(txt);
    Bpe b;
    int ok = !bpe_train(&b, (const unsigned char *)txt, n, 280, &err);
    int whole[128], part[128];
    size_t nw = 0, splits = 0, same = 1;
    ok = ok && !bpe_encode(&b, (const unsigned char *)txt, n, whole, &nw, &err);
    for (size_t from = 1; ok && from < n; from++) {
        size_t p = bpe_split_point((const unsigned char *)txt, n, from), n1 = 0, n2 = 0;
        if (p == n) continue;
        splits++;
        ok = !bpe_encode(&b, (const unsigned char *)txt, p, part, &n1, &err) &&
             !bpe_encode(&b, (const unsigned char *)txt + p, n - p, part + n1, &n2, &err);
        same &= n1 + n2 == nw && !memcmp(part, whole, nw * sizeof(int)) && strchr("\n\r\t", txt[p]) &&
                !strchr("\n\r\t", txt[p - 1]);
    }
    check(ok && same && splits > 20, "data: encoding cut at bpe_split_point equals encoding the whole",
          "%zu split points, same %zu: %s", splits, same, err.msg);
    bpe_free(&b);

    // a folder: its files in name order joined by the separator; our own files and dotfiles skipped
    char dir[1024], path[1100], list[2300];
    tmp_path(dir, sizeof dir, "corpus");
    mkdir(dir, 0700);
    const char *names[] = {"b.txt", "a.txt", ".hidden", "a.txt.bpe300", "a.txt.bpe300.tok", "c.tmp"};
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_bytes(path, names[i], strlen(names[i]));
    }
    TextFile t, l, v;
    ok = !text_open(&t, dir, &err);
    const char *want = "a.txt" DOC_SEPARATOR "b.txt";
    check(ok && t.n_docs == 2 && t.n == strlen(want) && !memcmp(t.bytes, want, t.n) && !strcmp(t.base, dir) &&
              t.fingerprint == fnv1a64(want, strlen(want), FNV1A64_INIT) && t.docs[1].size == 5 &&
              t.docs[1].hash == fnv1a64("b.txt", 5, FNV1A64_INIT),
          "data: a folder is its files in name order, joined by \\n 0x1E \\n (dotfiles, .bpeN, .tok, .tmp skipped)",
          "%d docs, %zu bytes: %s", ok ? t.n_docs : -1, ok ? t.n : 0, err.msg);
    snprintf(list, sizeof list, "%s/a.txt,%s/b.txt", dir, dir);
    ok = ok && !text_open(&l, list, &err);
    check(ok && l.fingerprint == t.fingerprint && l.n_docs == 2 && !strcmp(l.base, l.docs[0].path),
          "data: a comma-separated list equals the folder; its files go beside the first", "%s", err.msg);
    // the data record: packed, parsed, checked; a changed file is named
    unsigned char *rec = NULL;
    size_t nrec = 0;
    DataRecord r;
    snprintf(path, sizeof path, "%s/b.txt", dir);
    ok = ok && !text_open(&v, path, &err) && !data_record_pack(&t, &v, &rec, &nrec, &err) &&
         !data_record_parse(&r, rec, nrec, "ck", &err);
    check(ok && !strcmp(r.data_spec, dir) && !strcmp(r.val_spec, path) && r.n_docs == 2 && r.n_val_docs == 1 &&
              !data_record_check(&r, &l, &v, &err),
          "data: the data record round trip (specs, files, fingerprints) accepts the same data", "%s", err.msg);
    if (ok) {
        Error e;
        int rej = data_record_check(&r, &l, NULL, &e) && strstr(e.msg, "lacks --val-data");
        rej &= data_record_check(&r, &v, &v, &e) && strstr(e.msg, "1 files, the checkpoint's data had 2");
        TextFile swapped;
        snprintf(list, sizeof list, "%s/b.txt,%s/a.txt", dir, dir);
        if (!text_open(&swapped, list, &e)) {
            rej &= data_record_check(&r, &swapped, &v, &e) && strstr(e.msg, "b.txt: not the checkpoint's file 1, ") &&
                   strstr(e.msg, "a.txt (fingerprint differs)");
            text_close(&swapped);
        }
        DataRecord cut;
        rej &= data_record_parse(&cut, rec, nrec - 1, "ck", &e) &&
               strstr(e.msg, "ck: data record entry 4: path length 34 is not 1..4095 within the record");
        check(rej, "data: the record refuses a missing --val-data, another file count, a changed file (named), "
              "a cut record", "%s", e.msg);
        data_record_free(&r);
    }
    free(rec);
    // --val-data: all of the text trains, the other validates; bytes come straight from the mapped text
    Tokenizer tk = tokenizer_bytes();
    Dataset ds;
    ok = !dataset_load(&ds, &t, &v, &tk, 3, 0, &err);
    check(ok && ds.train.u8 == t.bytes && ds.train.n == t.n && ds.val.u8 == v.bytes && ds.val.n == 5 &&
              ds.val_fingerprint == v.fingerprint,
          "data: with a validation text, the training text trains whole (bytes: no copy)", "%s", err.msg);
    if (ok) dataset_free(&ds);
    ok = dataset_load(&ds, &t, &v, &tk, 5, 0, &err) && strstr(err.msg, "b.txt: 5 tokens is too short: --seq 5");
    check(ok, "data: a validation text shorter than a window is refused, named", "%s", err.msg);
    text_close(&t), text_close(&l), text_close(&v);
    snprintf(list, sizeof list, "%s/a.txt,,%s/b.txt", dir, dir);
    ok = text_open(&t, list, &err) && strstr(err.msg, "an empty file name in the list");
    snprintf(path, sizeof path, "%s/nope.txt,x", dir);
    ok = ok && text_open(&t, path, &err) && strstr(err.msg, "nope.txt: cannot open");
    check(ok, "data: a list with an empty name or a missing file is refused", "%s", err.msg);
    for (int i = 0; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        remove(path);
    }
    rmdir(dir);
}

// A model file carries its tokenizer; load refuses one whose vocabulary differs.
static void test_bpe_model_file(void) {
    Error err = {{0}};
    Bpe b;
    const char *t = "the cat sat on the mat, the end";
    int ok = !bpe_train(&b, (const unsigned char *)t, strlen(t), 262, &err);
    ModelConfig c = {.dim = 4, .hidden_dim = 6, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .vocab_size = 262,
                     .seq_len = 8, .norm = NORM_RMS, .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                     .alpha_attn0 = 1.0f, .alpha_ffn0 = 1.0f, .alpha_final0 = 1.0f};
    Model m, l;
    char path[1024];
    tmp_path(path, sizeof path, "bpe_model.bin");
    ok = ok && !model_create(&m, &c, &err);
    if (!ok) {
        check(0, "bpe: model file with tokenizer", "%s", err.msg);
        return;
    }
    model_init(&m, 1);
    m.tokenizer = malloc(b.blob_bytes);
    memcpy(m.tokenizer, b.blob, b.blob_bytes);
    m.tokenizer_bytes = b.blob_bytes;
    ok = !model_save(&m, path, &err) && !model_load(&l, path, &err);
    check(ok && l.tokenizer_bytes == b.blob_bytes && !memcmp(l.tokenizer, b.blob, b.blob_bytes) &&
              !memcmp(l.params, m.params, m.n_params * sizeof(float)),
          "bpe: a model file carries its tokenizer (save, load, same bytes)", "%s", err.msg);
    if (ok) model_free(&l);
    float *zeros = alloc_floats(m.n_params);
    int64_t run[RUN_BLOCK_SLOTS] = {0};
    TrainState st = {.step = 3, .rng_state = 9}, st2;
    float *m1, *m2;
    tmp_path(path, sizeof path, "bpe_ckpt.bin");
    ok = !checkpoint_save(&m, zeros, zeros, &st, run, path, &err) &&
         !checkpoint_load(&l, &m1, &m2, &st2, run, path, &err);
    check(ok && l.tokenizer_bytes == b.blob_bytes && !memcmp(l.tokenizer, b.blob, b.blob_bytes) && st2.step == 3,
          "bpe: a checkpoint carries its tokenizer", "%s", err.msg);
    if (ok) model_free(&l), free(m1), free(m2);
    ok = !model_load(&l, path, &err); // a checkpoint read as a model (infer_llama) finds it too
    check(ok && l.tokenizer_bytes == b.blob_bytes, "bpe: a checkpoint read as a model finds its tokenizer", "%s",
          err.msg);
    if (ok) model_free(&l);
    remove(path);
    free(zeros);
    model_free(&m);
    bpe_free(&b);
}

// bf16 model files (issue 27): a model saved with bf16 weights loads back as
// every weight rounded to nearest even (bf16.h), a DyT model with every kind
// of tensor (beta, alpha, gates, the embedding scale, a tied head); a weight
// beyond bf16's range is refused by name and nothing is written.
static void test_bf16_model_file(void) {
    ModelConfig c = {.dim = 32, .hidden_dim = 40, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .vocab_size = 256,
                     .seq_len = 16, .mlp = MLP_SWIGLU, .norm_eps = 1e-5f, .rope_theta = 10000.0f};
    config_set_norm(&c, NORM_DYT);
    c.residual_gate = 1, c.tie_embeddings = 1;
    Model m, l;
    Error err = {{0}};
    char path[1024];
    tmp_path(path, sizeof path, "bf16.bin");
    int ok = !model_create(&m, &c, &err);
    if (ok) model_init(&m, 3);
    for (int i = 0; ok && i < c.n_layers; i++) m.w.t[T_ATTN_GATE][i] = 0.3f + 0.1f * i;
    ok = ok && !model_save_as(&m, DTYPE_BF16, path, &err) && !model_load(&l, path, &err);
    int held = ok && l.dtype == DTYPE_BF16 && !l.w.t[T_WQ] && l.w16.t[T_WQ] && l.w.t[T_ATTN_ALPHA];
    ok = ok && !model_set_dtype(&l, DTYPE_F32, &err); // widened, to compare
    size_t bad = ok ? 0 : 1;
    if (ok) {
        for (size_t i = 0; i < m.n_params && !bad; i++) bad = l.params[i] != bf16_round(m.params[i]) ? i + 1 : 0;
        model_free(&l);
    }
    check(ok && held && !bad, "bf16 model file: loaded with its matrices held in bf16; every weight is the fp32 one "
          "rounded to bf16 (DyT, gates, tied head)", "%s (held %d, flat index %zu)", err.msg, held, bad ? bad - 1 : 0);
    // in memory as from its file: model_set_dtype(bf16), saved again, gives the same bytes; so does a save of
    // the loaded bf16 model (its matrices as held, its vectors rounded back)
    char path2[1024], path3[1024];
    tmp_path(path2, sizeof path2, "bf16_2.bin");
    tmp_path(path3, sizeof path3, "bf16_3.bin");
    Model k;
    int same = ok && !model_create(&k, &c, &err);
    if (same) {
        memcpy(k.params, m.params, m.n_params * sizeof(float));
        same = !model_set_dtype(&k, DTYPE_BF16, &err) && !model_save_as(&k, DTYPE_BF16, path2, &err) &&
               !model_load(&l, path, &err);
        same = same && !model_save_as(&l, DTYPE_BF16, path3, &err);
        if (same) model_free(&l);
        model_free(&k);
    }
    unsigned char *b1 = NULL, *b2 = NULL, *b3 = NULL;
    size_t n1 = 0, n2 = 0, n3 = 0;
    same = same && !read_file(path, &b1, &n1, &err) && !read_file(path2, &b2, &n2, &err) &&
           !read_file(path3, &b3, &n3, &err) && n1 == n2 && n1 == n3 && !memcmp(b1, b2, n1) && !memcmp(b1, b3, n1);
    check(same, "bf16 model file: model_set_dtype(bf16) and a loaded bf16 model save the same bytes", "%s", err.msg);
    free(b1), free(b2), free(b3);
    remove(path), remove(path2), remove(path3);
    if (!ok) {
        model_free(&m);
        return;
    }
    m.w.t[T_WQ][5] = 3.4e38f; // rounds to inf in bf16 (its largest is 3.3895e38)
    int rc = model_save_as(&m, DTYPE_BF16, path, &err);
    check(rc && strstr(err.msg, "tensor wq holds 3.4e+38") && !file_exists(path),
          "bf16 model file: a weight beyond bf16's range is refused by name, nothing written", "rc %d: %s", rc, err.msg);
    model_free(&m);
}

// A decoded token (model_forward with T = 1: its own path, src/model.c's
// token_forward) against the batched forward of the whole sequence, within
// rounding; and, since decoding may change its thread count token by token
// (src/threads.h), the same bits on 1 and 2 threads. The activations are made
// and the prompt prefilled with 2 threads in both runs (a batched forward's
// bits may depend on the count; the activations hold a buffer per thread).
// The decoded positions 60..71 cross a chunk of 64 keys in attention. Three
// models: RMSNorm with grouped-query heads; DyT with beta; Derf with the GELU
// MLP, residual gates (set to 0.7 and 1.3: at their initial 0 the branches
// would not count), the embedding scale, a tied head and one kv head for four
// query heads.
// The forward without stored activations (evaluation, prefill: attention in
// blocks of rows, no T x T scores) = the training forward (every probability
// kept), bit for bit: T 150 spans three blocks of rows, the last one short.
static void test_forward_unstored(void) {
    enum { T = 150, V = 256 };
    ModelConfig c = {.dim = 64, .hidden_dim = default_hidden_dim(64, MLP_SWIGLU), .n_layers = 2, .n_heads = 4,
                     .n_kv_heads = 2, .vocab_size = V, .seq_len = 4 * T, .mlp = MLP_SWIGLU, .norm_eps = 1e-5f,
                     .rope_theta = 10000.0f};
    config_set_norm(&c, NORM_RMS);
    Model m;
    Acts a[2];
    Error err = {{0}};
    int tok[T], made = 0, created = !model_create(&m, &c, &err), ok = created;
    for (int i = 0; i < T; i++) tok[i] = (i * 53 + 7) % V;
    if (ok) model_init(&m, 6);
    for (int store = 0; ok && store < 2; store++) {
        ok = !acts_create(&a[store], &m, 1, T, T, store, &err);
        made += ok;
        ok = ok && !model_forward(&m, &a[store], tok, T, 0, 1, &err);
    }
    int same = ok && !memcmp(a[0].logits, a[1].logits, (size_t)T * V * sizeof(float));
    check(same, "a forward without stored activations (blocks of score rows) = the training forward, bit for bit "
          "(T 150)", "%s", ok ? "logits differ" : err.msg);
    while (made > 0) acts_free(&a[--made]);
    if (created) model_free(&m);
}

// With dtype bf16 (issue 27) the model's weights are rounded to bf16 and held
// so, its cache is bf16: the products are the same dot products in both
// paths, attention reads the same cache values (widened for the batched
// path's sgemm, as read by a decoded token's own loop), so the logits differ
// by the order of attention's sums, and where that moves a product's input
// across a bf16 rounding boundary by one bf16 step (2^-8 relative) of that
// input: within 2e-3 of the largest logit.
static void decode_steps(int dtype, double tol, const char *tol_text);
static void test_decode_steps(void) {
    decode_steps(DTYPE_F32, 1e-5, "1e-5");
    decode_steps(DTYPE_BF16, 2e-3, "2e-3");
}

static void decode_steps(int dtype, double tol, const char *tol_text) {
    enum { PROMPT = 60, STEPS = 12, V = 256 };
    for (int kind = 0; kind < 3; kind++) {
        int norm = kind == 0 ? NORM_RMS : kind == 1 ? NORM_DYT : NORM_DERF, mlp = kind == 2 ? MLP_GELU : MLP_SWIGLU;
        ModelConfig c = {.dim = 128, .hidden_dim = default_hidden_dim(128, mlp), .n_layers = 2, .n_heads = 4,
                         .n_kv_heads = kind == 2 ? 1 : 2, .vocab_size = V, .seq_len = 80, .mlp = mlp,
                         .norm_eps = 1e-5f, .rope_theta = 10000.0f};
        config_set_norm(&c, norm);
        c.opt_beta = kind == 1, c.residual_gate = kind == 2, c.emb_scale = kind == 2, c.tie_embeddings = kind == 2;
        Model m;
        Acts a[2], full;
        Error err;
        int tok[PROMPT + STEPS];
        for (int i = 0; i < PROMPT + STEPS; i++) tok[i] = (i * 37 + 11) % V;
        float *logits = alloc_floats((size_t)2 * STEPS * V);
        int ok = !model_create(&m, &c, &err) && logits;
        if (ok) model_init(&m, 4);
        for (int l = 0; ok && c.residual_gate && l < c.n_layers; l++)
            m.w.t[T_ATTN_GATE][l] = 0.7f, m.w.t[T_FFN_GATE][l] = 1.3f;
        ok = ok && !model_set_dtype(&m, dtype, &err);
        int saved = omp_get_max_threads();
        for (int th = 0; ok && th < 2; th++) {
            omp_set_num_threads(2);
            ok = !acts_create(&a[th], &m, 1, PROMPT, PROMPT + STEPS, 0, &err);
            ok = ok && !model_forward(&m, &a[th], tok, PROMPT, 0, 0, &err);
            omp_set_num_threads(th + 1);
            for (int i = 0; ok && i < STEPS; i++) {
                ok = !model_forward(&m, &a[th], &tok[PROMPT + i], 1, PROMPT + i, 0, &err);
                memcpy(logits + ((size_t)th * STEPS + i) * V, a[th].logits, V * sizeof(float));
            }
            acts_free(&a[th]);
        }
        omp_set_num_threads(saved);
        // the batched forward's logits at the decoded positions
        double e = 0.0, mx = 0.0;
        ok = ok && !acts_create(&full, &m, 1, PROMPT + STEPS, PROMPT + STEPS, 0, &err);
        ok = ok && !model_forward(&m, &full, tok, PROMPT + STEPS, 0, 1, &err);
        for (int i = 0; ok && i < STEPS; i++)
            for (int v = 0; v < V; v++) {
                double ref = full.logits[(size_t)(PROMPT + i) * V + v];
                e = fmax(e, fabs(logits[(size_t)i * V + v] - ref)), mx = fmax(mx, fabs(ref));
            }
        if (ok) acts_free(&full);
        char name[160];
        snprintf(name, sizeof name, "%s%s: decode steps = the batched forward within %s (relative), "
                 "the same bits on 1 and 2 threads", NORM_KINDS[norm].name, dtype == DTYPE_BF16 ? " (bf16 weights)" : "",
                 tol_text);
        int same = ok && !memcmp(logits, logits + (size_t)STEPS * V, (size_t)STEPS * V * sizeof(float));
        check(ok && same && e <= tol * mx, name, "%s: max|decode - batched| %.3g of max %.3g; threads %s",
              ok ? "" : err.msg, e, mx, same ? "agree" : "differ");
        free(logits);
        model_free(&m);
    }
}

// The bf16 products (matmul.h): vdpbf16ps and the portable loop give the
// same bits (where this build has the instruction); every output is the same
// whatever the batch (N 1 or 7) and the row (a group of four or a last
// single); each is within fp32's summation error of the exact (float64) dot
// product of the bf16 values: |err| <= (C/16 + 6) * 2^-24 * sum |w x| (each
// lane adds C/16 products, the tree 4 more, the products exact); inputs of
// every size around the 32-wide blocks, magnitudes spread over 2^-20..2^20.
static void test_bf16_gemm(void) {
    enum { N = 7, ROWS = 11 };
    const int Cs[] = {1, 2, 31, 32, 33, 63, 64, 100, 768, 2049};
    Rng r = rng_make(27, 0);
    int same = 1, batch = 1, within = 1, worst_C = 0;
    double worst = 0.0;
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
        int C = Cs[ci];
        uint16_t *w = malloc((size_t)ROWS * C * 2), *x = malloc((size_t)N * C * 2);
        float *a = malloc(N * ROWS * sizeof(float)), *b = malloc(N * ROWS * sizeof(float)), one[ROWS];
        for (size_t i = 0; i < (size_t)ROWS * C; i++)
            w[i] = bf16_from_float((float)(rng_normal(&r) * ldexp(1.0, (int)(rng_u64(&r) % 41) - 20)));
        for (size_t i = 0; i < (size_t)N * C; i++) x[i] = bf16_from_float((float)rng_normal(&r));
        bf16_gemm_nt(a, ROWS, x, N, w, ROWS, C);
        bf16_gemm_nt_portable(b, ROWS, x, N, w, ROWS, C);
        same &= !memcmp(a, b, N * ROWS * sizeof(float));
        for (int n = 0; n < N; n++) {
            bf16_gemm_nt(one, 0, x + (size_t)n * C, 1, w, ROWS, C);
            batch &= !memcmp(one, a + (size_t)n * ROWS, sizeof one);
            for (int k = 0; k < ROWS; k++) {
                double exact = 0.0, mag = 0.0;
                for (int i = 0; i < C; i++) {
                    double p = (double)bf16_to_float(w[(size_t)k * C + i]) * bf16_to_float(x[(size_t)n * C + i]);
                    exact += p, mag += fabs(p);
                }
                double e = fabs(a[(size_t)n * ROWS + k] - exact) / ((C / 16 + 6) * 0x1p-24 * mag);
                if (e > worst) worst = e, worst_C = C;
                within &= e <= 1.0;
            }
        }
        free(w), free(x), free(a), free(b);
    }
    if (bf16_dot_native())
        check(same, "bf16 products: vdpbf16ps and the portable loop give the same bits (C 1..2049, 7 x 11)",
              "they differ");
    else
        skip("bf16 products: vdpbf16ps against the portable loop", "this build has no AVX512_BF16");
    check(batch, "bf16 products: each output the same bits for a batch of 7 and alone (rows in fours and the rest)",
          "differ");
    check(within, "bf16 products: within fp32's summation bound of the exact dot product of the bf16 values",
          "worst %.2f of the bound at C %d", worst, worst_C);
}

// stand-ins for threads_crowded: crowded at the first call only (the tuner
// starts on 1 thread, then times decide), or for the first `crowded_units` calls
static int crowded_calls, crowded_units;
static int crowded_at_start(int max) { return (void)max, crowded_calls++ == 0; }
static int crowded_for_a_while(int max) { return (void)max, crowded_calls++ < crowded_units; }

// The decode thread tuner on made-up times: it settles on the faster count,
// spends few units probing the slower one, and restores the count at the end.
static void test_thread_tuner(void) {
    int saved = omp_get_max_threads();
    for (int faster = 1; faster <= 2; faster++)
        for (int first = 1; first <= 2; first++) { // the first guess right or wrong
        ThreadTuner t;
        crowded_calls = 0;
        tuner_init(&t, 2, first == 1 ? crowded_at_start : NULL);
        int slow_units = 0;
        for (int i = 0; i < 512; i++) {
            int n = tuner_next(&t);
            slow_units += n != faster;
            tuner_done(&t, n == faster ? 1e-3 : 4e-3);
        }
        tuner_end(&t);
        char name[128];
        snprintf(name, sizeof name, "thread tuner, %d thread%s 4x faster, starting on %d: <= 12 of 512 units on the slower count",
                 faster, faster > 1 ? "s" : "", first);
        check(slow_units <= 12 && omp_get_max_threads() == 2, name, "%d units, %d threads after", slow_units,
              omp_get_max_threads());
    }
    // crowded (another process holds a core) for the first 200 units, 2 threads 4x
    // faster all along (times alone would probe them): no probe while crowded, and
    // the tuner moves to 2 threads within a gap of the load going (then probes 1
    // thread as in the cases above: <= 12 units)
    ThreadTuner t;
    crowded_calls = 0, crowded_units = 1000000;
    tuner_init(&t, 2, crowded_for_a_while);
    int on_max = 0, on_one = 0;
    for (int i = 0; i < 512; i++) {
        if (i == 200) crowded_units = crowded_calls; // the load goes
        int n = tuner_next(&t);
        on_max += n == 2 && i < 200;
        on_one += n == 1 && i >= 200;
        tuner_done(&t, n == 2 ? 1e-3 : 4e-3);
    }
    tuner_end(&t);
    check(on_max == 0 && on_one <= 16 + 12,
          "thread tuner: no probe of 2 threads while crowded, 2 threads within a gap of the load going",
          "%d units on 2 threads while crowded, %d units on 1 thread after", on_max, on_one);
    // an interrupted unit (50x its time, every 40 units) on the faster count, 1.3x apart
    tuner_init(&t, 2, NULL);
    int slow_units = 0;
    for (int i = 0; i < 512; i++) {
        int n = tuner_next(&t);
        slow_units += n == 1;
        tuner_done(&t, n == 1 ? 1.3e-3 : i % 40 == 39 ? 50e-3 : 1e-3);
    }
    tuner_end(&t);
    check(slow_units <= 20, "thread tuner: an interrupted unit does not hand the run to the slower count",
          "%d of 512 units on the slower count", slow_units);
    // one thread 1.7x slower (an idle decode's): a probe ends after its first unit
    // (TUNER_ABORT 1.5), probes at 16, 48, 112, 240, 496 units: 5 units, not 15
    tuner_init(&t, 2, NULL);
    slow_units = 0;
    for (int i = 0; i < 512; i++) {
        int n = tuner_next(&t);
        slow_units += n == 1;
        tuner_done(&t, n == 1 ? 1.7e-3 : 1e-3);
    }
    tuner_end(&t);
    check(slow_units <= 5, "thread tuner: a probe of a count 1.7x slower ends after one unit",
          "%d of 512 units on the slower count", slow_units);
    ThreadTuner off;
    omp_set_num_threads(3);
    tuner_init(&off, 1, NULL);
    tuner_done(&off, 1.0);
    int n = tuner_next(&off);
    tuner_end(&off);
    check(n == 1 && omp_get_max_threads() == 3, "thread tuner off (--threads N): leaves the count alone",
          "count %d", omp_get_max_threads());
    omp_set_num_threads(saved);
}

// f32 -> f16 (the --f16 exports) at the edges: ties to even, the largest
// half, overflow, subnormals and their ties, signed zero, inf, NaN; and
// GPT-2's byte alphabet (space is U+0120, 'A' itself, 0xAD is U+0143).
static void test_export_encodings(void) {
    const struct {
        float x;
        uint16_t h;
    } cases[] = {{1.0f, 0x3C00}, {-2.0f, 0xC000}, {1.0f + 0x1p-11f, 0x3C00}, {1.0f + 0x3p-11f, 0x3C02},
                 {65504.0f, 0x7BFF}, {65519.0f, 0x7BFF}, {65520.0f, 0x7C00}, {1e10f, 0x7C00},
                 {0x1p-14f, 0x0400}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000}, {0x3p-25f, 0x0002},
                 {0x1.8p-24f, 0x0002}, {0x1p-26f, 0x0000}, {-0.0f, 0x8000}, {INFINITY, 0x7C00},
                 {-INFINITY, 0xFC00}};
    int bad = -1;
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]) && bad < 0; i++)
        if (f32_to_f16(cases[i].x) != cases[i].h) bad = i;
    uint16_t nan = f32_to_f16(NAN);
    check(bad < 0 && (nan & 0x7C00) == 0x7C00 && (nan & 0x3FF), "f32_to_f16: rounding, overflow, subnormals, inf, NaN",
          "case %d: %a -> 0x%04x", bad, bad >= 0 ? (double)cases[bad].x : 0.0, bad >= 0 ? f32_to_f16(cases[bad].x) : nan);
    // the --f16 writers: the largest half passes, a finite value that rounds to inf is refused by name
    const float xs[] = {65519.0f, -65520.0f, INFINITY};
    uint16_t hs[3];
    Error e = {{0}};
    int ok1 = !f16_convert(hs, xs, 1, "t", "p", &e) && hs[0] == 0x7BFF, rc2 = f16_convert(hs, xs, 3, "t", "p", &e);
    check(ok1 && rc2 && strstr(e.msg, "p: --f16: tensor t holds -65520 (index 1), beyond float16's range (65504)"),
          "f16_convert: 65519 -> 0x7bff; -65520 refused, naming the tensor and index", "%s", e.msg);
    const unsigned char in[] = {' ', 'A', 0xAD, 0x00, 0xFF, '\n'};
    char out[2 * sizeof in];
    size_t n = byte_level_text(in, sizeof in, out);
    // U+0120, 'A', U+0143, U+0100, U+00FF, U+010A
    const char want[] = "\xC4\xA0" "A" "\xC5\x83" "\xC4\x80" "\xC3\xBF" "\xC4\x8A";
    check(n == sizeof want - 1 && !memcmp(out, want, n), "byte_level_text: GPT-2's bytes_to_unicode", "got %zu bytes", n);
}

// ----------------------------------------------------------------------------
// bf16 rounding (src/bf16.h) against its definition in double arithmetic: of
// the two bf16 values around x (x's bits cut to 16, and one bf16 step above;
// past the largest bf16, 2^128, which is inf), the nearer, the even one on a
// tie; NaN stays a NaN of the same sign. Every 251st float and 65536 floats
// either side of the edges (0, the smallest normal, 1, the largest float),
// through the scalar and both array functions.

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint16_t bf16_by_definition(uint32_t u) {
    float x = float_of(u);
    if (isnan(x)) return 0; // not compared
    if (!(u & 0xffffu)) return (uint16_t)(u >> 16);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double dlo = fabs((double)x - float_of(lo));
    double vhi = (hi & 0x7fffffffu) == 0x7f800000u ? copysign(0x1p128, x) : (double)float_of(hi);
    double dhi = fabs(vhi - x);
    return (uint16_t)((dlo < dhi || (dlo == dhi && !((lo >> 16) & 1)) ? lo : hi) >> 16);
}

static void bf16_compare(uint32_t u, long *bad, uint32_t *first) {
    float x = float_of(u), y, r;
    uint16_t h = bf16_from_float(x), ha;
    bf16_from_floats(&ha, &x, 1), bf16_round_floats(&r, &x, 1);
    y = bf16_to_float(h);
    int ok = isnan(x) ? isnan(y) && signbit(y) == signbit(x) && (h & 0x40) : h == bf16_by_definition(u);
    ok = ok && ha == h && !memcmp(&r, &y, sizeof r);
    if (!ok && !(*bad)++) *first = u;
}

static void test_bf16_rounding(void) {
    long bad = 0, n = 0;
    uint32_t first = 0;
    for (uint64_t u = 0; u <= 0xffffffffu; u += 251, n++) bf16_compare((uint32_t)u, &bad, &first);
    const uint32_t edges[] = {0x00000000u, 0x00800000u, 0x3f800000u, 0x7f7fffffu};
    for (int e = 0; e < 4; e++)
        for (int sign = 0; sign < 2; sign++)
            for (int64_t d = -65536; d <= 65536; d++, n++) {
                int64_t v = (int64_t)edges[e] + d;
                if (v >= 0 && v <= 0x7fffffff) bf16_compare((uint32_t)v | (sign ? 0x80000000u : 0), &bad, &first);
            }
    check(!bad, "bf16 rounding (bf16_from_float, bf16_from_floats, bf16_round_floats): to nearest, ties to even, "
          "NaN kept, overflow to inf", "%ld of %ld floats differ from the definition, first 0x%08x", bad, n, first);
    // ties by hand: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7, 1 + 3 2^-8 between 1 + 2^-7 and 1 + 2^-6
    check(bf16_round(1.0f + 0x1p-8f) == 1.0f && bf16_round(1.0f + 0x3p-8f) == 1.0f + 0x1p-6f &&
          bf16_round(-1.0f - 0x3p-8f) == -1.0f - 0x1p-6f && bf16_round(FLT_MAX) == INFINITY &&
          bf16_round(1.0f + 0x1.01p-8f) == 1.0f + 0x1p-7f,
          "bf16 rounding: the ties 1 + 2^-8 -> 1, 1 + 3 2^-8 -> 1 + 2^-6 (even), just past a tie rounds up, "
          "FLT_MAX -> inf", "%a %a", (double)bf16_round(1.0f + 0x1p-8f), (double)bf16_round(1.0f + 0x3p-8f));
}

// ----------------------------------------------------------------------------
// one product (mm_gemm) of every backend this build has, in fp32 and in bf16
// (natively where the CPU has AVX512_BF16, and emulated as on a CPU without
// it), against float64 sums of op(A) op(B): with the operands as the precision
// rounds them ("rounded"), and as given ("exact"). A float32 result of K
// terms, scaled by alpha and added to beta C0, passes through at most K + 2
// float32 roundings (unit 2^-24) per term whatever the order of the sum (a
// product of two bf16 values is exact in float32), so with
// gamma(n) = n 2^-24 / (1 - n 2^-24) and S = |alpha| sum_k |a_k b_k| + |beta C0|:
//   |C - rounded| <= gamma(K + 2) S
// A bf16 operand errs by at most u = 2^-8 of it, a term by at most 2u + u^2, so
//   |C - exact|   <= (2u + u^2) |alpha| sum_k |a_k b_k| + gamma(K + 2) S
// and in bf16 some element must lie beyond gamma(K + 2) S: the rounding happened.
// Shapes 3x2x5, 19x33x70 and 48x40x288, every transpose, (alpha, beta) (1, 0)
// and (0.5, 1), leading dimensions wider than the rows.

static double gamma_n(int n) { return n * 0x1p-24 / (1.0 - n * 0x1p-24); }

typedef struct {
    double rounded, exact; // the worst |C - ref| / bound of each
    double beyond_fp32;    // the largest |C - exact| / (gamma(K + 2) S)
} GemmErr;

// One product of mm (NULL: OpenBLAS fp32) against its bounds; err accumulates the worst.
static void gemm_case(Matmul *mm, int ta, int tb, int M, int N, int K, float alpha, float beta, Rng *rng,
                      GemmErr *err) {
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + 3, ldb = bc + 5, ldc = N + 2;
    float *A = alloc_floats((size_t)ar * lda), *B = alloc_floats((size_t)br * ldb), *C = alloc_floats((size_t)M * ldc);
    float *C0 = alloc_floats((size_t)M * ldc);
    fill_normal(A, (size_t)ar * lda, rng), fill_normal(B, (size_t)br * ldb, rng), fill_normal(C0, (size_t)M * ldc, rng);
    memcpy(C, C0, (size_t)M * ldc * sizeof(float));
    mm_gemm(mm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int bf = mm && mm->precision == PREC_BF16;
    double u = bf ? BF16_U : 0.0, g = gamma_n(K + 2);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double rounded = 0.0, exact = 0.0, s = 0.0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                float b = tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
                float ra = bf ? bf16_round(a) : a, rb = bf ? bf16_round(b) : b;
                rounded += (double)ra * rb, exact += (double)a * b, s += fabs((double)a * b);
            }
            double c0 = C0[(size_t)m * ldc + n], c = C[(size_t)m * ldc + n];
            double S = fabs(alpha) * s * (1.0 + 2 * u + u * u) + fabs(beta * c0);
            rounded = alpha * rounded + beta * c0, exact = alpha * exact + beta * c0;
            err->rounded = fmax(err->rounded, fabs(c - rounded) / (g * S));
            err->exact = fmax(err->exact, fabs(c - exact) / ((2 * u + u * u) * fabs(alpha) * s + g * S));
            err->beyond_fp32 = fmax(err->beyond_fp32, fabs(c - exact) / (g * S));
        }
    free(A), free(B), free(C), free(C0);
}

static void test_mm_gemm_one(Matmul *mm, const char *desc) {
    static const int shapes[][3] = {{3, 2, 5}, {19, 33, 70}, {48, 40, 288}};
    GemmErr e = {0};
    Rng rng = rng_make(27, 0);
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < 4; t++)
            for (int ab = 0; ab < 2; ab++)
                gemm_case(mm, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], ab ? 0.5f : 1.0f,
                          ab ? 1.0f : 0.0f, &rng, &e);
    int bf = mm && mm->precision == PREC_BF16;
    char name[256];
    snprintf(name, sizeof name, "mm_gemm %s: 3 shapes x 4 transposes x 2 (alpha, beta) within float32's "
             "accumulation bound of the float64 product%s", desc, bf ? " of the bf16-rounded operands, within 2u "
             "of the exact one and beyond float32's bound of it (the rounding happened)" : "");
    check(e.rounded <= 1.0 && e.exact <= 1.0 && (!bf || e.beyond_fp32 > 1.0), name,
          "worst error / bound: rounded %.3g, exact %.3g; beyond float32's bound by %.3g", e.rounded, e.exact,
          e.beyond_fp32);
    printf("# mm_gemm %s: worst error / bound: %.3g (rounded operands), %.3g (exact)\n", desc, e.rounded, e.exact);
}

static void test_mm_gemm(void) {
    test_mm_gemm_one(NULL, "NULL (OpenBLAS fp32)");
    for (int be = 0; be < N_MM_BACKENDS; be++)
        for (int pr = 0; pr < N_PRECISIONS; pr++) {
            Matmul mm;
            char what[96], desc[64];
            snprintf(what, sizeof what, "mm_gemm %s %s", matmul_backend_name(be), precision_name(pr));
            if (mm_open(&mm, be, pr, what)) continue;
            test_mm_gemm_one(&mm, matmul_describe(&mm, desc, sizeof desc));
            if (pr == PREC_BF16 && !mm.emulated) { // as matmul_init sets it up on a CPU without AVX512_BF16
                mm.emulated = 1;
                snprintf(desc, sizeof desc, "%s bf16 as on a CPU without AVX512_BF16", matmul_backend_name(be));
                test_mm_gemm_one(&mm, desc);
            }
            matmul_free(&mm);
        }
}

// What a run says of its choice (matmul_describe, matmul_note): OpenBLAS's bf16
// is emulated, with its note; oneDNN's bf16 is native where the CPU has
// AVX512_BF16 (no note), else emulated with the CPU's note, which the last
// case forces (item 6 of issue 27: a CPU without native bf16 says so).
static void test_matmul_notes(void) {
    Matmul mm;
    char d[64];
    if (!mm_open(&mm, MM_OPENBLAS, PREC_BF16, "matmul notes: openblas bf16")) {
        const char *note = matmul_note(&mm);
        check(mm.emulated && note && strstr(note, "bf16 is emulated on this backend") &&
              !strcmp(matmul_describe(&mm, d, sizeof d), "openblas bf16 (emulated)"),
              "openblas bf16: emulated, described so, with the backend's note", "%s; %s", d, note ? note : "no note");
        matmul_free(&mm);
    }
    if (!mm_open(&mm, MM_OPENBLAS, PREC_FP32, "matmul notes: openblas fp32")) {
        check(!mm.emulated && !matmul_note(&mm) && !strcmp(matmul_describe(&mm, d, sizeof d), "openblas fp32"),
              "openblas fp32: no note", "%s", d);
        matmul_free(&mm);
    }
    if (mm_open(&mm, MM_ONEDNN, PREC_BF16, "matmul notes: onednn bf16")) return;
    const char *note = matmul_note(&mm);
    check(mm.emulated == !cpu_has_bf16() && (!mm.emulated) == !note, "onednn bf16: native exactly when the CPU has "
          "AVX512_BF16, a note otherwise", "emulated %d, cpu_has_bf16 %d, note %s", mm.emulated, cpu_has_bf16(),
          note ? note : "none");
    mm.emulated = 1;
    note = matmul_note(&mm);
    check(note && strstr(note, "this CPU has no bf16 dot product (AVX512_BF16): bf16 is emulated") &&
              !strcmp(matmul_describe(&mm, d, sizeof d), "onednn bf16 (emulated)"),
          "onednn bf16 on a CPU without AVX512_BF16: emulated, described so, with the CPU's note", "%s; %s", d,
          note ? note : "no note");
    matmul_free(&mm);
}

// The enum-indexed tables have designated rows ([T_WTE] = {...}); a row left
// out in the middle is zero-filled without a word from the compiler (their
// _Static_asserts catch one missing at the end): every row has its name and functions.
static void test_tables(void) {
    int bad = -1;
    for (int t = 0; t < N_TENSORS && bad < 0; t++)
        if (!tensor_name(t)) bad = t;
    check(bad < 0, "TENSORS: a row per T_ tensor (a name)", "tensor %d has no row", bad);
    bad = -1;
    for (int k = 0; k < N_MLPS && bad < 0; k++) {
        const MlpKind *x = &MLP_KINDS[k];
        if (!x->name || !x->help || !x->default_hidden || !x->forward || !x->backward) bad = k;
    }
    check(bad < 0, "MLP_KINDS: a row per MLP_ kind (name, help, functions)", "kind %d has no row", bad);
    bad = -1;
    for (int p = 0; p < N_NORM_PARAMS && bad < 0; p++)
        if (!NORM_PARAMS[p].suffix) bad = p;
    check(bad < 0, "NORM_PARAMS: a row per NP_ parameter (a suffix)", "parameter %d has no row", bad);
    bad = -1;
    for (int k = 0; k < N_NORMS && bad < 0; k++) {
        const NormKind *x = &NORM_KINDS[k];
        if (!x->name || !x->help || !x->forward || !x->backward || !x->scratch_floats) bad = k;
    }
    check(bad < 0, "NORM_KINDS: a row per NORM_ kind (name, help, functions)", "kind %d has no row", bad);
    bad = -1;
    for (int f = 0; f < N_EXPORT_FORMATS && bad < 0; f++) {
        const ExportTarget *t = &EXPORT_TARGETS[f];
        if (!t->name || !t->reader || !t->target || !t->write || export_format_parse(t->name) != f) bad = f;
    }
    check(bad < 0, "EXPORT_TARGETS: a row per ExportFormat (name, reader, target, writer), names distinct",
          "format %d has no row or another's name", bad);
    bad = -1;
    for (int i = 0; i < N_EXPORT_FEATURES && bad < 0; i++)
        if (!EXPORT_FEATURES[i]) bad = i;
    check(bad < 0, "EXPORT_FEATURES: a row per FEAT_ feature", "feature %d has no row", bad);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "test/ref", *data_dir = argc > 2 ? argv[2] : "../shared/data";
    test_tables();
    test_bf16_rounding();
    test_mm_gemm();
    test_matmul_notes();
    test_reference_all(dir);
    test_dyt_finite_differences();
    test_norm_kinds();
    test_norm_kinds_threads();
    test_tanh_erf();
    test_attention();
    test_attention_one_query();
    test_exp_approx();
    test_norm_backward_chunks();
    test_sampler();
    test_options();
    test_settings_table();
    test_window();
    test_schedule();
    test_adamw_groups();
    test_expf_vec();
    test_swiglu();
    test_gelu();
    test_select_kth();
    test_batch_rows();
    test_decode_steps();
    test_bf16_gemm();
    test_forward_unstored();
    test_thread_tuner();
    if (!mkdtemp(TMP_DIR)) {
        check(0, "llama2c tests: a temporary folder", "mkdtemp failed");
        return 1;
    }
    test_llama2c_logits(dir, data_dir);
    char path[1024];
    const char *ours[] = {"rms_untied", "rms_tied"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.model.bin", dir, ours[i]);
        test_llama2c_roundtrip(path, ours[i]);
    }
    snprintf(path, sizeof path, "%s/l2c_tied.ak42.bin", dir);
    test_llama2c_roundtrip(path, "ak42 -> legacy");
    snprintf(path, sizeof path, "%s/stories260K.bin", data_dir);
    if (file_exists(path)) test_llama2c_roundtrip(path, "stories260K");
    test_llama2c_export_refusals(dir);
    test_llama2c_malformed(dir);
    test_sptok_llama(data_dir);
    test_sptok_bytes();
    test_sptok_malformed();
    test_bpe_small();
    test_bpe_text(data_dir);
    test_bpe_model_file();
    test_bf16_model_file();
    test_data_sources();
    test_export_encodings();
    rmdir(TMP_DIR);
    printf("# test_core: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}
