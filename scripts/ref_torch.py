#!/usr/bin/python3
"""PyTorch (float64) reference for the tiny LLaMA trainer: gradient test vectors.

What it produces
    For each case of CASES (every norm kind of src/norms.c, with and without the
    residual gate and the embedding scale, tied / untied embeddings) it writes
        test/ref/NAME.model.bin   initial weights, a `model.bin` (docs/format.md)
        test/ref/NAME.ref.bin     reference vectors (docs/format.md, "Reference vectors"):
                                  tokens, initial logits and loss, the (unclipped) gradient
                                  at the initial weights, the loss before each of 3
                                  clip + AdamW steps on the same batch, and the weights
                                  after those steps.
    and for BF16_CASES (every norm kind) the same of one step of the trainer's
    --precision bf16, every product's operands rounded to bfloat16 ("bf16 products"):
        test/ref/NAME.ref-bf16.bin
    The C tests load these files and compare the C forward, backward and optimizer
    against them.

How it works
    The model is written by hand with plain torch ops (no nn.Module) from explicit
    parameter tensors, following docs/format.md. Weights are drawn from a seeded
    numpy RandomState as float32, written as float32, and upcast to float64 for the
    computation, so the C code and this reference start from identical weights.
    All computation is float64; stored values are rounded to float32. The scalar
    hyperparameters (lr, betas, eps, weight decay, clip, norm_eps, rope_theta) are
    also rounded to float32 before use, so the reference uses exactly the values
    the files hold.

How to regenerate (from the repository root)
    /usr/bin/python3 scripts/ref_torch.py              # write test/ref/*, then self-check
    /usr/bin/python3 scripts/ref_torch.py --check      # only verify the files in test/ref
    /usr/bin/python3 scripts/ref_torch.py --out DIR    # write elsewhere

Self-checks (always run)
    * formula checks of RoPE, the GQA head mapping, SwiGLU, RMSNorm and DyT against
      scalar re-implementations of the formulas in docs/format.md, and of the whole
      forward against an independent loop-by-loop numpy forward;
    * torch.autograd.gradcheck (float64) of the hand-written loss on a smaller
      configuration of every case, plus central finite differences on a few
      parameters of the real cases;
    * an independent numpy implementation of clip + AdamW against torch.optim.AdamW;
    * the files are read back: exact sizes, header fields, and contents equal to a
      fresh recomputation from the weights and tokens stored in the files;
    * bf16: torch's rounding is round-to-nearest-even as src/bf16.h's, the rounded product's
      forward and gradients are products of rounded operands, and leaving out the rounding
      of any one product (or of the backward's incoming gradients) moves every bf16 case by
      at least 100x the tolerance test_core holds the trainer to against these files.

Clipping (intended and asserted): clip 1e3 never clips, the small clips
(0.5, 0.25, 0.01) clip at every step (CASES).

Adding a norm kind: one entry in NORMS (its code, the file header's norm field,
and its parameters) and one branch in norm_apply / naive norm, then a case or
two in CASES (docs/adding-a-norm.md).
"""

import argparse
import math
import os
import struct
import sys


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="test/ref", help="output folder (default test/ref)")
    ap.add_argument("--check", action="store_true",
                    help="do not write; only verify the existing files in --out")
    ap.add_argument("--no-gradcheck", action="store_true", help="skip the (slower) gradient checks")
    ap.add_argument("--cases", default="", help="comma-separated case names: only these (default: all)")
    return ap.parse_args()


# read before torch is imported: --help and a usage error need no PyTorch
ARGS = parse_args() if __name__ == "__main__" else None
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"ref_torch.py: {e.name} is not installed (python3-torch, python3-numpy)")

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # reproducible reductions

MODEL_MAGIC = 0x5459444C  # b"LDYT"
REF_MAGIC = 0x46455244    # b"DREF"
VERSION = 1        # of the reference vectors; models: MODEL_VERSIONS
MODEL_VERSION = 3  # the oldest version that can express a case is written (header_version)
HEADER_BYTES = 256
REF_HEADER_BYTES = 4 + 4 + 3 * 4 + 6 * 4  # magic, version, B T n_steps, 6 floats


def f32(x):
    """Round a Python float to the nearest float32 value (returned as a Python float)."""
    return float(np.float32(x))


# --------------------------------------------------------------------------- config

# The tiny configuration shared by all cases (the brief fixes it).
BASE = dict(dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2,
            vocab_size=32, seq_len=8, norm_eps=1e-5, rope_theta=10000.0,
            alpha_attn0=1.0, alpha_ffn0=1.0, alpha_final0=1.0, mlp=0)
B, T, N_STEPS = 2, 8, 3
LR, WD, BETA1, BETA2, EPS = 1e-2, 0.1, 0.9, 0.95, 1e-8

# The norm kinds: name -> (code in the file header = row of NORM_KINDS in
# src/norms.c, its per-site parameters, alpha0, default of emb_scale).
NORMS = {
    "rmsnorm":   (0, ("norm",), 1.0, 0),
    "dyt":       (1, ("norm", "beta", "alpha"), 1.0, 1),   # beta optional (dyt_beta)
    "layernorm": (2, ("norm", "beta"), 1.0, 0),
    "derf":      (3, ("norm", "beta", "alpha", "shift"), 0.5, 1),
    "hardtanh":  (4, ("norm", "beta", "alpha"), 1.0, 1),
    "none":      (5, (), 1.0, 1),
    "softsign":  (6, ("norm", "beta", "alpha"), 1.0, 1),
}
KIND_OF = {code: name for name, (code, _, _, _) in NORMS.items()}
SITE_PARAMS = ("norm", "beta", "alpha", "shift")  # NP_ order of src/norms.h

# name, kind, tie_embeddings, dyt_beta, emb_scale (None: the kind's default),
# residual_gate, clip, expect clipping, seed, mlp (0 SwiGLU, 1 GELU). Every kind with its defaults, and
# with the residual gate and the other embedding-scale setting.
CASES = [
    ("rms_untied",        "rmsnorm",   0, 0, None, 0, 1e3,  False, 1001, 0),
    ("rms_tied",          "rmsnorm",   1, 0, None, 0, 0.5,  True,  1002, 0),
    ("dyt_beta_untied",   "dyt",       0, 1, None, 0, 0.25, True,  1003, 0),
    ("dyt_nobeta_tied",   "dyt",       1, 0, None, 0, 1e3,  False, 1004, 0),
    ("rms_gate_emb",      "rmsnorm",   0, 0, 1,    1, 1e3,  False, 1005, 0),
    ("dyt_gate_noemb",    "dyt",       1, 1, 0,    1, 0.25, True,  1006, 0),
    ("layernorm_untied",  "layernorm", 0, 0, None, 0, 1e3,  False, 1007, 0),
    ("layernorm_gate_emb", "layernorm", 1, 0, 1,   1, 0.01, True,  1008, 0),
    ("derf_untied",       "derf",      0, 0, None, 0, 0.01, True,  1009, 0),
    ("derf_gate_noemb",   "derf",      1, 0, 0,    1, 1e3,  False, 1010, 0),
    ("hardtanh_untied",   "hardtanh",  0, 0, None, 0, 1e3,  False, 1011, 0),
    ("hardtanh_gate_noemb", "hardtanh", 1, 0, 0,   1, 0.01, True,  1012, 0),
    ("none_tied",         "none",      1, 0, None, 0, 1e3,  False, 1013, 0),
    ("none_gate_noemb",   "none",      0, 0, 0,    1, 0.01, True,  1014, 0),
    ("rms_gelu_untied",   "rmsnorm",   0, 0, None, 0, 1e3,  False, 1015, 1),
    ("dyt_gelu_tied",     "dyt",       1, 1, None, 0, 1e3,  False, 1016, 1),
    ("softsign_untied",   "softsign",  0, 0, None, 0, 1e3,  False, 1017, 0),
    ("softsign_gate_noemb", "softsign", 1, 0, 0,   1, 0.01, True,  1018, 0),
]

