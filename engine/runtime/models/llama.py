"""llama: SmolLM2, Llama 2/3, TinyLlama, Mistral. The base Architecture is exactly this family, plus Llama 3.1/3.2's
rope scaling, which the converter writes as the tensor rope_freqs.weight: one divisor per rotary frequency."""
from wren.engine.runtime.models.base import Architecture

ROPE_FREQS = "rope_freqs.weight"


class Llama(Architecture):
    name = "llama"

    def rope_freqs_tensor(self) -> str | None:
        return ROPE_FREQS if ROPE_FREQS in self.g.tensors else None
