"""Non-finite numbers: NaN and infinite weights are refused at load with the tensor named; finite weights whose
activations overflow end a generation with the sampler's NonFiniteLogitsError; the activation quantizers take NaN and
infinity without undefined behaviour (scripts/sanitize.sh runs the same under ASan and UBSan)."""
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from test_forward import write_synthetic  # noqa: E402 (tiny models written with the gguf package)
from wren.engine.runtime import gguffile, native, nonfinite  # noqa: E402
from wren.engine.runtime.gguffile import GGUFError  # noqa: E402
from wren.engine.runtime.model import Model  # noqa: E402
from wren.engine.runtime.native import Activations, Variant  # noqa: E402
from wren.engine.runtime.sampling import GREEDY, NonFiniteLogitsError, Sampler  # noqa: E402


def patched(path, tensor, values):
    """The tiny llama at `path` with the first values of `tensor` replaced (a quantized tensor: its first block's
    scale, at byte `at` of the block). Returns the tensor's type."""
    write_synthetic(path, "llama")
    with gguffile.read(path) as g:
        t = g.tensors[tensor]
        off, kind = t.offset, t.type_name
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(np.asarray(values, dtype="<f4" if kind == "F32" else "<f2").tobytes())
    return kind


@pytest.mark.parametrize("tensor, value, kind", [
    ("token_embd.weight", np.nan, "Q8_0"),
    ("blk.0.attn_q.weight", np.inf, "Q4_0"),
    ("blk.0.attn_k.weight", np.nan, "F16"),
    ("blk.0.attn_v.weight", -np.inf, "Q4_1"),
    ("blk.0.ffn_gate.weight", np.nan, "Q5_0"),
    ("blk.0.ffn_up.weight", np.inf, "F32"),
    ("blk.1.attn_norm.weight", np.nan, "F32"),
])
def test_nonfinite_weights_are_refused_at_load(tmp_path, tensor, value, kind):
    path = tmp_path / "bad.gguf"
    assert patched(path, tensor, [value]) == kind
    with pytest.raises(GGUFError, match=f"tensor '{tensor}' has non-finite .* \\(NaN or infinity\\)"):
        Model(path)


@pytest.mark.parametrize("type_name", sorted(nonfinite.SCALE_OFFSETS))
def test_every_scale_of_every_quantized_type_is_checked(type_name):
    block_bytes = gguffile.TENSOR_TYPES[type_name][2]
    blocks = np.zeros((3, block_bytes), dtype=np.uint8)
    blocks[:, :] = 0x11  # quants and finite scales
    nonfinite.check_tensor("f.gguf", "w", type_name, blocks.tobytes())
    for off in nonfinite.SCALE_OFFSETS[type_name]:
        bad = blocks.copy()
        bad[2, off:off + 2] = np.frombuffer(np.float16(np.inf).tobytes(), dtype=np.uint8)
        with pytest.raises(GGUFError, match="tensor 'w' has non-finite block scales"):
            nonfinite.check_tensor("f.gguf", "w", type_name, bad.tobytes())


@pytest.mark.parametrize("type_name, dtype", [("F32", "<f4"), ("F16", "<f2")])
def test_float_tensors_are_checked_value_by_value(type_name, dtype):
    x = np.ones(64, dtype=dtype)
    nonfinite.check_tensor("f.gguf", "v", type_name, x.tobytes())
    x[63] = np.nan
    with pytest.raises(GGUFError, match="tensor 'v' has non-finite values"):
        nonfinite.check_tensor("f.gguf", "v", type_name, x.tobytes())


def test_bf16_is_checked():
    ok = np.array([0x3F80, 0xBF80], dtype="<u2")  # 1.0, -1.0
    nonfinite.check_tensor("f.gguf", "b", "BF16", ok.tobytes())
    with pytest.raises(GGUFError, match="non-finite values"):
        nonfinite.check_tensor("f.gguf", "b", "BF16", np.array([0x3F80, 0x7F80], dtype="<u2").tobytes())


def test_overflowing_activations_end_the_generation(tmp_path):
    """Finite weights (they load) whose activations overflow: the logits are not finite, and sampling says so."""
    path = tmp_path / "huge.gguf"
    patched(path, "output_norm.weight", np.full(64, 3.0e38))
    m = Model(path)
    logits = m.context(32, 32, 1).forward([3, 17, 42, 5], 0, None)
    assert not np.isfinite(logits).all()
    for params in (GREEDY, Sampler().params):
        with pytest.raises(NonFiniteLogitsError, match="non-finite logits"):
            Sampler(params).sample(logits)


@pytest.mark.parametrize("scale_group", [32, 256])
def test_activation_quantizers_take_nan_and_inf(scale_group):
    """A block with NaN or infinity quantizes to defined values, the same with every kernel variant (the SIMD ones
    hand such a block to the reference), and finite blocks beside it are untouched."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 512)).astype(np.float32)
    clean = x.copy()
    x[0, 3], x[1, 40], x[2, 300], x[3, :] = np.nan, np.inf, -np.inf, np.nan
    variants = [v for v in (Variant.REFERENCE, Variant.AVX2, Variant.NEON, Variant.DOTPROD) if v.available]
    if scale_group == 256:
        acts = [Activations(x, scale_group=256)]
        ref_clean = Activations(clean, scale_group=256)
    else:
        acts = [Activations(x, v) for v in variants]
        ref_clean = Activations(clean, Variant.REFERENCE)
    a0 = acts[0]
    for a in acts[1:]:
        assert np.array_equal(a.q, a0.q) and np.array_equal(a.sum, a0.sum)
    assert (np.abs(a0.sum) <= 32 * 2 ** 22).all()
    # rows 0-2 have one bad block each (of 32, or of 256): the other blocks are those of the clean rows
    bad_block = {0: 3, 1: 40, 2: 300}
    for row, col in bad_block.items():
        keep = np.ones(512, dtype=bool)
        keep[col // scale_group * scale_group:(col // scale_group + 1) * scale_group] = False
        assert np.array_equal(a0.q[row][keep], ref_clean.q[row][keep])
