"""Loading a GGUF model into runtime formats, and running it.

Weight policy (`mixed` by default):
- mixed: Q4_0 / Q4_1 / Q8_0 tensors load bit-exactly; Q4_K keeps its int4 sub-blocks of 32 with their own scale
  and min (d sc, dmin m, as factors: the Q4_K format) and Q6_K its blocks (the Q6_K format), both as the file has them,
  where this CPU's kernels have them (x86); elsewhere Q4_K folds into Q4_1 blocks of 32 (scale and min rounded to
  fp16) and Q6_K becomes Q8_16 blocks (int8 with Q6_K's own scale per 16 values, exact). Q5_0 becomes Q8_0 blocks
  with the same scale, exactly; every other type (Q5_1, Q5_K, F16, BF16, F32) is requantized to int8 (Q8_0).
- int4: every matrix int4: Q4_0 / Q4_1 as they are, Q4_K folded, everything else requantized to Q4_0.

Activation blocks (`act_blocks`): the forward pass quantizes each matrix's input to int8 blocks of 32.
- "llama.cpp" (the default): as llama.cpp does, the inputs of matrices that the file stores as K-quants (Q4_K, Q5_K,
  Q6_K) share one fp32 scale per 256 values (its Q8_K); all others have an fp16 scale per block of 32 (Q8_0).
  Wren's logits then follow llama.cpp's, outliers and all (docs/parity.md).
- "32": every block of 32 has its own scale: closer to an exact forward pass, a little lower perplexity where
  activations have outliers (Qwen2.5), further from llama.cpp there.
Tied embeddings (no output.weight) are converted once and serve as both the lookup table and the output layer.
"""
from __future__ import annotations

import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from wren.engine.runtime import gguffile, native, nonfinite
from wren.engine._native import ffi, lib
from wren.engine.runtime.formats import CONVERTS, FILE_BLOCKS, QK, Format
from wren.engine.runtime.gguffile import GGUFError, GGUFFile
from wren.engine.runtime.models import HParams, architecture_for
from wren.engine.runtime.native import PackedWeights, Pool

POLICIES = ("mixed", "int4")
DEFAULT_BATCH = 256  # prompt tokens per forward batch
ACT_BLOCKS = ("llama.cpp", "32")
K_QUANTS = ("Q4_K", "Q5_K", "Q6_K")  # llama.cpp quantizes their inputs with Q8_K: one scale per 256 values
GGML_IDS = {name: tid for name, (tid, _, _) in gguffile.TENSOR_TYPES.items()}
# per policy: the format a type is requantized into where neither its own blocks nor C's direct conversion fit
REQUANTIZED = {"mixed": Format.Q8_0, "int4": Format.Q4_0}


@dataclass
class LoadStats:
    seconds: float
    weight_bytes: int  # runtime weights (packed matrices and float vectors)
    formats: dict  # runtime format -> number of matrices

    def describe(self) -> str:
        f = ", ".join(f"{n} {k}" for k, n in sorted(self.formats.items()))
        return f"loaded in {self.seconds:.2f} s, {self.weight_bytes / 2**20:.0f} MiB of weights ({f})"


def super_blocks_native(act_blocks: str = "llama.cpp") -> bool:
    """Q4_K and Q6_K load as they are when the kernels chosen for them are those of the other formats (x86: AVX2; a
    CPU whose SIMD set lacks them would fall back to the scalar reference) and their inputs share a scale per 256."""
    return act_blocks == "llama.cpp" and all(native.chosen_variant(f) == native.chosen_variant(Format.Q4_1)
                                             for f in Format if f.super_block)


def runtime_format(type_name: str, policy: str, act_blocks: str = "llama.cpp") -> Format:
    """The file's own blocks where the policy and the kernels take them, else the format C turns the type straight
    into, else the policy's requantized format. int4 takes 4-bit blocks of 32 only."""
    def allowed(f: Format) -> bool:
        if policy == "int4":
            return f.info.bits == 4 and not f.super_block
        return not f.super_block or super_blocks_native(act_blocks)

    for fmt in (FILE_BLOCKS.get(type_name), CONVERTS.get(type_name)):
        if fmt is not None and allowed(fmt):
            return fmt
    return REQUANTIZED[policy]


def _rows_bytes(t: gguffile.TensorInfo) -> int:
    _, block, block_bytes = gguffile.TENSOR_TYPES[t.type_name]
    return t.shape[0] // block * block_bytes


