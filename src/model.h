// The LLaMA-style model with a switchable norm (a kind of norms.h): config,
// parameter layout (one allocation carved into named tensors), init, and the
// forward and backward passes. The trainer and the generator both use this
// code; the generator runs the same forward over a KV cache.
#ifndef MODEL_H
#define MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "matmul.h"
#include "norms.h"

#define MAX_LAYERS 1024

// How a model's weights are stored in a model file (header field dtype,
// docs/format.md): the code is the file's, append only. fp32 is what the
// trainer holds and every checkpoint stores; bf16 (every tensor rounded to
// bfloat16, nearest even: bf16.h) is for generation, half the bytes.
enum { DTYPE_F32 = 0, DTYPE_BF16 = 1, N_DTYPES };
const char *dtype_name(int i); // "fp32", "bf16"; NULL past the last (a choice of the settings)
int dtype_find(const char *name); // -1 if unknown
size_t dtype_bytes(int dtype);   // bytes per stored weight
// LLaMA's RMSNorm epsilon and RoPE base: a new model's (header fields norm_eps, rope_theta)
#define NORM_EPS_DEFAULT 1e-5f
#define ROPE_THETA_DEFAULT 10000.0f

typedef struct {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int norm;           // a row of NORM_KINDS (norms.h)
    int tie_embeddings; // output head shares wte
    int opt_beta;       // the kind's optional beta vector is present (DyT: --no-dyt-beta drops it; header field dyt_beta)
    int emb_scale;      // the embedding output is multiplied by a learnable scalar (init sqrt(dim))
    int residual_gate;  // each block's attention and FFN branch is multiplied by a learnable scalar (init 0)
    float norm_eps, rope_theta;
    float alpha_attn0, alpha_ffn0; // alpha init: attention input / FFN input (kinds with alpha)
    int mlp;            // a row of MLP_KINDS
    float alpha_final0; // alpha init of the final norm
} ModelConfig;

// The MLP kinds, ONE table (model.c): a kind's number is its code in the file
// header (docs/format.md): never reorder, only append.
enum { MLP_SWIGLU = 0, MLP_GELU = 1, N_MLPS = 2 };
typedef struct {
    const char *name, *help; // --mlp NAME; formula for --help
    int gated;               // w2(act(w1 n) * w3 n) with w3 present, else w2(act(w1 n))
    int (*default_hidden)(int dim);
    // hg (N,H) = act(h1) [* h3]
    void (*forward)(float *hg, const float *h1, const float *h3, size_t n);
    // dh1 [, dh3] (N,H) overwritten from dhg
    void (*backward)(float *dh1, float *dh3, const float *dhg, const float *h1, const float *h3, size_t n);
} MlpKind;
extern const MlpKind MLP_KINDS[]; // unsized: model.c asserts a row per MLP_ (norms.h says why)
// The kind named `name`, or -1.
int mlp_find(const char *name);

// The norm sites, each with the parameters its kind has (norms.h).
enum { SITE_ATTN, SITE_FFN, SITE_FINAL, N_SITES };

// Parameter tensors in file and memory order (docs/format.md); the descriptor
// table in model.c says each one's shape, presence, init and decay. A site's
// norm parameters are in NP_ order. Tensors a config does not have are absent
// (zero length), so old files keep their layout when tensors are added.
enum {
    T_WTE,
    T_ATTN_GAIN, T_ATTN_BETA, T_ATTN_ALPHA, T_ATTN_SHIFT, T_WQ, T_WK, T_WV, T_WO, T_ATTN_GATE,
    T_FFN_GAIN, T_FFN_BETA, T_FFN_ALPHA, T_FFN_SHIFT, T_W1, T_W2, T_W3, T_FFN_GATE,
    T_FINAL_GAIN, T_FINAL_BETA, T_FINAL_ALPHA, T_FINAL_SHIFT, T_EMB_SCALE, T_WCLS, N_TENSORS
};

typedef struct {
    float *t[N_TENSORS]; // t[T_WCLS] == t[T_WTE] when tied; absent tensors point at a zero-length slot
} Tensors;
typedef struct {
    uint16_t *t[N_TENSORS]; // as Tensors, bf16
} Tensors16;

