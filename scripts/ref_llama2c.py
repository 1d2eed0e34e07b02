#!/usr/bin/python3
"""PyTorch (float64) reference for llama2.c checkpoints: logits test vectors.

What it produces (in test/ref unless --out)
    l2c_untied.legacy.bin    a small random llama2.c model with an unshared classifier
                             (negative vocab_size), in the legacy format (version 0)
    l2c_untied.ak42.bin      the same weights in the "ak42" version 1 format
    l2c_untied.ref.bin       token sequences and the model's logits for them
    l2c_tied.ak42.bin        another small random model, shared classifier, ak42 format
    l2c_tied.ref.bin
    l2c_stories260K.ref.bin  token sequences and logits of ../shared/data/stories260K.bin
                             (the model itself is not committed; skipped when absent)
    The C tests load the models with our loader and compare our logits with these.

How it works
    The files are parsed strictly here (magic / version / every size, exact file
    length) into float32 arrays, upcast to float64, and run through a forward
    written the way llama2.c's model.py writes it: precomputed RoPE cos/sin on
    interleaved pairs, repeat_kv for grouped-query attention, RMSNorm with eps 1e-5,
    SwiGLU, the classifier on the final norm. As a self-check the same logits are
    recomputed by scripts/ref_torch.py's forward (our own format's reference) after
    mapping the weights into its tensor order; the two agree to float64 rounding
    (1e-10 relative). The legacy files' RoPE tables are checked against the tables
    they should hold, which catches a misplaced offset. Stored logits are rounded
    to float32.

Reference file (NAME.ref.bin), little-endian
    uint32 magic 0x5243324C ("L2CR"), int32 version 1, int32 n_seq, int32 T, int32 V,
    int32 tokens (n_seq, T), float32 logits (n_seq, T, V); position t's logits
    predict token t+1 of its sequence (positions start at 0).

How to regenerate (from the repository root)
    /usr/bin/python3 scripts/ref_llama2c.py            # write test/ref/l2c_*, then check them
    /usr/bin/python3 scripts/ref_llama2c.py --check    # only verify the files in test/ref
"""

import argparse
import math
import os
import struct
import sys


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="test/ref", help="output folder (default test/ref)")
    ap.add_argument("--stories", default="../shared/data/stories260K.bin",
                    help="llama2.c's stories260K.bin (skipped when absent)")
    ap.add_argument("--check", action="store_true", help="do not write; only verify the files in --out")
    return ap.parse_args()


# read before torch is imported: --help and a usage error need no PyTorch
ARGS = parse_args() if __name__ == "__main__" else None
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"ref_llama2c.py: {e.name} is not installed (python3-torch, python3-numpy)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_torch  # noqa: E402  (our format's reference forward, for the cross-check)

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

AK42_MAGIC = 0x616B3432
REF_MAGIC = 0x5243324C  # b"L2CR"
EPS, THETA = 1e-5, 10000.0
FIELDS = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]

# name, config, shared classifier, formats written, seed, sequences
RANDOM_MODELS = [
    ("l2c_untied", dict(dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2,
                        vocab_size=32, seq_len=16), False, ("legacy", "ak42"), 2001),
    ("l2c_tied", dict(dim=24, hidden_dim=20, n_layers=2, n_heads=6, n_kv_heads=2,
                      vocab_size=40, seq_len=12), True, ("ak42",), 2002),
]
STORIES = "l2c_stories260K"


# --------------------------------------------------------------------------- layout