# The bf16 reference (the trainer's --precision bf16, "bf16 products" below): one clip +
# AdamW step of these cases from NAME.model.bin with NAME.ref.bin's tokens and
# hyperparameters, every product's operands rounded to bf16, in test/ref/NAME.ref-bf16.bin
# (the format of NAME.ref.bin, n_steps 1). Every norm kind; both MLPs, the residual gate,
# both embedding-scale settings, tied and untied among them.
BF16_CASES = ("rms_gate_emb", "dyt_nobeta_tied", "layernorm_untied", "derf_gate_noemb",
              "hardtanh_gate_noemb", "none_tied", "softsign_untied", "rms_gelu_untied")
BF16_STEPS = 1
BF16_SUFFIX = ".ref-bf16.bin"


def make_cfg(norm, tie, dyt_beta, emb_scale=None, residual_gate=0, **over):
    """norm: the kind's code. emb_scale None: the kind's default."""
    cfg = dict(BASE)
    kind = KIND_OF[norm]
    cfg["alpha_attn0"] = cfg["alpha_ffn0"] = cfg["alpha_final0"] = NORMS[kind][2]
    cfg.update(over)
    cfg.update(norm=norm, kind=kind, tie_embeddings=tie, dyt_beta=dyt_beta if kind == "dyt" else 0,
               emb_scale=NORMS[kind][3] if emb_scale is None else emb_scale, residual_gate=residual_gate)
    cfg["head_dim"] = cfg["dim"] // cfg["n_heads"]
    cfg["kvd"] = cfg["n_kv_heads"] * cfg["head_dim"]
    # the header stores these as float32; the reference uses exactly those values
    for k in ("norm_eps", "rope_theta", "alpha_attn0", "alpha_ffn0", "alpha_final0"):
        cfg[k] = f32(cfg[k])
    return cfg


def has_param(cfg, p):
    """Whether the kind has site parameter p (DyT's beta only with dyt_beta)."""
    kind = cfg["kind"]
    return p in NORMS[kind][1] and not (kind == "dyt" and p == "beta" and not cfg["dyt_beta"])


def param_specs(cfg):
    """[(name, shape, weight_decay)] in file order (docs/format.md table); absent tensors omitted."""
    d, h, L, V, kvd = cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["vocab_size"], cfg["kvd"]
    tie, gate = cfg["tie_embeddings"] == 1, cfg["residual_gate"] == 1

    def site(prefix, layered):
        return [(f"{prefix}_{p}", ((L,) if layered else ()) + ((d,) if p in ("norm", "beta") else (1,) if not layered else ()),
                 has_param(cfg, p), False) for p in SITE_PARAMS]

    specs = [("wte", (V, d), True, True)] + site("attn", True) + [
        ("wq", (L, d, d), True, True),
        ("wk", (L, kvd, d), True, True),
        ("wv", (L, kvd, d), True, True),
        ("wo", (L, d, d), True, True),
        ("attn_gate", (L,), gate, False)] + site("ffn", True) + [
        ("w1", (L, h, d), True, True),
        ("w2", (L, d, h), True, True),
        ("w3", (L, h, d), cfg["mlp"] == 0, True),
        ("ffn_gate", (L,), gate, False)] + site("final", False) + [
        ("emb_scale", (1,), cfg["emb_scale"] == 1, False),
        ("wcls", (V, d), not tie, True),
    ]
    return [(n, s, wd) for (n, s, present, wd) in specs if present]


def n_params(cfg):
    return sum(int(np.prod(s)) for _, s, _ in param_specs(cfg))


def init_params(cfg, rng):
    """Draw float32 initial weights, in file order, from a numpy RandomState.

    Chosen so every activation is O(1) and every gradient is non-trivial:
    matrices N(0, 1/fan_in); wte N(0, 0.5) or, with an embedding scale, N(0, 1/sqrt(dim))
    (so that wte * emb_scale ~ N(0, 1)); gains / gammas 1 + 0.1 N; betas 0.1 N; alphas
    alpha0 + 0.2 N; shifts 0.1 N; gates 0.5 + 0.2 N (the trainer starts them at 0, which
    would leave the branches' gradients 0); emb_scale sqrt(dim) + 0.1 N. Nothing is zero.
    """
    d = cfg["dim"]
    out = {}
    for name, shape, _ in param_specs(cfg):
        z = rng.standard_normal(shape)
        if name == "wte":
            std = 0.5 if not cfg["emb_scale"] else 1.0 / math.sqrt(d)
            v = std * z
        elif name in ("wq", "wk", "wv", "wo", "w1", "w3", "wcls"):
            v = z / math.sqrt(shape[-1])          # fan_in = in features = last dim
        elif name == "w2":
            v = z / math.sqrt(shape[-1])          # fan_in = hidden_dim
        elif name.endswith("_norm"):
            v = 1.0 + 0.1 * z
        elif name.endswith("_beta"):
            v = 0.1 * z
        elif name == "attn_alpha":
            v = cfg["alpha_attn0"] + 0.2 * z
        elif name == "ffn_alpha":
            v = cfg["alpha_ffn0"] + 0.2 * z
        elif name == "final_alpha":
            v = cfg["alpha_final0"] + 0.2 * z
        elif name == "emb_scale":
            v = math.sqrt(d) + 0.1 * z
        elif name.endswith("_shift"):
            v = 0.1 * z
        elif name.endswith("_gate"):
            v = 0.5 + 0.2 * z
        else:
            raise AssertionError(name)
        out[name] = v.astype(np.float32)
    return out


# --------------------------------------------------------------------------- bf16 products
# The trainer's --precision bf16 (src/matmul.h): every matrix product rounds both operands
# to bfloat16 (round to nearest, ties to even) and accumulates in float32; nothing else
# changes precision. Its backward products round theirs too: the incoming gradient and the
# rounded operand of the forward. A product of two bf16 values (8 significant bits each)
# is exact in float32, so the trainer's bf16 path is this float64 model, whose products
# round their operands first, up to float32 accumulation. Explicit casts, not autocast:
# torch's CPU autocast also rounds the products' outputs and softmax to bf16.

