"""phi3: fused q|k|v and gate|up matrices, split into separate ones at load; NEOX rotary halves; LongRoPE (Phi-3.5,
Phi-4-mini): the rotary frequencies divided by rope_factors_short for a context up to
rope.scaling.original_context_length, by rope_factors_long for a longer one (llama.cpp's get_rope_factors chooses by
the context's size, not by the position), cos and sin multiplied by rope.scaling.attn_factor."""
from wren.engine.runtime.models.base import Architecture, HParams

SHORT, LONG = "rope_factors_short.weight", "rope_factors_long.weight"


class Phi3(Architecture):
    name = "phi3"
    rope_neox = True

    def hparams(self) -> HParams:
        hp = super().hparams()
        hp.scale_q = True  # llama.cpp's phi3 graph scales q by 1 / sqrt(head_dim) before q.k
        return hp

    def rope_freqs_tensor(self) -> str | None:
        return SHORT if SHORT in self.g.tensors else None

    def rope_freqs_long_tensor(self) -> str | None:
        return LONG if LONG in self.g.tensors else None

    def layer_tensors(self, i: int) -> dict:
        names = super().layer_tensors(i)
        if f"blk.{i}.attn_qkv.weight" in self.g.tensors:
            names.update(wq=f"blk.{i}.attn_q.weight", wk=f"blk.{i}.attn_k.weight", wv=f"blk.{i}.attn_v.weight")
        names["w_gate"] = f"blk.{i}.ffn_gate.weight"
        return names

    def split_fused(self) -> dict:
        hp = self.hparams()
        parts = {}
        for i in range(hp.n_layers):
            if f"blk.{i}.attn_qkv.weight" in self.g.tensors:
                qkv = f"blk.{i}.attn_qkv.weight"
                parts[f"blk.{i}.attn_q.weight"] = (qkv, 0, hp.q_dim)
                parts[f"blk.{i}.attn_k.weight"] = (qkv, hp.q_dim, hp.kv_dim)
                parts[f"blk.{i}.attn_v.weight"] = (qkv, hp.q_dim + hp.kv_dim, hp.kv_dim)
            if f"blk.{i}.ffn_gate.weight" not in self.g.tensors:  # fused gate|up in ffn_up
                up = f"blk.{i}.ffn_up.weight"
                parts[f"blk.{i}.ffn_gate.weight"] = (up, 0, hp.ffn_dim)
                parts[f"blk.{i}.ffn_up.weight"] = (up, hp.ffn_dim, hp.ffn_dim)
        return parts
