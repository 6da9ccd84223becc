"""The table of runtime formats: Python's view agrees with C's rows, with GGUF's block sizes and with the kernels'
tile sizes; blocks round-trip through the table's codecs; the loader's choices follow from the rows."""
import numpy as np
import pytest

from wren.engine._native import ffi, lib
from wren.engine.runtime import formats, gguffile, model, native
from wren.engine.runtime.formats import CONVERTS, FILE_BLOCKS, Format
from wren.engine.runtime.native import PackedWeights, Variant


def test_one_member_per_row_with_the_c_names_and_numbers():
    assert [int(f) for f in Format] == list(range(lib.WREN_N_FORMATS))
    for f in Format:
        assert getattr(lib, f"WREN_{f.name}") == f
        assert f.label == ffi.string(lib.wren_format_name(f)).decode() == f.name.lower()
        assert f.block_bytes == lib.wren_format_block_bytes(f)
        assert f.block_weights == lib.wren_format_block_weights(f)
        assert f.super_block == (f.block_weights == lib.WREN_QK_SUPER)


def test_rows_as_documented_in_wren_h():
    rows = {f.label: (f.block_weights, f.block_bytes, f.info.bits, f.info.act_group) for f in Format}
    assert rows == {"q4_0": (32, 18, 4, 32), "q4_1": (32, 20, 4, 32), "q8_0": (32, 34, 8, 32),
                    "q8_16": (32, 36, 8, 32), "q4_k": (256, 144, 4, 256), "q6_k": (256, 210, 6, 256)}
    assert {f.label for f in Format if f.info.quantizes} == {"q4_0", "q4_1", "q8_0", "q8_16"}


def test_unknown_formats_are_refused():
    for bad in (-1, lib.WREN_N_FORMATS):
        with pytest.raises(ValueError, match="unknown weight format"):
            formats.describe(bad)
        assert lib.wren_format_name(bad) == ffi.NULL and lib.wren_format_block_bytes(bad) == 0
    assert lib.wren_format_describe(0, ffi.NULL) == lib.WREN_E_NULL


def test_file_blocks_have_gguf_sizes():
    assert FILE_BLOCKS == {"Q4_0": Format.Q4_0, "Q4_1": Format.Q4_1, "Q8_0": Format.Q8_0, "Q4_K": Format.Q4_K,
                           "Q6_K": Format.Q6_K}
    for type_name, f in FILE_BLOCKS.items():
        _, block, block_bytes = gguffile.TENSOR_TYPES[type_name]
        assert (f.block_weights, f.block_bytes) == (block, block_bytes)
    assert CONVERTS == {"Q4_K": Format.Q4_1, "Q5_0": Format.Q8_0, "Q6_K": Format.Q8_16}
    assert set(FILE_BLOCKS) | set(CONVERTS) <= gguffile.SUPPORTED_TYPES


@pytest.mark.parametrize("variant", [v for v in Variant if v.available], ids=lambda v: v.label)
def test_tile_sizes_follow_the_row(variant):
    """A tile of one row is the plain block; of R > 1 rows, R times the row's tile_row_bytes."""
    rows = variant.rows
    for f in Format:
        if not lib.wren_variant_supports(variant, f):
            continue
        per_tile = f.block_bytes if rows == 1 else rows * f.info.tile_row_bytes
        assert lib.wren_packed_bytes(variant, f, rows, 2 * f.block_weights) == 2 * per_tile


def _plain(f: Format, n: int, k: int, rng) -> np.ndarray:
    if f.info.quantizes:
        return native.quantize(f, rng.standard_normal((n, k)).astype(np.float32))
    return native.random_super_blocks(f, n, k, rng)


@pytest.mark.parametrize("fmt", list(Format), ids=lambda f: f.label)
def test_blocks_round_trip(fmt):
    """Plain blocks -> floats -> blocks again (the formats quantize() makes), and -> tiles -> plain blocks, and the
    rows of packed weights read back as the plain blocks' floats."""
    rng = np.random.default_rng(int(fmt))
    n, k = 9, 2 * fmt.block_weights
    plain = _plain(fmt, n, k, rng)
    assert plain.shape == (n, fmt.plain_bytes(1, k))
    floats = native.dequantize(fmt, plain, n, k)
    if fmt.info.quantizes and fmt not in (Format.Q4_1, Format.Q8_16):  # their steps need not requantize exactly
        assert np.array_equal(native.quantize(fmt, floats), plain)
    for variant in (v for v in Variant if v.available and lib.wren_variant_supports(v, fmt)):
        w = PackedWeights(fmt, plain, n, k, variant)
        assert np.array_equal(w.unpack(), plain)
        assert w.struct.act_group == fmt.info.act_group
        row = np.empty(k, dtype=np.float32)
        native.check(lib.wren_weights_row(w.struct, 4, ffi.from_buffer("float[]", row), k), "row")
        assert np.array_equal(row, floats[4])