# Where the model multiplies matrices: the q, k, v projections, the attention output's
# (wo), the MLP's input (w1, w3) and output (w2) matrices, the classifier (wcls or the tied
# wte), attention's per-head scores (q k^T) and mix (p v). cfg["bf16"] holds the sites
# that round (all of them in the bf16 cases; the self-check leaves one out at a time).
PRODUCT_SITES = ("qkv", "wo", "w13", "w2", "head", "scores", "pv")


def bf16(x):
    """float64 x rounded to bfloat16 through float32, as the trainer rounds its float32 values."""
    return x.float().bfloat16().double()


class Bf16Product(torch.autograd.Function):
    """a @ b on operands rounded to bf16; the backward's two products round theirs (the
    incoming gradient unless round_grad is False: a self-check's variant)."""

    @staticmethod
    def forward(ctx, a, b, round_grad):
        ra, rb = bf16(a), bf16(b)
        ctx.save_for_backward(ra, rb)
        ctx.round_grad = round_grad
        return ra @ rb

    @staticmethod
    def backward(ctx, g):
        ra, rb = ctx.saved_tensors
        rg = bf16(g) if ctx.round_grad else g
        return rg @ rb.transpose(-1, -2), ra.transpose(-1, -2) @ rg, None


def rounds(cfg, site):
    return cfg is not None and site in cfg.get("bf16", ())


def product(cfg, site, a, b):
    """a @ b (a and b with the same batch dimensions), rounded as cfg says at this site."""
    return Bf16Product.apply(a, b, cfg.get("bf16_grads", True)) if rounds(cfg, site) else a @ b


def linear(cfg, site, x, w):
    """x (..., in) @ w (out, in)^T: torch.nn.Linear's product (as rows of a 2-D product when it rounds)."""
    if not rounds(cfg, site):
        return x @ w.t()
    return product(cfg, site, x.reshape(-1, x.shape[-1]), w.t()).reshape(*x.shape[:-1], w.shape[0])


# --------------------------------------------------------------------------- model

def rope(x, theta):
    """RoPE on (B, T, n_heads, head_dim), interleaved pairs (x[2i], x[2i+1]).

    Pair i at position pos is rotated by angle pos * theta^(-2i/head_dim); pos starts at 0.
    """
    _, Tn, _, hd = x.shape
    i = torch.arange(hd // 2, dtype=torch.float64)
    freq = theta ** (-2.0 * i / hd)                                 # (hd/2)
    ang = torch.arange(Tn, dtype=torch.float64)[:, None] * freq     # (T, hd/2)
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x0 * sin + x1 * cos
    return torch.stack([y0, y1], dim=-1).reshape(x.shape)           # re-interleave


def kv_head_of(n_heads, n_kv_heads):
    """Query head i reads kv head i // (n_heads // n_kv_heads)."""
    return torch.arange(n_heads) // (n_heads // n_kv_heads)


def attention(q, k, v, n_kv_heads, cfg=None):
    """Causal grouped-query attention. q (B,T,H,hd), k/v (B,T,KV,hd) -> (B,T,H*hd)."""
    Bn, Tn, H, hd = q.shape
    idx = kv_head_of(H, n_kv_heads)
    k, v = k[:, :, idx, :], v[:, :, idx, :]                          # (B,T,H,hd)
    # rounded: (B,H,T,hd) @ (B,H,hd,T), the trainer's per-head product; it scales the
    # product by 1/sqrt(hd) and its backward the gradient before the rounding, as here
    if rounds(cfg, "scores"):
        s = product(cfg, "scores", q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1)) / math.sqrt(hd)
    else:
        s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    mask = torch.triu(torch.ones(Tn, Tn, dtype=torch.bool), diagonal=1)  # s > t
    s = s.masked_fill(mask, float("-inf"))
    p = torch.softmax(s, dim=-1)
    if rounds(cfg, "pv"):      # (B,H,T,T) @ (B,H,T,hd)
        y = product(cfg, "pv", p, v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
    else:
        y = torch.einsum("bhts,bshd->bthd", p, v)
    return y.reshape(Bn, Tn, H * hd)


def rmsnorm(x, g, eps):
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * g


def dyt(x, gamma, alpha, beta):
    y = gamma * torch.tanh(alpha * x)
    return y + beta if beta is not None else y


def layernorm(x, g, b, eps):
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * g + b


def derf(x, gamma, alpha, s, beta):
    return gamma * torch.erf(alpha * x + s) + beta


def hardtanh(x, gamma, alpha, beta):
    return gamma * torch.clamp(alpha * x, -1.0, 1.0) + beta


def softsign(x, gamma, alpha, beta):
    u = alpha * x
    return gamma * u / (1.0 + torch.abs(u)) + beta


def norm_apply(kind, x, p, eps):
    """One site's norm: p maps parameter name (norm, beta, alpha, shift) -> tensor or None."""
    if kind == "rmsnorm":
        return rmsnorm(x, p["norm"], eps)
    if kind == "dyt":
        return dyt(x, p["norm"], p["alpha"], p["beta"])
    if kind == "layernorm":
        return layernorm(x, p["norm"], p["beta"], eps)
    if kind == "derf":
        return derf(x, p["norm"], p["alpha"], p["shift"], p["beta"])
    if kind == "hardtanh":
        return hardtanh(x, p["norm"], p["alpha"], p["beta"])
    if kind == "softsign":
        return softsign(x, p["norm"], p["alpha"], p["beta"])
    if kind == "none":
        return x
    raise AssertionError(kind)


def swiglu_ffn(n, w1, w2, w3, cfg=None):
    return linear(cfg, "w2", F.silu(linear(cfg, "w13", n, w1)) * linear(cfg, "w13", n, w3), w2)


def gelu_ffn(n, w1, w2, cfg=None):
    return linear(cfg, "w2", F.gelu(linear(cfg, "w13", n, w1)), w2)  # exact (erf) GELU, torch's default


def forward(P, cfg, tok_in, return_stats=False):
    """Logits (B, T, V) for inputs tok_in (B, T). P: dict name -> float64 tensor."""
    L = cfg["n_layers"]
    H, KV, hd = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    Bn, Tn = tok_in.shape
    stats = []

    def norm(x, which, l):
        # which in ("attn", "ffn", "final"); l = layer index (None for final)
        stats.append(float(x.detach().std()))
        p = {q: (P[f"{which}_{q}"] if l is None else P[f"{which}_{q}"][l]) if has_param(cfg, q) else None
             for q in SITE_PARAMS}
        return norm_apply(cfg["kind"], x, p, cfg["norm_eps"])

    def gate(which, l):
        return P[which + "_gate"][l] if cfg["residual_gate"] else 1.0

    x = P["wte"][tok_in]                                             # (B,T,d)
    if cfg["emb_scale"]:
        x = x * P["emb_scale"]
    for l in range(L):
        n = norm(x, "attn", l)
        # head h is the contiguous slice [h*hd, (h+1)*hd) of the projection output
        q = linear(cfg, "qkv", n, P["wq"][l]).view(Bn, Tn, H, hd)
        k = linear(cfg, "qkv", n, P["wk"][l]).view(Bn, Tn, KV, hd)
        v = linear(cfg, "qkv", n, P["wv"][l]).view(Bn, Tn, KV, hd)
        q, k = rope(q, cfg["rope_theta"]), rope(k, cfg["rope_theta"])
        x = x + gate("attn", l) * linear(cfg, "wo", attention(q, k, v, KV, cfg), P["wo"][l])
        n = norm(x, "ffn", l)
        if cfg["mlp"] == 0:
            x = x + gate("ffn", l) * swiglu_ffn(n, P["w1"][l], P["w2"][l], P["w3"][l], cfg)
        else:
            x = x + gate("ffn", l) * gelu_ffn(n, P["w1"][l], P["w2"][l], cfg)
    n = norm(x, "final", None)
    head = P["wte"] if cfg["tie_embeddings"] else P["wcls"]
    logits = linear(cfg, "head", n, head)
    return (logits, stats) if return_stats else logits


def loss_fn(P, cfg, tokens):
    """Mean cross entropy over all B*T positions; tokens (B, T+1)."""
    logits = forward(P, cfg, tokens[:, :-1])
    V = cfg["vocab_size"]
    return F.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1)), logits


