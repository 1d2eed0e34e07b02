"""The Hugging Face export read back without our C code (docs/export.md).

    python3 test/test_export.py MODEL.bin HF_DIR REF.json TOL [--f16 | --bf16]

MODEL.bin is read with its own reader here (docs/format.md), HF_DIR/model.safetensors
with json + numpy (the safetensors layout), and a float64 forward pass written from
Hugging Face's LLaMA conventions (rotate_half RoPE on the permuted q/k weights,
repeat_kv, RMSNorm, SwiGLU) runs on the tokens of REF.json, the output of
build/export_ref: its logits must agree with ours within TOL. Prints "ok - ..." or
"FAIL - ...: why" per check.
"""
import json
import struct
import sys

import numpy as np

failed = 0


def check(name, cond, why=""):
    global failed
    print(f"ok - {name}" if cond else f"FAIL - {name}: {why}")
    failed += not cond


def bf16_widen(u16):
    """bfloat16 bits (uint16) -> float32: the top half of a float32."""
    return (u16.astype(np.uint32) << 16).view(np.float32)


def bf16_round(x):
    """float32 -> the nearest bfloat16 (ties to even), as float32 (finite values)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return bf16_widen(((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16))


def read_model(path):
    """Our model.bin (RMSNorm), fp32 or bf16 weights: config, tensors by name (float32), the BPE merges (or None)."""
    raw = open(path, "rb").read()
    (magic, version, kind, d, h, L, H, KV, V, T, norm, tied, beta) = struct.unpack_from("<I12i", raw, 0)
    eps, theta = struct.unpack_from("<2f", raw, 52)
    (tok_bytes,) = struct.unpack_from("<i", raw, 68)
    (dtype,) = struct.unpack_from("<i", raw, 92)  # 0 fp32, 1 bf16 (docs/format.md)
    size = 2 if dtype == 1 else 4
    assert magic == 0x5459444C and norm == 0, "an RMSNorm model.bin"
    kvd = d // H * KV
    shapes = [("wte", (V, d)), ("attn_norm", (L, d)), ("wq", (L, d, d)), ("wk", (L, kvd, d)),
              ("wv", (L, kvd, d)), ("wo", (L, d, d)), ("ffn_norm", (L, d)), ("w1", (L, h, d)),
              ("w2", (L, d, h)), ("w3", (L, h, d)), ("final_norm", (d,))]
    if not tied:
        shapes.append(("wcls", (V, d)))
    w, off = {}, 256
    for name, shape in shapes:
        n = int(np.prod(shape))
        t = bf16_widen(np.frombuffer(raw, "<u2", n, off)) if size == 2 else np.frombuffer(raw, "<f4", n, off)
        w[name] = t.reshape(shape)
        off += size * n
    merges = None
    if tok_bytes:
        merges = np.frombuffer(raw, "<i4", (tok_bytes - 32) // 4, off + 32).reshape(-1, 2)
    cfg = dict(d=d, h=h, L=L, H=H, KV=KV, V=V, T=T, tied=bool(tied), eps=eps, theta=theta, bf16=dtype == 1)
    return cfg, w, merges


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    tensors, spans = {}, []
    for name, t in header.items():
        b, e = t["data_offsets"]
        dt = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}[t["dtype"]]
        x = np.frombuffer(data, dt, (e - b) // np.dtype(dt).itemsize, b)
        tensors[name] = (bf16_widen(x) if t["dtype"] == "BF16" else x).reshape(t["shape"])
        tensors[name + "/dtype"] = t["dtype"]
        spans.append((b, e))
    spans.sort()
    contiguous = spans[0][0] == 0 and spans[-1][1] == len(data) and all(
        spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    return tensors, meta, n, contiguous, list(header)


def hf_permute(w, heads):
    """convert_llama_weights_to_hf.py's permute: adjacent RoPE pairs -> rotate_half halves."""
    rows, cols = w.shape
    return w.reshape(heads, rows // heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def hf_forward(sd, c, tokens):
    """LlamaForCausalLM's forward in float64 from the state dict and config.json."""
    f = {k: v.astype(np.float64) for k, v in sd.items()}
    d, H, KV = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps, T = d // H, c["rms_norm_eps"], len(tokens)

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    inv_freq = 1.0 / (c["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    freqs = np.outer(np.arange(T, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)
    x = f["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        n = rms(x, f[p + "input_layernorm.weight"])
        q = (n @ f[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd).transpose(1, 0, 2)
        k = (n @ f[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2)
        v = (n @ f[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = np.repeat(k, H // KV, axis=0), np.repeat(v, H // KV, axis=0)  # repeat_kv
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = x + (a @ v).transpose(1, 0, 2).reshape(T, d) @ f[p + "self_attn.o_proj.weight"].T
        n = rms(x, f[p + "post_attention_layernorm.weight"])
        g = n @ f[p + "mlp.gate_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * (n @ f[p + "mlp.up_proj.weight"].T)) @ f[p + "mlp.down_proj.weight"].T
    head = f["model.embed_tokens.weight"] if c["tie_word_embeddings"] else f["lm_head.weight"]
    return rms(x, f["model.norm.weight"]) @ head.T


def bytes_to_unicode():
    """GPT-2's table, as in its encoder.py."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def main():
    model_path, hf, ref_path, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    f16, bf16 = "--f16" in sys.argv, "--bf16" in sys.argv
    tag = f"{hf.rstrip('/').split('/')[-1]}"
    cfg, w, merges = read_model(model_path)
    sd, meta, hlen, contiguous, order = read_safetensors(hf + "/model.safetensors")
    stored = {k[:-6]: sd.pop(k) for k in list(sd) if k.endswith("/dtype")}
    check(f"{tag}: safetensors layout (header length {hlen} % 8 == 0, metadata, contiguous offsets)",
          hlen % 8 == 0 and meta == {"format": "pt"} and contiguous, f"hlen {hlen} meta {meta} contiguous {contiguous}")

    # the same tensors: ours, permuted for q/k, as float32 or rounded to float16
    want = {"model.embed_tokens.weight": w["wte"], "model.norm.weight": w["final_norm"]}
    if not cfg["tied"]:
        want["lm_head.weight"] = w["wcls"]
    names = [("input_layernorm", "attn_norm"), ("self_attn.q_proj", "wq"), ("self_attn.k_proj", "wk"),
             ("self_attn.v_proj", "wv"), ("self_attn.o_proj", "wo"), ("post_attention_layernorm", "ffn_norm"),
             ("mlp.gate_proj", "w1"), ("mlp.up_proj", "w3"), ("mlp.down_proj", "w2")]
    for l in range(cfg["L"]):
        for hf_name, ours in names:
            t = w[ours][l]
            if ours == "wq":
                t = hf_permute(t, cfg["H"])
            if ours == "wk":
                t = hf_permute(t, cfg["KV"])
            want[f"model.layers.{l}.{hf_name}.weight"] = t
    dt, name = (np.float16, "F16") if f16 else (np.float32, "BF16") if bf16 else (np.float32, "F32")
    as_stored = (lambda x: x.astype(np.float16)) if f16 else bf16_round if bf16 else (lambda x: x)
    bad = [k for k in want if k not in sd or sd[k].dtype != dt or stored[k] != name or sd[k].shape != want[k].shape
           or not np.array_equal(sd[k], as_stored(want[k]))]
    how = ("float16 = numpy rounding" if f16 else "BF16 = ours rounded to nearest even" if bf16 and not cfg["bf16"]
           else "BF16 = our bf16 model.bin's, bit for bit" if bf16 else "bit for bit")
    check(f"{tag}: {len(sd)} {name} tensors read back equal ours ({how}, "
          f"q/k permuted, {'no lm_head (tied)' if cfg['tied'] else 'lm_head'})",
          not bad and set(sd) == set(want), f"differ: {bad[:3]}, extra {sorted(set(sd) - set(want))[:3]}")

    c = json.load(open(hf + "/config.json"))
    check(f"{tag}: config.json for LlamaForCausalLM",
          c["architectures"] == ["LlamaForCausalLM"] and c["hidden_size"] == cfg["d"]
          and c["intermediate_size"] == cfg["h"] and c["num_hidden_layers"] == cfg["L"]
          and c["num_attention_heads"] == cfg["H"] and c["num_key_value_heads"] == cfg["KV"]
          and c["vocab_size"] == cfg["V"] and c["max_position_embeddings"] == cfg["T"]
          and np.float32(c["rms_norm_eps"]) == cfg["eps"] and np.float32(c["rope_theta"]) == cfg["theta"]
          and c["tie_word_embeddings"] == cfg["tied"] and c["hidden_act"] == "silu"
          and c["torch_dtype"] == ("float16" if f16 else "bfloat16" if bf16 else "float32"), json.dumps(c))

    # the tokenizer: every token's text is its bytes in GPT-2's alphabet, merges in rank order
    tok = json.load(open(hf + "/tokenizer.json"))
    b2u = bytes_to_unicode()
    tb = [bytes([i]) for i in range(256)]
    for l, r in merges if merges is not None else []:
        tb.append(tb[l] + tb[r])
    text = ["".join(b2u[b] for b in t) for t in tb]
    vocab = tok["model"]["vocab"]
    m = tok["model"]["merges"]
    check(f"{tag}: tokenizer.json: {len(vocab)} byte-level tokens, {len(m)} merges",
          tok["model"]["type"] == "BPE" and tok["pre_tokenizer"]["type"] == "ByteLevel"
          and vocab == {s: i for i, s in enumerate(text)} and len(text) == cfg["V"]
          and m == [[text[l], text[r]] for l, r in (merges if merges is not None else [])],
          f"{len(vocab)} tokens, {len(m)} merges")

    ref = json.load(open(ref_path))
    ours = np.array(ref["logits"], dtype=np.float64)
    tokens = [int(t) for t in sys.argv[5:] if not t.startswith("--")]
    theirs = hf_forward(sd, c, tokens)
    err = float(np.abs(theirs - ours).max())
    check(f"{tag}: float64 forward from Hugging Face's conventions reproduces our logits "
          f"({len(tokens)} positions, worst {err:.2e} <= {tol:g})", err <= tol, f"worst {err:.3e}")
    return failed


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
