"""qwen2 (Qwen2.5): llama with biases on q, k, v (picked up as optional tensors) and NEOX rotary halves."""
from wren.engine.runtime.models.base import Architecture


class Qwen2(Architecture):
    name = "qwen2"
    rope_neox = True