# --------------------------------------------------------------------------- reference run

def to_tensors(cfg, p32):
    """float32 numpy arrays -> float64 leaf tensors (exact upcast), file order."""
    return {name: torch.tensor(p32[name].astype(np.float64), requires_grad=True)
            for name, _, _ in param_specs(cfg)}


def flat(cfg, P, what="data"):
    return torch.cat([getattr(P[name], what).detach().reshape(-1)
                      for name, _, _ in param_specs(cfg)])


def run_reference(cfg, p32, tokens_np, clip, hp, n_steps=N_STEPS):
    """Initial logits/loss/grad, then n_steps of clip + AdamW on the same batch."""
    P = to_tensors(cfg, p32)
    tokens = torch.tensor(tokens_np, dtype=torch.long)
    specs = param_specs(cfg)
    decay = [P[n] for n, _, wd in specs if wd]
    no_decay = [P[n] for n, _, wd in specs if not wd]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    allp = [P[n] for n, _, _ in specs]
    res = dict(losses=[], norms=[])
    for step in range(n_steps):
        opt.zero_grad(set_to_none=True)
        loss, logits = loss_fn(P, cfg, tokens)
        loss.backward()
        if step == 0:
            res["logits"] = logits.detach().clone()
            res["loss"] = float(loss)
            res["grad"] = flat(cfg, P, "grad").clone()           # unclipped
            res["grads_by_name"] = {n: P[n].grad.detach().clone() for n, _, _ in specs}
        res["losses"].append(float(loss))
        norm = torch.nn.utils.clip_grad_norm_(allp, clip)
        res["norms"].append(float(norm))
        opt.step()
    res["params"] = flat(cfg, P, "data").clone()
    return res


# --------------------------------------------------------------------------- file I/O

def v1_expressible(cfg):
    """Version 1 (before the norm table): RMSNorm or DyT, emb_scale exactly with DyT, no gates."""
    return cfg["norm"] in (0, 1) and cfg["emb_scale"] == cfg["norm"] and not cfg["residual_gate"]


def header_version(cfg):
    """The oldest version that can express cfg, so earlier cases' files stay as they were:
    1 (above), 2 (SwiGLU, the final norm's alpha0 the FFN input's), else 3."""
    v2 = cfg["mlp"] == 0 and cfg["alpha_final0"] == cfg["alpha_ffn0"]
    return (1 if v1_expressible(cfg) else 2) if v2 else 3


def header_bytes(cfg, kind=1):
    version = header_version(cfg)
    h = struct.pack("<Ii" + "i" * 11 + "ffff", MODEL_MAGIC, version, kind,
                    cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["n_heads"],
                    cfg["n_kv_heads"], cfg["vocab_size"], cfg["seq_len"], cfg["norm"],
                    cfg["tie_embeddings"], cfg["dyt_beta"],
                    cfg["norm_eps"], cfg["rope_theta"], cfg["alpha_attn0"], cfg["alpha_ffn0"])
    h += struct.pack("<i", 0)  # tokenizer_bytes
    if version > 1:
        h += struct.pack("<ii", cfg["emb_scale"], cfg["residual_gate"])
    if version > 2:  # data_record_bytes (0: a model file has none), the MLP kind, the final norm's alpha0
        h += struct.pack("<iif", 0, cfg["mlp"], cfg["alpha_final0"])
    return h + bytes(HEADER_BYTES - len(h))


def write_model(path, cfg, p32):
    with open(path, "wb") as f:
        f.write(header_bytes(cfg))
        for name, shape, _ in param_specs(cfg):
            assert p32[name].shape == shape and p32[name].dtype == np.float32
            f.write(p32[name].astype("<f4").tobytes())


def ref_size(cfg, Bn, Tn, n_steps):
    return (REF_HEADER_BYTES + 4 * Bn * (Tn + 1) + 4 * Bn * Tn * cfg["vocab_size"] + 4
            + 4 * n_params(cfg) + 4 * n_steps + 4 * n_params(cfg))


def write_ref(path, hp, tokens_np, res):
    with open(path, "wb") as f:
        f.write(struct.pack("<Iiiii", REF_MAGIC, VERSION, B, T, len(res["losses"])))
        f.write(struct.pack("<6f", hp["lr"], hp["weight_decay"], hp["clip"],
                            hp["beta1"], hp["beta2"], hp["eps"]))
        f.write(tokens_np.astype("<i4").tobytes())
        f.write(res["logits"].numpy().astype("<f4").tobytes())
        f.write(np.array([res["loss"]], dtype="<f4").tobytes())
        f.write(res["grad"].numpy().astype("<f4").tobytes())
        f.write(np.array(res["losses"], dtype="<f4").tobytes())
        f.write(res["params"].numpy().astype("<f4").tobytes())


