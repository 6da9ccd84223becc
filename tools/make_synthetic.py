"""Small random-weight GGUFs shaped like real models, and llama.cpp's logits on them (tests/data/synthetic/).

A spec below keeps the real model's attention shapes (dim, heads, kv heads, head_dim, rotary base and scaling) with
few layers, a narrower FFN and a vocabulary of 384 tokens (a SentencePiece-style list that llama.cpp accepts: unk,
bos, eos, the 256 byte tokens, then plain pieces). Matrices are Q8_0, norms and rope factors F32; every value comes
from numpy's generator seeded with the spec's seed, so `write(name, path)` makes the same file every time and the
tests regenerate it instead of storing it.

    python tools/make_synthetic.py [NAME ...] [--llama-python /work/llvenv/bin/python]

writes tests/data/synthetic/NAME.npz: the prompt (token ids) and llama.cpp's logits for every position (float32,
llama-cpp-python's eval on a context of the spec's n_ctx (128 by default), one batch, 2 threads). The GGUF is
written with the `gguf` package (this interpreter) and read by llama-cpp-python (the `compare` extra, which builds
llama.cpp; --llama-python names an interpreter that has it).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "synthetic"
VOCAB = 384
PROMPT_LEN = 40


def llama3_rope_freqs(head_dim: int, base: float, factor: float, low: float, high: float, orig_ctx: int) -> np.ndarray:
    """The divisors of the rotary frequencies that convert_hf_to_gguf.py writes for rope_type llama3."""
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wavelen, high_wavelen = orig_ctx / low, orig_ctx / high
    out = []
    for f in freqs:
        wavelen = 2 * np.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (orig_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# name -> the real model it imitates, and its shapes. `rope_freqs`: (factor, low_freq_factor, high_freq_factor,
# original context) of Llama 3.2's rope scaling, with an original context of 64 instead of 8192 so that the scaled
# frequencies turn far enough within a 40-token prompt to matter
SPECS = {
    "qwen3": dict(model="Qwen3-0.6B", arch="qwen3", seed=3, dim=1024, n_heads=16, n_kv=8, head_dim=128, ffn=1024,
                  layers=2, rope_base=1e6, eps=1e-6, qk_norm=True, tied=True),
    "llama3": dict(model="Llama-3.2-1B", arch="llama", seed=1, dim=2048, n_heads=32, n_kv=8, head_dim=64, ffn=1024,
                   layers=2, rope_base=500000.0, eps=1e-5, rope_freqs=(32.0, 1.0, 4.0, 64), tied=True),
    "smollm3": dict(model="SmolLM3-3B", arch="smollm3", seed=4, dim=2048, n_heads=16, n_kv=4, head_dim=128, ffn=1024,
                    layers=4, rope_base=5e6, eps=1e-6, tied=True),
    "gemma3": dict(model="gemma-3-1b", arch="gemma3", seed=5, dim=1152, n_heads=4, n_kv=1, head_dim=256, ffn=1024,
                   layers=6, rope_base=1e6, eps=1e-6, qk_norm=True, post_norms=True, sliding_window=16, tied=True),
    "gemma3-4b": dict(model="gemma-3-4b", arch="gemma3", seed=6, dim=2560, n_heads=8, n_kv=4, head_dim=256, ffn=1024,
                      layers=6, rope_base=1e6, eps=1e-6, qk_norm=True, post_norms=True, sliding_window=16, tied=True,
                      rope_linear=8.0),
}
# Phi-4-mini: fused q|k|v and gate|up, a rotary dimension of 96 of 128, LongRoPE factors (made up: the short ones
# near 1, the long ones up to 40) with an original context of 256 instead of 4096, so that a context of 256 takes
# the short factors and one of 512 the long ones; the same file for both
PHI4_MINI = dict(model="Phi-4-mini", arch="phi3", seed=7, dim=3072, n_heads=24, n_kv=8, head_dim=128, rope_dim=96,
                 ffn=1024, layers=2, rope_base=10000.0, eps=1e-5, fused=True, longrope=256, attn_factor=1.1902380714)
SPECS["phi4-mini-short"] = dict(PHI4_MINI, n_ctx=256)
SPECS["phi4-mini-long"] = dict(PHI4_MINI, n_ctx=512)
# a tiny llama-family model (no reference logits): the files of the refusal tests, with extra keys or tensors
TINY = dict(model="tiny", arch="llama", seed=9, dim=64, n_heads=4, n_kv=2, head_dim=16, ffn=64, layers=1,
            rope_base=10000.0, eps=1e-5, tied=True)


def write(name: str, path: str | Path, arch: str | None = None, extra_kv: dict | None = None,
          extra_tensors: dict | None = None) -> Path:
    """Write spec `name`'s GGUF (or TINY's for "tiny") to path, the same bytes for the same arguments. arch
    overrides the spec's; extra_kv adds metadata ({arch}.suffix -> value: str, bool, float, int or list of ints);
    extra_tensors adds F32 tensors (name -> array)."""
    import gguf

    s = dict(TINY if name == "tiny" else SPECS[name], **({"arch": arch} if arch else {}))
    rng = np.random.default_rng(s["seed"])
    dim, hd, ffn = s["dim"], s["head_dim"], s["ffn"]
    qd, kvd = s["n_heads"] * hd, s["n_kv"] * hd
    w = gguf.GGUFWriter(str(path), s["arch"])
    w.add_name(f"synthetic {s['model']}")
    w.add_block_count(s["layers"])
    w.add_context_length(4096)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(ffn)
    w.add_head_count(s["n_heads"])
    w.add_head_count_kv(s["n_kv"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(s["eps"])
    w.add_rope_freq_base(s["rope_base"])
    w.add_rope_dimension_count(s.get("rope_dim", hd))
    if s.get("longrope"):
        w.add_rope_scaling_orig_ctx_len(s["longrope"])
        w.add_rope_scaling_attn_factors(s["attn_factor"])
    if s.get("rope_linear"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(s["rope_linear"])
    if s.get("sliding_window"):
        w.add_sliding_window(s["sliding_window"])
    for suffix, value in (extra_kv or {}).items():
        key = f"{s['arch']}.{suffix}"
        if isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, float):
            w.add_float32(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_array(key, list(value))
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"t{i}" for i in range(VOCAB - len(tokens))]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (VOCAB - 259))
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    q8 = gguf.GGMLQuantizationType.Q8_0

    def matrix(tname, n, k, scale=None):
        data = (rng.standard_normal((n, k)) * (scale or 1.0 / np.sqrt(k))).astype(np.float32)
        w.add_tensor(tname, gguf.quants.quantize(data, q8), raw_dtype=q8)

    def vector(tname, n, around=1.0, spread=0.1):
        w.add_tensor(tname, (around + spread * rng.standard_normal(n)).astype(np.float32))

    # embeddings of rms ~1 after gemma's sqrt(dim) scale; logits of a few units
    matrix("token_embd.weight", VOCAB, dim, scale=1.0 / np.sqrt(dim) if s["arch"] == "gemma3" else 0.05)
    if s.get("rope_freqs"):
        factor, low, high, orig = s["rope_freqs"]
        w.add_tensor("rope_freqs.weight", llama3_rope_freqs(hd, s["rope_base"], factor, low, high, orig))
    if s.get("longrope"):
        half = s["rope_dim"] // 2
        w.add_tensor("rope_factors_long.weight", np.geomspace(1.0, 40.0, half).astype(np.float32))
        w.add_tensor("rope_factors_short.weight", (1.0 + 0.5 * rng.random(half)).astype(np.float32))
    for i in range(s["layers"]):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", dim)
        vector(p + "ffn_norm.weight", dim)
        if s.get("fused"):
            matrix(p + "attn_qkv.weight", qd + 2 * kvd, dim)
        else:
            matrix(p + "attn_q.weight", qd, dim)
            matrix(p + "attn_k.weight", kvd, dim)
            matrix(p + "attn_v.weight", kvd, dim)
        matrix(p + "attn_output.weight", dim, qd)
        if s.get("fused"):
            matrix(p + "ffn_up.weight", 2 * ffn, dim)
        else:
            matrix(p + "ffn_gate.weight", ffn, dim)
            matrix(p + "ffn_up.weight", ffn, dim)
        matrix(p + "ffn_down.weight", dim, ffn)
        if s.get("qk_norm"):
            vector(p + "attn_q_norm.weight", hd)
            vector(p + "attn_k_norm.weight", hd)
        if s.get("post_norms"):
            vector(p + "post_attention_norm.weight", dim)
            vector(p + "post_ffw_norm.weight", dim)
    vector("output_norm.weight", dim)
    for tname, data in (extra_tensors or {}).items():
        w.add_tensor(tname, np.asarray(data, dtype=np.float32))
    if not s.get("tied"):
        matrix("output.weight", VOCAB, dim)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)


def prompt(name: str) -> list[int]:
    """The fixed prompt of spec `name`: bos, then tokens drawn from the plain pieces."""
    rng = np.random.default_rng(1000 + SPECS[name]["seed"])
    return [1] + [int(t) for t in rng.integers(259, VOCAB, PROMPT_LEN - 1)]


def n_ctx(name: str) -> int:
    """The context size of spec `name`'s reference run (LongRoPE chooses its factors by it)."""
    return SPECS[name].get("n_ctx", 128)


