"""llama: SmolLM2, Llama 2/3, TinyLlama, Mistral. The base Architecture is exactly this family."""
from wren.engine.runtime.models.base import Architecture


class Llama(Architecture):
    name = "llama"