def weight_specs(cfg):
    """{name: shape} of a llama2.c model's weights (wcls only when not shared)."""
    d, h, L, V = cfg["dim"], cfg["hidden_dim"], cfg["n_layers"], cfg["vocab_size"]
    kvd = cfg["n_kv_heads"] * (d // cfg["n_heads"])
    s = dict(wte=(V, d), attn_norm=(L, d), wq=(L, d, d), wk=(L, kvd, d), wv=(L, kvd, d),
             wo=(L, d, d), ffn_norm=(L, d), w1=(L, h, d), w2=(L, d, h), w3=(L, h, d),
             final_norm=(d,))
    if not cfg["shared"]:
        s["wcls"] = (V, d)
    return s


# file order of each format ("rope" = the legacy file's two RoPE tables)
LEGACY_ORDER = ["wte", "attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3",
                "final_norm", "rope", "wcls"]
AK42_ORDER = ["attn_norm", "ffn_norm", "final_norm", "wte", "wq", "wk", "wv", "wo", "w1", "w2",
              "w3", "wcls"]


def rope_tables(cfg):
    """llama2.c's precompute_freqs_cis(head_dim, seq_len): cos and sin, (seq_len, head_dim/2)."""
    hd = cfg["dim"] // cfg["n_heads"]
    freqs = 1.0 / (THETA ** (np.arange(0, hd, 2)[: hd // 2].astype(np.float64) / hd))
    ang = np.outer(np.arange(cfg["seq_len"], dtype=np.float64), freqs)
    return np.cos(ang), np.sin(ang)


def check_cfg(cfg):
    d, H, KV = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    assert all(cfg[k] > 0 for k in FIELDS), cfg
    assert d % H == 0 and (d // H) % 2 == 0 and H % KV == 0, cfg


# --------------------------------------------------------------------------- files

def write_model(path, fmt, cfg, W):
    with open(path, "wb") as f:
        if fmt == "legacy":
            V = cfg["vocab_size"] if cfg["shared"] else -cfg["vocab_size"]
            f.write(struct.pack("<7i", cfg["dim"], cfg["hidden_dim"], cfg["n_layers"],
                                cfg["n_heads"], cfg["n_kv_heads"], V, cfg["seq_len"]))
            order = LEGACY_ORDER
        else:
            h = struct.pack("<Ii7iB", AK42_MAGIC, 1, *[cfg[k] for k in FIELDS], int(cfg["shared"]))
            f.write(h + bytes(256 - len(h)))
            order = AK42_ORDER
        for name in order:
            if name == "rope":
                for table in rope_tables(cfg):
                    f.write(table.astype("<f4").tobytes())
            elif name in W:
                f.write(W[name].astype("<f4").tobytes())


def read_model(path):
    """Parse a llama2.c file strictly (either format); returns (cfg, fmt, weights as float32)."""
    data = open(path, "rb").read()
    magic, = struct.unpack_from("<I", data, 0)
    if magic == AK42_MAGIC:
        fmt, (version,) = "ak42", struct.unpack_from("<i", data, 4)
        assert version == 1, f"{path}: ak42 version {version}"
        vals = struct.unpack_from("<7i", data, 8)
        shared = data[36]
        assert shared in (0, 1) and data[37:256] == bytes(219), f"{path}: ak42 header"
        cfg = dict(zip(FIELDS, vals), shared=bool(shared))
        off, order = 256, AK42_ORDER
    else:
        fmt, vals = "legacy", list(struct.unpack_from("<7i", data, 0))
        cfg = dict(zip(FIELDS, vals), shared=vals[5] > 0)
        cfg["vocab_size"] = abs(vals[5])
        off, order = 28, LEGACY_ORDER
    check_cfg(cfg)
    specs = weight_specs(cfg)
    W = {}
    for name in order:
        if name == "rope":
            n = cfg["seq_len"] * (cfg["dim"] // cfg["n_heads"]) // 2
            for want, tag in zip(rope_tables(cfg), ("cos", "sin")):
                got = np.frombuffer(data, "<f4", n, off).reshape(want.shape)
                # float32 tables (torch computes them in float32): ~1 ulp of the angle
                assert np.abs(got - want).max() < 1e-4, f"{path}: RoPE {tag} table off"
                off += 4 * n
        elif name in specs:
            n = int(np.prod(specs[name]))
            W[name] = np.frombuffer(data, "<f4", n, off).reshape(specs[name]).astype(np.float32)
            off += 4 * n
    assert off == len(data), f"{path}: {len(data)} bytes, layout says {off}"
    return cfg, fmt, W


def write_ref(path, tokens, logits):
    n_seq, T = tokens.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<Iiiii", REF_MAGIC, 1, n_seq, T, logits.shape[-1]))
        f.write(tokens.astype("<i4").tobytes())
        f.write(logits.astype("<f4").tobytes())


def read_ref(path):
    data = open(path, "rb").read()
    magic, version, n_seq, T, V = struct.unpack_from("<Iiiii", data, 0)
    assert magic == REF_MAGIC and version == 1, path
    assert len(data) == 20 + 4 * n_seq * T * (1 + V), f"{path}: size {len(data)}"
    tokens = np.frombuffer(data, "<i4", n_seq * T, 20).reshape(n_seq, T)
    logits = np.frombuffer(data, "<f4", n_seq * T * V, 20 + 4 * n_seq * T).reshape(n_seq, T, V)
    return tokens, logits


# --------------------------------------------------------------------------- model (llama2.c model.py style)

def apply_rotary_emb(x, cos, sin):
    """x (B, T, heads, hd); rotates the interleaved pairs (x[2i], x[2i+1]) like model.py."""
    xr, xi = x.reshape(x.shape[:-1] + (-1, 2)).unbind(-1)
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([xr * cos - xi * sin, xr * sin + xi * cos], dim=-1).flatten(3)


def repeat_kv(x, n_rep):
    """(B, T, KV, hd) -> (B, T, KV * n_rep, hd): query head h reads kv head h // n_rep."""
    b, t, kv, hd = x.shape
    return x[:, :, :, None, :].expand(b, t, kv, n_rep, hd).reshape(b, t, kv * n_rep, hd)


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def forward(cfg, W, tokens):
    """Logits (B, T, V) of tokens (B, T) at positions 0..T-1, float64."""
    P = {k: torch.tensor(v.astype(np.float64)) for k, v in W.items()}
    H, KV = cfg["n_heads"], cfg["n_kv_heads"]
    hd = cfg["dim"] // H
    B, T = tokens.shape
    cos, sin = (torch.tensor(a[:T]) for a in rope_tables(cfg))
    mask = torch.full((T, T), float("-inf")).triu(1)
    h = P["wte"][torch.tensor(tokens, dtype=torch.long)]
    for l in range(cfg["n_layers"]):
        x = rmsnorm(h, P["attn_norm"][l])
        q = (x @ P["wq"][l].T).view(B, T, H, hd)
        k = (x @ P["wk"][l].T).view(B, T, KV, hd)
        v = (x @ P["wv"][l].T).view(B, T, KV, hd)
        q, k = apply_rotary_emb(q, cos, sin), apply_rotary_emb(k, cos, sin)
        k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        att = F.softmax(q @ k.transpose(2, 3) / math.sqrt(hd) + mask, dim=-1)
        h = h + (att @ v).transpose(1, 2).reshape(B, T, -1) @ P["wo"][l].T
        x = rmsnorm(h, P["ffn_norm"][l])
        h = h + (F.silu(x @ P["w1"][l].T) * (x @ P["w3"][l].T)) @ P["w2"][l].T
    head = P["wte"] if cfg["shared"] else P["wcls"]
    return (rmsnorm(h, P["final_norm"]) @ head.T).numpy()


def forward_ref_torch(cfg, W, tokens):
    """The same logits through scripts/ref_torch.py's forward (our format's reference)."""
    rcfg = ref_torch.make_cfg(0, int(cfg["shared"]), 0, norm_eps=EPS, rope_theta=THETA,
                              **{k: cfg[k] for k in FIELDS})
    P = {k: torch.tensor(v.astype(np.float64)) for k, v in W.items()}
    return ref_torch.forward(P, rcfg, torch.tensor(tokens, dtype=torch.long)).numpy()


def logits_of(cfg, W, tokens):
    a, b = forward(cfg, W, tokens), forward_ref_torch(cfg, W, tokens)
    err = np.abs(a - b).max()
    # float64 rounding only (the two compute RoPE angles and sums in different orders)
    assert err < 1e-10 * max(1.0, np.abs(a).max()), f"model.py-style and ref_torch forwards differ by {err}"
    return a


# --------------------------------------------------------------------------- cases

def random_weights(cfg, rng):
    """float32 weights with O(1) activations: matrices N(0, 1/fan_in), wte N(0, 0.5^2), gains 1 + 0.1 N."""
    W = {}
    for name, shape in weight_specs(cfg).items():
        z = rng.standard_normal(shape)
        if name.endswith("_norm"):
            W[name] = (1.0 + 0.1 * z).astype(np.float32)
        elif name == "wte":
            W[name] = (0.5 * z).astype(np.float32)
        else:
            W[name] = (z / math.sqrt(shape[-1])).astype(np.float32)
    return W


def random_tokens(rng, n_seq, T, V):
    """Sequences starting with BOS (1), as llama2.c's generation does."""
    t = rng.randint(0, V, size=(n_seq, T)).astype(np.int32)
    t[:, 0] = 1
    return t


def stories_tokens():
    """BOS + the byte tokens (byte + 3) of " Once u" (what our tokenizer gives for the
    prompt with the first 512 entries of the Llama 2 tokenizer), and two random sequences."""
    first = [1] + [b + 3 for b in b" Once u"]
    rng = np.random.RandomState(2003)
    return np.concatenate([np.array([first], dtype=np.int32), random_tokens(rng, 2, 8, 512)])


def write_all(out, stories):
    for name, cfg0, shared, fmts, seed in RANDOM_MODELS:
        cfg = dict(cfg0, shared=shared)
        rng = np.random.RandomState(seed)
        W = random_weights(cfg, rng)
        tokens = random_tokens(rng, 2, cfg["seq_len"], cfg["vocab_size"])
        for fmt in fmts:
            write_model(os.path.join(out, f"{name}.{fmt}.bin"), fmt, cfg, W)
        write_ref(os.path.join(out, name + ".ref.bin"), tokens, logits_of(cfg, W, tokens))
    if stories:
        cfg, fmt, W = read_model(stories)
        tokens = stories_tokens()
        write_ref(os.path.join(out, STORIES + ".ref.bin"), tokens, logits_of(cfg, W, tokens))


def verify(out, stories):
    """Re-read every file, recompute the logits and compare; returns summary lines."""
    lines, cases = [], []
    for name, cfg0, shared, fmts, seed in RANDOM_MODELS:
        cases += [(name, os.path.join(out, f"{name}.{fmt}.bin")) for fmt in fmts]
    if stories:
        cases.append((STORIES, stories))
    weights = {}
    for name, path in cases:
        cfg, fmt, W = read_model(path)
        tokens, stored = read_ref(os.path.join(out, name + ".ref.bin"))
        assert tokens.min() >= 0 and tokens.max() < cfg["vocab_size"], path
        fresh = logits_of(cfg, W, tokens)
        # stored float32 vs fresh float64: equal up to float32 rounding
        assert np.allclose(stored, fresh, rtol=3e-7, atol=1e-10), f"{path}: stored logits differ"
        if name in weights:  # the same model in two formats holds the same weights
            assert weights[name].keys() == W.keys()
            assert all(np.array_equal(weights[name][k], W[k]) for k in W), f"{path}: weights differ"
        weights[name] = W
        lines.append(f"{name:16s} {fmt:6s} " + " ".join(f"{k}={cfg[k]}" for k in FIELDS)
                     + f" shared={int(cfg['shared'])} seqs={tokens.shape[0]}x{tokens.shape[1]}"
                     f" max|logit|={np.abs(fresh).max():.3f}")
    return lines


def main(args):
    stories = args.stories if os.path.isfile(args.stories) else None
    if not stories:
        print(f"{args.stories}: absent, stories260K skipped")
    if not args.check:
        os.makedirs(args.out, exist_ok=True)
        write_all(args.out, stories)
    for line in verify(args.out, stories):
        print(line)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