def read_model(path):
    """Parse a model.bin strictly; returns (cfg, p32)."""
    data = open(path, "rb").read()
    vals = struct.unpack_from("<Ii" + "i" * 11 + "ffff", data, 0)
    magic, version, kind = vals[:3]
    assert magic == MODEL_MAGIC and version in (1, 2, 3) and kind == 1, path
    reserved = {1: 72, 2: 80, 3: 92}[version]  # byte 80 (data_record_bytes) is 0 in a model file
    assert data[reserved:HEADER_BYTES] == bytes(HEADER_BYTES - reserved), "reserved bytes not zero"
    assert version < 3 or data[80:84] == bytes(4), "data_record_bytes not zero in a model file"
    emb, gate = (vals[10], 0) if version == 1 else struct.unpack_from("<ii", data, 72)
    keys = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
            "seq_len", "norm", "tie_embeddings", "dyt_beta"]
    raw = dict(zip(keys, vals[3:13]))
    raw.update(zip(["norm_eps", "rope_theta", "alpha_attn0", "alpha_ffn0"], vals[13:17]))
    mlp, alpha_final0 = struct.unpack_from("<if", data, 84) if version > 2 else (0, raw["alpha_ffn0"])
    cfg = make_cfg(raw["norm"], raw["tie_embeddings"], raw["dyt_beta"], emb if version > 1 else int(raw["norm"] == 1),
                   gate, mlp=mlp, alpha_final0=alpha_final0,
                   **{k: raw[k] for k in keys[:7] + ["norm_eps", "rope_theta", "alpha_attn0", "alpha_ffn0"]})
    assert cfg["dyt_beta"] == raw["dyt_beta"] and version == header_version(cfg), path
    n = n_params(cfg)
    assert len(data) == HEADER_BYTES + 4 * n, f"{path}: size {len(data)} != {HEADER_BYTES + 4 * n}"
    arr = np.frombuffer(data, dtype="<f4", offset=HEADER_BYTES)
    p32, off = {}, 0
    for name, shape, _ in param_specs(cfg):
        m = int(np.prod(shape))
        p32[name] = arr[off:off + m].reshape(shape).astype(np.float32)
        off += m
    return cfg, p32


def read_ref(path, cfg):
    data = open(path, "rb").read()
    magic, version, Bn, Tn, ns = struct.unpack_from("<Iiiii", data, 0)
    assert magic == REF_MAGIC and version == VERSION, path
    lr, wd, clip, b1, b2, eps = struct.unpack_from("<6f", data, 20)
    assert len(data) == ref_size(cfg, Bn, Tn, ns), f"{path}: size {len(data)}"
    off, n, V = REF_HEADER_BYTES, n_params(cfg), cfg["vocab_size"]

    def take(dtype, count):
        nonlocal off
        a = np.frombuffer(data, dtype=dtype, count=count, offset=off)
        off += 4 * count
        return a

    out = dict(B=Bn, T=Tn, n_steps=ns,
               hp=dict(lr=lr, weight_decay=wd, clip=clip, beta1=b1, beta2=b2, eps=eps))
    out["tokens"] = take("<i4", Bn * (Tn + 1)).reshape(Bn, Tn + 1)
    out["logits"] = take("<f4", Bn * Tn * V).reshape(Bn, Tn, V)
    out["loss"] = take("<f4", 1)[0]
    out["grad"] = take("<f4", n)
    out["losses"] = take("<f4", ns)
    out["params"] = take("<f4", n)
    assert off == len(data)
    return out


# --------------------------------------------------------------------------- self-checks

