// Dynamic Tanh (DyT), "Transformers without Normalization" (Zhu et al., 2025):
//   DyT(x) = gamma * tanh(alpha * x) + beta
// alpha is one learnable scalar per layer, gamma and beta are per-channel
// vectors (beta optional: the authors' LLaMA code drops it). Also the
// learnable scalar that multiplies the embedding output in DyT models.
//
// Backward functions accumulate (+=) into every gradient they are given, so
// gradient accumulation and shared inputs work without extra copies.
#ifndef DYT_H
#define DYT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "src/vmath.h"

// out (N,C), inp (N,C), gamma (C), beta (C) or NULL
void dyt_forward(float *out, const float *inp, float alpha, const float *gamma,
                 const float *beta, size_t N, int C);

// dinp (N,C) +=, dalpha (1) +=, dgamma (C) +=, dbeta (C) += (or NULL),
// dout (N,C), inp (N,C). `scratch` holds dyt_scratch_floats(N, C) floats.
void dyt_backward(float *dinp, float *dalpha, float *dgamma, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gamma,
                  size_t N, int C, float *scratch);
size_t dyt_scratch_floats(size_t N, int C);

// tanh: tanh_approx (src/vmath.h), a rational function that compilers
// vectorise (glibc's tanhf is a scalar call and took most of DyT's cost).

// Embedding scale: out (n) = scale * inp (n); in place allowed.
void embscale_forward(float *out, const float *inp, float scale, size_t n);
// dinp (n) = scale * dout (overwrites; may alias dout), dscale (1) += sum(dout * inp)
void embscale_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                       float scale, size_t n);

#endif