def convert_matrix(g: GGUFFile, name: str, policy: str, row0: int = 0, n_rows: int | None = None,
                   variant: native.Variant | None = None, act_blocks: str = "llama.cpp") -> PackedWeights:
    """Rows [row0, row0 + n_rows) of a GGUF matrix, converted under `policy` and packed for the kernels."""
    t = g.tensors.get(name)
    if t is None:
        raise GGUFError(f"{g.path.name}: tensor '{name}' is missing")
    if len(t.shape) != 2:
        raise GGUFError(f"{g.path.name}: tensor '{name}' has shape {list(t.shape)}, expected a matrix")
    k = t.shape[0]
    n = t.shape[1] - row0 if n_rows is None else n_rows
    if k % QK:
        raise GGUFError(f"{g.path.name}: tensor '{name}' has rows of {k} values; the kernels need a multiple of {QK}")
    if row0 < 0 or n <= 0 or row0 + n > t.shape[1]:
        raise GGUFError(f"{g.path.name}: tensor '{name}' has {t.shape[1]} rows, not {row0 + n}")
    if t.type_name not in gguffile.SUPPORTED_TYPES:
        raise GGUFError(f"{g.path.name}: tensor '{name}' has type {t.type_name}, which is not supported")
    rb = _rows_bytes(t)
    raw = g.tensor_bytes(name)[row0 * rb:(row0 + n) * rb]
    nonfinite.check_tensor(g.path.name, name, t.type_name, raw)
    fmt = runtime_format(t.type_name, policy, act_blocks)
    if FILE_BLOCKS.get(t.type_name) == fmt:
        plain = raw
    else:
        plain = np.empty(fmt.plain_bytes(n, k), dtype=np.uint8)
        native.check(lib.wren_ggml_convert(GGML_IDS[t.type_name], ffi.from_buffer(raw), raw.nbytes, n * k, fmt,
                                           ffi.from_buffer(plain), plain.nbytes), f"convert {name}")
    packed = PackedWeights(fmt, plain, n, k, variant)
    del raw, plain
    if n_rows is None or row0 + n == t.shape[1]:
        g.release(name)  # whole tensor converted (or the last part of a fused one)
    return packed


def tensor_f32(g: GGUFFile, name: str, length: int) -> np.ndarray:
    t = g.tensors.get(name)
    if t is None:
        raise GGUFError(f"{g.path.name}: tensor '{name}' is missing")
    if t.n_elements != length:
        raise GGUFError(f"{g.path.name}: tensor '{name}' has {t.n_elements} values, expected {length}")
    if t.type_name not in GGML_IDS or t.type_name not in gguffile.SUPPORTED_TYPES:
        raise GGUFError(f"{g.path.name}: tensor '{name}' has type {t.type_name}, which is not supported")
    out = np.empty(length, dtype=np.float32)
    raw = g.tensor_bytes(name)
    nonfinite.check_tensor(g.path.name, name, t.type_name, raw)
    native.check(lib.wren_ggml_to_f32(GGML_IDS[t.type_name], ffi.from_buffer(raw), raw.nbytes, length,
                                      ffi.from_buffer("float[]", out), length), f"convert {name}")
    return out