def llama_cpp_logits(gguf_path: str, ids: list[int], ctx: int, out: str) -> None:
    """Runs in the interpreter that has llama-cpp-python: the logits of every position of ids, to out (.npy)."""
    import llama_cpp

    llm = llama_cpp.Llama(gguf_path, n_ctx=ctx, n_batch=128, n_threads=2, n_threads_batch=2, logits_all=True,
                          verbose=False)
    llm.eval(ids)
    np.save(out, np.array(llm.scores[:len(ids)], dtype=np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", default=list(SPECS))
    ap.add_argument("--llama-python", default=sys.executable)
    ap.add_argument("--_logits", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._logits:
        gguf_path, ids, ctx, out = args._logits
        llama_cpp_logits(gguf_path, json.loads(ids), int(ctx), out)
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        with tempfile.TemporaryDirectory() as tmp:
            path = write(name, Path(tmp) / f"{name}.gguf")
            ids = prompt(name)
            npy = str(Path(tmp) / "logits.npy")
            subprocess.run([args.llama_python, __file__, "--_logits", str(path), json.dumps(ids), str(n_ctx(name)),
                            npy], check=True)
            version = subprocess.run([args.llama_python, "-c", "import llama_cpp; print(llama_cpp.__version__)"],
                                     check=True, capture_output=True, text=True).stdout.strip()
            np.savez_compressed(OUT_DIR / f"{name}.npz", ids=np.array(ids, dtype=np.int32), logits=np.load(npy),
                                llama_cpp_python=np.array(version))
        print(f"{name}: {OUT_DIR / (name + '.npz')}")


if __name__ == "__main__":
    main()
