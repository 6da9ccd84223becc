"""What every architecture shares: hyper-parameters read from GGUF metadata and the tensor names of a layer.

An architecture module subclasses Architecture and changes only what differs (its quirks); the loader
(engine/model.py) turns the result into the C structs of csrc/wren.h.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from wren.engine.runtime import gguffile
from wren.engine.runtime.gguffile import GGUFError, GGUFFile

MAX_LAYERS = 4096  # as the native model check
MIN_CONTEXT = 128  # the shortest context the settings allow


@dataclass
class HParams:
    arch: str
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    vocab: int
    context_length: int
    norm_eps: float
    rope_base: float
    rope_dim: int
    rope_neox: bool
    act: str = "silu"  # or "gelu_tanh"
    scale_q: bool = False  # attn_scale multiplies q instead of q.k (llama.cpp's gemma3 graph)
    rope_base_swa: float = 0.0
    rope_freq_scale: float = 1.0  # linear rope scaling of global layers: 1 / rope.scaling.factor
    rope_attn_factor: float = 1.0  # multiplies rope's cos and sin (rope.scaling.attn_factor; phi3 LongRoPE)
    rope_orig_ctx: int = 0  # LongRoPE: a context longer than this takes the long factors
    sliding_window: int = 0
    swa_layers: list[bool] = field(default_factory=list)
    no_rope_layers: list[bool] = field(default_factory=list)  # layers without rotary embedding (smollm3)
    attn_scale: float = 0.0
    embed_scale: float = 1.0

    def __post_init__(self):
        if not self.attn_scale:
            self.attn_scale = 1.0 / math.sqrt(self.head_dim)
        if not self.swa_layers:
            self.swa_layers = [False] * self.n_layers
        if not self.no_rope_layers:
            self.no_rope_layers = [False] * self.n_layers

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim


# layer field -> GGUF tensor name suffix; optional ones may be absent
LAYER_TENSORS = {
    "wq": "attn_q.weight", "wk": "attn_k.weight", "wv": "attn_v.weight", "wo": "attn_output.weight",
    "w_gate": "ffn_gate.weight", "w_up": "ffn_up.weight", "w_down": "ffn_down.weight",
    "attn_norm": "attn_norm.weight", "ffn_norm": "ffn_norm.weight",
}
OPTIONAL_TENSORS = {
    "bq": "attn_q.bias", "bk": "attn_k.bias", "bv": "attn_v.bias",
    "post_attn_norm": "post_attention_norm.weight", "post_ffn_norm": "post_ffw_norm.weight",
    "q_norm": "attn_q_norm.weight", "k_norm": "attn_k_norm.weight",
}


class Architecture:
    """The llama family by default: RMSNorm, rotary pairs (2i, 2i+1), SwiGLU, grouped-query attention."""

    name = "llama"
    rope_neox = False
    act = "silu"

    def __init__(self, g: GGUFFile):
        self.g = g

    def key(self, suffix: str, default=None, required: bool = False):
        """A number of the architecture's metadata (a per-layer array gives its first value); anything else that
        the file stores there (a string, an empty array, a non-finite float) raises GGUFError naming the key."""
        full = f"{self.name}.{suffix}"
        value = self.g.get(full, default)
        if value is None:
            if required:
                raise GGUFError(f"{self.g.path.name}: metadata {full} is missing")
            return None
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.size and value.dtype.kind in "iuf":
            value = value[0].item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise GGUFError(f"{self.g.path.name}: metadata {full} is {gguffile.describe_value(value)}, not a number")
        return value

    def text_key(self, suffix: str, default: str = "") -> str:
        """A string of the architecture's metadata; anything else stored there raises GGUFError naming the key."""
        value = self.g.get(f"{self.name}.{suffix}", default)
        if not isinstance(value, str):
            raise GGUFError(f"{self.g.path.name}: metadata {self.name}.{suffix} is "
                            f"{gguffile.describe_value(value)}, not a string")
        return value

    def int_key(self, suffix: str, default=None, limit: int = 1 << 24, low: int = 1) -> int:
        value = self.key(suffix, default, required=default is None)
        if not isinstance(value, int):
            raise GGUFError(f"{self.g.path.name}: metadata {self.name}.{suffix} = {value!r} is not an integer")
        if not low <= value <= limit:
            raise GGUFError(f"{self.g.path.name}: metadata {self.name}.{suffix} = {value} is out of range "
                            f"({low} to {limit})")
        return value

    def layer_count(self) -> int:
        """block_count, checked against a sane limit and against the layers the file has tensors for, before
        anything is done per layer."""
        n_layers = self.int_key("block_count", limit=MAX_LAYERS)
        present = {int(t.split(".")[1]) for t in self.g.tensors
                   if t.startswith("blk.") and t.split(".")[1].isdecimal()}
        if not all(i in present for i in range(min(n_layers, len(present) + 1))):
            raise GGUFError(f"{self.g.path.name}: metadata {self.name}.block_count = {n_layers}, but the file has "
                            f"tensors for {len(present)} layers")
        return n_layers

    def hparams(self) -> HParams:
        g, name = self.g, self.g.path.name
        embd = g.tensors.get("token_embd.weight")
        if embd is None or len(embd.shape) != 2:
            raise GGUFError(f"{name}: token_embd.weight is missing or not a matrix")
        dim = self.int_key("embedding_length", limit=1 << 16)
        if dim != embd.shape[0] or dim % 32:
            raise GGUFError(f"{name}: metadata {self.name}.embedding_length = {dim} does not match token_embd.weight "
                            f"(rows of {embd.shape[0]} values; a multiple of 32 is needed)")
        n_layers = self.layer_count()
        n_heads = self.int_key("attention.head_count", limit=dim)
        n_kv = self.int_key("attention.head_count_kv", n_heads, limit=n_heads)
        head_dim = self.int_key("attention.key_length", dim // n_heads if dim % n_heads == 0 else None, limit=1024)
        ffn_dim = self.int_key("feed_forward_length", limit=1 << 20)
        rope_dim = self.int_key("rope.dimension_count", head_dim, limit=head_dim)
        tokens = g.get("tokenizer.ggml.tokens")
        problem = ("head_count is not a multiple of head_count_kv" if n_heads % n_kv else
                   "key_length is odd" if head_dim % 2 else "rope.dimension_count is odd" if rope_dim % 2 else
                   "head_count x key_length is not a multiple of 32" if n_heads * head_dim % 32 else
                   "feed_forward_length is not a multiple of 32" if ffn_dim % 32 else None)
        if problem:
            raise GGUFError(f"{name}: metadata {self.name}.{problem}")
        if tokens is not None and (not isinstance(tokens, (list, np.ndarray)) or len(tokens) != embd.shape[1]):
            raise GGUFError(f"{name}: the vocabulary (tokenizer.ggml.tokens) is {gguffile.describe_value(tokens)}; "
                            f"token_embd.weight has {embd.shape[1]} tokens")
        return HParams(
            arch=self.name, n_layers=n_layers, dim=dim, n_heads=n_heads, n_kv_heads=n_kv, head_dim=head_dim,
            ffn_dim=ffn_dim, vocab=embd.shape[1], context_length=self.int_key("context_length", 2048, low=MIN_CONTEXT),
            norm_eps=float(self.key("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_base=float(self.key("rope.freq_base", 10000.0)), rope_dim=rope_dim, rope_neox=self.rope_neox,
            act=self.act, **self.rope_scaling())

    def layer_tensors(self, i: int) -> dict[str, str | None]:
        """Field -> tensor name for layer i; None for an optional tensor the file does not have."""
        names = {f: f"blk.{i}.{s}" for f, s in LAYER_TENSORS.items()}
        for f, s in OPTIONAL_TENSORS.items():
            name = f"blk.{i}.{s}"
            names[f] = name if name in self.g.tensors else None
        return names

    def output_tensor(self) -> str:
        """The output layer; tied to the embeddings when the file has no output.weight."""
        return "output.weight" if "output.weight" in self.g.tensors else "token_embd.weight"

    def rope_scaling(self) -> dict:
        """The rope scaling fields of HParams, as llama.cpp reads them (other scaling types are refused in
        refusals.py): linear scaling 1 / rope.scaling.factor (or the older rope.scale_linear) in float32, unless
        rope.scaling.type is "none", 1 without a factor; rope.scaling.attn_factor (1 by default); LongRoPE's
        original context, rope.scaling.original_context_length or else context_length."""
        factor = self.key("rope.scaling.factor")
        if factor is None:
            factor = self.key("rope.scale_linear", 0.0)
        scale = 1.0
        if self.text_key("rope.scaling.type", "linear").lower() != "none" and float(factor) != 0.0:
            scale = float(np.float32(1.0) / np.float32(factor))
        return dict(rope_freq_scale=scale, rope_attn_factor=float(self.key("rope.scaling.attn_factor", 1.0)),
                    rope_orig_ctx=self.int_key("rope.scaling.original_context_length",
                                               self.int_key("context_length", 2048)))

    def rope_freqs_long_tensor(self) -> str | None:
        """LongRoPE: the divisors for a context longer than rope_orig_ctx (rope_freqs_tensor's are for shorter)."""
        return None

    def rope_freqs_tensor(self) -> str | None:
        """The tensor of divisors of the rotary frequencies (llama3 rope scaling), when the architecture reads one."""
        return None

    def tensor_names(self) -> set[str]:
        """Every tensor this architecture reads, present in the file or not (fused sources included)."""
        names = {"token_embd.weight", "output_norm.weight", "output.weight"}
        names.update(n for n in (self.rope_freqs_tensor(), self.rope_freqs_long_tensor()) if n)
        for i in range(self.layer_count()):
            names.update(n for n in self.layer_tensors(i).values() if n)
        names.update(src for src, _, _ in self.split_fused().values())
        return names

    def split_fused(self) -> dict[str, tuple[str, int, int]]:
        """Tensors cut out of fused ones: name -> (fused name, first row, row count). None by default."""
        return {}
