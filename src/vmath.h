// exp, tanh and erf in float32 that compilers vectorise: glibc's expf, tanhf
// and erff are scalar calls, and the attention softmax, SwiGLU's sigmoid and
// the element-wise norms (DyT, Derf) call them once per element. The softmax
// uses exp_approx (its own bits, pinned by the references), SwiGLU expf_vec
// (libm's bits).
#ifndef VMATH_H
#define VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

// a * b + c: one fused multiply-add where the target has it (-march=native
// on x86-64 since Haswell), else a multiply and an add. The tanh, erf and
// erf' polynomials use it (a third fewer operations); exp_approx keeps its
// unfused bits (the softmax's).
#ifdef __FMA__
#define VM_MADD(a, b, c) fmaf(a, b, c)
#else
#define VM_MADD(a, b, c) ((a) * (b) + (c))
#endif

// Where the tanh and erf fits below first reach 1 (found by scanning every
// float; the rounding differs with and without fused multiply-adds, and so
// does the point): each clamps its argument there, so beyond it returns +-1
// exactly, and below it never exceeds 1 (the unclamped fits overshoot by up
// to 6e-5). test_core checks every float around both points.
#ifdef __FMA__
#define TANH_SAT 7.93219709f
#define ERF_SAT 3.61186337f
#else
#define TANH_SAT 7.83627033f
#define ERF_SAT 3.57142091f
#endif

