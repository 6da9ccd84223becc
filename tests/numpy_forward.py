"""A float64 numpy forward pass over the dequantized GGUF weights: the oracle for the C forward pass.

Written from the maths (see csrc/forward.c's header), independently of the C code: it reads the tensors through the
gguf package, not through Wren's converter, so a conversion bug shows up as a difference too.
"""
from __future__ import annotations

import numpy as np

import gguf
from wren.engine.runtime.models import architecture_for


def dequantized(g, name: str, fused=None) -> np.ndarray:
    if fused and name in fused:
        src, row0, n = fused[name]
        return dequantized(g, src)[row0:row0 + n]
    t = g.tensors[name]
    raw = g.tensor_bytes(name)
    qtype = gguf.GGMLQuantizationType[t.type_name]
    arr = gguf.quants.dequantize(raw, qtype).astype(np.float64)
    return arr.reshape(tuple(reversed(t.shape)))


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, base, rope_dim, neox, freq_factors=None, freq_scale=1.0, mscale=1.0):
    """x: (T, heads, head_dim); freq_factors: divisors of the rotary frequencies (llama3 rope scaling, LongRoPE) or
    None; freq_scale: linear rope scaling (1 / factor); mscale: multiplies cos and sin (LongRoPE's attn_factor)"""
    half = rope_dim // 2
    inv = base ** (-2.0 * np.arange(half) / rope_dim) * freq_scale
    if freq_factors is not None:
        inv = inv / freq_factors
    ang = pos[:, None] * inv[None, :]
    cos, sin = mscale * np.cos(ang)[:, None, :], mscale * np.sin(ang)[:, None, :]
    out = x.copy()
    if neox:
        a, b = x[..., :half], x[..., half:rope_dim]
        out[..., :half] = a * cos - b * sin
        out[..., half:rope_dim] = a * sin + b * cos
    else:
        a, b = x[..., 0:rope_dim:2], x[..., 1:rope_dim:2]
        out[..., 0:rope_dim:2] = a * cos - b * sin
        out[..., 1:rope_dim:2] = a * sin + b * cos
    return out


def forward(g, tokens, n_ctx: int = 0) -> np.ndarray:
    """Logits (T, vocab) for tokens at positions 0..T-1 (in a context of n_ctx positions: LongRoPE's choice)."""
    return forward_many(g, [tokens], n_ctx)[0]


def forward_many(g, sequences, n_ctx: int = 0) -> list[np.ndarray]:
    """Logits of several independent sequences; each weight matrix is dequantized once for all of them."""
    arch = architecture_for(g)
    hp = arch.hparams()
    fused = arch.split_fused()
    long = arch.rope_freqs_long_tensor() is not None and n_ctx > hp.rope_orig_ctx
    factors = arch.rope_freqs_long_tensor() if long else arch.rope_freqs_tensor()
    freqs = None if factors is None else dequantized(g, factors)
    lengths = [len(s) for s in sequences]
    bounds = np.cumsum([0] + lengths)
    pos = np.concatenate([np.arange(n, dtype=np.float64) for n in lengths])
    emb = dequantized(g, "token_embd.weight")
    x = emb[np.concatenate([np.asarray(s) for s in sequences])] * hp.embed_scale
    del emb
    T = len(pos)
    hd, group = hp.head_dim, hp.n_heads // hp.n_kv_heads
    for i in range(hp.n_layers):
        names = arch.layer_tensors(i)
        W = lambda f: dequantized(g, names[f], fused)  # noqa: E731
        V = lambda f: None if names.get(f) is None else dequantized(g, names[f])  # noqa: E731
        xn = rmsnorm(x, V("attn_norm"), hp.norm_eps)
        q, k, v = xn @ W("wq").T, xn @ W("wk").T, xn @ W("wv").T
        for f, arr in (("bq", q), ("bk", k), ("bv", v)):
            if V(f) is not None:
                arr += V(f)
        q = q.reshape(T, hp.n_heads, hd)
        k = k.reshape(T, hp.n_kv_heads, hd)
        v = v.reshape(T, hp.n_kv_heads, hd)
        if V("q_norm") is not None:
            q = rmsnorm(q, V("q_norm"), hp.norm_eps)
            k = rmsnorm(k, V("k_norm"), hp.norm_eps)
        local = hp.swa_layers[i] and hp.rope_base_swa
        base, scale = (hp.rope_base_swa, 1.0) if local else (hp.rope_base, hp.rope_freq_scale)
        if not hp.no_rope_layers[i]:
            q = rope(q, pos, base, hp.rope_dim, hp.rope_neox, freqs, scale, hp.rope_attn_factor)
            k = rope(k, pos, base, hp.rope_dim, hp.rope_neox, freqs, scale, hp.rope_attn_factor)
        out = np.zeros((T, hp.n_heads, hd))
        for b0, b1 in zip(bounds[:-1], bounds[1:]):  # attention stays within each sequence
            p = pos[b0:b1]
            mask = np.tril(np.ones((b1 - b0, b1 - b0), dtype=bool))
            if hp.swa_layers[i] and hp.sliding_window:
                mask &= (p[:, None] - p[None, :]) < hp.sliding_window
            for h in range(hp.n_heads):
                s = q[b0:b1, h] @ k[b0:b1, h // group].T * hp.attn_scale
                s = np.where(mask, s, -np.inf)
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                out[b0:b1, h] = s @ v[b0:b1, h // group]
        o = out.reshape(T, -1) @ W("wo").T
        if V("post_attn_norm") is not None:
            o = rmsnorm(o, V("post_attn_norm"), hp.norm_eps)
        x = x + o
        xn = rmsnorm(x, V("ffn_norm"), hp.norm_eps)
        gate, up = xn @ W("w_gate").T, xn @ W("w_up").T
        if hp.act == "silu":
            act = gate / (1.0 + np.exp(-gate))
        else:
            act = 0.5 * gate * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (gate + 0.044715 * gate**3)))
        f = (act * up) @ W("w_down").T
        if V("post_ffn_norm") is not None:
            f = rmsnorm(f, V("post_ffn_norm"), hp.norm_eps)
        x = x + f
    x = rmsnorm(x, dequantized(g, "output_norm.weight"), hp.norm_eps)
    logits = x @ dequantized(g, arch.output_tensor()).T
    return [logits[b0:b1] for b0, b1 in zip(bounds[:-1], bounds[1:])]
