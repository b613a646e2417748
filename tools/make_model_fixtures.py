#!/usr/bin/python3
"""Golden fixtures for tfm's model (docs/model.md), computed by a hand-written PyTorch reference.

Every variant writes tests/nn/fixtures/<name>.safetensors holding the parameters (F32, under their
docs/model.md names, Linear weights [out, in]), `tokens` and `targets` (I32 [B, T], three targets
set to -100), `logits` (F64 [B, T, V]), `loss` (F64 [1]) and `grad.<param>` (F64, d loss / d param).
`__metadata__` carries the configuration as strings.

Everything is computed in float64 from weights that are rounded to float32 first, so the C++ side,
which loads the F32 parameters, holds exactly the values used here. Weights are drawn with a fixed
seed at larger scales than GPT-2's initialisation (std 0.3 for matrices and embeddings, norm
weights 1 + 0.1·N(0,1), biases 0.1·N(0,1)) so that gradients are not tiny.

Run with Debian's torch (1.13):  /usr/bin/python3 tools/make_model_fixtures.py [--out DIR] [--check]
"""
import argparse
import json
import math
import os
import struct
import sys
import zlib

import torch

DT = torch.float64

# ----------------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------------
BASE = dict(vocab=61, ctx=16, d_model=32, n_layer=2, n_head=4, n_kv_head=4, d_ff=128, batch=2, seq=12,
            mlp="gelu", norm="layernorm", norm_position="pre", biases=1, tied=1, position="learned",
            rope_theta=10000.0, rope_fraction=1.0, mask="causal", window=0, eps=1e-5)


def variant(**kw):
    c = dict(BASE)
    c.update(kw)
    return c


VARIANTS = {
    "gpt2": variant(),
    "llama": variant(position="rope", rope_theta=10000.0, rope_fraction=1.0, norm="rmsnorm", mlp="swiglu",
                     d_ff=48, n_kv_head=2, biases=0, tied=0),
    "mqa": variant(n_kv_head=1),
    "gqa": variant(n_kv_head=2),
    "bidirectional": variant(mask="bidirectional"),
    "window": variant(mask="causal", window=5),
    "window_bidir": variant(mask="bidirectional", window=3),
    "pos_none": variant(position="none"),
    "sinusoidal": variant(position="sinusoidal"),
    "rope_half": variant(position="rope", rope_theta=500.0, rope_fraction=0.5),
    "alibi": variant(position="alibi"),
    "post_norm": variant(norm_position="post"),
    "untied": variant(tied=0),
    "rmsnorm_gelu": variant(norm="rmsnorm"),
}


def metadata_of(cfg):
    md = {}
    for k, v in cfg.items():
        if k == "eps":
            md[k] = repr(float(v))  # "1e-05"
        elif k == "rope_theta":
            md[k] = str(int(v)) if float(v).is_integer() else repr(float(v))
        elif k == "rope_fraction":
            md[k] = repr(float(v))
        else:
            md[k] = str(v)
    return md


# ----------------------------------------------------------------------------------------------
# Parameters, in the order of the table in docs/model.md (layer by layer)
# ----------------------------------------------------------------------------------------------
def param_specs(c):
    """[(name, shape, kind)] with kind in {matrix, norm_weight, bias}."""
    V, C, D, L, H, KV, F = c["vocab"], c["ctx"], c["d_model"], c["n_layer"], c["n_head"], c["n_kv_head"], c["d_ff"]
    hd = D // H
    ln_bias = c["norm"] == "layernorm" and c["biases"]
    ff = 2 * F if c["mlp"] == "swiglu" else F
    s = [("wte", [V, D], "matrix")]
    if c["position"] == "learned":
        s.append(("wpe", [C, D], "matrix"))
    for i in range(L):
        p = "h.%d." % i
        s.append((p + "ln_1.weight", [D], "norm_weight"))
        if ln_bias:
            s.append((p + "ln_1.bias", [D], "bias"))
        s.append((p + "attn.c_attn.weight", [(H + 2 * KV) * hd, D], "matrix"))
        if c["biases"]:
            s.append((p + "attn.c_attn.bias", [(H + 2 * KV) * hd], "bias"))
        s.append((p + "attn.c_proj.weight", [D, H * hd], "matrix"))
        if c["biases"]:
            s.append((p + "attn.c_proj.bias", [D], "bias"))
        s.append((p + "ln_2.weight", [D], "norm_weight"))
        if ln_bias:
            s.append((p + "ln_2.bias", [D], "bias"))
        s.append((p + "mlp.c_fc.weight", [ff, D], "matrix"))
        if c["biases"]:
            s.append((p + "mlp.c_fc.bias", [ff], "bias"))
        s.append((p + "mlp.c_proj.weight", [D, F], "matrix"))
        if c["biases"]:
            s.append((p + "mlp.c_proj.bias", [D], "bias"))
    if c["norm_position"] == "pre":
        s.append(("ln_f.weight", [D], "norm_weight"))
        if ln_bias:
            s.append(("ln_f.bias", [D], "bias"))
    if not c["tied"]:
        s.append(("lm_head.weight", [V, D], "matrix"))
    return s


