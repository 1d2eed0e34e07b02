#!/usr/bin/python3
"""The PyTorch peer of `make bench`: the same model and training step, eager, float32 or bf16 autocast.

    /usr/bin/python3 scripts/bench_torch.py --dim 288 --layers 6 --heads 6 --kv-heads 6 \
        --seq 256 --batch 8 --vocab 512 --norm dyt --threads 2 --steps 10 --warmup 2 [--precision bf16]

The model is what a PyTorch user would write for it: nn.Linear layers (untied
head), RMSNorm or DyT (alpha scalar, gamma, beta) and the DyT embedding scale,
interleaved RoPE, grouped-query causal attention (matmul, masked softmax,
matmul: torch 1.13 has no fused attention), SwiGLU, cross-entropy, then
clip_grad_norm_(1.0) and torch.optim.AdamW (betas 0.9/0.95, weight decay 0.1
on matrices and embeddings). torch.set_num_threads(--threads) equals ours; the
BLAS environment (OPENBLAS_CORETYPE and the rest) is inherited.

--precision bf16 runs the forward pass and the loss under CPU autocast
(`torch.autocast('cpu', dtype=torch.bfloat16)`), what a PyTorch user would write
for bf16 on a CPU: its products run in bf16 through oneDNN and write bf16
outputs (softmax too), parameters and optimizer stay float32. Not the same
arithmetic as our --precision bf16 (operands rounded, float32 outputs), the same
question: how fast a bf16 step is here.

Prints key=value lines: step_ms (median after warm-up), tok_s, threads, precision, torch.
"""

import argparse
import math
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("dim", "layers", "heads", "kv-heads", "seq", "batch", "vocab", "threads", "steps", "warmup"):
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--norm", choices=("rmsnorm", "dyt"), required=True)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    return p.parse_args()


# read before torch is imported: --help and a usage error need no PyTorch
ARGS = parse_args() if __name__ == "__main__" else None
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("bench_torch.py: PyTorch is not installed (python3-torch)")


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.g, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.g


class DyT(nn.Module):
    def __init__(self, d, alpha0=1.0):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(alpha0))
        self.g, self.b = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return self.g * torch.tanh(self.alpha * x) + self.b


def rope_tables(T, hd, theta=10000.0):
    freq = theta ** (-2.0 * torch.arange(hd // 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq
    return torch.cos(ang).float()[None, :, None, :], torch.sin(ang).float()[None, :, None, :]


def rope(x, cos, sin):  # x (B,T,H,hd), interleaved pairs
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, a, norm):
        super().__init__()
        d, hidden = a.dim, (8 * a.dim // 3 + 31) // 32 * 32
        self.H, self.KV, self.hd = a.heads, a.kv_heads, a.dim // a.heads
        self.n1, self.n2 = norm(d), norm(d)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, self.KV * self.hd, bias=False)
        self.wv = nn.Linear(d, self.KV * self.hd, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        n = self.n1(x)
        q = rope(self.wq(n).view(B, T, self.H, self.hd), cos, sin).transpose(1, 2)
        k = rope(self.wk(n).view(B, T, self.KV, self.hd), cos, sin).transpose(1, 2)
        v = self.wv(n).view(B, T, self.KV, self.hd).transpose(1, 2)
        if self.KV != self.H:
            k = k.repeat_interleave(self.H // self.KV, dim=1)
            v = v.repeat_interleave(self.H // self.KV, dim=1)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(self.hd)
        p = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
        x = x + self.wo((p @ v).transpose(1, 2).reshape(B, T, -1))
        n = self.n2(x)
        return x + self.w2(F.silu(self.w1(n)) * self.w3(n))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        norm = (lambda d: DyT(d)) if a.norm == "dyt" else (lambda d: RMSNorm(d, 1e-5))
        self.dyt = a.norm == "dyt"
        self.wte = nn.Embedding(a.vocab, a.dim)
        self.emb_scale = nn.Parameter(torch.tensor(math.sqrt(a.dim))) if self.dyt else None
        self.blocks = nn.ModuleList(Block(a, norm) for _ in range(a.layers))
        self.norm = norm(a.dim)
        self.head = nn.Linear(a.dim, a.vocab, bias=False)
        cos, sin = rope_tables(a.seq, a.dim // a.heads)
        self.register_buffer("cos", cos)
        self.register_buffer("sin", sin)
        self.register_buffer("mask", torch.triu(torch.ones(a.seq, a.seq, dtype=torch.bool), diagonal=1))
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, tok):
        x = self.wte(tok)
        if self.dyt:
            x = x * self.emb_scale
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        return self.head(self.norm(x))


def main(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(a)
    decay = [q for q in model.parameters() if q.dim() == 2]
    other = [q for q in model.parameters() if q.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    tok = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    inp, tgt = tok[:, :-1], tok[:, 1:]
    # bf16: CPU autocast around the forward pass and the loss (backward follows its casts)
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with cast:
            loss = F.cross_entropy(model(inp).view(-1, a.vocab), tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(1000.0 * (time.perf_counter() - t0))
    ms = statistics.median(times)
    print(f"step_ms={ms:.3f}\ntok_s={a.batch * a.seq / (ms / 1000.0):.1f}\nthreads={torch.get_num_threads()}")
    print(f"precision={a.precision}")
    print(f"torch={torch.__version__}\nloss={loss.item():.4f}")


if __name__ == "__main__":
    main(ARGS)
