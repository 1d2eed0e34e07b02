// The OpenBLAS backend: cblas_sgemm, single-threaded inside our parallel
// region (OpenBLAS's OpenMP build runs a call from inside a parallel region
// on the calling thread). It has no bf16 product here (Debian's 0.3.21 is
// built without sbgemm), so bf16 is emulated: operands rounded, then sgemm.
#include <cblas.h>

#include "matmul.h"

static void openblas_sgemm(MatmulThread *th, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)th;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, B, ldb, beta, C, ldc);
}

const MatmulBackend MATMUL_OPENBLAS = {
    .name = "openblas",
    .help = "OpenBLAS's sgemm (the kernels OPENBLAS_CORETYPE selects); bf16 emulated",
    .sgemm = openblas_sgemm,
};