def check_formulas():
    """Scalar re-implementations of the docs/format.md formulas vs the vectorized model."""
    rng = np.random.RandomState(7)
    theta, hd, H, KV, Tn = 10000.0, 8, 4, 2, 5

    # RoPE: identity at pos 0; pair i at pos p rotated by p * theta^(-2i/hd) (scalar loop)
    x = torch.tensor(rng.standard_normal((1, Tn, H, hd)))
    y = rope(x, theta)
    assert torch.equal(y[:, 0], x[:, 0]), "RoPE at pos 0 must be the identity"
    for pos in range(Tn):
        for h in range(H):
            for i in range(hd // 2):
                a = pos * theta ** (-2.0 * i / hd)
                x0, x1 = float(x[0, pos, h, 2 * i]), float(x[0, pos, h, 2 * i + 1])
                assert abs(float(y[0, pos, h, 2 * i]) - (x0 * math.cos(a) - x1 * math.sin(a))) < 1e-12
                assert abs(float(y[0, pos, h, 2 * i + 1]) - (x0 * math.sin(a) + x1 * math.cos(a))) < 1e-12
    # a unit vector in pair 0 at pos 1 goes to (cos 1, sin 1): angle 1 rad (theta^0 = 1)
    e = torch.zeros(1, 2, 1, hd)
    e[0, :, 0, 0] = 1.0
    r = rope(e, theta)
    assert abs(float(r[0, 1, 0, 0]) - math.cos(1.0)) < 1e-15
    assert abs(float(r[0, 1, 0, 1]) - math.sin(1.0)) < 1e-15

    # GQA mapping: query head i reads kv head i // (H / KV)
    assert kv_head_of(4, 2).tolist() == [0, 0, 1, 1]
    assert kv_head_of(4, 1).tolist() == [0, 0, 0, 0]
    assert kv_head_of(4, 4).tolist() == [0, 1, 2, 3]
    assert kv_head_of(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    q = torch.tensor(rng.standard_normal((1, Tn, H, hd)))
    k = torch.tensor(rng.standard_normal((1, Tn, KV, hd)))
    v = torch.tensor(rng.standard_normal((1, Tn, KV, hd)))
    y = attention(q, k, v, KV).view(1, Tn, H, hd)
    for h in range(H):                                     # scalar causal softmax attention
        kvh = h // (H // KV)
        for t in range(Tn):
            s = [float(q[0, t, h] @ k[0, j, kvh]) / math.sqrt(hd) for j in range(t + 1)]
            m = max(s)
            w = [math.exp(z - m) for z in s]
            ref = sum(w[j] * v[0, j, kvh] for j in range(t + 1)) / sum(w)
            assert torch.allclose(y[0, t, h], ref, atol=1e-12, rtol=0)
    # perturbing kv head 1 changes query heads 2, 3 only; and position 0 only sees itself
    v2 = v.clone()
    v2[:, :, 1] += 1.0
    y2 = attention(q, k, v2, KV).view(1, Tn, H, hd)
    assert torch.equal(y2[:, :, :2], y[:, :, :2]) and not torch.equal(y2[:, :, 2:], y[:, :, 2:])
    assert torch.allclose(y[0, 0, 3], v[0, 0, 1], atol=1e-14, rtol=0)

    # SwiGLU: w2 (silu(w1 n) * w3 n), silu(a) = a / (1 + exp(-a))
    d, hdim = 3, 4
    n = torch.tensor(rng.standard_normal((d,)))
    w1, w3 = torch.tensor(rng.standard_normal((hdim, d))), torch.tensor(rng.standard_normal((hdim, d)))
    w2 = torch.tensor(rng.standard_normal((d, hdim)))
    got = swiglu_ffn(n[None], w1, w2, w3)[0]
    for o in range(d):
        acc = 0.0
        for j in range(hdim):
            a = sum(float(w1[j, c] * n[c]) for c in range(d))
            b = sum(float(w3[j, c] * n[c]) for c in range(d))
            acc += float(w2[o, j]) * (a / (1.0 + math.exp(-a))) * b
        assert abs(float(got[o]) - acc) < 1e-12

    # GELU MLP: w2 gelu(w1 n), gelu(a) = a Phi(a) = a (1 + erf(a / sqrt 2)) / 2
    got = gelu_ffn(n[None], w1, w2)[0]
    for o in range(d):
        acc = 0.0
        for j in range(hdim):
            a = sum(float(w1[j, c] * n[c]) for c in range(d))
            acc += float(w2[o, j]) * 0.5 * a * (1.0 + math.erf(a / math.sqrt(2.0)))
        assert abs(float(got[o]) - acc) < 1e-12

    # RMSNorm and DyT
    xx = torch.tensor(rng.standard_normal((d,)))
    g = torch.tensor(rng.standard_normal((d,)))
    bta = torch.tensor(rng.standard_normal((d,)))
    ms = sum(float(z) ** 2 for z in xx) / d
    for c in range(d):
        assert abs(float(rmsnorm(xx, g, 1e-5)[c]) - float(xx[c]) / math.sqrt(ms + 1e-5) * float(g[c])) < 1e-12
        assert abs(float(dyt(xx, g, 0.7, bta)[c]) - (float(g[c]) * math.tanh(0.7 * float(xx[c])) + float(bta[c]))) < 1e-12
        assert abs(float(dyt(xx, g, 0.7, None)[c]) - float(g[c]) * math.tanh(0.7 * float(xx[c]))) < 1e-12
    # LayerNorm, Derf, hardtanh, softsign
    mu = sum(float(z) for z in xx) / d
    var = sum((float(z) - mu) ** 2 for z in xx) / d
    for c in range(d):
        x_c, g_c, b_c = float(xx[c]), float(g[c]), float(bta[c])
        assert abs(float(layernorm(xx, g, bta, 1e-5)[c]) - ((x_c - mu) / math.sqrt(var + 1e-5) * g_c + b_c)) < 1e-12
        assert abs(float(derf(xx, g, 0.7, 0.2, bta)[c]) - (g_c * math.erf(0.7 * x_c + 0.2) + b_c)) < 1e-12
        assert abs(float(hardtanh(xx, g, 0.7, bta)[c]) - (g_c * max(-1.0, min(1.0, 0.7 * x_c)) + b_c)) < 1e-12
        assert abs(float(softsign(xx, g, 0.7, bta)[c]) - (g_c * 0.7 * x_c / (1.0 + abs(0.7 * x_c)) + b_c)) < 1e-12

    # bf16(): round to nearest, ties to even, as src/bf16.h: add 0x7fff and the kept part's
    # last bit, cut to the top 16 bits (finite values over float32's range, and ties)
    xs = (rng.standard_normal(20000) * 10.0 ** rng.randint(-37, 38, 20000)).astype(np.float32)
    xs = np.concatenate([xs, np.float32([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 3 * 2**-8), 1 + 2**-8 + 2**-20])])
    bits = xs.view(np.uint32).astype(np.uint64)
    want = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
    assert np.array_equal(bf16(torch.tensor(xs.astype(np.float64))).numpy(), want.astype(np.float64))
    assert bf16(torch.tensor([1 + 2**-8, 1 + 3 * 2**-8])).tolist() == [1.0, 1 + 2**-6]
    # Bf16Product: forward and both gradients are products of rounded operands
    a = torch.tensor(rng.standard_normal((3, 5)), requires_grad=True)
    b = torch.tensor(rng.standard_normal((5, 2)), requires_grad=True)
    g = torch.tensor(rng.standard_normal((3, 2)))
    y = Bf16Product.apply(a, b, True)
    y.backward(g)
    assert torch.equal(y, bf16(a) @ bf16(b))
    assert torch.equal(a.grad, bf16(g) @ bf16(b).t()) and torch.equal(b.grad, bf16(a).t() @ bf16(g))


def naive_forward(P, cfg, tok_in):
    """Independent loop-by-loop numpy forward (one position at a time) -> logits (B,T,V)."""
    P = {k: v.detach().numpy() for k, v in P.items()}
    d, L, H, KV, hd = cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    theta, eps, kind = cfg["rope_theta"], cfg["norm_eps"], cfg["kind"]
    Bn, Tn = tok_in.shape
    verf = np.vectorize(math.erf)

    def nrm(x, which, l):
        sel = (lambda a: a) if l is None else (lambda a: a[l])
        par = {q: sel(P[f"{which}_{q}"]) if has_param(cfg, q) else None for q in SITE_PARAMS}
        g, b = par["norm"], par["beta"] if par["beta"] is not None else 0.0
        a = float(np.ravel(par["alpha"])[0]) if par["alpha"] is not None else None
        if kind == "rmsnorm":
            return x / math.sqrt(float(np.mean(x * x)) + eps) * g
        if kind == "layernorm":
            mu = float(np.mean(x))
            return (x - mu) / math.sqrt(float(np.mean((x - mu) ** 2)) + eps) * g + b
        if kind == "dyt":
            return g * np.tanh(a * x) + b
        if kind == "derf":
            return g * verf(a * x + float(np.ravel(par["shift"])[0])) + b
        if kind == "hardtanh":
            return g * np.minimum(1.0, np.maximum(-1.0, a * x)) + b
        if kind == "softsign":
            return g * (a * x) / (1.0 + np.abs(a * x)) + b
        assert kind == "none"
        return x

    def gt(which, l):
        return float(P[which + "_gate"][l]) if cfg["residual_gate"] else 1.0

    def rot(vec, pos):
        out = vec.copy()
        for i in range(hd // 2):
            a = pos * theta ** (-2.0 * i / hd)
            c, s = math.cos(a), math.sin(a)
            out[2 * i] = vec[2 * i] * c - vec[2 * i + 1] * s
            out[2 * i + 1] = vec[2 * i] * s + vec[2 * i + 1] * c
        return out

    logits = np.zeros((Bn, Tn, cfg["vocab_size"]))
    for b in range(Bn):
        xs = [P["wte"][tok_in[b, t]] * (float(P["emb_scale"][0]) if cfg["emb_scale"] else 1.0) for t in range(Tn)]
        for l in range(L):
            ns = [nrm(x, "attn", l) for x in xs]
            qs = [P["wq"][l] @ n for n in ns]
            ks = [P["wk"][l] @ n for n in ns]
            vs = [P["wv"][l] @ n for n in ns]
            new = []
            for t in range(Tn):
                heads = []
                for h in range(H):
                    kvh = h // (H // KV)
                    qh = rot(qs[t][h * hd:(h + 1) * hd], t)
                    sc = np.array([qh @ rot(ks[j][kvh * hd:(kvh + 1) * hd], j) for j in range(t + 1)])
                    w = np.exp(sc / math.sqrt(hd) - np.max(sc / math.sqrt(hd)))
                    w /= w.sum()
                    heads.append(sum(w[j] * vs[j][kvh * hd:(kvh + 1) * hd] for j in range(t + 1)))
                new.append(xs[t] + gt("attn", l) * (P["wo"][l] @ np.concatenate(heads)))
            xs = new
            for t in range(Tn):
                n = nrm(xs[t], "ffn", l)
                a = P["w1"][l] @ n
                if cfg["mlp"] == 0:
                    act = a / (1.0 + np.exp(-a)) * (P["w3"][l] @ n)
                else:
                    act = np.array([0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0))) for z in a])
                xs[t] = xs[t] + gt("ffn", l) * (P["w2"][l] @ act)
        head = P["wte"] if cfg["tie_embeddings"] else P["wcls"]
        for t in range(Tn):
            logits[b, t] = head @ nrm(xs[t], "final", None)
    return logits


