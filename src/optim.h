// AdamW with decoupled weight decay (PyTorch's torch.optim.AdamW, exactly),
// global gradient-norm clipping (torch.nn.utils.clip_grad_norm_), and the
// learning-rate schedule: linear warmup, then cosine decay to lr/10.
#ifndef OPTIM_H
#define OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} AdamW;

// sqrt(sum g^2), summed in a fixed order (deterministic for any thread count).
double grad_norm(const float *g, size_t n);
// Scales g by clip / (norm + 1e-6) when that is < 1; returns the norm before clipping.
double grad_clip(float *g, size_t n, float clip);
// One update of every parameter; t = 1 for the first step. Weight decay only
// on the tensors tensor_decays() names.
void adamw_step(Model *m, float *mom1, float *mom2, int64_t t, const AdamW *opt);
// step counts from 0; total steps, warmup steps.
float lr_at(int64_t step, int64_t total, int64_t warmup, float lr_max);

#endif
