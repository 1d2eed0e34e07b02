// DyT's public entry points (dyt.h): the layer itself is one of the norm
// kinds in src/norms.c, beside the others, and these call it.
#include "dyt.h"

#include "src/norms.h"

void dyt_forward(float *out, const float *inp, float alpha, const float *gain,
                 const float *beta, size_t N, int C) {
    dyt_layer_forward(out, inp, alpha, gain, beta, N, C);
}

void dyt_backward(float *dinp, float *dalpha, float *dgain, float *dbeta,
                  const float *dout, const float *inp, float alpha, const float *gain,
                  size_t N, int C, float *scratch) {
    dyt_layer_backward(dinp, dalpha, dgain, dbeta, dout, inp, alpha, gain, N, C, scratch);
}

size_t dyt_scratch_floats(size_t N, int C) { return norm_alpha_scratch_floats(N, C); }
