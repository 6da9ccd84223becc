"""phi3: fused q|k|v and gate|up matrices, split into separate ones at load; NEOX rotary halves."""
from wren.engine.runtime.models.base import Architecture


class Phi3(Architecture):
    name = "phi3"
    rope_neox = True

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