def init_params(c, gen):
    params = {}
    for name, shape, kind in param_specs(c):
        z = torch.randn(shape, generator=gen, dtype=DT)
        if kind == "matrix":
            w = 0.3 * z
        elif kind == "norm_weight":
            w = 1.0 + 0.1 * z
        else:
            w = 0.1 * z
        params[name] = w.float().double()  # exactly representable in F32
    return params


# ----------------------------------------------------------------------------------------------
# The model (docs/model.md), plain torch ops
# ----------------------------------------------------------------------------------------------
def sinusoidal_table(T, D):
    t = torch.arange(T, dtype=DT)[:, None]
    i = torch.arange(D // 2, dtype=DT)[None, :]
    ang = t * torch.pow(torch.tensor(10000.0, dtype=DT), -2.0 * i / D)
    pos = torch.zeros(T, D, dtype=DT)
    pos[:, 0::2] = torch.sin(ang)
    pos[:, 1::2] = torch.cos(ang)
    return pos


def rope(x, theta, fraction):
    """x [B, T, nh, hd]: rotate pairs (j, j + r/2), j < r/2, of the leading r dims."""
    hd = x.shape[-1]
    r = 2 * int(math.floor(fraction * hd / 2))
    if r == 0:
        return x
    T = x.shape[1]
    half = r // 2
    j = torch.arange(half, dtype=DT)
    t = torch.arange(T, dtype=DT)
    ang = t[:, None] * torch.pow(torch.tensor(float(theta), dtype=DT), -2.0 * j / r)[None, :]  # [T, r/2]
    cos = torch.cos(ang)[None, :, None, :]
    sin = torch.sin(ang)[None, :, None, :]
    a = x[..., :half]
    b = x[..., half:r]
    return torch.cat([a * cos - b * sin, b * cos + a * sin, x[..., r:]], dim=-1)


def alibi_slopes(H):
    def pow2(n):
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    if H & (H - 1) == 0:
        return pow2(H)
    n = 2 ** int(math.floor(math.log2(H)))
    extra = [2.0 ** (-8.0 * (2 * k + 1) / (2 * n)) for k in range(H - n)]
    return pow2(n) + extra


def allowed_mask(T, mask, window):
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    if mask == "causal":
        ok = j <= i
        if window:
            ok = ok & (i - j < window)
    else:
        ok = torch.ones(T, T, dtype=torch.bool)
        if window:
            ok = (i - j).abs() < window
    return ok


def norm(u, c, w, b):
    eps = c["eps"]
    if c["norm"] == "layernorm":
        mu = u.mean(-1, keepdim=True)
        var = ((u - mu) ** 2).mean(-1, keepdim=True)
        y = (u - mu) / torch.sqrt(var + eps) * w
        return y + b if b is not None else y
    return u / torch.sqrt((u * u).mean(-1, keepdim=True) + eps) * w


def linear(x, w, b):
    y = x @ w.t()
    return y + b if b is not None else y


def gelu_tanh(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def attention(n, c, P, p):
    B, T, D = n.shape
    H, KV = c["n_head"], c["n_kv_head"]
    hd = D // H
    qkv = linear(n, P[p + "attn.c_attn.weight"], P.get(p + "attn.c_attn.bias"))
    q = qkv[..., : H * hd].reshape(B, T, H, hd)
    k = qkv[..., H * hd: (H + KV) * hd].reshape(B, T, KV, hd)
    v = qkv[..., (H + KV) * hd:].reshape(B, T, KV, hd)
    if c["position"] == "rope":
        q = rope(q, c["rope_theta"], c["rope_fraction"])
        k = rope(k, c["rope_theta"], c["rope_fraction"])
    group = H // KV
    kv_of = torch.tensor([h // group for h in range(H)])
    k = k[:, :, kv_of, :]  # [B, T, H, hd]: query head h reads kv head h / (H / KV)
    v = v[:, :, kv_of, :]
    s = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(hd)
    if c["position"] == "alibi":
        m = torch.tensor(alibi_slopes(H), dtype=DT)[:, None, None]
        dist = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).abs().to(DT)
        s = s - m * dist[None]
    ok = allowed_mask(T, c["mask"], c["window"])
    s = s.masked_fill(~ok, float("-inf"))
    a = torch.softmax(s, dim=-1)
    o = torch.einsum("bhij,bjhd->bihd", a, v).reshape(B, T, H * hd)
    return linear(o, P[p + "attn.c_proj.weight"], P.get(p + "attn.c_proj.bias"))


def mlp(n, c, P, p):
    h = linear(n, P[p + "mlp.c_fc.weight"], P.get(p + "mlp.c_fc.bias"))
    if c["mlp"] == "gelu":
        h = gelu_tanh(h)
    else:
        F = c["d_ff"]
        g, u = h[..., :F], h[..., F:]
        h = g * torch.sigmoid(g) * u
    return linear(h, P[p + "mlp.c_proj.weight"], P.get(p + "mlp.c_proj.bias"))


def forward(c, P, x, y):
    B, T = x.shape
    D = c["d_model"]
    r = P["wte"][x.long()]
    if c["position"] == "learned":
        r = r + P["wpe"][:T][None]
    elif c["position"] == "sinusoidal":
        r = r + sinusoidal_table(T, D)[None]
    for i in range(c["n_layer"]):
        p = "h.%d." % i
        n1 = lambda u: norm(u, c, P[p + "ln_1.weight"], P.get(p + "ln_1.bias"))  # noqa: E731
        n2 = lambda u: norm(u, c, P[p + "ln_2.weight"], P.get(p + "ln_2.bias"))  # noqa: E731
        if c["norm_position"] == "pre":
            r = r + attention(n1(r), c, P, p)
            r = r + mlp(n2(r), c, P, p)
        else:
            r = n1(r + attention(r, c, P, p))
            r = n2(r + mlp(r, c, P, p))
    if c["norm_position"] == "pre":
        r = norm(r, c, P["ln_f.weight"], P.get("ln_f.bias"))
    W = P["wte"] if c["tied"] else P["lm_head.weight"]
    z = r @ W.t()
    keep = y != -100
    if not bool(keep.any()):
        return z, z.sum() * 0.0
    lse = torch.logsumexp(z, dim=-1)
    zy = z.gather(-1, y.clamp(min=0).long()[..., None])[..., 0]
    loss = (lse - zy)[keep].mean()
    return z, loss


# ----------------------------------------------------------------------------------------------
# safetensors writer (struct + json)
# ----------------------------------------------------------------------------------------------
ST_NAMES = {torch.float64: "F64", torch.float32: "F32", torch.int32: "I32", torch.int64: "I64"}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, torch tensor); written in that order."""
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


# ----------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------
def make_fixture(name, c, out_dir):
    seed = zlib.crc32(name.encode()) & 0x7FFFFFFF
    gen = torch.Generator().manual_seed(seed)
    P = init_params(c, gen)
    B, T, V = c["batch"], c["seq"], c["vocab"]
    x = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64).to(torch.int32)
    y = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    ignored = torch.randperm(B * T, generator=gen)[:3]
    y.view(-1)[ignored] = -100
    y = y.to(torch.int32)

    leaves = {k: v.clone().requires_grad_(True) for k, v in P.items()}
    z, loss = forward(c, leaves, x, y)
    loss.backward()

    tensors = [(k, P[k].float()) for k in P]
    tensors += [("tokens", x), ("targets", y), ("logits", z.detach()), ("loss", loss.detach().reshape(1))]
    tensors += [("grad." + k, leaves[k].grad.detach()) for k in P]
    md = metadata_of(c)
    md["seed"] = str(seed)
    path = os.path.join(out_dir, name + ".safetensors")
    write_safetensors(path, tensors, md)
    return path, float(loss)


# ----------------------------------------------------------------------------------------------
# Self-checks (not stored)
# ----------------------------------------------------------------------------------------------
def check_rope_against_hf():
    """Our rope() with fraction 1.0 (and 0.5) against HF-Llama / GPT-NeoX style rotate_half."""
    gen = torch.Generator().manual_seed(7)
    B, T, nh, hd = 2, 9, 3, 8
    x = torch.randn(B, T, nh, hd, generator=gen, dtype=DT)

    def hf(x, theta, rot_dims):
        inv_freq = 1.0 / (theta ** (torch.arange(0, rot_dims, 2, dtype=DT) / rot_dims))
        t = torch.arange(x.shape[1], dtype=DT)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]

        def rotate_half(u):
            u1, u2 = u[..., : u.shape[-1] // 2], u[..., u.shape[-1] // 2:]
            return torch.cat([-u2, u1], dim=-1)

        xr, xp = x[..., :rot_dims], x[..., rot_dims:]
        return torch.cat([xr * cos + rotate_half(xr) * sin, xp], dim=-1)

    e1 = (rope(x, 10000.0, 1.0) - hf(x, 10000.0, hd)).abs().max().item()
    e2 = (rope(x, 500.0, 0.5) - hf(x, 500.0, hd // 2)).abs().max().item()
    print("rope check: fraction 1.0 vs HF rotate_half max |diff| = %.3g; fraction 0.5 vs NeoX partial = %.3g"
          % (e1, e2))
    assert e1 < 1e-12 and e2 < 1e-12


def check_gradcheck():
    """loss.backward against torch.autograd.gradcheck on a tiny model."""
    for vname, extra in (("gpt2", {}), ("llama", {"d_ff": 6})):
        c = dict(VARIANTS[vname])
        c.update(vocab=7, ctx=5, d_model=8, n_layer=1, n_head=2, batch=1, seq=4)
        c["n_kv_head"] = 1 if vname == "llama" else 2
        if c["d_ff"] > 16:
            c["d_ff"] = 12
        c.update(extra)
        gen = torch.Generator().manual_seed(3)
        P = init_params(c, gen)
        x = torch.randint(0, c["vocab"], (1, 4), generator=gen).to(torch.int32)
        y = torch.randint(0, c["vocab"], (1, 4), generator=gen).to(torch.int32)
        y[0, 1] = -100
        names = list(P)
        leaves = [P[k].clone().requires_grad_(True) for k in names]

        def f(*ts):
            return forward(c, dict(zip(names, ts)), x, y)[1]

        ok = torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)
        loss = f(*leaves)
        loss.backward()
        # also compare backward() against central differences for one element per parameter
        worst = 0.0
        for k, t in zip(names, leaves):
            with torch.no_grad():
                idx = (0,) * t.dim()
                orig = t[idx].item()
                t[idx] = orig + 1e-6
                lp = f(*leaves).item()
                t[idx] = orig - 1e-6
                lm = f(*leaves).item()
                t[idx] = orig
            fd = (lp - lm) / 2e-6
            worst = max(worst, abs(fd - t.grad[idx].item()))
        print("gradcheck (%s, tiny): %s; backward vs central difference max |diff| = %.3g" % (vname, ok, worst))
        assert ok and worst < 1e-6


def check_files(paths):
    total = 0
    for p in paths:
        header, data = read_safetensors(p)
        md = header["__metadata__"]
        names = [k for k in header if k != "__metadata__"]
        grads = [k for k in names if k.startswith("grad.")]
        params = [k for k in names if not k.startswith("grad.") and k not in ("tokens", "targets", "logits", "loss")]
        assert sorted("grad." + k for k in params) == sorted(grads), p
        end = max(header[k]["data_offsets"][1] for k in names)
        assert end == len(data), p
        size = os.path.getsize(p)
        total += size
        print("  %-40s %8d bytes  %3d params  mlp=%s position=%s" % (os.path.basename(p), size, len(params),
                                                                    md["mlp"], md["position"]))
    print("total %d bytes (%.2f MB)" % (total, total / 1e6))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "nn", "fixtures"))
    ap.add_argument("--check", action="store_true", help="also run the RoPE and gradcheck self-checks")
    ap.add_argument("--only", nargs="*", help="variant names (default: all)")
    a = ap.parse_args()
    torch.set_default_dtype(DT)
    if a.check:
        check_rope_against_hf()
        check_gradcheck()
    os.makedirs(a.out, exist_ok=True)
    paths = []
    for name, c in VARIANTS.items():
        if a.only and name not in a.only:
            continue
        path, loss = make_fixture(name, c, a.out)
        print("%-14s loss %.6f -> %s" % (name, loss, os.path.relpath(path)))
        paths.append(path)
    check_files(paths)


if __name__ == "__main__":
    sys.exit(main())
