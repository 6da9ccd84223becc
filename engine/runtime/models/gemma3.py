"""gemma3: QK-norm, norms before and after attention and FFN, GELU-tanh gate, embeddings scaled by sqrt(dim),
five sliding-window layers (with their own rotary base) for every global one, tied output.

GGUF norm weights already include Gemma's "1 +" offset (the converter adds it), so they are used as they are.
"""
import math

from wren.engine.runtime.models.base import Architecture, HParams

SWA_PATTERN = 6  # layers 0-4 slide, layer 5 is global, and so on
SWA_ROPE_BASE = 10000.0


class Gemma3(Architecture):
    name = "gemma3"
    rope_neox = True
    act = "gelu_tanh"

    def hparams(self) -> HParams:
        hp = super().hparams()
        hp.embed_scale = math.sqrt(hp.dim)
        hp.scale_q = True
        hp.sliding_window = self.int_key("attention.sliding_window", 512)
        hp.swa_layers = [(i + 1) % SWA_PATTERN != 0 for i in range(hp.n_layers)]
        hp.rope_base_swa = float(self.key("rope.freq_base_swa", SWA_ROPE_BASE))
        hp.norm_eps = float(self.key("attention.layer_norm_rms_epsilon", 1e-6))
        return hp
