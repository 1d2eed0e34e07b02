// The layers of the model, one forward/backward pair each, in the style of
// llm.c. Shapes are given as (rows, columns) with N = B*T rows. Backward
// functions accumulate (+=) into the gradients they are given; the caller
// zeroes what must start from zero. Matrices are (out, in) row-major, as
// torch.nn.Linear stores them: out = inp @ w^T.
#ifndef LAYERS_H
#define LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "matmul.h"

// The linear layers' products are in matmul.h, with the backends.
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
// mm: the backend and precision of its products (matmul.h; NULL: OpenBLAS, fp32).
void attention_forward(Matmul *mm, float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch, int blocks);
size_t attention_rows_floats(int T, int kv_len);
size_t attention_one_scratch_floats(int B, int kv_len, int NH, int HS);
// attention_forward's T = 1, for every thread of a parallel region to call
// (worksharing loops; it returns after the team's barrier).
void attention_one_team(float *out, float *att, const float *q, const float *k, const float *v,
                        int B, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch);
// The same reading a bf16 KV cache (a bf16 model's): each key and value
// widened (exactly) as it is read, the arithmetic attention_one_team's.
void attention_one_team_bf16(float *out, float *att, const float *q, const uint16_t *k, const uint16_t *v,
                             int B, int pos0, int kv_len, int NH, int NKV, int HS, float *scratch);
// dq (B,T,NH*HS) +=, dk, dv (B,T,NKV*HS) +=; training only (pos0 = 0, kv_len = T).
// scratch: attention_scratch_floats(T) per thread, for max_threads threads.
void attention_backward(Matmul *mm, float *dq, float *dk, float *dv, const float *dout, const float *att,
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
// The same from a bf16 table (widened exactly).
void embedding_forward_bf16(float *out, const int *tokens, const uint16_t *wte, size_t N, int C);
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