class Model:
    """A model in runtime formats: the wren_model struct and every buffer it points at."""

    def __init__(self, path: str | Path, policy: str = "mixed",
                 progress: Callable[[int, int], None] | None = None, act_blocks: str = "llama.cpp",
                 gguf: GGUFFile | None = None):
        if policy not in POLICIES:
            raise ValueError(f"weight policy {policy!r} is not one of {', '.join(POLICIES)}")
        if act_blocks not in ACT_BLOCKS:
            raise ValueError(f"activation blocks {act_blocks!r} are not one of {', '.join(ACT_BLOCKS)}")
        self.act_blocks = act_blocks
        start = time.perf_counter()
        self.path = Path(path)
        self.policy = policy
        self.gguf = g = gguf if gguf is not None else gguffile.read(self.path)  # gguf: the file, parsed
        self.arch = architecture_for(g)
        self.hp: HParams = self.arch.hparams()
        hp = self.hp
        self._keep: list = []
        self.formats: dict[str, int] = {}
        fused = self.arch.split_fused()

        # every matrix is converted up front, on as many threads as there are CPUs (the C calls release the GIL)
        names = ["token_embd.weight"] + [self.arch.layer_tensors(i)[f] for i in range(hp.n_layers)
                                         for f in ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")]
        if self.arch.output_tensor() != "token_embd.weight":
            names.append(self.arch.output_tensor())
        n_steps = len(names) + 1  # each matrix, then the model check
        converted: dict[str, PackedWeights] = {}

        def convert(name: str) -> PackedWeights:
            src, row0, n = fused[name] if name in fused else (name, 0, None)
            w = convert_matrix(g, src, policy, row0, n, act_blocks=act_blocks)
            if act_blocks == "llama.cpp" and g.tensors[src].type_name in K_QUANTS:
                w.struct.act_group = 256
            return w

        # largest first, so that the biggest matrix (often the output layer) does not start last and finish alone
        def size(name: str) -> int:
            src, _, n = fused[name] if name in fused else (name, 0, None)
            t = g.tensors.get(src)
            return 0 if t is None else (t.n_elements if n is None else n * t.shape[0])

        order = sorted(names, key=size, reverse=True)
        workers = max(1, min(len(os.sched_getaffinity(0)), 4))
        if workers == 1:  # one CPU: in this thread (the same work every time, which tools/arm_cost.sh counts)
            for done, name in enumerate(order):
                converted[name] = convert(name)
                if progress:
                    progress(done + 1, n_steps)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(convert, name): name for name in order}
                try:
                    for done, fut in enumerate(as_completed(futures)):
                        converted[futures[fut]] = fut.result()
                        if progress:
                            progress(done + 1, n_steps)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)  # a bad tensor: the others are not waited for
                    raise

        def matrix(name: str) -> PackedWeights:
            w = converted[name]
            self._keep.append(w)
            self.formats[w.format.label] = self.formats.get(w.format.label, 0) + 1
            return w

        def vector(name: str | None, length: int):
            if name is None:
                return ffi.NULL
            arr = tensor_f32(g, name, length)
            self._keep.append(arr)
            return ffi.from_buffer("float[]", arr)

        self.layers = ffi.new("wren_layer[]", hp.n_layers)
        sizes = {"wq": (hp.q_dim, hp.dim), "wk": (hp.kv_dim, hp.dim), "wv": (hp.kv_dim, hp.dim),
                 "wo": (hp.dim, hp.q_dim), "w_gate": (hp.ffn_dim, hp.dim), "w_up": (hp.ffn_dim, hp.dim),
                 "w_down": (hp.dim, hp.ffn_dim)}
        vec_len = {"bq": hp.q_dim, "bk": hp.kv_dim, "bv": hp.kv_dim, "attn_norm": hp.dim, "ffn_norm": hp.dim,
                   "post_attn_norm": hp.dim, "post_ffn_norm": hp.dim, "q_norm": hp.head_dim,
                   "k_norm": hp.head_dim}
        self.embeddings = matrix("token_embd.weight")
        for i in range(hp.n_layers):
            names = self.arch.layer_tensors(i)
            L = self.layers[i]
            for field, shape in sizes.items():
                w = matrix(names[field])
                if (w.n, w.k) != shape:
                    raise GGUFError(f"{g.path.name}: tensor '{names[field]}' is {w.k}x{w.n}, "
                                    f"expected {shape[1]}x{shape[0]}")
                setattr(L, field, w.struct[0])
            for field, length in vec_len.items():
                setattr(L, field, vector(names.get(field), length))
            L.swa = 1 if hp.swa_layers[i] else 0
            L.no_rope = 1 if hp.no_rope_layers[i] else 0
        out_name = self.arch.output_tensor()
        self.tied = out_name == "token_embd.weight"
        self.output = self.embeddings if self.tied else matrix(out_name)
        if (self.output.n, self.output.k) != (hp.vocab, hp.dim):
            raise GGUFError(f"{g.path.name}: tensor '{out_name}' is {self.output.k}x{self.output.n}, "
                            f"expected {hp.dim}x{hp.vocab}")
        self.output_norm = vector("output_norm.weight", hp.dim)

        self.struct = ffi.new("wren_model *")
        _set_config(self.struct.cfg, hp)
        self.struct.layers = self.layers
        self.struct.tok_embd = self.embeddings.struct[0]
        self.struct.output = self.output.struct[0]
        self.struct.output_norm = self.output_norm
        self.rope_freqs = vector(self.arch.rope_freqs_tensor(), hp.rope_dim // 2)
        self.struct.rope_freqs = self.rope_freqs
        self.rope_freqs_long = vector(self.arch.rope_freqs_long_tensor(), hp.rope_dim // 2)
        self.struct.rope_freqs_long = self.rope_freqs_long
        native.check(lib.wren_model_check(self.struct), f"{self.path.name}: model structure")
        if progress:
            progress(n_steps, n_steps)
        weight_bytes = sum(getattr(x, "nbytes", 0) for x in self._keep)
        self.stats = LoadStats(time.perf_counter() - start, weight_bytes, dict(self.formats))
        # every tensor now lives in runtime buffers: drop the file mapping, whose pages would count as memory
        # in use (the metadata stays readable)
        g.close()

    @property
    def vocab(self) -> int:
        return self.hp.vocab

    def context(self, n_ctx: int | None = None, n_batch: int = 512, n_threads: int = 4) -> "Context":
        return Context(self, n_ctx or min(self.hp.context_length, 4096), n_batch, n_threads)


def _set_config(c, hp: HParams) -> None:
    """Fill a wren_config from the hyperparameters."""
    for f in ("n_layers", "dim", "n_heads", "n_kv_heads", "head_dim", "ffn_dim", "vocab", "rope_dim",
              "sliding_window"):
        setattr(c, f, getattr(hp, f))
    c.rope_neox = 1 if hp.rope_neox else 0
    c.rope_base = hp.rope_base
    c.rope_base_swa = hp.rope_base_swa
    c.rope_freq_scale = hp.rope_freq_scale
    c.rope_attn_factor = hp.rope_attn_factor
    c.rope_orig_ctx = hp.rope_orig_ctx
    c.norm_eps = hp.norm_eps
    c.attn_scale = hp.attn_scale
    c.embed_scale = hp.embed_scale
    c.act = lib.WREN_ACT_GELU_TANH if hp.act == "gelu_tanh" else lib.WREN_ACT_SILU
    c.scale_q = int(hp.scale_q)


def context_bytes(hp: HParams, n_ctx: int, n_batch: int, n_threads: int) -> int:
    """What a Context of this model allocates (KV cache and scratch; wren_ctx_bytes), known before the weights are
    loaded: it depends on the hyperparameters alone."""
    m = ffi.new("wren_model *")
    _set_config(m.cfg, hp)
    return int(lib.wren_ctx_bytes(m, n_ctx, min(n_batch, n_ctx), n_threads))


class Context:
    """One sequence: its KV cache and batch scratch. Positions are the caller's to track."""

    def __init__(self, model: Model, n_ctx: int, n_batch: int = 512, n_threads: int = 4):
        self.model = model
        self.n_ctx, self.n_batch, self.n_threads = int(n_ctx), int(min(n_batch, n_ctx)), int(n_threads)
        out = ffi.new("wren_ctx **")
        native.check(lib.wren_ctx_create(model.struct, self.n_ctx, self.n_batch, max(self.n_threads, 1), out),
                     f"context of {n_ctx} tokens")
        self._ptr = ffi.gc(out[0], lib.wren_ctx_destroy)
        # set abort[0] from any thread to stop a prompt batch between layers (forward then raises AbortedError)
        self.abort = np.zeros(1, dtype=np.int32)
        lib.wren_ctx_set_abort(self._ptr, ffi.from_buffer("int32_t[]", self.abort))

    def forward(self, tokens, pos0: int, pool: Pool | None = None, all_logits: bool = False,
                logits: bool = True) -> np.ndarray | None:
        """Run tokens at positions pos0.. in batches of n_batch; logits of the last token (or of all)."""
        ids = np.ascontiguousarray(tokens, dtype=np.int32).reshape(-1)
        if ids.size == 0:
            raise ValueError("no tokens to run")
        if pos0 < 0 or pos0 + ids.size > self.n_ctx:
            raise ValueError(f"{pos0 + ids.size} tokens do not fit the context of {self.n_ctx}")
        vocab = self.model.vocab
        out = np.empty((ids.size if all_logits else 1, vocab), dtype=np.float32) if logits else None
        pool_ptr = ffi.NULL if pool is None else pool.ptr
        for b in range(0, ids.size, self.n_batch):
            chunk = ids[b:b + self.n_batch]
            last = b + chunk.size == ids.size
            if out is None or (not all_logits and not last):
                dst, dst_len, flag = ffi.NULL, 0, 0
            elif all_logits:
                view = out[b:b + chunk.size]
                dst, dst_len, flag = ffi.from_buffer("float[]", view), view.size, 1
            else:
                dst, dst_len, flag = ffi.from_buffer("float[]", out), out.size, 0
            native.check(lib.wren_forward(self._ptr, self.model.struct, pool_ptr, ffi.from_buffer("int32_t[]", chunk),
                                          chunk.size, pos0 + b, dst, dst_len, flag), "forward")
        return out


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
