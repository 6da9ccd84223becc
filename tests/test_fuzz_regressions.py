"""What the fuzz campaign (tools/fuzz.py) found, one case per class: each hostile file, written from a valid seed
(made with the gguf package) in tmp_path, goes through open + a chat prompt + 2 tokens and is refused with the
loader's typed error naming the key or tensor, never another exception, a hang or a long echo."""
import importlib.util
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("gguf")

from wren.engine.runtime.gguffile import GGUFError  # noqa: E402
from wren.engine.runtime.tokenizer import TokenizerError  # noqa: E402


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("wren_fuzz", Path(__file__).parents[1] / "tools" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["wren_fuzz"] = module
    spec.loader.exec_module(module)
    return module


F = _load_fuzz()


def hostile(tmp_path, arch, qtype, change):
    """A seed of arch/qtype with change(seed) applied, written to tmp_path."""
    s = F.load_seed(F.write_seed(tmp_path / f"seed-{arch}-{qtype}.gguf", arch, qtype))
    change(s)
    path = tmp_path / "hostile.gguf"
    path.write_bytes(F.serialize(s))
    return path


def set_key(key, vtype, value, etype=None):
    return lambda s: F._set(s, key, vtype, value, etype)


def drop_layers_tensors(s):
    s.tensors = [t for t in s.tensors if not t[0].startswith("blk.1.")]


def shorter_vocab(s):
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores"):
        kv = F._find(s, key)
        if kv:
            kv[2] = kv[2][:100]


def output_rows_halved(s):
    t = next(t for t in s.tensors if t[0] == "output.weight")
    t[1] = [t[1][0], t[1][1] // 2]


def key_lengths_as_arrays(s):  # seed 20261205 cases 113, 649, 5353: compared as arrays (ambiguous truth value)
    F._set(s, "llama.attention.key_length", F.ARR, [16, 32], F.U32)
    F._set(s, "llama.attention.value_length", F.ARR, [32, 16], F.U32)


CASES = [
    # (arch, tensor type, change, error, what the message names)
    ("llama", "Q4_0", set_key("general.architecture", F.ARR, ["llama"], F.STR), GGUFError, "general.architecture"),
    ("qwen2", "Q8_0", set_key("qwen2.embedding_length", F.F32, math.inf), GGUFError, "embedding_length"),
    ("llama", "Q4_1", set_key("llama.embedding_length", F.I64, -64), GGUFError, "embedding_length"),
    ("gemma3", "Q4_0", set_key("gemma3.block_count", F.U32, 65536), GGUFError, "block_count"),
    ("llama", "Q4_K", set_key("llama.block_count", F.U32, 2**24), GGUFError, "block_count"),
    ("llama", "Q8_0", drop_layers_tensors, GGUFError, "block_count = 2, but the file has tensors for 1"),
    ("phi3", "F16", set_key("phi3.context_length", F.U32, 1), GGUFError, "context_length = 1"),
    ("qwen2", "Q6_K", set_key("qwen2.attention.head_count_kv", F.U32, 3), GGUFError, "head_count_kv"),
    ("llama", "F32", set_key("llama.feed_forward_length", F.STR, "128"), GGUFError, "feed_forward_length"),
    ("llama", "Q4_0", set_key("llama.attention.head_count", F.ARR, [], F.I32), GGUFError, "head_count"),
    ("qwen2", "Q4_0", set_key("tokenizer.ggml.merges", F.ARR, list(range(10)), F.U32), TokenizerError, "merges"),
    ("gemma3", "Q8_0", set_key("tokenizer.ggml.eot_token_id", F.STR, "<end_of_turn>"), TokenizerError,
     "eot_token_id"),
    ("phi3", "Q4_1", set_key("tokenizer.ggml.bos_token_id", F.F64, math.nan), TokenizerError, "bos_token_id"),
    ("gemma3", "F16", set_key("tokenizer.ggml.add_bos_token", F.ARR, [1, 0], F.U8), TokenizerError,
     "add_bos_token"),
    ("gemma3", "Q4_K", set_key("tokenizer.ggml.token_type", F.ARR, [0.5] * 293, F.F32), TokenizerError,
     "token_type"),
    ("llama", "Q8_0", set_key("tokenizer.ggml.model", F.U32, 2), TokenizerError, "tokenizer.ggml.model"),
    ("llama", "Q4_0", shorter_vocab, GGUFError, "tokenizer.ggml.tokens"),
    ("phi3", "Q4_0", set_key("tokenizer.ggml.tokens", F.ARR, list(range(293)), F.U32), GGUFError,
     "tokenizer.ggml.tokens"),
    ("qwen2", "Q4_1", output_rows_halved, GGUFError, "output.weight"),
    ("llama", "F16", key_lengths_as_arrays, GGUFError, "value_length"),
]


@pytest.mark.parametrize("arch,qtype,change,error,names", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[4][:30]}" for c in CASES])
def test_hostile_file_is_refused_naming_the_key(tmp_path, arch, qtype, change, error, names):
    path = hostile(tmp_path, arch, qtype, change)
    with pytest.raises(error, match=names.replace("(", r"\(")) as e:
        F.run_case(path)
    assert len(str(e.value)) < 300


@pytest.mark.parametrize("key", ["tokenizer.ggml.model", "general.alignment", "tokenizer.ggml.pre"])
def test_million_character_strings_are_never_echoed_whole(tmp_path, caplog, key):
    path = hostile(tmp_path, "llama", "Q4_0", set_key(key, F.STR, "A" * (1 << 20)))
    outcome, text = F.checked_run(path)
    assert outcome in ("refused", "ran") and len(text) < 300, text
    assert all(len(r.getMessage()) < 300 for r in caplog.records)


def test_a_million_character_tensor_name_is_cut_in_the_error(tmp_path):
    def rename(s):
        s.tensors[3][0] = "x" * (1 << 20)
    with pytest.raises(GGUFError) as e:
        F.run_case(hostile(tmp_path, "gemma3", "Q4_0", rename))
    assert len(str(e.value)) < 300


def test_general_name_of_another_type_still_runs(tmp_path):
    path = hostile(tmp_path, "llama", "Q4_0", set_key("general.name", F.ARR, ["a", "b"], F.STR))
    assert F.run_case(path) == "ran"
