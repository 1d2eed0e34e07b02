// Every matrix product of the model goes through here: the linear layers'
// forward and backward products, a decoded token's matrix-vector products and
// attention's per-head products. Two choices, both made at run time:
//
//   backend    who computes a product: a row of MATMUL_BACKENDS, one file each
//              (matmul_openblas.c, matmul_onednn.c). A third is one more file
//              and one more row.
//   precision  PREC_FP32, or PREC_BF16: both operands of every product are
//              rounded to bfloat16 (bf16.h), the products accumulate and are
//              written in float32. Nothing else changes precision.
//
// The threading is ours, not the backend's: each thread of our parallel region
// computes a fixed slice of a product's output rows with a single-threaded
// call, so the bits depend on the thread count, the backend and the precision,
// never on timing (docs/perf.md, "Matmul backends").
#ifndef MATMUL_H
#define MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

// Codes recorded in checkpoints (run block) and result.txt: append only.
enum { MM_OPENBLAS = 0, MM_ONEDNN = 1, N_MM_BACKENDS };
enum { PREC_FP32 = 0, PREC_BF16 = 1, N_PRECISIONS };

typedef struct MatmulThread MatmulThread; // a thread's scratch and backend state (matmul.c)

// C (M,N) = alpha op(A) op(B) + beta C, row-major; op(X) = X^T when tX.
typedef void (*SgemmFn)(MatmulThread *th, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc);
// The same with bf16 operands (accumulated and written in float32); 0, or
// -1 when the backend has no such product (then nothing is written).
typedef int (*BgemmFn)(MatmulThread *th, int ta, int tb, int M, int N, int K, float alpha, const uint16_t *A,
                        int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc);

typedef struct {
    const char *name, *help;
    // NULL when this build can use it, else why not (one line)
    const char *(*unavailable)(void);
    SgemmFn sgemm;
    // NULL: bf16 products are emulated (operands rounded to bf16, kept as
    // float32, then sgemm: the same products, summed in the sgemm's order).
    BgemmFn bgemm;
    // The backend's state of one thread (NULL: none): created before the
    // thread's first product, freed with the context.
    void *(*thread_state)(Error *err);
    void (*thread_free)(void *state);
} MatmulBackend;
extern const MatmulBackend *const MATMUL_BACKENDS[N_MM_BACKENDS];
// A backend's state of the thread th (its thread_state).
void *matmul_thread_state(MatmulThread *th);
extern const char *const PRECISION_NAMES[N_PRECISIONS];
int matmul_backend_find(const char *name); // -1 if unknown
int precision_find(const char *name);
// The i-th name, NULL past the last (the settings' choices).
const char *matmul_backend_name(int i);
const char *precision_name(int i);

// The default: oneDNN where this build has it (faster here: docs/perf.md), else OpenBLAS.
int matmul_default_backend(void);
// Whether this CPU computes bf16 dot products natively (AVX512_BF16).
int cpu_has_bf16(void);

// A run's choice and the per-thread scratch it needs (rounded operands,
// backend state), sized on first use: a training step allocates nothing
// after the first.
typedef struct {
    int backend, precision;
    int emulated; // bf16 without the backend's bf16 product (or without the CPU's)
    int nthreads; // slots in th: enough for every thread this process runs
    MatmulThread *th;
    void *op[4];      // bf16: a product's operands, rounded once and shared by the threads
    size_t op_cap[4]; // their bytes
} Matmul;

// NULL wherever a Matmul is taken means OpenBLAS in float32, no scratch.
int matmul_init(Matmul *mm, int backend, int precision, Error *err);
void matmul_free(Matmul *mm);
// "openblas fp32", "onednn bf16", "openblas bf16 (emulated)"
const char *matmul_describe(const Matmul *mm, char *buf, size_t len);
// What a user should know of the choice (bf16 emulated, and why), or NULL.
const char *matmul_note(const Matmul *mm);

