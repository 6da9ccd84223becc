"""Metadata and tensors that change the maths: each one llama.cpp reads for the architectures Wren runs (llama, qwen2,
qwen3, smollm3, gemma3, phi3) is either honoured or refused by name, never ignored.

Keys are ``{arch}.{suffix}``; llama.cpp's names (src/llama-arch.cpp) on the left.

================================================ ===========================================================
key or tensor                                    Wren
================================================ ===========================================================
block_count, context_length, embedding_length,   honoured (models/base.py)
feed_forward_length, attention.head_count,
attention.head_count_kv, attention.key_length,
attention.layer_norm_rms_epsilon, rope.freq_base,
rope.dimension_count
attention.value_length                           honoured when equal to key_length; refused otherwise
attention.sliding_window, rope.freq_base_swa     honoured (gemma3)
rope_freqs.weight                                honoured for llama (llama3 rope scaling: each rotary
                                                 frequency divided by its factor); refused elsewhere, as
                                                 llama.cpp's graphs of the other architectures pass no factors
rope.scaling.original_context_length            honoured (phi3 LongRoPE); no effect elsewhere without YaRN
rope.scaling.finetuned                           no effect: accepted
rope.scaling.type                                "none" or "linear" (llama.cpp's default): honoured; "longrope"
                                                 for phi3 (the factors do the work); yarn, anything else: refused
rope.scaling.factor, rope.scale_linear           honoured: linear scaling, theta * (1 / factor) in global
                                                 layers (Gemma 3 4B: 8); negative or not a number: refused
rope.scaling.attn_factor                         honoured: multiplies rope's cos and sin (phi3 LongRoPE);
                                                 0, negative or not a number: refused
rope.scaling.yarn_log_multiplier,                refused when present (YaRN)
rope.scaling.yarn_ext_factor,
rope.scaling.yarn_attn_factor,
rope.scaling.yarn_beta_fast,
rope.scaling.yarn_beta_slow
rope.dimension_sections                          refused when present (multimodal rope sections)
rope_factors_long.weight,                        honoured for phi3 (LongRoPE: short factors for a context up
rope_factors_short.weight                        to rope.scaling.original_context_length, long ones beyond);
                                                 refused elsewhere
attn_logit_softcapping, final_logit_softcapping  0: accepted; other values refused (gemma2-style capping)
attention.scale, embedding_scale,                0 or 1 (llama.cpp's defaults): accepted; other values refused
residual_scale, logit_scale
attention.causal                                 true: accepted; false (bidirectional) refused
expert_count                                     0: accepted; mixtures of experts refused
any other tensor the architecture does not read  refused by name
================================================ ===========================================================
"""
from __future__ import annotations

from typing import Any, Callable

from wren.engine.runtime.gguffile import GGUFError, describe_value, short


def _number_not_in(*ok: float) -> Callable[[Any], bool]:
    def changes(value) -> bool:
        try:
            return float(value) not in ok
        except (TypeError, ValueError):
            return True
    return changes


def _negative(value) -> bool:
    try:
        return not float(value) >= 0.0
    except (TypeError, ValueError):
        return True


def _present(value) -> bool:
    return True


# suffix -> does this value change the maths (beyond what Wren implements)?
REFUSED_KEYS: dict[str, Callable[[Any], bool]] = {
    "rope.scaling.type": lambda v: str(v).lower() not in ("none", "linear", "longrope"),
    "rope.scaling.factor": _negative,
    "rope.scale_linear": _negative,
    "rope.scaling.attn_factor": lambda v: _negative(v) or float(v) == 0.0,
    "rope.scaling.yarn_log_multiplier": _present,
    "rope.scaling.yarn_ext_factor": _present,
    "rope.scaling.yarn_attn_factor": _present,
    "rope.scaling.yarn_beta_fast": _present,
    "rope.scaling.yarn_beta_slow": _present,
    "rope.dimension_sections": _present,
    "attn_logit_softcapping": _number_not_in(0.0),
    "final_logit_softcapping": _number_not_in(0.0),
    "attention.scale": _number_not_in(0.0, 1.0),
    "embedding_scale": _number_not_in(0.0, 1.0),
    "residual_scale": _number_not_in(0.0, 1.0),
    "logit_scale": _number_not_in(0.0, 1.0),
    "attention.causal": lambda v: not (v is True or (isinstance(v, (int, float)) and v == 1)),
    "expert_count": _number_not_in(0.0),
}

REFUSED_TENSORS = {
    "rope_factors_long.weight": "LongRoPE factors, read for phi3 only",
    "rope_factors_short.weight": "LongRoPE factors, read for phi3 only",
    "rope_freqs.weight": "rope frequency factors",
}


def refuse_unsupported(arch) -> None:
    """Raise GGUFError naming the first key or tensor of arch's file that changes the maths in a way Wren does not
    implement."""
    g, name = arch.g, arch.g.path.name
    kind = arch.text_key("rope.scaling.type", "linear")
    if kind.lower() == "longrope" and arch.name != "phi3":
        raise GGUFError(f"{name}: metadata {arch.name}.rope.scaling.type = {short(repr(kind))} is not supported "
                        f"(LongRoPE is implemented for phi3 only)")
    for suffix, changes in REFUSED_KEYS.items():
        key = f"{arch.name}.{suffix}"
        value = g.get(key)
        if value is not None and changes(value):
            raise GGUFError(f"{name}: metadata {key} is {describe_value(value)}, which Wren does not implement")
    key_len, value_len = arch.key("attention.key_length"), arch.key("attention.value_length")  # typed reads
    if key_len is not None and value_len is not None and key_len != value_len:
        raise GGUFError(f"{name}: metadata {arch.name}.attention.value_length is {describe_value(value_len)}, "
                        f"unlike key_length ({describe_value(key_len)}), which Wren does not support")
    reads = arch.tensor_names()
    for tensor in sorted(g.tensors):
        if tensor not in reads:
            what = REFUSED_TENSORS.get(tensor, f"a tensor the {arch.name} architecture does not use")
            raise GGUFError(f"{name}: tensor {short(tensor)} ({what}) is not supported")
