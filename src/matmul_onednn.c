// The oneDNN backend: dnnl_sgemm for float32 (its AVX-512 kernels), and for
// bf16 its matmul primitive (AVX512_BF16 dot products, float32 accumulation).
// Each thread keeps its own primitives, one per product shape (a training run
// has a few dozen), so a step creates nothing after the first. Called inside
// our parallel region, oneDNN (OpenMP build) runs each call on the calling
// thread. Built when make finds oneDNN's header (HAVE_DNNL); otherwise the
// row is there and says how to get it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"

#ifdef HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

#define PRIM_CACHE 64 // shapes per thread; the oldest is replaced beyond

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, pad;
} Prim;

typedef struct {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    Prim cache[PRIM_CACHE];
    int used, next;
    void *pad; // the scratchpad of every primitive of this thread
    size_t pad_cap;
} State;

static void *onednn_state(Error *err) {
    State *s = calloc(1, sizeof *s);
    if (!s) return err_set(err, "matmul: out of memory"), NULL;
    if (dnnl_engine_create(&s->engine, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags) != dnnl_success) {
        free(s);
        return err_set(err, "--matmul onednn: oneDNN could not create its CPU engine"), NULL;
    }
    return s;
}

static void prim_free(Prim *p) {
    dnnl_primitive_destroy(p->prim);
    dnnl_memory_destroy(p->a), dnnl_memory_destroy(p->b), dnnl_memory_destroy(p->c);
    if (p->pad) dnnl_memory_destroy(p->pad);
    memset(p, 0, sizeof *p);
}

static void onednn_free(void *state) {
    State *s = state;
    for (int i = 0; i < s->used; i++) prim_free(&s->cache[i]);
    dnnl_stream_destroy(s->stream), dnnl_engine_destroy(s->engine);
    free(s->pad), free(s);
}

static void onednn_sgemm(MatmulThread *th, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)th;
    if (dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) != dnnl_success) {
        fprintf(stderr, "matmul: dnnl_sgemm failed on a %dx%dx%d product\n", M, N, K);
        exit(1);
    }
}

// A 2-d memory object of `rows x cols` with the given strides, no data yet.
static int matrix_mem(dnnl_memory_t *mem, dnnl_memory_desc_t *md, dnnl_engine_t e, int rows, int cols,
                      long rs, long cs, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {rows, cols}, strides = {rs, cs};
    if (dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides) != dnnl_success) return -1;
    return dnnl_memory_create(mem, md, e, DNNL_MEMORY_NONE) == dnnl_success ? 0 : -1;
}

// The primitive for C (M,N) = alpha op(A) op(B) + beta C with bf16 A, B and float C.
static int prim_make(State *s, Prim *p) {
    dnnl_memory_desc_t amd, bmd, cmd;
    if (matrix_mem(&p->a, &amd, s->engine, p->M, p->K, p->ta ? 1 : p->lda, p->ta ? p->lda : 1, dnnl_bf16) ||
        matrix_mem(&p->b, &bmd, s->engine, p->K, p->N, p->tb ? 1 : p->ldb, p->tb ? p->ldb : 1, dnnl_bf16) ||
        matrix_mem(&p->c, &cmd, s->engine, p->M, p->N, p->ldc, 1, dnnl_f32))
        return -1;
    dnnl_matmul_desc_t desc;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    dnnl_primitive_desc_t pd;
    if (dnnl_matmul_desc_init(&desc, &amd, &bmd, NULL, &cmd) != dnnl_success) return -1;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (p->alpha != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &p->alpha);
    dnnl_post_ops_create(&po);
    if (p->beta != 0.0f) dnnl_post_ops_append_sum(po, p->beta);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, s->engine, NULL);
    dnnl_post_ops_destroy(po), dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return -1;
    const dnnl_memory_desc_t *pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t pad = pmd ? dnnl_memory_desc_get_size(pmd) : 0;
    if (pad > s->pad_cap) {
        void *q = realloc(s->pad, pad);
        if (!q) return dnnl_primitive_desc_destroy(pd), -1;
        s->pad = q, s->pad_cap = pad;
    }
    if (pad && dnnl_memory_create(&p->pad, pmd, s->engine, DNNL_MEMORY_NONE) != dnnl_success)
        return dnnl_primitive_desc_destroy(pd), -1;
    st = dnnl_primitive_create(&p->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    return st == dnnl_success ? 0 : -1;
}

static Prim *prim_find(State *s, int ta, int tb, int M, int N, int K, int lda, int ldb, int ldc, float alpha,
                       float beta) {
    for (int i = 0; i < s->used; i++) {
        Prim *p = &s->cache[i];
        if (p->ta == ta && p->tb == tb && p->M == M && p->N == N && p->K == K && p->lda == lda &&
            p->ldb == ldb && p->ldc == ldc && p->alpha == alpha && p->beta == beta)
            return p;
    }
    Prim *p = &s->cache[s->used < PRIM_CACHE ? s->used++ : (s->next++ % PRIM_CACHE)];
    if (p->prim) prim_free(p);
    *p = (Prim){ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, NULL, NULL, NULL, NULL, NULL};
    if (prim_make(s, p)) {
        fprintf(stderr, "matmul: oneDNN has no bf16 product for %dx%dx%d (ta %d, tb %d)\n", M, N, K, ta, tb);
        return NULL;
    }
    return p;
}

static int onednn_bgemm(MatmulThread *th, int ta, int tb, int M, int N, int K, float alpha, const uint16_t *A,
                        int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc) {
    State *s = matmul_thread_state(th);
    Prim *p = prim_find(s, ta, tb, M, N, K, lda, ldb, ldc, alpha, beta);
    if (!p) return -1;
    dnnl_memory_set_data_handle(p->a, (void *)A);
    dnnl_memory_set_data_handle(p->b, (void *)B);
    dnnl_memory_set_data_handle(p->c, C);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b}, {DNNL_ARG_DST, p->c}, {DNNL_ARG_SCRATCHPAD, p->pad}};
    if (p->pad) dnnl_memory_set_data_handle(p->pad, s->pad);
    if (dnnl_primitive_execute(p->prim, s->stream, p->pad ? 4 : 3, args) != dnnl_success) return -1;
    return dnnl_stream_wait(s->stream) == dnnl_success ? 0 : -1;
}

const MatmulBackend MATMUL_ONEDNN = {
    .name = "onednn",
    .help = "oneDNN: dnnl_sgemm (AVX-512) in fp32, its matmul primitive (AVX512_BF16) in bf16",
    .sgemm = onednn_sgemm,
    .bgemm = onednn_bgemm,
    .thread_state = onednn_state,
    .thread_free = onednn_free,
};

#else // no oneDNN in this build

static const char *onednn_missing(void) {
    return "this build has no oneDNN: run scripts/setup.sh (or apt-get install -y libdnnl-dev), then make clean all";
}

const MatmulBackend MATMUL_ONEDNN = {
    .name = "onednn",
    .help = "oneDNN: dnnl_sgemm (AVX-512) in fp32, its matmul primitive (AVX512_BF16) in bf16",
    .unavailable = onednn_missing,
};

#endif
