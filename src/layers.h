// The layers of the model, one forward/backward pair each, in the style of
// llm.c. Shapes are given as (rows, columns) with N = B*T rows. Backward
// functions accumulate (+=) into the gradients they are given; the caller
// zeroes what must start from zero. Matrices are (out, in) row-major, as
// torch.nn.Linear stores them: out = inp @ w^T.
#ifndef LAYERS_H
#define LAYERS_H

#include <stddef.h>

// out (N,OC), inp (N,C), w (OC,C)
void matmul_forward(float *out, const float *inp, const float *w, size_t N, int C, int OC);
// The same for n matrices that read one input: out[i] (N,OC[i]) = inp @ w[i]^T,
// in one parallel region (the same bits as n matmul_forward calls).
void matmul_forward_multi(int n, float *const out[], const float *inp, const float *const w[], size_t N, int C,
                          const int OC[]);
// One token's (N = 1) products out[i] (OC[i]) = w[i] (OC[i],C) @ inp (C), for
// every thread of a parallel region to call (a worksharing loop: it returns
// after the team's barrier). Each task computes one slice of every matrix's
// rows and calls then(ctx, i, r0, r1) (NULL: nothing) on rows [r0, r1) of
// out[i] as soon as they are done, so work on them follows on the thread that
// has them. The same bits as matmul_forward_multi with N = 1, for any thread count.
typedef void (*RowsFn)(void *ctx, int i, int r0, int r1);
void matvec_team(int n, float *const out[], const float *inp, const float *const w[], int C, const int OC[],
                 RowsFn then, void *ctx);
// dinp (N,C) +=, dw (OC,C) +=, dout (N,OC)
void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp,
                     const float *w, size_t N, int C, int OC);

// The norms are in norms.h (their table) and dyt.h.

// RoPE tables: cos, sin (max_pos, HS/2), angle pos * theta^(-2i/HS).
void rope_tables(float *cos_t, float *sin_t, int max_pos, int HS, float theta);
// x (B,T,n_heads*HS) rotated in place, positions pos0..pos0+T-1;
// inverse = 1 rotates backwards (the backward pass of a rotation).
void rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int pos0,
                int n_heads, int HS, int inverse);
// Elements [e0, e1) (both even) of one row x (n_heads*HS) at position
// pos, rotated forwards in place: the same bits as rope_apply on the whole row.
void rope_span(float *x, const float *cos_t, const float *sin_t, int pos, int e0, int e1, int HS);

// Causal grouped-query attention of T new queries at positions pos0.. against
// keys/values 0..pos0+T-1. q, out (B,T,NH*HS); k, v (B,kv_len,NKV*HS) with
// batch stride kv_len; att (B,NH,T,kv_len) holds the softmax probabilities
// (kept for backward). Query head h reads kv head h / (NH/NKV). scratch:
// attention_one_scratch_floats(B, kv_len, NH, HS), used when T = 1 (a decoded token).
// blocks > 0 (nothing kept, T > 1): att is `blocks` scratches of
// attention_rows_floats(T, kv_len), one per thread (at most `blocks` run), each
// holding a block of rows at a time: memory linear in kv_len, not T x kv_len,
// and the same sgemms on the same data at the same stride, so the same bits.
// (T = 1 writes B*NH*kv_len of att either way.)
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch, int blocks);
size_t attention_rows_floats(int T, int kv_len);
size_t attention_one_scratch_floats(int B, int kv_len, int NH, int HS);
// attention_forward's T = 1, for every thread of a parallel region to call
// (worksharing loops; it returns after the team's barrier).
void attention_one_team(float *out, float *att, const float *q, const float *k, const float *v,
                        int B, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch);
// dq (B,T,NH*HS) +=, dk, dv (B,T,NKV*HS) +=; training only (pos0 = 0, kv_len = T).
// scratch: attention_scratch_floats(T) per thread, for max_threads threads.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, const float *k, const float *v,
                        int B, int T, int NH, int NKV, int HS, float *scratch);
size_t attention_scratch_floats(int T);

// SwiGLU gate: out (N,H) = silu(h1) * h3
void swiglu_forward(float *out, const float *h1, const float *h3, size_t n);
// dh1, dh3 (N,H) overwritten
void swiglu_backward(float *dh1, float *dh3, const float *dout, const float *h1,
                     const float *h3, size_t n);

// GELU MLP activation: out (N,H) = gelu(h) = h Phi(h) (exact, erf)
void gelu_forward(float *out, const float *h, size_t n);
// dh (N,H) overwritten
void gelu_backward(float *dh, const float *dout, const float *h, size_t n);

// out (N,C) = wte[tokens]
void embedding_forward(float *out, const int *tokens, const float *wte, size_t N, int C);
// dwte (V,C) += scatter of dout (N,C) by token
void embedding_backward(float *dwte, const float *dout, const int *tokens, size_t N, int C);

// Mean cross-entropy of logits (N,V) against targets (N); returns the mean.
// If dlogits != NULL, writes dlogits = (softmax - onehot) * dscale.
// row_loss: scratch of N doubles.
double crossentropy_forward_backward(float *dlogits, const float *logits, const int *targets,
                                     size_t N, int V, float dscale, double *row_loss);

// The learnable scalar after the embedding (DyT models: init sqrt(dim)).
// out (n) = scale * inp (n); in place allowed.
void embscale_forward(float *out, const float *inp, float scale, size_t n);
// dinp (n) = scale * dout (overwrites; may alias dout), dscale (1) += sum(dout * inp)
void embscale_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                       float scale, size_t n);

#endif
