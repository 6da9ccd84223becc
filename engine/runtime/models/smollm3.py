"""smollm3: llama without rotary embedding in every 4th layer (layers 3, 7, 11, ...).

llama.cpp reads no key for the period: its smollm3 graph ropes layer il only when (il + 1) % n_no_rope_layer_step
!= 0, with n_no_rope_layer_step set to 4 for this architecture (src/models/smollm3.cpp).
"""
from wren.engine.runtime.models.base import Architecture, HParams

NO_ROPE_LAYER_STEP = 4


class SmolLM3(Architecture):
    name = "smollm3"

    def hparams(self) -> HParams:
        hp = super().hparams()
        hp.no_rope_layers = [(i + 1) % NO_ROPE_LAYER_STEP == 0 for i in range(hp.n_layers)]
        return hp