def check_gradients(cfg_full, p32_full, tokens_full):
    """gradcheck on a smaller config of the same kind, finite differences on the real one."""
    small = make_cfg(cfg_full["norm"], cfg_full["tie_embeddings"], cfg_full["dyt_beta"],
                     cfg_full["emb_scale"], cfg_full["residual_gate"],
                     dim=8, hidden_dim=6, n_layers=2, n_heads=4, n_kv_heads=2,
                     vocab_size=7, seq_len=4, mlp=cfg_full["mlp"])
    rng = np.random.RandomState(99)
    ps = init_params(small, rng)
    toks = torch.tensor(rng.randint(0, small["vocab_size"], size=(2, 5)), dtype=torch.long)
    names = [n for n, _, _ in param_specs(small)]
    inputs = tuple(torch.tensor(ps[n].astype(np.float64), requires_grad=True) for n in names)

    def f(*ts):
        return loss_fn(dict(zip(names, ts)), small, toks)[0]

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)

    # central differences on a few parameters of every tensor of the real case
    P = to_tensors(cfg_full, p32_full)
    toks = torch.tensor(tokens_full, dtype=torch.long)
    loss = loss_fn(P, cfg_full, toks)[0]
    loss.backward()
    rng = np.random.RandomState(5)
    worst = 0.0
    with torch.no_grad():
        for name, _, _ in param_specs(cfg_full):
            flatp, flatg = P[name].view(-1), P[name].grad.view(-1)
            for j in rng.choice(flatp.numel(), size=min(3, flatp.numel()), replace=False):
                h, old = 1e-6, float(flatp[j])
                flatp[j] = old + h
                lp = float(loss_fn(P, cfg_full, toks)[0])
                flatp[j] = old - h
                lm = float(loss_fn(P, cfg_full, toks)[0])
                flatp[j] = old
                fd, an = (lp - lm) / (2 * h), float(flatg[j])
                err = abs(fd - an) / max(1e-6, abs(an))
                worst = max(worst, err) if abs(an) > 1e-9 else worst
                assert abs(fd - an) < 1e-7 + 1e-5 * abs(an), (name, j, fd, an)
    return worst


def check_adamw(cfg, p32, tokens, clip, hp, res):
    """Independent numpy clip + AdamW (decoupled weight decay) vs torch.optim.AdamW."""
    specs = param_specs(cfg)
    P = to_tensors(cfg, p32)
    toks = torch.tensor(tokens, dtype=torch.long)
    m = {n: np.zeros(s) for n, s, _ in specs}
    v = {n: np.zeros(s) for n, s, _ in specs}
    b1, b2 = hp["beta1"], hp["beta2"]
    for step in range(1, N_STEPS + 1):
        for n, _, _ in specs:
            P[n].grad = None
        loss_fn(P, cfg, toks)[0].backward()
        g = {n: P[n].grad.numpy().copy() for n, _, _ in specs}
        norm = math.sqrt(sum(float((g[n] ** 2).sum()) for n in g))
        scale = min(1.0, clip / (norm + 1e-6))
        with torch.no_grad():
            for n, _, wd in specs:
                gn = g[n] * scale
                p = P[n].detach().numpy()                 # shares memory with P[n]
                p *= 1.0 - hp["lr"] * (hp["weight_decay"] if wd else 0.0)
                m[n] = b1 * m[n] + (1 - b1) * gn
                v[n] = b2 * v[n] + (1 - b2) * gn * gn
                mhat = m[n] / (1 - b1 ** step)
                vhat = v[n] / (1 - b2 ** step)
                p -= hp["lr"] * mhat / (np.sqrt(vhat) + hp["eps"])
    mine = flat(cfg, P, "data")
    diff = float((mine - res["params"]).abs().max())
    assert diff < 1e-12, f"AdamW mismatch {diff}"


def close(a, b, what, rtol=3e-7, atol=1e-10):
    """Stored float32 vs fresh float64: equal up to float32 rounding (~1 ulp = 6e-8
    relative), with a little slack for float64 summation order on other machines."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    bad = np.abs(a - b) > atol + rtol * np.abs(b)
    assert not bad.any(), f"{what} differs at {np.flatnonzero(bad)[:5]}"


def assert_same(name, ref, res):
    """A reference file's contents against a fresh run_reference."""
    close(ref["logits"], res["logits"].numpy(), f"{name}: logits")
    close(ref["loss"], res["loss"], f"{name}: loss")
    close(ref["grad"], res["grad"].numpy(), f"{name}: gradient")
    close(ref["losses"], res["losses"], f"{name}: per-step losses")
    close(ref["params"], res["params"].numpy(), f"{name}: final params")


def verify_files(outdir, name, expect_clip, do_gradcheck):
    """Read NAME.model.bin / NAME.ref.bin back, check them, recompute and compare."""
    mpath, rpath = (os.path.join(outdir, name + ext) for ext in (".model.bin", ".ref.bin"))
    cfg, p32 = read_model(mpath)
    n = n_params(cfg)
    assert os.path.getsize(mpath) == HEADER_BYTES + 4 * n
    ref = read_ref(rpath, cfg)
    assert os.path.getsize(rpath) == ref_size(cfg, ref["B"], ref["T"], ref["n_steps"])
    assert (ref["B"], ref["T"], ref["n_steps"]) == (B, T, N_STEPS)
    assert ref["tokens"].min() >= 0 and ref["tokens"].max() < cfg["vocab_size"]
    hp = {k: float(x) for k, x in ref["hp"].items()}
    res = run_reference(cfg, p32, ref["tokens"].astype(np.int64), hp["clip"], hp)
    assert_same(name, ref, res)
    assert ref["losses"][0] == ref["loss"]
    # every tensor's gradient is non-trivial
    for nm, g in res["grads_by_name"].items():
        assert float(g.abs().max()) > 1e-4, f"{name}: gradient of {nm} is trivial"
    clipped = [nr > hp["clip"] for nr in res["norms"]]
    assert all(clipped) if expect_clip else not any(clipped), (name, res["norms"], hp["clip"])
    # independent forward, optimizer and gradient checks
    P = to_tensors(cfg, p32)
    naive = naive_forward(P, cfg, ref["tokens"][:, :-1])
    assert np.allclose(naive, res["logits"].numpy(), rtol=0, atol=1e-11), f"{name}: naive forward differs"
    check_adamw(cfg, p32, ref["tokens"].astype(np.int64), hp["clip"], hp, res)
    worst = check_gradients(cfg, p32, ref["tokens"].astype(np.int64)) if do_gradcheck else None
    # std of every norm input (activations should be O(1)), for the summary line
    _, stats = forward(P, cfg, torch.tensor(ref["tokens"][:, :-1], dtype=torch.long), return_stats=True)
    return cfg, res, hp, worst, stats


