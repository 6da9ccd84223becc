"""Weight formats and kernels: round trips, every variant against the reference and float64, bad arguments.

Tolerances, and why:
- Quantization round trip, per block: Q8_0 |x - x'| <= d (1/2 + 127 * 2^-11) (half a step, plus the fp16 rounding of
  the scale times |q| <= 127); Q4_0 <= |d| (1 + 16 * 2^-11) (a full step at the clipped end of the range); Q4_1
  <= d (1/2 + 15 * 2^-11) + |min| 2^-11. Each with 2^-24 * 127 of absolute slack for fp16 subnormal scales.
  Q8_16, per half of 16 with step s = d sc: s / 2, or for a value past 127 s (sc rounded down) |x| - 127 s, which
  is at most 64 d when d is a normal fp16 number.
- Products: integer block sums are exact in every variant, so only float rounding differs: nb block terms added in
  f32, each from two rounded products, give |y - exact| <= (nb + 2) 2^-23 sum_b sum_j |w_j x_j| where exact is the
  float64 product of the dequantized operands. Against the unquantized float64 product the quantization errors add
  on top: sum_j |w_j - w'_j| |x_j| + sum_j |w'_j| |x_j - x'_j|.
- Activation quantization and the results on 1, 2 and 3 threads are compared bit for bit.
"""
import numpy as np
import pytest

from wren.engine.runtime import native
from wren.engine._native import ffi, lib
from wren.engine.runtime.native import Activations, Format, PackedWeights, Variant

FORMATS = [f for f in Format if not f.super_block]  # Q4_K and Q6_K: test_kquant.py
VARIANTS = native.available_variants()
U = 2.0**-11  # fp16 relative rounding
SLACK = 127 * 2.0**-24


def blocks_of(x):
    return x.reshape(x.shape[0], -1, 32)


