"""Q4_K and Q6_K kept as the file's super-blocks of 256 weights: their values, packing, and products whose arithmetic
is llama.cpp's on x86 (csrc/kquant.c), which depends on how many activation rows a product has."""
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from wren.engine.runtime import native  # noqa: E402
from wren.engine._native import lib  # noqa: E402
from wren.engine.runtime.native import Activations, Format, PackedWeights, Variant  # noqa: E402

KFORMATS = [Format.Q4_K, Format.Q6_K]
GGML = {Format.Q4_K: gguf.GGMLQuantizationType.Q4_K, Format.Q6_K: gguf.GGMLQuantizationType.Q6_K}


def variants(fmt):
    return [v for v in native.available_variants() if lib.wren_variant_supports(v, fmt)]


def random_blocks(fmt, n, k, rng):
    return native.random_super_blocks(fmt, n, k, rng)


@pytest.mark.parametrize("fmt", KFORMATS, ids=lambda f: f.label)
def test_block_sizes(fmt):
    assert fmt.block_weights == 256 and fmt.super_block
    assert fmt.block_bytes == {Format.Q4_K: 144, Format.Q6_K: 210}[fmt]


@pytest.mark.parametrize("fmt", KFORMATS, ids=lambda f: f.label)
def test_values_are_the_gguf_packages(fmt):
    rng = np.random.default_rng(1)
    plain = random_blocks(fmt, 6, 512, rng)
    ours = native.dequantize(fmt, plain, 6, 512)
    theirs = gguf.quants.dequantize(plain.reshape(-1), GGML[fmt]).reshape(6, 512)
    assert np.array_equal(ours, theirs.astype(np.float32))


@pytest.mark.parametrize("fmt", KFORMATS, ids=lambda f: f.label)
def test_quantizing_floats_is_refused(fmt):
    with pytest.raises(native.NativeError):
        native.quantize(fmt, np.zeros((1, 256), dtype=np.float32))


@pytest.mark.parametrize("fmt", KFORMATS, ids=lambda f: f.label)
def test_pack_unpack_round_trip(fmt):
    rng = np.random.default_rng(2)
    plain = random_blocks(fmt, 19, 768, rng)   # 19 rows: a partial tile of 8
    for v in variants(fmt):
        assert np.array_equal(PackedWeights(fmt, plain, 19, 768, v).unpack(), plain), v.label


@pytest.mark.parametrize("fmt", KFORMATS, ids=lambda f: f.label)
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 8, 9, 12])
def test_products_have_the_reference_bits_and_are_close_to_exact(fmt, m):
    rng = np.random.default_rng(10 + m)
    n, k = 21, 512
    plain = random_blocks(fmt, n, k, rng)
    x = (rng.standard_normal((m, k)) * 2).astype(np.float32)
    a = Activations(x, scale_group=256)
    y_ref = native.matmul(PackedWeights(fmt, plain, n, k, Variant.REFERENCE), a)
    for v in variants(fmt):
        assert np.array_equal(native.matmul(PackedWeights(fmt, plain, n, k, v), a), y_ref), v.label
    w = native.dequantize(fmt, plain, n, k).astype(np.float64)
    xq = (a.q.astype(np.float64).reshape(m, -1, 32) * a.d[:, :, None]).reshape(m, k)
    exact = xq @ w.T
    assert (np.abs(y_ref - exact) <= 1e-5 * (np.abs(xq) @ np.abs(w).T) + 1e-30).all()


def one_row(fmt, plain, n, k, x):
    return native.matmul(PackedWeights(fmt, plain, n, k), Activations(x[None], scale_group=256))[0]


def test_q4_k_rows_in_groups_of_four_take_the_gemm_arithmetic():
    """llama.cpp runs whole groups of 4 activation rows through its GEMM kernel (a fused step per pair of
    sub-blocks) and the rest through its GEMV (one per super-block): row 4 of 5 rounds as a single row does."""
    rng = np.random.default_rng(3)
    n, k = 40, 2048
    plain = random_blocks(Format.Q4_K, n, k, rng)
    x = (rng.standard_normal((5, k)) * 3).astype(np.float32)
    y = native.matmul(PackedWeights(Format.Q4_K, plain, n, k), Activations(x, scale_group=256))
    assert np.array_equal(y[4], one_row(Format.Q4_K, plain, n, k, x[4]))
    assert not all(np.array_equal(y[i], one_row(Format.Q4_K, plain, n, k, x[i])) for i in range(4))


def test_q6_k_batches_of_eight_take_the_tiled_arithmetic():
    """Below 8 rows llama.cpp's Q6_K product is its vec_dot (8 lanes per output); from 8 rows its tiled kernel (one
    exact integer per super-block): 7 rows round as single rows do, 8 rows do not."""
    rng = np.random.default_rng(4)
    n, k = 40, 2048
    plain = random_blocks(Format.Q6_K, n, k, rng)
    x = (rng.standard_normal((8, k)) * 3).astype(np.float32)
    w = PackedWeights(Format.Q6_K, plain, n, k)
    y7 = native.matmul(w, Activations(x[:7], scale_group=256))
    y8 = native.matmul(w, Activations(x, scale_group=256))
    singles = np.stack([one_row(Format.Q6_K, plain, n, k, x[i]) for i in range(8)])
    assert np.array_equal(y7, singles[:7])
    assert not np.array_equal(y8, singles)
