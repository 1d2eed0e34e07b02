// bfloat16: the top 16 bits of a float32 (sign, 8 exponent bits, 7 mantissa
// bits). Rounding is to nearest, ties to even (PyTorch's .bfloat16() and the
// CPU's vcvtne2ps2bf16); a NaN stays a (quiet) NaN. A product of two bf16
// values is exact in float32 (8 + 8 significant bits <= 24), which is why an
// fp32 sgemm on operands rounded to bf16 computes the bf16 product exactly
// up to the order of its additions.
#ifndef BF16_H
#define BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // NaN: quiet, sign kept
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// x rounded to the nearest bf16, as a float
static inline float bf16_round(float x) { return bf16_to_float(bf16_from_float(x)); }

// Whole arrays (vectorised by the compiler); on the calling thread.
void bf16_from_floats(uint16_t *dst, const float *src, size_t n);
void bf16_to_floats(float *dst, const uint16_t *src, size_t n);
void bf16_round_floats(float *dst, const float *src, size_t n);
// dst = src rounded, as bf16_from_floats; returns the index of the first
// finite value that became inf (beyond bf16's largest, 3.3895e38: from
// 3.3961e38 on, which rounds up), or n when there is none.
size_t bf16_convert(uint16_t *dst, const float *src, size_t n);
// Whether h is inf or NaN (exponent bits all ones).
static inline int bf16_nonfinite(uint16_t h) { return (h & 0x7f80u) == 0x7f80u; }

#endif
