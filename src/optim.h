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
    // parameter groups (--norm-decay, --scalar-lr-mult): all_decay puts weight
    // decay on every tensor, as the DyT authors' LLaMA code does (one group);
    // scalar_lr_mult scales the learning rate of the scalar tensors
    // (tensor_is_scalar) and with it their decay, as torch.optim.AdamW does for a group
    int all_decay;
    float scalar_lr_mult;
} AdamW;

// sqrt(sum g^2), summed in a fixed order (deterministic for any thread count).
double grad_norm(const float *g, size_t n);
// Scales g by clip / (norm + 1e-6) when that is < 1; returns the norm before clipping.
double grad_clip(float *g, size_t n, float clip);
// One update of every parameter; t = 1 for the first step. Weight decay on
// the tensors tensor_decays() names (on all with all_decay); the scalar
// tensors at lr * scalar_lr_mult.
void adamw_step(Model *m, float *mom1, float *mom2, int64_t t, const AdamW *opt);
// step counts from 0; total steps, warmup steps.
float lr_at(int64_t step, int64_t total, int64_t warmup, float lr_max);

#endif
