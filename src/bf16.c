#include "bf16.h"

#include <math.h>

void bf16_from_floats(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_from_float(src[i]);
}

void bf16_to_floats(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_to_float(src[i]);
}

void bf16_round_floats(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}

size_t bf16_convert(uint16_t *dst, const float *src, size_t n) {
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        dst[i] = bf16_from_float(src[i]);
        if (bad == n && bf16_nonfinite(dst[i]) && isfinite(src[i])) bad = i;
    }
    return bad;
}
