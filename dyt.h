// Dynamic Tanh (DyT), "Transformers without Normalization" (Zhu et al., 2025):
//   DyT(x) = gamma * tanh(alpha * x) + beta
// alpha is one learnable scalar per layer, gamma and beta are per-channel
// vectors (beta optional: the authors' LLaMA code drops it). The code calls
// gamma `gain`, as it calls every norm kind's per-channel scale.
//
// Backward functions accumulate (+=) into every gradient they are given, so
// gradient accumulation and shared inputs work without extra copies.
#ifndef DYT_H
#define DYT_H

#include <stddef.h>

// out (N,C), inp (N,C), gain (C), beta (C) or NULL
void dyt_forward(float *out, const float *inp, float alpha, const float *gain,
                 const float *beta, size_t N, int C);

// dinp (N,C) +=, dalpha (1) +=, dgain (C) +=, dbeta (C) += (or NULL),
// dout (N,C), inp (N,C). `scratch` holds dyt_scratch_floats(N, C) floats.
void dyt_backward(float *dinp, float *dalpha, float *dgain, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gain,
                  size_t N, int C, float *scratch);
size_t dyt_scratch_floats(size_t N, int C);

// tanh: tanh_approx (src/vmath.h), a rational function that compilers
// vectorise (glibc's tanhf is a scalar call and took most of DyT's cost).
// The embedding scale DyT models use is a layer of src/layers.h (embscale_*).

#endif
