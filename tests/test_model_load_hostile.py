"""Loading a model from broken or hostile files: the loader's error every time, never a crash.

Mutations of a small valid model (header and metadata bytes flipped, counts and sizes replaced, the file cut) go
through the whole path - reader, architecture module, conversion, the C model check, a forward step - and may only
end in GGUFError or the native core's typed errors."""
import random
import struct

import numpy as np
import pytest

pytest.importorskip("gguf")

from test_forward import write_synthetic  # noqa: E402
from wren.engine.runtime.gguffile import GGUFError  # noqa: E402
from wren.engine.runtime.model import Model  # noqa: E402
from wren.engine.runtime.native import NativeError  # noqa: E402

ALLOWED = (GGUFError, NativeError, ValueError)


def load_and_step(path):
    m = Model(path)
    logits = m.context(16, 8, 1).forward([1, 2], 0)
    assert logits.shape == (1, m.vocab)


def test_bad_hyper_parameters_are_refused(tmp_path):
    import gguf

    good = write_synthetic(tmp_path / "good.gguf", "llama")
    load_and_step(good)
    g = gguf.GGUFReader(str(good))
    cases = {"llama.attention.head_count": 5, "llama.attention.head_count_kv": 3, "llama.block_count": 3,
             "llama.embedding_length": 96, "llama.feed_forward_length": 100, "llama.rope.dimension_count": 15,
             "llama.attention.key_length": 0}
    raw = good.read_bytes()
    for key, value in cases.items():
        field = g.fields[key]
        part = field.parts[field.data[0]]  # the value's bytes, a view into the mapped file
        offset = part.ctypes.data - g.data.ctypes.data
        b = bytearray(raw)
        b[offset:offset + part.nbytes] = np.array([value], dtype=part.dtype).tobytes()
        path = tmp_path / f"{key}.gguf"
        path.write_bytes(bytes(b))
        with pytest.raises(ALLOWED):
            load_and_step(path)


def test_hundreds_of_mutated_models_never_crash(tmp_path):
    good = write_synthetic(tmp_path / "good.gguf", "llama").read_bytes()
    rng = random.Random(99)
    data_start = good.find(b"output_norm.weight") + 64
    path = tmp_path / "m.gguf"
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(300):
        b = bytearray(good)
        kind = i % 4
        if kind == 0:
            b = b[: rng.randrange(0, len(good))]
        elif kind == 1:
            for _ in range(rng.randint(1, 6)):
                b[rng.randrange(0, data_start)] ^= 1 << rng.randrange(8)
        elif kind == 2:
            pos = rng.randrange(4, data_start - 8)
            b[pos:pos + 8] = struct.pack("<Q", rng.choice([0, 1, 3, 31, 33, 2**31, 2**63 - 1]))
        else:
            pos = rng.randrange(4, data_start - 4)
            b[pos:pos + 4] = struct.pack("<I", rng.choice([0, 1, 2, 7, 13, 99, 2**31]))
        path.write_bytes(bytes(b))
        try:
            load_and_step(path)
            outcomes["loaded"] += 1
        except ALLOWED:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100


@pytest.mark.parametrize("command", [["run", "--raw"], ["bench", "--engine", "wren", "-p", "8", "-n", "2"]])
def test_run_and_bench_check_memory_first(tmp_path, monkeypatch, capsys, command):
    """`wren run` and `wren bench` load through loader.open_generator, whose memory check refuses a model that
    would not fit before anything is converted."""
    from test_fuzz_regressions import F
    from wren.engine import cli
    from wren.engine.library import catalog

    path = F.write_seed(tmp_path / "tiny.gguf", "llama", "Q4_0")
    text = tmp_path / "in.txt"
    text.write_text("Once upon a time")
    monkeypatch.setattr(catalog, "available_memory", lambda: 1 << 20)
    argv = [command[0], "-m", str(path), *command[1:]] + ([str(text)] if command[0] == "run" else [])
    assert cli.main(argv) != 0
    assert "needs about" in capsys.readouterr().err


@pytest.mark.parametrize("layers,why", [(65536, "out of range"), (2**24, "out of range"),
                                        (4000, "but the file has tensors for 2 layers")])
def test_a_huge_layer_count_is_refused_before_the_memory_check(tmp_path, layers, why):
    """block_count is checked against the layers whose tensors the file has before anything is done per layer:
    describe() (the memory check's estimate) already refuses it."""
    from test_fuzz_regressions import F, hostile, set_key
    from wren.engine.library import catalog

    path = hostile(tmp_path, "llama", "Q4_0", set_key("llama.block_count", F.U32, layers))
    with pytest.raises(GGUFError, match=f"block_count = {layers}.*{why}"):
        catalog.describe(path)