def _convert(type_name: str, raw: np.ndarray, n: int, fmt: Format) -> np.ndarray:
    out = np.empty(fmt.plain_bytes(1, n), dtype=np.uint8)
    native.check(lib.wren_ggml_convert(gguffile.TENSOR_TYPES[type_name][0], ffi.from_buffer(raw), raw.nbytes, n, fmt,
                                       ffi.from_buffer(out), out.nbytes), f"convert {type_name}")
    return out


def test_ggml_convert_takes_the_file_blocks_the_conversion_or_requantizes():
    rng = np.random.default_rng(5)
    n = 512
    for type_name, fmt in FILE_BLOCKS.items():  # the file's bytes as they are
        raw = _plain(fmt, 1, n, rng)[0]
        assert np.array_equal(_convert(type_name, raw, n, fmt), raw)
    direct = {"Q4_K": lib.wren_q4_k_to_q4_1, "Q5_0": lib.wren_q5_0_to_q8_0, "Q6_K": lib.wren_q6_k_to_q8_16}
    for type_name, fmt in CONVERTS.items():
        _, block, block_bytes = gguffile.TENSOR_TYPES[type_name]
        raw = rng.integers(0, 256, n // block * block_bytes, dtype=np.uint8)
        expected = np.empty(fmt.plain_bytes(1, n), dtype=np.uint8)
        native.check(direct[type_name](ffi.from_buffer(raw), raw.nbytes, n, ffi.from_buffer(expected),
                                       expected.nbytes), type_name)
        assert np.array_equal(_convert(type_name, raw, n, fmt), expected)
    x = rng.standard_normal(n).astype(np.float32)  # F32 into Q8_0: requantized, as wren_quantize does
    assert np.array_equal(_convert("F32", x.view(np.uint8), n, Format.Q8_0), native.quantize(Format.Q8_0, x)[0])


def test_ggml_convert_refuses_bad_arguments():
    raw = np.zeros(144, dtype=np.uint8)
    out = np.zeros(256, dtype=np.uint8)
    call = lambda t, f, n=256: lib.wren_ggml_convert(t, ffi.from_buffer(raw), raw.nbytes, n, f, ffi.from_buffer(out),
                                                     out.nbytes)
    assert call(-1, Format.Q4_0) == lib.WREN_E_FORMAT  # never the -1 of a row without a file type
    assert call(lib.WREN_GGML_Q4_K, -1) == lib.WREN_E_FORMAT
    assert call(lib.WREN_GGML_Q4_K, Format.Q4_K, 100) == lib.WREN_E_SHAPE
    assert call(lib.WREN_GGML_Q4_K, Format.Q4_K, 512) == lib.WREN_E_BUFFER


TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]


@pytest.mark.parametrize("native_super", [True, False])
def test_loader_choices(monkeypatch, native_super):
    monkeypatch.setattr(model, "super_blocks_native", lambda act_blocks="llama.cpp": native_super)
    mixed = {t: model.runtime_format(t, "mixed").label for t in TYPES}
    int4 = {t: model.runtime_format(t, "int4").label for t in TYPES}
    assert mixed == {"F32": "q8_0", "F16": "q8_0", "BF16": "q8_0", "Q4_0": "q4_0", "Q4_1": "q4_1", "Q5_0": "q8_0",
                     "Q5_1": "q8_0", "Q8_0": "q8_0", "Q4_K": "q4_k" if native_super else "q4_1", "Q5_K": "q8_0",
                     "Q6_K": "q6_k" if native_super else "q8_16"}
    assert int4 == {"F32": "q4_0", "F16": "q4_0", "BF16": "q4_0", "Q4_0": "q4_0", "Q4_1": "q4_1", "Q5_0": "q4_0",
                    "Q5_1": "q4_0", "Q8_0": "q4_0", "Q4_K": "q4_1", "Q5_K": "q4_0", "Q6_K": "q4_0"}
