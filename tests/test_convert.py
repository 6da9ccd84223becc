"""GGUF tensor types into floats, checked against the gguf package's own numpy dequantizers, and Q4_K -> Q4_1."""
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from wren.engine.runtime import native  # noqa: E402
from wren.engine._native import ffi, lib  # noqa: E402

T = gguf.GGMLQuantizationType
TYPES = {"F16": T.F16, "BF16": T.BF16, "Q4_0": T.Q4_0, "Q4_1": T.Q4_1, "Q5_0": T.Q5_0, "Q5_1": T.Q5_1,
         "Q8_0": T.Q8_0, "Q4_K": T.Q4_K, "Q5_K": T.Q5_K, "Q6_K": T.Q6_K}


def random_blocks(qtype, n_blocks, rng):
    """Random bytes for n blocks with sane fp16 scales (random bits could be NaN/inf scales)."""
    block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, nbytes), dtype=np.uint8)
    def put_f16(col, lo, hi):
        raw[:, col:col + 2] = rng.uniform(lo, hi, size=n_blocks).astype(np.float16).view(np.uint8).reshape(-1, 2)
    if qtype in (T.Q4_0, T.Q5_0, T.Q8_0):
        put_f16(0, -0.1, 0.1)
    elif qtype in (T.Q4_1, T.Q5_1, T.Q4_K, T.Q5_K):
        put_f16(0, -0.1, 0.1)
        put_f16(2, -0.1, 0.1)
    elif qtype == T.Q6_K:
        put_f16(208, -0.1, 0.1)
    elif qtype == T.F16:
        return rng.standard_normal(n_blocks).astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    elif qtype == T.BF16:
        f = rng.standard_normal(n_blocks).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(n_blocks, 2)
    return raw


def to_f32(type_id, raw, n):
    out = np.empty(n, dtype=np.float32)
    native.check(lib.wren_ggml_to_f32(type_id, ffi.from_buffer(raw), raw.nbytes, n, ffi.from_buffer("float[]", out),
                                      n), "to_f32")
    return out


@pytest.mark.parametrize("name", list(TYPES))
def test_dequantize_matches_gguf_package(name):
    qtype = TYPES[name]
    rng = np.random.default_rng(int(qtype))
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = 64 if block > 1 else 1024
    raw = random_blocks(qtype, n_blocks, rng)
    n = n_blocks * block
    ours = to_f32(int(qtype), raw, n)
    theirs = gguf.quants.dequantize(raw.reshape(-1), qtype).reshape(-1).astype(np.float32)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_q4_k_folds_into_q4_1_blocks():
    rng = np.random.default_rng(4)
    raw = random_blocks(T.Q4_K, 40, rng)
    n = 40 * 256
    q41 = np.empty(n // 32 * 20, dtype=np.uint8)
    native.check(lib.wren_q4_k_to_q4_1(ffi.from_buffer(raw), raw.nbytes, n, ffi.from_buffer(q41), q41.nbytes), "fold")
    exact = to_f32(lib.WREN_GGML_Q4_K, raw, n)
    folded = native.dequantize(native.Format.Q4_1, q41, 1, n)[0]
    # only the fp16 rounding of d*sc (|q| <= 15) and of the min changes a value
    d = np.frombuffer(raw[:, 0:2].tobytes(), np.float16).astype(np.float64)
    dmin = np.frombuffer(raw[:, 2:4].tobytes(), np.float16).astype(np.float64)
    bound = np.repeat((15 * 63 * np.abs(d) + 63 * np.abs(dmin)) * 2.0**-11, 256) + 1e-7
    assert (np.abs(folded - exact) <= bound).all()


def test_q6_k_converts_exactly_into_q8_16_blocks():
    """Each Q6_K super-block becomes eight Q8_16 blocks with the same d, its 16-value scales and q - 32: every value
    dequantizes to the gguf package's float, bit for bit, extremes of the scales (-128, 127) included."""
    rng = np.random.default_rng(6)
    raw = random_blocks(T.Q6_K, 48, rng)
    raw[:3, 192:208] = np.array([-128, 127] * 8, dtype=np.int8).view(np.uint8)
    n = 48 * 256
    q816 = np.empty(n // 32 * 36, dtype=np.uint8)
    native.check(lib.wren_q6_k_to_q8_16(ffi.from_buffer(raw), raw.nbytes, n, ffi.from_buffer(q816), q816.nbytes),
                 "convert")
    ours = native.dequantize(native.Format.Q8_16, q816, 1, n)[0]
    theirs = gguf.quants.dequantize(raw.reshape(-1), T.Q6_K).reshape(-1).astype(np.float32)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(ours, to_f32(lib.WREN_GGML_Q6_K, raw, n))
    assert lib.wren_q6_k_to_q8_16(ffi.from_buffer(raw), raw.nbytes - 1, n, ffi.from_buffer(q816),
                                  q816.nbytes) == lib.WREN_E_BUFFER
    assert lib.wren_q6_k_to_q8_16(ffi.from_buffer(raw), raw.nbytes, n - 32, ffi.from_buffer(q816),
                                  q816.nbytes) == lib.WREN_E_SHAPE


@pytest.mark.parametrize("name", ["F16", "BF16", "Q5_1", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("fmt", [native.Format.Q8_0, native.Format.Q4_0])
def test_requantize_in_one_pass_equals_floats_then_quantize(name, fmt):
    """wren_ggml_requantize (the load path of the types without a direct runtime format) gives the bytes of
    wren_ggml_to_f32 followed by the reference quantizer, piece by piece, for whole and partial 256-value pieces."""
    qtype = TYPES[name]
    rng = np.random.default_rng(int(qtype) + 100 * int(fmt))
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = 12 if block > 1 else 32 * 13  # 13 blocks of 32: not a multiple of 256
    raw = random_blocks(qtype, n_blocks, rng)
    n = n_blocks * block
    expected = native.quantize(fmt, to_f32(int(qtype), raw, n).reshape(1, n)).reshape(-1)
    got = np.empty_like(expected)
    native.check(lib.wren_ggml_requantize(int(qtype), ffi.from_buffer(raw), raw.nbytes, n, fmt, ffi.from_buffer(got),
                                          got.nbytes), "requantize")
    assert (got == expected).all()
    assert lib.wren_ggml_requantize(int(qtype), ffi.from_buffer(raw), raw.nbytes - 1, n, fmt, ffi.from_buffer(got),
                                    got.nbytes) == lib.WREN_E_BUFFER
    assert lib.wren_ggml_requantize(int(qtype), ffi.from_buffer(raw), raw.nbytes, n, 7, ffi.from_buffer(got),
                                    got.nbytes) == lib.WREN_E_FORMAT


def test_bad_arguments():
    raw = np.zeros(144, dtype=np.uint8)
    out = np.empty(256, dtype=np.float32)
    assert lib.wren_ggml_to_f32(10, ffi.from_buffer(raw), 144, 256, ffi.from_buffer("float[]", out), 256) == \
        lib.WREN_E_FORMAT  # Q2_K is not converted
    assert lib.wren_ggml_to_f32(12, ffi.from_buffer(raw), 144, 100, ffi.from_buffer("float[]", out), 256) == \
        lib.WREN_E_SHAPE
    assert lib.wren_ggml_to_f32(12, ffi.from_buffer(raw), 143, 256, ffi.from_buffer("float[]", out), 256) == \
        lib.WREN_E_BUFFER
    assert lib.wren_ggml_bytes(14, 512) == 420 and lib.wren_ggml_bytes(14, 100) == 0
