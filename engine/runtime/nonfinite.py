"""Non-finite weights: a GGUF whose weights hold NaN or infinity is refused at load, with the tensor named.

A NaN or an infinity in a weight reaches every activation it touches and leaves garbage logits; no model is trained
into such a state, so a file that holds one is damaged or hostile. The check is cheap: every value of a float tensor
(F32, F16, BF16), and the float16 scales of each block of a quantized one (its integer quants times finite scales are
always finite). Finite weights can still overflow to infinity in the activations; generation catches that where the
logits are sampled (sampling.NonFiniteLogitsError).
"""
from __future__ import annotations

import numpy as np

from wren.engine.runtime.gguffile import TENSOR_TYPES, GGUFError

__all__ = ["check_tensor"]

# byte offsets of the float16 scales in one block of each quantized type (ggml's block layouts)
SCALE_OFFSETS = {
    "Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,), "Q8_1": (0, 2),
    "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,),
}


def _finite_f16(halves: np.ndarray) -> bool:
    """Whether no float16 (given as uint16) has the all-ones exponent of NaN and infinity."""
    return not np.any((halves & 0x7C00) == 0x7C00)


def check_tensor(file_name: str, name: str, type_name: str, raw) -> None:
    """Raise GGUFError naming the tensor when `raw` (whole blocks of a tensor of type `type_name`, or a part of
    them) holds a NaN or an infinity."""
    data = np.frombuffer(raw, dtype=np.uint8)
    if type_name == "F32":
        ok = bool(np.isfinite(data[:data.size // 4 * 4].view("<f4")).all())
    elif type_name == "F16":
        ok = _finite_f16(data[:data.size // 2 * 2].view("<u2"))
    elif type_name == "BF16":
        ok = not np.any((data[:data.size // 2 * 2].view("<u2") & 0x7F80) == 0x7F80)
    elif type_name in SCALE_OFFSETS:
        block_bytes = TENSOR_TYPES[type_name][2]
        blocks = data[:data.size // block_bytes * block_bytes].reshape(-1, block_bytes)
        ok = all(_finite_f16(np.ascontiguousarray(blocks[:, o:o + 2]).view("<u2")) for o in SCALE_OFFSETS[type_name])
    else:
        return
    if not ok:
        what = "values" if type_name in ("F32", "F16", "BF16") else "block scales"
        raise GGUFError(f"{file_name}: tensor '{name}' has non-finite {what} (NaN or infinity); the file is damaged")