// A model holds its weights in fp32 (dtype DTYPE_F32: training, and every
// model read from an fp32 file), or, read from a bf16 model file, its matrices
// and embedding (tensor_is_matrix) in bf16 and the rest (norm vectors and
// scalars: a sliver of the bytes, read by the norms as they are) in fp32,
// widened exactly from the file's bf16. A bf16 model is for generation: it
// is never trained, and never holds a second, fp32 copy of its matrices.
typedef struct {
    ModelConfig cfg;
    int dtype;               // DTYPE_*: how the matrices are held
    size_t sizes[N_TENSORS]; // parameters per tensor; 0 = absent
    size_t n_params;
    float *params; // one allocation: every tensor (fp32), or the vectors and scalars (bf16)
    Tensors w;     // into params; NULL for a matrix of a bf16 model
    uint16_t *params16; // bf16: the matrices, one allocation; NULL for fp32
    Tensors16 w16;      // into params16; NULL for the others
    float *grads; // NULL until model_alloc_grads
    Tensors g;
    // The BPE tokenizer file the model was trained with (bpe.h), stored in
    // model and checkpoint files; NULL and 0 for byte (or llama2.c) vocabularies.
    unsigned char *tokenizer;
    size_t tokenizer_bytes;
} Model;

const char *tensor_name(int t);
int tensor_decays(int t); // weight decay applies (matrices and embeddings)
int tensor_is_scalar(int t); // one number per site or layer (alpha, shift, embedding scale, gates): --scalar-lr-mult
int tensor_is_matrix(int t); // a weight matrix or the embedding (a bf16 model holds these in bf16)
// The tensor holding parameter p (NP_) of a site's norm.
int site_tensor(int site, int p);
int default_hidden_dim(int dim, int mlp); // the MLP kind's default hidden size

// The config's defaults for a norm kind: emb_scale and alpha0 from its row,
// its optional parameters present; everything else as in *c.
void config_set_norm(ModelConfig *c, int kind);
int config_validate(const ModelConfig *c, Error *err);
int config_layout(const ModelConfig *c, size_t sizes[N_TENSORS], size_t *n_params, Error *err);

// Allocates params (zeroed) for a validated config: memory in proportion to
// the parameters (what a file's size vouches for), nothing per position.
int model_create(Model *m, const ModelConfig *c, Error *err);
// The same holding the weights as dtype (DTYPE_*; above).
int model_create_as(Model *m, const ModelConfig *c, int dtype, Error *err);
// Converts m's weights to dtype in place: to bf16 every tensor is rounded to
// nearest even (the matrices then held in bf16: the same model as its bf16
// file gives), to fp32 widened exactly. Refuses (naming the tensor) a finite
// weight that bf16 cannot hold; m is unchanged on failure.
int model_set_dtype(Model *m, int dtype, Error *err);
int model_alloc_grads(Model *m, Error *err); // fp32 models only
void model_free(Model *m);
// normal(0, 0.02); wo and w2 0.02/sqrt(2 L); norm parameters as NORM_PARAMS
// says (gains 1, betas 0, alphas alpha0); emb_scale sqrt(dim); gates 0. Each tensor draws from its own stream of `seed`, so
// models that share a tensor start with identical values for it.
void model_init(Model *m, uint64_t seed);
void model_zero_grad(Model *m);

// Optional wall-clock time per part of the forward and backward, in seconds,
// accumulated; Acts.timers = NULL (the default) turns the clock reads off.
// A decoded token's forward (one parallel region for the whole pass) is not timed.
enum { PART_MATMUL, PART_ATTENTION, PART_NORM, PART_OTHER, N_PARTS };
typedef struct {
    double s[N_PARTS];
} PartTimes;

