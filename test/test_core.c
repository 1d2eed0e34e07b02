// Unit and reference tests of the model code. Prints one line per check,
// "ok - NAME" or "FAIL - NAME: why"; test/run_tests.sh counts them.
//
//   build/test_core [test/ref]
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../dyt.h"
#include "../src/data.h"
#include "../src/layers.h"
#include "../src/model.h"
#include "../src/modelio.h"
#include "../src/optim.h"
#include "../src/rng.h"
#include "../src/sampler.h"

static int n_fail = 0;

static void check(int ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(int ok, const char *name, const char *fmt, ...) {
    if (ok) {
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

static void test_reference_case(const char *dir, const char *case_name) {
    char path[1024], name[160];
    Error err;
    Model m;
    snprintf(path, sizeof path, "%s/%s.model.bin", dir, case_name);
    snprintf(name, sizeof name, "ref %s: load", case_name);
    if (model_load(&m, path, &err)) {
        check(0, name, "%s", err.msg);
        return;
    }
    Ref r;
    snprintf(path, sizeof path, "%s/%s.ref.bin", dir, case_name);
    if (read_ref(path, m.n_params, m.cfg.vocab_size, &r)) {
        check(0, name, "%s: unreadable or wrong size", path);
        model_free(&m);
        return;
    }
    check(1, name, " ");
    int B = r.B, T = r.T, V = m.cfg.vocab_size;
    int *in = malloc(sizeof(int) * B * T), *tg = malloc(sizeof(int) * B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            in[b * T + t] = r.tokens[b * (T + 1) + t];
            tg[b * T + t] = r.tokens[b * (T + 1) + t + 1];
        }
    Acts a;
    model_alloc_grads(&m, &err);
    acts_create(&a, &m, B, T, T, 1, &err);
    float *m1 = alloc_floats(m.n_params), *m2 = alloc_floats(m.n_params);
    double worst = 0.0;

    // logits, loss and every gradient at the initial weights
    model_zero_grad(&m);
    model_forward(&m, &a, in, T, 0, 1, &err);
    double e = rel_err(a.logits, r.logits, (size_t)B * T * V);
    worst = e > worst ? e : worst;
    snprintf(name, sizeof name, "ref %s: logits", case_name);
    check(e <= REL_TOL, name, "rel err %.3g", e);
    double loss = model_backward(&m, &a, in, tg, 1.0f);
    snprintf(name, sizeof name, "ref %s: loss", case_name);
    check(fabs(loss - r.loss) <= REL_TOL * fabs(r.loss), name, "%.7f vs %.7f", loss, r.loss);
    check_tensors(&m, m.grads, r.grads, "grad", case_name, &worst);

    // n_steps of clip + AdamW on the same batch
    AdamW opt = {r.lr, r.beta1, r.beta2, r.eps, r.wd};
    double worst_step_loss = 0.0;
    for (int s = 0; s < r.n_steps; s++) {
        model_zero_grad(&m);
        model_forward(&m, &a, in, T, 0, 1, &err);
        double l = model_backward(&m, &a, in, tg, 1.0f);
        double d = fabs(l - r.step_losses[s]) / fabs(r.step_losses[s]);
        worst_step_loss = d > worst_step_loss ? d : worst_step_loss;
        grad_clip(m.grads, m.n_params, r.clip);
        adamw_step(&m, m1, m2, s + 1, &opt);
    }
    snprintf(name, sizeof name, "ref %s: losses of %d AdamW steps", case_name, r.n_steps);
    check(worst_step_loss <= REL_TOL, name, "rel err %.3g", worst_step_loss);
    check_tensors(&m, m.params, r.params_after, "after AdamW", case_name, &worst);
    printf("# ref %s: worst relative error over logits, grads, params %.3g\n", case_name, worst);

    free(in), free(tg), free(m1), free(m2);
    free(r.tokens), free(r.logits), free(r.grads), free(r.step_losses), free(r.params_after);
    acts_free(&a);
    model_free(&m);
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
    double partial[64];
    dyt_backward(dx, &da, dg, db, w, x, alpha, g, N, C, partial);
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
    // dyt_tanh against double tanh over [-12, 12], dense near 0 and the branch point
    double worst_abs = 0.0, worst_rel = 0.0;
    for (int i = -240000; i <= 240000; i++) {
        float v = i * 5e-5f;
        double ref = tanh((double)v), got = dyt_tanh(v);
        worst_abs = fmax(worst_abs, fabs(got - ref));
        if (fabs(ref) > 1e-30) worst_rel = fmax(worst_rel, fabs(got - ref) / fabs(ref));
    }
    check(worst_abs < 2e-7 && worst_rel < 2e-6, "dyt_tanh: |error| < 2e-7 absolute, < 2e-6 relative",
          "abs %.3g rel %.3g", worst_abs, worst_rel);
    check(dyt_tanh(0.0f) == 0.0f && dyt_tanh(100.0f) == 1.0f && dyt_tanh(-100.0f) == -1.0f &&
          dyt_tanh(INFINITY) == 1.0f, "dyt_tanh: 0, saturation and infinity", "wrong limits");
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
// learning-rate schedule

static void test_schedule(void) {
    float lr = 1e-3f;
    check(fabsf(lr_at(0, 100, 10, lr) - 1e-4f) < 1e-9f, "lr: warmup starts at lr/warmup", "%g", lr_at(0, 100, 10, lr));
    check(lr_at(9, 100, 10, lr) == lr, "lr: warmup reaches lr", "%g", lr_at(9, 100, 10, lr));
    check(fabsf(lr_at(10, 100, 10, lr) - lr) < 1e-9f, "lr: cosine starts at lr", "%g", lr_at(10, 100, 10, lr));
    check(fabsf(lr_at(99, 100, 10, lr) - 1e-4f) < 1e-9f, "lr: cosine ends at lr/10", "%g", lr_at(99, 100, 10, lr));
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "test/ref";
    const char *cases[] = {"rms_untied", "rms_tied", "dyt_beta_untied", "dyt_nobeta_tied"};
    for (int i = 0; i < 4; i++) test_reference_case(dir, cases[i]);
    test_dyt_finite_differences();
    test_sampler();
    test_schedule();
    return n_fail ? 1 : 0;
}
