"""One small module per architecture, chosen by general.architecture."""
from wren.engine.runtime.gguffile import GGUFError, GGUFFile, describe_value
from wren.engine.runtime.models.base import Architecture, HParams
from wren.engine.runtime.models.gemma3 import Gemma3
from wren.engine.runtime.models.llama import Llama
from wren.engine.runtime.models.phi3 import Phi3
from wren.engine.runtime.models.qwen2 import Qwen2
from wren.engine.runtime.models.qwen3 import Qwen3
from wren.engine.runtime.models.refusals import refuse_unsupported
from wren.engine.runtime.models.smollm3 import SmolLM3

ARCHITECTURES = {cls.name: cls for cls in (Llama, Qwen2, Qwen3, SmolLM3, Gemma3, Phi3)}


def architecture_for(g: GGUFFile) -> Architecture:
    name = g.get("general.architecture")
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise GGUFError(f"{g.path.name}: general.architecture is {describe_value(name)}, which is not supported "
                        f"(supported: {', '.join(ARCHITECTURES)})")
    arch = ARCHITECTURES[name](g)
    refuse_unsupported(arch)
    return arch


__all__ = ["ARCHITECTURES", "Architecture", "HParams", "architecture_for"]
