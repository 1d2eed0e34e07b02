#include "optim.h"

#include <math.h>

#include "common.h"

double grad_norm(const float *g, size_t n) { return sqrt(dot_fixed_order(g, g, n)); }

double grad_clip(float *g, size_t n, float clip) {
    double norm = grad_norm(g, n);
    double coef = clip / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
    return norm;
}

void adamw_step(Model *m, float *mom1, float *mom2, int64_t t, const AdamW *opt) {
    double bc1 = 1.0 - pow(opt->beta1, (double)t), bc2 = 1.0 - pow(opt->beta2, (double)t);
    float bc2_sqrt = (float)sqrt(bc2);
    float b1 = opt->beta1, b2 = opt->beta2, eps = opt->eps;
    size_t off = 0;
    for (int tid = 0; tid < N_TENSORS; tid++) {
        size_t n = m->sizes[tid];
        // the tensor's group: its learning rate and whether it decays
        float lr = tensor_is_scalar(tid) ? opt->lr * opt->scalar_lr_mult : opt->lr;
        float decay = opt->all_decay || tensor_decays(tid) ? 1.0f - lr * opt->weight_decay : 1.0f;
        float step_size = (float)(lr / bc1);
        float *p = m->params + off, *g = m->grads + off, *mm = mom1 + off, *vv = mom2 + off;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            p[i] *= decay;
            mm[i] += (1.0f - b1) * (g[i] - mm[i]); // PyTorch's lerp form
            vv[i] = b2 * vv[i] + (1.0f - b2) * g[i] * g[i];
            p[i] -= step_size * mm[i] / (sqrtf(vv[i]) / bc2_sqrt + eps);
        }
        off += n;
    }
}

float lr_at(int64_t step, int64_t total, int64_t warmup, float lr_max) {
    if (step < warmup) return lr_max * (float)(step + 1) / (float)warmup;
    int64_t span = total - warmup;
    double progress = span > 1 ? (double)(step - warmup) / (double)(span - 1) : 1.0;
    if (progress > 1.0) progress = 1.0;
    double lr_min = 0.1 * lr_max;
    return (float)(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + cos(3.141592653589793 * progress)));
}