# --------------------------------------------------------------------------- the bf16 reference

def bf16_cfg(cfg, sites=PRODUCT_SITES, grads=True):
    """cfg with the products at `sites` rounding their operands (and the backward's gradient with grads)."""
    return dict(cfg, bf16=tuple(sites), bf16_grads=grads)


def bf16_run(outdir, name, **variant):
    """The case's bf16 step from its files: (cfg, tokens, hp, result)."""
    cfg, p32 = read_model(os.path.join(outdir, name + ".model.bin"))
    ref = read_ref(os.path.join(outdir, name + ".ref.bin"), cfg)
    hp = {k: float(x) for k, x in ref["hp"].items()}
    res = run_reference(bf16_cfg(cfg, **variant), p32, ref["tokens"].astype(np.int64), hp["clip"], hp, BF16_STEPS)
    return cfg, ref, hp, res


def write_bf16(outdir, name):
    _, ref, hp, res = bf16_run(outdir, name)
    write_ref(os.path.join(outdir, name + BF16_SUFFIX), hp, ref["tokens"], res)


def rel_diff(cfg, a, b):
    """The largest max|a - b| / max|b| over the logits and each tensor's gradient: (value, where)."""
    out = [(float((a["logits"] - b["logits"]).abs().max() / b["logits"].abs().max()), "logits")]
    off = 0
    for nm, shape, _ in param_specs(cfg):
        n = int(np.prod(shape))
        ga, gb = a["grad"][off:off + n], b["grad"][off:off + n]
        out.append((float((ga - gb).abs().max() / gb.abs().max()), "grad " + nm))
        off += n
    return max(out)


# test_core's tolerance against the bf16 reference (REL_TOL there): at least half the
# cases must be within it (the others may hold a rounding flip, test_core.c says why).
# Every product's rounding must move each case by far more: by BF16_VISIBLE or more.
C_REL_TOL = 1e-5
BF16_VISIBLE = 100 * C_REL_TOL
U = 2.0 ** -8  # bf16's unit roundoff


def verify_bf16(outdir, name):
    """NAME.ref-bf16.bin read back and recomputed; the rounding of every product, and of
    the backward's incoming gradients, must show in it (leaving one out moves the case by
    at least BF16_VISIBLE). Returns (differences from the float64 model, from each variant)."""
    cfg, ref, hp, res = bf16_run(outdir, name)
    path = os.path.join(outdir, name + BF16_SUFFIX)
    got = read_ref(path, cfg)
    assert os.path.getsize(path) == ref_size(cfg, B, T, BF16_STEPS), path
    assert (got["B"], got["T"], got["n_steps"]) == (B, T, BF16_STEPS), path
    assert np.array_equal(got["tokens"], ref["tokens"]) and got["hp"] == ref["hp"], path
    assert_same(name + " (bf16)", got, res)
    full = run_reference(cfg, read_model(os.path.join(outdir, name + ".model.bin"))[1],
                         ref["tokens"].astype(np.int64), hp["clip"], hp, 1)
    variants = {}
    for site in PRODUCT_SITES + ("dout",):
        kw = dict(grads=False) if site == "dout" else dict(sites=[s for s in PRODUCT_SITES if s != site])
        variants[site] = rel_diff(cfg, bf16_run(outdir, name, **kw)[3], res)
        assert variants[site][0] >= BF16_VISIBLE, f"{name}: rounding at {site} moves it by {variants[site]} only"
    return rel_diff(cfg, res, full), variants


# --------------------------------------------------------------------------- main

def main(args):

    check_formulas()
    print("formula checks (RoPE, GQA mapping, SwiGLU, RMSNorm, DyT, LayerNorm, Derf, hardtanh, softsign, bf16 rounding "
          "and products): ok")

    only = set(filter(None, args.cases.split(",")))
    unknown = only - {c[0] for c in CASES}
    assert not unknown, f"unknown cases {sorted(unknown)}"
    cases = [c for c in CASES if not only or c[0] in only]
    if not args.check:
        os.makedirs(args.out, exist_ok=True)
        for name, kind, tie, beta, emb, gate, clip, expect_clip, seed, mlp in cases:
            cfg = make_cfg(NORMS[kind][0], tie, beta, emb, gate, mlp=mlp)
            rng = np.random.RandomState(seed)
            p32 = init_params(cfg, rng)
            tokens = rng.randint(0, cfg["vocab_size"], size=(B, T + 1)).astype(np.int32)
            hp = dict(lr=f32(LR), weight_decay=f32(WD), clip=f32(clip),
                      beta1=f32(BETA1), beta2=f32(BETA2), eps=f32(EPS))
            res = run_reference(cfg, p32, tokens.astype(np.int64), hp["clip"], hp)
            write_model(os.path.join(args.out, name + ".model.bin"), cfg, p32)
            write_ref(os.path.join(args.out, name + ".ref.bin"), hp, tokens, res)

    total = 0
    for name, kind, tie, beta, emb, gate, clip, expect_clip, seed, mlp in cases:
        cfg, res, hp, worst, stats = verify_files(args.out, name, expect_clip, not args.no_gradcheck)
        sizes = [os.path.getsize(os.path.join(args.out, name + e)) for e in (".model.bin", ".ref.bin")]
        total += sum(sizes)
        print(f"{name:16s} n_params={n_params(cfg):5d} loss={res['loss']:.6f} "
              f"grad_norm={res['norms'][0]:.6f} clip={hp['clip']:g} "
              f"clipped={'yes' if res['norms'][0] > hp['clip'] else 'no'} "
              f"step_norms=[{', '.join(f'{x:.4f}' for x in res['norms'])}] "
              f"losses=[{', '.join(f'{x:.4f}' for x in res['losses'])}] "
              f"norm_input_std=[{min(stats):.2f}..{max(stats):.2f}] "
              f"fd_worst_rel={'skipped' if worst is None else f'{worst:.1e}'} "
              f"bytes={sizes[0]}+{sizes[1]}")
    for name in (c[0] for c in cases if c[0] in BF16_CASES):
        if not args.check:
            write_bf16(args.out, name)
        loose, variants = verify_bf16(args.out, name)
        size = os.path.getsize(os.path.join(args.out, name + BF16_SUFFIX))
        total += size
        weakest = min(variants, key=lambda k: variants[k][0])
        print(f"{name + ' bf16':24s} vs float64: {loose[0] / U:.2f}u ({loose[1]}); without one product's "
              f"rounding: {min(v[0] for v in variants.values()) / U:.2f}u ({weakest}: {variants[weakest][1]}) "
              f"to {max(v[0] for v in variants.values()) / U:.2f}u, at least {BF16_VISIBLE:g} "
              f"bytes={size}")
    print(f"all checks passed; {len(cases)} cases, {total} bytes in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