// Activations for B sequences of T positions. kv_len is the key/value length
// each layer keeps: T for training, the context length for generation (then
// B = 1 and k, v are the KV cache). With store_all, every layer keeps its own
// buffers for the backward pass; otherwise layers share them, and att holds
// no (T, kv_len) scores, only a block of rows per thread (at most nthreads):
// memory linear in the context.
typedef struct {
    int B, T_cap, kv_len, store_all, nthreads;
    int T; // positions in the last forward (<= T_cap)
    float *resid;                             // (L+1 or 1, B,T,d) residual stream
    float *norm_attn, *stats_attn, *q, *att, *atty, *resid_mid; // stats_*: the norm's saved per-row
    float *norm_ffn, *stats_ffn, *h1, *h3, *hg;                  // stats, (B,T,stats) (norms.h)
    float *k, *v;                             // (L, B, kv_len, kvd)
    float *norm_final, *stats_final, *logits;  // (B,T,d), (B,T), (B,T,V)
    float *tmp;                               // (B,T,d) projection output before the residual add
    float *attn_out, *ffn_out;                // (L or 1, B,T,d) the branches before their gates (residual_gate)
    float *dbranch;                           // (B,T,d) gradient of a gated branch (residual_gate)
    float *emb;                               // (B,T,d) raw embedding (the scale's backward)
    float *att_one;                           // a decoded token's attention: each key chunk's share
                                              // (attention_one_scratch_floats)
    float *token_norm;                        // a decoded token's norm output and stats, one per thread
                                              // (nthreads; with more, decoding takes the batched path)
    float *rope_cos, *rope_sin;               // (kv_len, head_dim/2): RoPE for the positions held here, so
                                              // that seq_len costs memory only when a run uses that context
    double *row_loss;                         // (B,T)
    // backward scratch (store_all only)
    float *dresid, *dnorm, *dq, *dk, *dv, *datty, *dh1, *dh3, *dhg, *dlogits, *att_scratch;
    float *norm_scratch; // the norms' backward: per-chunk weight-gradient sums
    float *block; // the one allocation
    size_t block_floats;
    PartTimes *timers; // NULL: not timed (set by the caller, e.g. bench/)
    Matmul *mm;        // the products' backend and precision (matmul.h); NULL: OpenBLAS, fp32
    // A bf16 model (B = 1, nothing stored): the KV cache in bf16, and k, v
    // above one layer's fp32 rows (a prompt's new keys and values before they
    // are rounded into the cache; the cache widened for attention's products)
    uint16_t *k16, *v16; // (L, kv_len, kvd)
    uint16_t *x16;       // a product's input rounded to bf16: (T_cap, d or h), or a decoded token's, one per thread
} Acts;

int acts_create(Acts *a, const Model *m, int B, int T, int kv_len, int store_all, Error *err);
void acts_free(Acts *a);

// Forward of tokens (B,T) at positions pos0..pos0+T-1. Logits for every
// position when all_logits, else only for the last one (row B*T-1 of logits).
// Needs 1 <= T <= T_cap, pos0 + T <= kv_len, and with B > 1 the full shape
// (pos0 = 0, T = T_cap: k/v are packed per sequence). Returns -1 otherwise.
int model_forward(const Model *m, Acts *a, const int *tokens, int T, int pos0, int all_logits, Error *err);
// Mean cross-entropy of the logits against targets (B,T); with backward,
// also accumulates d(loss * loss_scale)/dparams into m->grads.
double model_loss(const Model *m, Acts *a, const int *targets);
double model_backward(Model *m, Acts *a, const int *tokens, const int *targets, float loss_scale);
// The same, telling `ready` as soon as a part of the gradient is complete (so
// that its reduction across processes can start while the rest is computed):
// ready(ctx, L) once the final norm's and the untied head's are, then
// ready(ctx, l) once layer l's (its slice of every per-layer tensor) are, for
// l = L-1 .. 0. The embedding's (and a tied head's) are complete on return.
typedef void (*GradsReady)(void *ctx, int layer);
double model_backward_hooked(Model *m, Acts *a, const int *tokens, const int *targets, float loss_scale,
                             GradsReady ready, void *ctx);
// The gradient slices complete at each call of ready (above): part = L the
// final norm's and untied head's tensors, part = l < L layer l's slice of
// every per-layer tensor, part = GRADS_REST what is complete only on return
// (the embedding, its scale; a tied head is the embedding). Together they
// cover every gradient once. Writes at most N_TENSORS slices; returns the count.
#define GRADS_REST (-1)
typedef struct {
    float *p;
    size_t n;
} Slice;
int model_grad_slices(const Model *m, int part, Slice *out);

// Accumulates sum and sum of squares of each norm's input over the last
// forward (B*T*d values each; store_all only): index l attention input,
// L + l FFN input, 2L final input. std = sqrt(s2/n - (s1/n)^2).
void model_norm_input_moments(const Model *m, const Acts *a, double *s1, double *s2);
// For the saturating kinds (NormKind.sat > 0): adds the count of inputs of
// each norm with |alpha x + s| > sat over the last forward, indexed as above.
void model_norm_saturated(const Model *m, const Acts *a, double *count);

#endif