// 2^n for an integral float n in [-126, 127], built from its exponent bits
static inline float pow2_int(float n) {
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

// round(z) for |z| < 2^22, by the 1.5 * 2^23 trick
static inline float round_small(float z) { return (z + 12582912.0f) - 12582912.0f; }

// exp(z) for z in [-87.3, 88] (callers clamp): exp(z) = 2^n exp(r) with
// n = round(z / ln2), |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial
// (truncation < 6e-9). Unfused (softmax and SiLU: the references pin its bits).
static inline float exp_reduced(float z) {
    float n = round_small(z * 1.44269504f);
    float r = (z - n * 0.693145752f) - n * 1.42860677e-6f; // z - n ln2, ln2 split hi + lo (Cody-Waite)
    float p = 1.0f / 5040; // Horner
    p = p * r + 1.0f / 720, p = p * r + 1.0f / 120, p = p * r + 1.0f / 24, p = p * r + 1.0f / 6;
    p = p * r + 0.5f, p = p * r + 1.0f, p = p * r + 1.0f;
    return p * pow2_int(n);
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

// expf(x) with the bits of glibc's expf (2.27 and later, which takes it from
// Arm's optimized-routines), in a form compilers vectorise: glibc's is a scalar
// call. SiLU (SwiGLU) uses it, so the trainer's bits are those it has with
// libm's expf. The algorithm is glibc's: z = x 32/ln2 in double, k = round(z),
// r = z - k in [-1/2, 1/2]; exp(x) = 2^(k/32) 2^(r/32), 2^(i/32) from a table
// of 32 doubles (stored minus i << 47, so that adding k << 47 to the bits
// multiplies by 2^(k >> 5)), 2^(r/32) by a cubic (glibc's coefficients); one
// rounding to float at the end. The table is ours: 2^(i/32) rounded to double
// (computed in exact arithmetic, equal to glibc's). Checked on all 2^32 floats
// (glibc 2.36, x86-64): with fused multiply-adds (__FMA__) it equals the FMA
// build of glibc's expf, which libm runs on CPUs with FMA and AVX2; without,
// the unfused operations equal its generic build (libm forced to it with
// GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA). The two builds differ at 2
// floats, which test_core pins. Inside glibc's range, [-103.97, 88.72], the
// polynomial runs on x; outside it and for NaN it runs on 0, and integer masks
// give glibc's values there (0 below, inf above, x + x for NaN; not its errno
// or exception flags): masks, not selects, because a select on a float under
// the default -ftrapping-math stops GCC vectorising the loop.
#ifdef __FMA__
#define VM_DMADD(a, b, c) fma(a, b, c)
#else
#define VM_DMADD(a, b, c) ((a) * (b) + (c))
#endif

static const uint64_t EXP2_32THS[32] = { // bits of 2^(i/32) as a double, minus i << 47
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

static inline float expf_vec(float x) {
#if defined(__clang__) && !defined(__FMA__)
#pragma STDC FP_CONTRACT OFF // clang fuses a * b + c by default where the target can (not x86 without __FMA__)
#endif
    // & not &&: no branch
    uint32_t xb, eb, in = -(uint32_t)((x >= -0x1.9fe368p6f) & (x <= 0x1.62e42ep6f));
    memcpy(&xb, &x, sizeof xb);
    xb &= in; // outside glibc's range, or NaN: 0
    float xc;
    memcpy(&xc, &xb, sizeof xc);
    const double shift = 0x1.8p52; // z + shift rounds z to an integer in the low bits
    double kd = VM_DMADD(0x1.71547652b82fep+5, (double)xc, shift), r, s;
    uint64_t ki, t;
    memcpy(&ki, &kd, sizeof ki);
    kd -= shift;
    r = VM_DMADD(0x1.71547652b82fep+5, (double)xc, -kd);
    t = EXP2_32THS[ki % 32] + (ki << 47);
    memcpy(&s, &t, sizeof s);
    double p = VM_DMADD(0x1.c6af84b912394p-20, r, 0x1.ebfce50fac4f3p-13), y = VM_DMADD(0x1.62e42ff0c52d6p-6, r, 1.0);
    float e = (float)(VM_DMADD(p, r * r, y) * s), nan2 = x + x;
    memcpy(&eb, &e, sizeof eb);
    uint32_t big = -(uint32_t)(x > 0x1.62e42ep6f), nan = -(uint32_t)(x != x), nb;
    memcpy(&nb, &nan2, sizeof nb);
    eb = (eb & in) | (0x7f800000u & big) | (nb & nan); // below the range: 0
    memcpy(&e, &eb, sizeof e);
    return e;
}

// tanh(x) as a rational function, x (P(x^2) / Q(x^2)) (degrees 12 and 6, the
// minimax fit Eigen uses), on x clamped to +-TANH_SAT. No exp and one division:
// cheaper than (1 - e) / (1 + e). x times the ratio (near 1 for small x), not
// x P / Q: no test for small x (a select after the division costs a third of
// the time), and the relative error stays about 3e-7 down to the smallest
// float. Absolute error about 3e-7 (checked against double in test_core); NaN
// stays NaN (the comparisons below are false for it).
static inline float tanh_approx(float x) {
    float c = x > TANH_SAT ? TANH_SAT : x; // selects, not fminf/fmaxf: they vectorise
    c = c < -TANH_SAT ? -TANH_SAT : c;
    float x2 = c * c;
    float p = -2.76076847742355e-16f;
    p = VM_MADD(p, x2, 2.00018790482477e-13f);
    p = VM_MADD(p, x2, -8.60467152213735e-11f);
    p = VM_MADD(p, x2, 5.12229709037114e-08f);
    p = VM_MADD(p, x2, 1.48572235717979e-05f);
    p = VM_MADD(p, x2, 6.37261928875436e-04f);
    p = VM_MADD(p, x2, 4.89352455891786e-03f);
    float q = 1.19825839466702e-06f;
    q = VM_MADD(q, x2, 1.18534705686654e-04f);
    q = VM_MADD(q, x2, 2.26843463243900e-03f);
    q = VM_MADD(q, x2, 4.89352518554385e-03f);
    return c * (p / q);
}

// erf(x) as a rational function, x (P(x^2) / Q(x^2)) (degrees 12 and 8, the
// minimax fit Eigen uses), on x clamped to +-ERF_SAT. No exp: the forward of
// Derf costs about what DyT's does. Absolute error about 4e-7 (checked against
// double in test_core); NaN stays NaN.
static inline float erf_approx(float x) {
    float c = x > ERF_SAT ? ERF_SAT : x;
    c = c < -ERF_SAT ? -ERF_SAT : c;
    float x2 = c * c;
    float p = -2.72614225801306e-10f;
    p = VM_MADD(p, x2, 2.77068142495902e-08f);
    p = VM_MADD(p, x2, -2.10102402082508e-06f);
    p = VM_MADD(p, x2, -5.69250639462346e-05f);
    p = VM_MADD(p, x2, -7.34990630326855e-04f);
    p = VM_MADD(p, x2, -2.95459980854025e-03f);
    p = VM_MADD(p, x2, -1.60960333262415e-02f);
    float q = -1.45660718464996e-05f;
    q = VM_MADD(q, x2, -2.13374055278905e-04f);
    q = VM_MADD(q, x2, -1.68282697438203e-03f);
    q = VM_MADD(q, x2, -7.37332916720468e-03f);
    q = VM_MADD(q, x2, -1.42647390514189e-02f);
    return c * (p / q);
}

// erf'(x) = 2/sqrt(pi) exp(-x^2) = 2^t (2/sqrt(pi)), t = -x^2 log2(e), x^2 clamped
// to 81 (exp(-81) is still a normal float): 2^t = 2^n 2^f with n = round(t),
// f = t - n in [-1/2, 1/2] exactly, and 2^f (2/sqrt(pi)) by a degree-6 fit of
// relative error 2e-9 (Lawson's minimax). No second ln2 step as exp_reduced
// needs: the rounding of t costs < 6e-8 absolute (checked in test_core).
static inline float erf_deriv(float x) {
    float x2 = x * x;
    x2 = x2 < 81.0f ? x2 : 81.0f;
    float t = x2 * -1.44269504f, n = round_small(t), f = t - n;
    float p = 1.732159872e-04f;
    p = VM_MADD(p, f, 1.512025017e-03f);
    p = VM_MADD(p, f, 1.085328124e-02f);
    p = VM_MADD(p, f, 6.262875348e-02f);
    p = VM_MADD(p, f, 2.710665464e-01f);
    p = VM_MADD(p, f, 7.821328640e-01f);
    p = VM_MADD(p, f, 1.128379226e+00f);
    return p * pow2_int(n);
}

// sum(a[i] * b[i] * c[i]) (c = NULL: sum(a[i] * b[i])) in 16 interleaved partial
// sums added in a fixed order at the end: the compiler vectorises it (a single
// running float sum is a chain of dependent adds), and the bits depend only on n.
// (The norms' row statistics; a decoded token's attention scores.)
#define DOT_LANES 16
static inline float dot_lanes(const float *restrict a, const float *restrict b, const float *restrict c, int n) {
    float acc[DOT_LANES] = {0};
    int i = 0;
    for (; i + DOT_LANES <= n; i += DOT_LANES)
        for (int j = 0; j < DOT_LANES; j++) acc[j] += a[i + j] * b[i + j] * (c ? c[i + j] : 1.0f);
    for (; i < n; i++) acc[i % DOT_LANES] += a[i] * b[i] * (c ? c[i] : 1.0f);
    float s = 0.0f;
    for (int j = 0; j < DOT_LANES; j++) s += acc[j];
    return s;
}

#endif