def extreme_rows(rng, n, k):
    """Random rows with whole blocks that are all zero, near the fp16 limit, tiny, or a single spike."""
    x = rng.standard_normal((n, k)).astype(np.float32)
    b = blocks_of(x)
    kinds = rng.integers(0, 5, size=b.shape[:2])
    b[kinds == 1] = 0.0
    b[kinds == 2] *= np.float32(6.0e4 / 4)
    b[kinds == 3] *= np.float32(1e-6)
    spike = kinds == 4
    b[spike] *= np.float32(1e-3)
    b[spike, 7] = 5.0
    return x


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.label)
@pytest.mark.parametrize("mix", [False, True], ids=["random", "extreme"])
def test_quantize_round_trip_within_bound(fmt, mix):
    rng = np.random.default_rng(7)
    n, k = 37, 320
    x = extreme_rows(rng, n, k) if mix else rng.standard_normal((n, k)).astype(np.float32)
    q = native.quantize(fmt, x)
    assert q.shape == (n, k // 32 * fmt.block_bytes)
    back = native.dequantize(fmt, q, n, k)
    err = np.abs(blocks_of(back).astype(np.float64) - blocks_of(x))
    xb = blocks_of(x).astype(np.float64)
    if fmt == Format.Q8_0:
        d = np.abs(xb).max(axis=2) / 127
        bound = d * (0.5 + 127 * U) + SLACK
    elif fmt == Format.Q4_0:
        d = np.abs(xb).max(axis=2) / 8
        bound = d * (1 + 16 * U) + 16 * 2.0**-25
    elif fmt == Format.Q4_1:
        lo, hi = xb.min(axis=2), xb.max(axis=2)
        bound = (hi - lo) / 15 * (0.5 + 15 * U) + np.abs(lo) * U + SLACK
    else:
        raw = q.reshape(n, k // 32, 36)
        d = raw[:, :, 0:2].copy().view(np.float16)[..., 0].astype(np.float64)
        sc = raw[:, :, 2:4].view(np.int8).astype(np.float64)
        halves = np.abs(xb).reshape(n, k // 32, 2, 16).max(axis=3)
        step = d[..., None] * sc
        clipped = np.maximum(0.0, halves - 127 * step)
        assert (clipped[d >= 2.0**-14] <= 64 * d[d >= 2.0**-14, None] * (1 + 1e-6)).all()
        bound = (0.5 * step + clipped).max(axis=2) + 2.0**-30
    assert (err.max(axis=2) <= bound * (1 + 1e-6)).all()
    # all-zero blocks come back exactly zero, and requantizing the dequantized values is stable
    zero = (np.abs(xb).max(axis=2) == 0)
    assert (blocks_of(back)[zero] == 0).all()
    assert np.array_equal(native.dequantize(fmt, native.quantize(fmt, back), n, k), back) or fmt in (Format.Q4_1,
                                                                                                   Format.Q8_16)


def test_plain_blocks_are_gguf_layout():
    """Weight j of a Q4_0 block is the low nibble of qs[j] (j < 16) or the high nibble of qs[j-16]."""
    x = np.zeros((1, 32), dtype=np.float32)
    x[0, :16] = np.arange(16) - 8
    x[0, 16:] = -8
    x[0, 31] = 7
    q = native.quantize(Format.Q4_0, x)[0]
    d = np.frombuffer(q[:2].tobytes(), dtype=np.float16)[0]
    assert d == np.float16(1.0)
    assert list(q[2:18] & 15) == list(range(16))
    assert list(q[2:17] >> 4) == [0] * 15 and q[17] >> 4 == 15


def dequantized(fmt, plain, n, k):
    return native.dequantize(fmt, plain, n, k).astype(np.float64)


def act_dequantized(a: Activations):
    return (blocks_of(a.q.astype(np.float64)) * a.d[:, :, None]).reshape(a.m, a.k)


def float_budget(wd, xd):
    """(nb + 2) 2^-23 sum |w x| per output."""
    nb = wd.shape[1] // 32
    return (nb + 2) * 2.0**-23 * (np.abs(xd) @ np.abs(wd).T) + 1e-30


SHAPES = [(1, 32, 1), (5, 64, 1), (13, 96, 3), (9, 160, 7), (33, 256, 1), (70, 576, 5), (200, 1536, 2)]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.label)
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.label)
@pytest.mark.parametrize("n,k,m", SHAPES)
def test_variant_matches_reference_and_float64(variant, fmt, n, k, m):
    rng = np.random.default_rng(n * 1000 + k + m)
    mix = (n + m) % 2 == 1
    w = extreme_rows(rng, n, k) if mix else rng.standard_normal((n, k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32) * np.float32(3.0)
    plain = native.quantize(fmt, w)

    a_ref = Activations(x, Variant.REFERENCE)
    a_var = Activations(x, variant)
    assert np.array_equal(a_var.q, a_ref.q) and np.array_equal(a_var.d, a_ref.d)
    assert np.array_equal(a_var.sum, a_ref.sum)
    assert np.abs(a_ref.q).max() <= 127

    packed = PackedWeights(fmt, plain, n, k, variant)
    assert np.array_equal(packed.unpack(), plain)
    y_ref = native.matmul(PackedWeights(fmt, plain, n, k, Variant.REFERENCE), a_ref)
    y_var = native.matmul(packed, a_ref)

    wd, xd = dequantized(fmt, plain, n, k), act_dequantized(a_ref)
    exact = xd @ wd.T
    budget = float_budget(wd, xd)
    min_dev = np.zeros_like(exact)
    if fmt == Format.Q4_1:   # the min term is m_w s_x (Q8_1's fp16 s), not m_w d_x sum_x
        mw = plain.reshape(n, k // 32, 20)[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
        s64 = a_ref.s.astype(np.float64)
        dev = s64 - a_ref.d.astype(np.float64) * a_ref.sum
        exact += dev @ mw.T
        min_dev = np.abs(dev) @ np.abs(mw).T
        budget += (k // 32 + 2) * 2.0**-23 * (np.abs(s64) @ np.abs(mw).T)
    assert (np.abs(y_ref - exact) <= budget).all()
    assert (np.abs(y_var - exact) <= budget).all()
    # against the unquantized float64 product: the quantization error bound on top
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    q_bound = np.abs(x64) @ np.abs(w64 - wd).T + np.abs(x64 - xd) @ np.abs(wd).T + min_dev
    assert (np.abs(y_var - x64 @ w64.T) <= q_bound * (1 + 1e-9) + budget).all()


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.label)
def test_one_two_three_threads_give_identical_bits(fmt):
    rng = np.random.default_rng(3)
    n, k = 203, 448
    w = PackedWeights.from_floats(fmt, rng.standard_normal((n, k)).astype(np.float32))
    for m in (1, 6):
        a = Activations(rng.standard_normal((m, k)).astype(np.float32))
        serial = native.matmul(w, a)
        for threads in (1, 2, 3):
            with native.Pool(threads) as pool:
                assert np.array_equal(native.matmul(w, a, pool), serial)


def test_chosen_variant_is_a_simd_one_where_the_cpu_has_it():
    if native.forced_reference():
        assert all(native.chosen_variant(f) == Variant.REFERENCE for f in FORMATS)
        return
    feats = set(native.cpu_features())
    expect = Variant.REFERENCE
    if {"avx2", "fma", "f16c"} <= feats:
        expect = Variant.AVX2
    elif {"asimddp", "i8mm"} <= feats:
        expect = Variant.I8MM
    elif "asimddp" in feats:
        expect = Variant.DOTPROD
    elif "asimd" in feats:
        expect = Variant.NEON
    assert {native.chosen_variant(f) for f in FORMATS} == {expect}


# ---- bad arguments: error codes from C, clear exceptions in Python ----------------------------------------------


def test_k_not_multiple_of_32_is_refused():
    with pytest.raises(ValueError, match="multiple of 32"):
        native.quantize(Format.Q4_0, np.ones((2, 33), dtype=np.float32))
    buf = native.aligned_empty(4096)
    with pytest.raises(native.InvalidArgumentError, match="invalid shape"):
        native.check(lib.wren_quantize(0, ffi.from_buffer("float[]", np.ones(66, np.float32)), 2, 33,
                                       ffi.from_buffer(buf), buf.nbytes), "quantize")
    assert lib.wren_act_bytes(1, 48) == 0
    assert lib.wren_packed_bytes(0, 0, 4, 48) == 0


def test_short_buffers_are_refused():
    x = np.ones((4, 64), dtype=np.float32)
    small = native.aligned_empty(10)
    status = lib.wren_quantize(Format.Q8_0, ffi.from_buffer("float[]", x), 4, 64, ffi.from_buffer(small), small.nbytes)
    assert status == lib.WREN_E_BUFFER
    with pytest.raises(native.InvalidArgumentError, match="smaller than the shape needs"):
        native.check(status, "quantize")
    # a weights struct claiming more rows than its bytes hold
    w = PackedWeights.from_floats(Format.Q4_0, np.ones((8, 64), dtype=np.float32))
    a = Activations(np.ones((1, 64), dtype=np.float32))
    w.struct.n = 64
    with pytest.raises(native.InvalidArgumentError, match="smaller"):
        native.matmul(w, a)
    # an output buffer too short
    w.struct.n = 8
    with pytest.raises(native.InvalidArgumentError, match="smaller"):
        native.check(lib.wren_matmul(ffi.NULL, w.struct, a.struct, ffi.from_buffer("float[]", np.empty(3, np.float32)),
                                     3), "matmul")


def test_mismatched_and_misaligned_buffers_are_refused():
    w = PackedWeights.from_floats(Format.Q4_1, np.ones((8, 64), dtype=np.float32))
    a = Activations(np.ones((1, 96), dtype=np.float32))
    with pytest.raises(native.InvalidArgumentError, match="invalid shape"):
        native.matmul(w, a)
    a = Activations(np.ones((1, 64), dtype=np.float32))
    raw = native.aligned_empty(w.nbytes + 1)
    raw[1:] = w.data
    shifted = ffi.from_buffer(raw[1:])
    w.struct.data = shifted
    with pytest.raises(native.InvalidArgumentError, match="aligned"):
        native.matmul(w, a)
    buf = native.aligned_empty(4096)
    act = ffi.new("wren_act *")
    assert lib.wren_act_init(act, ffi.from_buffer(buf[1:]), 4000, 1, 64) == lib.WREN_E_ALIGN


def test_unknown_format_and_unavailable_variant():
    assert lib.wren_quantize(9, ffi.NULL, 1, 32, ffi.NULL, 0) == lib.WREN_E_NULL
    x = np.ones((1, 32), dtype=np.float32)
    buf = native.aligned_empty(64)
    assert lib.wren_quantize(9, ffi.from_buffer("float[]", x), 1, 32, ffi.from_buffer(buf), 64) == lib.WREN_E_FORMAT
    with pytest.raises(ValueError):
        native.quantize(9, x)
    missing = [v for v in Variant if not v.available]
    for v in missing:
        with pytest.raises(native.UnsupportedVariantError, match="not supported by this CPU"):
            PackedWeights.from_floats(Format.Q4_0, x, v)
        with pytest.raises(native.UnsupportedVariantError):
            Activations(x, v)
    assert lib.wren_variant_name(99) == ffi.NULL and lib.wren_variant_available(-1) == 0
