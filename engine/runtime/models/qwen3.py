"""qwen3: llama with RMS norms of each head of q and k before the rotary embedding (attn_q_norm, attn_k_norm, picked
up as optional tensors), NEOX rotary halves, no attention biases."""
from wren.engine.runtime.models.base import Architecture


class Qwen3(Architecture):
    name = "qwen3"
    rope_neox = True
