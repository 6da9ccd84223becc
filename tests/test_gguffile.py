"""The GGUF reader on small valid files written with the gguf package, and on hundreds of broken ones."""
import random
import struct

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from wren.engine.runtime import gguffile  # noqa: E402
from wren.engine.runtime.gguffile import GGUFError  # noqa: E402


def write_small(path, extra_kv=None):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(64)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "<s>", "é"])
    w.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.0, -3.5])
    for k, v in (extra_kv or {}).items():
        w.add_string(k, v)
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 64)).astype(np.float32))
    w.add_tensor("output_norm.weight", np.ones(64, dtype=np.float32))
    w.add_tensor("blk.0.ffn_up.weight", rng.standard_normal((96, 64)).astype(np.float16))
    q8 = gguf.quants.quantize(rng.standard_normal((32, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_down.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def small(tmp_path):
    return write_small(tmp_path / "small.gguf")


def test_reads_metadata_and_tensors(small):
    with gguffile.read(small) as g:
        assert g.version == 3
        assert g.get("general.architecture") == "llama"
        assert g.get("llama.context_length") == 64
        assert g.get("tokenizer.ggml.tokens") == ["a", "b", "<s>", "é"]
        assert list(g.get("tokenizer.ggml.scores")) == [0.0, -1.0, -2.0, -3.5]
        t = g.tensors["blk.0.ffn_down.weight"]
        assert t.type_name == "Q8_0" and t.shape == (64, 32) and t.nbytes == 32 * 2 * 34
        assert g.tensor_array("output_norm.weight").tolist() == [1.0] * 64
        emb = g.tensor_array("token_embd.weight")
        assert emb.shape == (4, 64) and emb.dtype == np.float32
        assert g.tensor_array("blk.0.ffn_up.weight").shape == (96, 64)
        assert g.tensor_bytes("blk.0.ffn_down.weight").nbytes == t.nbytes
        gguffile.check_supported(g)


def test_unsupported_type_is_refused_by_name(tmp_path):
    path = tmp_path / "q2.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    q = np.zeros((2, 84), dtype=np.uint8)
    w.add_tensor("blk.0.attn_q.weight", q, raw_dtype=gguf.GGMLQuantizationType.Q2_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with gguffile.read(path) as g:
        with pytest.raises(GGUFError, match="Q2_K are not supported"):
            gguffile.check_supported(g)


@pytest.mark.parametrize("data,message", [
    (b"", "too small"),
    (b"GGML" + bytes(40), "not a GGUF file"),
    (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "version 1 is not supported"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 60), "metadata entries cannot fit"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1 << 59, 0), "tensors cannot fit"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40) + b"k" * 8, "claims"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99) + bytes(8),
     "unknown value type 99"),
    (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 4, 1 << 61),
     "claims 2305843009213693952 elements"),
])
def test_hand_made_bad_headers(tmp_path, data, message):
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(GGUFError, match=message):
        gguffile.read(path)


def test_truncated_tensor_data_is_named(small, tmp_path):
    raw = small.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(raw[:-100])
    with pytest.raises(GGUFError, match=r"truncated: tensor '.*' ends at byte"):
        gguffile.read(path)


def mutations(raw: bytes, rng: random.Random, count: int):
    """Truncations, flipped bytes, absurd counts and offsets, unknown types."""
    n = len(raw)
    header_end = raw.find(b"blk.0.ffn_down.weight") + 64  # mutations focus on the header, where parsing happens
    for i in range(count):
        b = bytearray(raw)
        kind = i % 6
        if kind == 0:
            b = b[: rng.randrange(0, n)]
        elif kind == 1:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(0, header_end)] ^= 1 << rng.randrange(8)
        elif kind == 2:  # a 64-bit field replaced by a huge or odd number
            pos = rng.randrange(4, header_end - 8)
            b[pos:pos + 8] = struct.pack("<Q", rng.choice([0, 1, 2**32 - 1, 2**63 - 1, 2**64 - 1, n, n * 7]))
        elif kind == 3:  # a 32-bit field (types, dimension counts) replaced
            pos = rng.randrange(4, header_end - 4)
            b[pos:pos + 4] = struct.pack("<I", rng.choice([0, 5, 13, 31, 99, 2**31, 2**32 - 1]))
        elif kind == 4:  # random bytes spliced into the header
            pos = rng.randrange(4, header_end)
            b[pos:pos + 16] = bytes(rng.randrange(256) for _ in range(16))
        else:  # header cut and glued onto garbage
            cut = rng.randrange(4, header_end)
            b = b[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        yield bytes(b)


def test_hundreds_of_mutations_only_raise_the_loaders_error(small, tmp_path):
    raw = small.read_bytes()
    rng = random.Random(1234)
    path = tmp_path / "mutant.gguf"
    outcomes = {"ok": 0, "error": 0}
    for data in mutations(raw, rng, 600):
        path.write_bytes(data)
        try:
            with gguffile.read(path) as g:
                gguffile.check_supported(g)
                for name in g.tensors:  # every tensor the reader accepts is really inside the file
                    assert g.tensors[name].offset + g.tensors[name].nbytes <= len(data)
                    g.tensor_bytes(name)
            outcomes["ok"] += 1
        except GGUFError as e:
            assert str(e).startswith("mutant.gguf: ")
            outcomes["error"] += 1
    assert outcomes["error"] > 300 and outcomes["ok"] > 0


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_file_that_is_not_regular_is_refused_without_blocking(tmp_path, kind):
    import os

    path = {"fifo": tmp_path / "model.gguf", "device": "/dev/null", "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)  # no writer: an ordinary open() would wait for one forever
    with pytest.raises(GGUFError, match="not a regular file"):
        gguffile.read(path)


def test_a_hostile_key_is_cut_short_in_the_error(tmp_path):
    key = "k" * (1 << 20)
    entry = struct.pack("<Q", len(key)) + key.encode() + struct.pack("<IB", 0, 1)
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + entry + entry
    path = tmp_path / "dup.gguf"
    path.write_bytes(data)
    with pytest.raises(GGUFError, match=r"duplicate metadata key 'k+\.\.\. \(1048576 characters\)'") as e:
        gguffile.read(path)
    assert len(str(e.value)) < 300