// One product on the calling thread alone (a slice of a larger one, or a
// per-head product inside a parallel region), rounded as the precision says.
void mm_gemm(Matmul *mm, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

// A matrix operand: its floats x (leading dimension ld), and in bf16 its
// rounded copy r (leading dimension rld; NULL in fp32 or until rounded).
// Products of one operand with many others (attention's per-head products)
// round it once.
typedef struct {
    const float *x;
    const void *r;
    int ld, rld;
} Operand;
// X (rows, cols; leading dimension ld) as an operand, rounded in bf16 by the
// whole team into shared buffer `slot` (0..3, each held until its next use);
// call outside parallel regions.
Operand mm_operand(Matmul *mm, int slot, const float *X, size_t rows, int cols, int ld);
// The same, rounded by the calling thread alone into its scratch `which` (0 or 1).
Operand mm_local(Matmul *mm, int which, const float *X, int rows, int cols, int ld);
// The operand from row `row`, column `col` on.
Operand mm_sub(const Matmul *mm, Operand o, size_t row, size_t col);
// mm_gemm on operands (an operand not yet rounded is rounded on the calling thread).
void mm_gemm_op(Matmul *mm, int ta, int tb, int M, int N, int K, float alpha, Operand A, Operand B, float beta,
                float *C, int ldc);

// The linear layers (matrices are (out, in) row-major as torch.nn.Linear
// stores them: out = inp @ w^T), each product in one parallel region.
// out (N,OC), inp (N,C), w (OC,C)
void matmul_forward(Matmul *mm, float *out, const float *inp, const float *w, size_t N, int C, int OC);
// The same for n matrices that read one input: out[i] (N,OC[i]) = inp @ w[i]^T,
// in one parallel region (the same bits as n matmul_forward calls).
void matmul_forward_multi(Matmul *mm, int n, float *const out[], const float *inp, const float *const w[],
                          size_t N, int C, const int OC[]);
// dinp (N,C) +=, dw (OC,C) +=, dout (N,OC)
void matmul_backward(Matmul *mm, float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                     size_t N, int C, int OC);
// One token's (N = 1) products out[i] (OC[i]) = w[i] (OC[i],C) @ inp (C), for
// every thread of a parallel region to call (a worksharing loop: it returns
// after the team's barrier). Each task computes one slice of every matrix's
// rows and calls then(ctx, i, r0, r1) (NULL: nothing) on rows [r0, r1) of
// out[i] as soon as they are done, so work on them follows on the thread that
// has them. The same bits as matmul_forward_multi with N = 1 in fp32, for any
// thread count. Generation runs in the weights' precision: decoding ignores
// mm's precision (a model trained in bf16 keeps float32 weights).
typedef void (*RowsFn)(void *ctx, int i, int r0, int r1);
void matvec_team(Matmul *mm, int n, float *const out[], const float *inp, const float *const w[], int C,
                 const int OC[], RowsFn then, void *ctx);

// ----------------------------------------------------------------------------
// bf16 weights (a model.bin whose header field dtype is 1: docs/format.md)
//
// A product with a weight matrix held as bf16 rounds its input to bf16 (to
// nearest even, bf16.h) and sums in fp32: --precision bf16's arithmetic. The
// products are ours, a prompt's as a decoded token's: streaming the weights
// is most of a token's cost, and a batch of inputs shares each pass over
// them; no backend, no widened copy of the weights, and every output is the
// same dot product whatever the batch or the thread count.

// out (N, rows; leading dimension ldo) = x (N, C) @ w (rows, C)^T, bf16 x and w,
// fp32 sums. Each output: 16 fp32 lanes; for each block of 32 inputs lane j
// adds the product of elements 2j+1, then that of 2j (AVX512_BF16's
// vdpbf16ps, in its order: bf16 inputs and fp32 sums below 2^-126 flushed to
// zero, as it does); a block past C counts zeros. Then the lanes are summed as
// a tree: lane j + lane j+8, then + 4, + 2, + 1. vdpbf16ps where the build has
// it (-march on a CPU with AVX512_BF16), else a portable loop with the same
// bits (but for products below 2^-126, which it rounds and the instruction
// does not).
void bf16_gemm_nt(float *out, size_t ldo, const uint16_t *x, int N, const uint16_t *w, int rows, int C);
// The portable loop, whatever this build uses (the tests compare the two).
void bf16_gemm_nt_portable(float *out, size_t ldo, const uint16_t *x, int N, const uint16_t *w, int rows, int C);
// 1 when bf16_gemm_nt runs on vdpbf16ps.
int bf16_dot_native(void);

// matvec_team with bf16 weights w[i] (OC[i], C): each thread first rounds inp
// (C) into x16, its own scratch of C values (no barrier to share one), then
// takes its slices of rows. The same bits for any thread count. (No Matmul:
// the products are ours.)
void matvec_bf16_team(int n, float *const out[], const float *inp, uint16_t *x16, const uint16_t *const w[], int C,
                      const int OC[], RowsFn then, void *ctx);

// matmul_forward_multi with bf16 weights: out[i] (N,OC[i]) = inp (N,C) @
// w[i]^T in one parallel region: inp rounded into x16 (N*C values, scratch),
// then a slice of every w[i]'s rows per task, against all N rows (each
// weight read once). Each output has the bits of matvec_bf16_team's.
void matmul_forward_multi_bf16(int n, float *const out[], const float *inp, uint16_t *x16, const uint16_t *const w[],
                               size_t N, int C, const int OC[]);

#endif
