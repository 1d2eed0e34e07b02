// exp in float32 that compilers vectorise: glibc's expf is a scalar call, and
// the attention softmax and SwiGLU's sigmoid call it once per element.
#ifndef VMATH_H
#define VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

// exp(z) for z in [-87.3, 88] (callers clamp): exp(z) = 2^n exp(r) with
// n = round(z / ln2), |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial
// (truncation < 6e-9). Shared by exp_approx and DyT's tanh (dyt.h).
static inline float exp_reduced(float z) {
    // n = round(z / ln2) by the 1.5 * 2^23 trick (exact for |n| < 2^22)
    float n = (z * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = (z - n * 0.693145752f) - n * 1.42860677e-6f; // ln2 split hi + lo (Cody-Waite)
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)n + 127) << 23; // 2^n, n in [-126, 127]
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// exp(x), relative error about 2e-7 (checked in test_core) on [-87.3, 88].
// Below -87.3 it gives 0 (no denormals), above 88 inf (the true value is
// > 1.6e38 there: softmax never gets there, and a sigmoid's 1 / (1 + e) is
// < 1e-38 either way); NaN stays NaN.
static inline float exp_approx(float x) {
    float xc = x > -87.3f ? x : -87.3f; // selects, not fminf/fmaxf: they vectorise
    xc = xc < 88.0f ? xc : 88.0f;
    float e = exp_reduced(xc);
    e = x < -87.3f ? 0.0f : e;
    e = x > 88.0f ? HUGE_VALF : e;
    return x == x ? e : x;
}

#endif
