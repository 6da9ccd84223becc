"""A fuzz campaign over the model loader: mutated GGUF files through open + a prompt + 2 tokens.

    python tools/fuzz.py --cases 10000 --seed 20261205        a campaign; prints the seed and the counts
    python tools/fuzz.py --cases 10000 --seed date --max-seconds 480    the seed from today's date, time-bounded
    python tools/fuzz.py --replay 20261205:4711               one case again, in this process, with its traceback

Seeds: small valid GGUFs written with the `gguf` package, one per architecture Wren supports (llama and qwen2 with
byte-level BPE, gemma3 and phi3 with SentencePiece; phi3 with fused qkv and gate|up) and per tensor type (Q4_0,
Q8_0, Q4_1, Q4_K, Q6_K, F16, F32), each with its tokenizer and chat template; a case takes milliseconds. A case is
one seed with structure-aware mutations (metadata types, counts, lengths, keys, the vocabulary, merges, special
token ids, tensor shapes, offsets and types) or byte-level ones, re-serialized; it runs in a child forked from this
process (wren already imported), under a time limit (a hang: killed by SIGALRM) and an RLIMIT_AS memory limit.

Outcomes: refused (the loader's typed errors: GGUFError, TokenizerError, MemoryCheckError), ran, other (any other
exception), hang, signal, memory (MemoryError or a blow-up). Exits 1 if any case is neither refused nor ran,
printing each failing case as SEED:INDEX for --replay.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
import gguf  # noqa: E402

from wren.engine.library.catalog import MemoryCheckError  # noqa: E402
from wren.engine.runtime import loader  # noqa: E402
from wren.engine.runtime.chat_template import ChatTemplate  # noqa: E402
from wren.engine.runtime.gguffile import GGUFError  # noqa: E402
from wren.engine.runtime.sampling import Sampler, SamplingParams  # noqa: E402
from wren.engine.runtime.tokenizer import TokenizerError  # noqa: E402
from wren.engine.settings import Settings  # noqa: E402

REFUSED = (GGUFError, TokenizerError, MemoryCheckError)
OUTCOMES = ("refused", "ran", "other", "hang", "signal", "memory")
CASE_SECONDS = 10  # a case takes milliseconds; one still running after this is a hang
MAX_MESSAGE = 2000  # characters of an error or log message; a hostile string must be cut short
MEMORY_BUDGET = 1 << 30  # what the memory check is told is available
AS_HEADROOM = 2 << 30  # address space a child may add to what the parent has mapped
EXIT_CODES = {"ran": 0, "refused": 10, "other": 11, "memory": 12}
ARCHS = ("llama", "qwen2", "gemma3", "phi3")
TYPES = ("Q4_0", "Q8_0", "Q4_1", "Q4_K", "Q6_K", "F16", "F32")

# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q",
        F64: "<d"}
_INTS = (U8, I8, U16, I16, U32, I32, U64, I64)


# ---- seeds ------------------------------------------------------------------------------------------------------


@dataclass
class Seed:
    """A GGUF as lists: metadata (key, type, value, element type for arrays) and tensors (name, shape in GGUF order,
    type id, offset relative to the data section), with the data section's bytes."""
    name: str
    kv: list = field(default_factory=list)
    tensors: list = field(default_factory=list)
    data: bytes = b""


def _bpe_vocab():
    byte_chars = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 173)] + [chr(c) for c in
                                                                                          range(174, 256)]
    n = 0
    for b in range(256):  # GPT-2's byte-level alphabet
        if chr(b) not in byte_chars:
            byte_chars.append(chr(256 + n))
            n += 1
    merges = ["Ġ t", "h e", "Ġ a", "i n", "Ġt he", "e r", "Ġ w", "o u", "Ġ h", "l l"]
    tokens = byte_chars + ["".join(m.split()) for m in merges]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(tokens) + [3] * len(specials)
    return tokens + specials, types, merges, {"bos": len(tokens), "eos": len(tokens) + 2}


def _spm_vocab(specials):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    pieces = ["▁"] + [chr(c) for c in range(97, 123)] + ["▁" + chr(c) for c in range(97, 123)] + ["▁the", "he"]
    scores = [0.0] * len(tokens) + [-float(i + 1) for i in range(len(pieces))]
    tokens += pieces
    types += [1] * len(pieces)
    tokens += specials
    types += [3] * len(specials)
    scores += [0.0] * len(specials)
    return tokens, types, scores


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GEMMA = ("{{ bos_token }}{% for m in messages %}<start_of_turn>"
         "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
         "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
PHI3 = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def _quantized(rng: np.random.Generator, n: int, k: int, qtype: str) -> tuple[np.ndarray, int]:
    """An n x k matrix in `qtype` with random weights: (bytes or floats to add, ggml type)."""
    t = gguf.GGMLQuantizationType[qtype]
    data = (rng.standard_normal((n, k)) / math.sqrt(k)).astype(np.float32)
    if qtype == "F32":
        return data, t
    if qtype == "F16":
        return data.astype(np.float16), t
    if qtype in ("Q4_K", "Q6_K"):  # random blocks with a small fp16 scale (gguf-py may not quantize K-quants)
        block_bytes = {"Q4_K": 144, "Q6_K": 210}[qtype]
        raw = rng.integers(0, 256, (n, k // 256, block_bytes), dtype=np.uint8)
        scale = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
        if qtype == "Q4_K":
            raw[..., 0:2] = scale
            raw[..., 2:4] = scale
        else:
            raw[..., 208:210] = scale
        return raw.reshape(n, -1), t
    return gguf.quants.quantize(data, t), t


def write_seed(path: Path, arch: str, qtype: str, seed: int = 0) -> Path:
    """A tiny valid model of `arch` whose matrices are all `qtype` (norms and biases F32)."""
    rng = np.random.default_rng(seed)
    dim = 256 if qtype in ("Q4_K", "Q6_K") else 64
    head_dim, n_layers = 32, 2
    n_heads = dim // head_dim
    n_kv = n_heads // 2
    ffn = dim if dim >= 256 else 2 * dim
    qd, kvd = n_heads * head_dim, n_kv * head_dim
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"fuzz {arch} {qtype}")
    w.add_block_count(n_layers)
    w.add_context_length(128)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    if arch == "gemma3":
        w.add_sliding_window(4)
    if arch in ("llama", "qwen2"):
        tokens, types, merges, ids = _bpe_vocab()
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm" if arch == "llama" else "qwen2")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(ids["bos"])
        w.add_eos_token_id(ids["eos"])
        w.add_chat_template(CHATML)
    else:
        specials = (["<start_of_turn>", "<end_of_turn>"] if arch == "gemma3"
                    else ["<|user|>", "<|assistant|>", "<|end|>", "<|system|>"])
        tokens, types, scores = _spm_vocab(specials)
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_scores(scores)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        if arch == "gemma3":
            w.add_add_space_prefix(False)
            w.add_eot_token_id(len(tokens) - 1)
        w.add_chat_template(GEMMA if arch == "gemma3" else PHI3)
    vocab = len(tokens)

    def matrix(name, n, k):
        data, t = _quantized(rng, n, k, qtype)
        if t in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            w.add_tensor(name, data)
        else:
            w.add_tensor(name, data, raw_dtype=t)

    def vector(name, n, around=1.0):
        w.add_tensor(name, (around + 0.1 * rng.standard_normal(n)).astype(np.float32))

    matrix("token_embd.weight", vocab, dim)
    for i in range(n_layers):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", dim)
        vector(p + "ffn_norm.weight", dim)
        if arch == "phi3":
            matrix(p + "attn_qkv.weight", qd + 2 * kvd, dim)
            matrix(p + "ffn_up.weight", 2 * ffn, dim)
        else:
            matrix(p + "attn_q.weight", qd, dim)
            matrix(p + "attn_k.weight", kvd, dim)
            matrix(p + "attn_v.weight", kvd, dim)
            matrix(p + "ffn_gate.weight", ffn, dim)
            matrix(p + "ffn_up.weight", ffn, dim)
        matrix(p + "attn_output.weight", dim, qd)
        matrix(p + "ffn_down.weight", dim, ffn)
        if arch == "qwen2":
            for b, n in (("attn_q.bias", qd), ("attn_k.bias", kvd), ("attn_v.bias", kvd)):
                vector(p + b, n, 0.0)
        if arch == "gemma3":
            vector(p + "attn_q_norm.weight", head_dim)
            vector(p + "attn_k_norm.weight", head_dim)
            vector(p + "post_attention_norm.weight", dim)
            vector(p + "post_ffw_norm.weight", dim)
    vector("output_norm.weight", dim)
    if arch in ("qwen2", "phi3"):
        matrix("output.weight", vocab, dim)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def load_seed(path: Path) -> Seed:
    """A seed file as lists, through gguf's reader."""
    r = gguf.GGUFReader(str(path))
    s = Seed(path.stem)
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        vtype = int(f.types[0])
        if vtype == ARR:
            etype = int(f.types[1]) if len(f.types) > 1 else U32
            if etype == STR:
                value = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            else:
                value = [f.parts[i][0].item() for i in f.data]
            s.kv.append([f.name, ARR, value, etype])
        elif vtype == STR:
            s.kv.append([f.name, STR, bytes(f.parts[f.data[0]]).decode("utf-8"), None])
        else:
            s.kv.append([f.name, vtype, f.parts[f.data[0]][0].item(), None])
    base = min(t.data_offset for t in r.tensors)
    end = max(t.data_offset + t.n_bytes for t in r.tensors)
    for t in r.tensors:
        s.tensors.append([t.name, [int(d) for d in t.shape], int(t.tensor_type), int(t.data_offset - base)])
    s.data = bytes(r.data[base:end])
    return s


# ---- serializing ------------------------------------------------------------------------------------------------


def _pack(vtype: int, value) -> bytes:
    if vtype == STR:
        raw = (value if isinstance(value, str) else str(value)).encode("utf-8", "surrogatepass")
        return struct.pack("<Q", len(raw)) + raw
    fmt = _FMT[vtype]
    if isinstance(value, str):  # a string retyped as a number
        value = len(value)
    if vtype in (F32, F64):
        try:
            return struct.pack(fmt, float(value))
        except OverflowError:  # 1e300 as float32
            return struct.pack(fmt, math.inf)
    if vtype == BOOL:
        return struct.pack(fmt, bool(value))
    bits = struct.calcsize(fmt) * 8
    v = (int(value) if math.isfinite(value) else 0) & ((1 << bits) - 1)  # wraps, as a C writer would
    if fmt[1].islower() and v >= 1 << (bits - 1):
        v -= 1 << bits
    return struct.pack(fmt, v)


def serialize(s: Seed) -> bytes:
    out = [b"GGUF", struct.pack("<IQQ", 3, len(s.tensors), len(s.kv))]
    for key, vtype, value, etype in s.kv:
        out.append(_pack(STR, key) + struct.pack("<I", vtype))
        if vtype == ARR:
            out.append(struct.pack("<IQ", etype, len(value)))
            out.extend(_pack(etype, v) for v in value)
        else:
            out.append(_pack(vtype, value))
    for name, shape, ttype, offset in s.tensors:
        out.append(_pack(STR, name) + struct.pack("<I", len(shape)))
        out.extend(struct.pack("<Q", d & (2**64 - 1)) for d in shape)
        out.append(struct.pack("<IQ", ttype & 0xFFFFFFFF, offset & (2**64 - 1)))
    head = b"".join(out)
    return head + b"\0" * (-len(head) % 32) + s.data


# ---- mutations --------------------------------------------------------------------------------------------------

HUGE = [0, 1, 2, 3, 7, 255, 65535, 65536, 2**24, 2**24 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**64 - 1,
        -1, -2**31, -2**63]
FLOATS = [math.inf, -math.inf, math.nan, 0.0, -0.0, 1e30, -1e30, 1e-45, 3.4e38, 0.5]
COUNT_KEYS = ("block_count", "embedding_length", "feed_forward_length", "attention.head_count",
              "attention.head_count_kv", "attention.key_length", "attention.value_length", "context_length",
              "rope.dimension_count", "attention.sliding_window")
TOKEN_KEYS = ("bos_token_id", "eos_token_id", "eot_token_id", "unknown_token_id", "padding_token_id", "eom_token_id",
              "fim_pre_token_id")


def _find(s: Seed, key: str):
    for kv in s.kv:
        if kv[0] == key:
            return kv
    return None


def _set(s: Seed, key: str, vtype: int, value, etype=None) -> None:
    kv = _find(s, key)
    if kv is None:
        s.kv.append([key, vtype, value, etype])
    else:
        kv[1:] = [vtype, value, etype]


def _arch(s: Seed) -> str:
    kv = _find(s, "general.architecture")
    return kv[2] if kv and isinstance(kv[2], str) else "llama"


def _any_value(rng: random.Random, like=None):
    """(type, value, element type) of some value, often of a type the key does not expect."""
    choice = rng.randrange(9)
    if choice == 0:
        return STR, rng.choice(["12", "", "llama", "nan", "-1", "x" * rng.choice([1, 1000, 1 << 20])]), None
    if choice == 1:
        return rng.choice(_INTS), rng.choice(HUGE), None
    if choice == 2:
        return rng.choice((F32, F64)), rng.choice(FLOATS), None
    if choice == 3:
        return BOOL, rng.random() < 0.5, None
    if choice == 4:  # an array for a scalar
        if like is not None and not isinstance(like, list):
            et = STR if isinstance(like, str) else (F32 if isinstance(like, float) else U32)
            return ARR, [like] * rng.choice([0, 1, 2, 1000]), et
        return ARR, [rng.choice(HUGE) & 0xFFFFFFFF for _ in range(rng.choice([0, 1, 5]))], U32
    if choice == 5:
        return ARR, [rng.choice(FLOATS) for _ in range(rng.choice([0, 1, 3]))], F32
    if choice == 6:
        return ARR, ["a", "b c", ""][: rng.randrange(4)], STR
    if choice == 7 and isinstance(like, (int, float)) and not isinstance(like, bool):
        return rng.choice((U32, I32, U64, I64, F32)), like * rng.choice([-1, 2, 1000, 65536]), None
    return U32, rng.choice(HUGE) & 0xFFFFFFFF, None


def m_retype(rng, s):
    kv = rng.choice(s.kv)
    kv[1], kv[2], kv[3] = _any_value(rng, kv[2])


def m_count(rng, s):
    key = f"{_arch(s)}.{rng.choice(COUNT_KEYS)}"
    kv = _find(s, key)
    v = rng.choice(HUGE + [x for x in FLOATS] + ([kv[2] + 1, kv[2] - 1, kv[2] * 2, kv[2] // 2] if kv and
                                                  isinstance(kv[2], int) else []))
    if isinstance(v, float):
        _set(s, key, rng.choice((F32, F64)), v)
    else:
        _set(s, key, rng.choice((U32, I32, U64, I64)) if -2**31 <= v < 2**32 else rng.choice((U64, I64)), v)


def m_long_string(rng, s):
    strings = [kv for kv in s.kv if kv[1] == STR] or s.kv
    kv = rng.choice(strings)
    kv[1], kv[2], kv[3] = STR, rng.choice(["A", "\u00e9", "{{", "\n", "\ud7ff"]) * (1 << 20), None
    if rng.random() < 0.2:
        kv[0] = kv[0] + "Z" * (1 << 20)


def m_drop_key(rng, s):
    del s.kv[rng.randrange(len(s.kv))]


def _array(s: Seed, key: str):
    kv = _find(s, key)
    return kv if kv is not None and kv[1] == ARR and len(kv[2]) else None


def m_vocab(rng, s):
    tokens = _array(s, "tokenizer.ggml.tokens")
    if tokens is None:
        return m_drop_key(rng, s)
    n = len(tokens[2])
    what = rng.randrange(6)
    if what == 0:  # shorter than the model
        k = rng.choice([0, 1, 3, n // 2, n - 1])
        tokens[2] = tokens[2][:k]
        if rng.random() < 0.5:
            for key in ("tokenizer.ggml.token_type", "tokenizer.ggml.scores"):
                kv = _array(s, key)
                if kv:
                    kv[2] = kv[2][:k]
    elif what == 1:
        kv = _array(s, rng.choice(["tokenizer.ggml.token_type", "tokenizer.ggml.scores"])) or tokens
        kv[3] = rng.choice([U8, I8, I32, U64, F32, F64, STR, BOOL])
        kv[2] = [(str(v) if kv[3] == STR else (rng.choice(HUGE) if kv[3] in _INTS else rng.choice(FLOATS)))
                 for v in kv[2]]
    elif what == 2:  # duplicates, empty tokens, odd texts
        i = rng.randrange(n)
        tokens[2] = list(tokens[2])
        tokens[2][i] = rng.choice([tokens[2][(i + 1) % n], "", "<0xZZ>", "<0x", "\ufffd" * 100, "<|im_end|>"])
    elif what == 3:  # tokens not strings
        tokens[3], tokens[2] = rng.choice([U32, F32]), list(range(n))
    elif what == 4:
        _set(s, "tokenizer.ggml.model", STR, rng.choice(["gpt2", "llama", "bert", "", "rwkv"]))
    else:
        _set(s, "tokenizer.ggml.pre", *_any_value(rng))


def m_merges(rng, s):
    what = rng.randrange(4)
    if what == 0:
        _set(s, "tokenizer.ggml.merges", ARR, [rng.choice(HUGE) & 0xFFFFFFFF for _ in range(10)], U32)
    elif what == 1:
        _set(s, "tokenizer.ggml.merges", ARR, rng.choice([[], ["nospace"], [" x"], ["a b c"], ["\ud7ff \ud7ff"]]),
             STR)
    elif what == 2:
        _set(s, "tokenizer.ggml.merges", STR, "h e")
    else:
        kv = _find(s, "tokenizer.ggml.merges")
        if kv:
            s.kv.remove(kv)


def m_token_id(rng, s):
    key = f"tokenizer.ggml.{rng.choice(TOKEN_KEYS)}"
    tokens = _array(s, "tokenizer.ggml.tokens")
    n = len(tokens[2]) if tokens else 100
    what = rng.randrange(4)
    if what == 0:
        _set(s, key, STR, rng.choice(["2", "<eos>", ""]))
    elif what == 1:
        _set(s, key, rng.choice((U32, I32, I64, U64)), rng.choice([-1, n, n + 5, 2**31, 2**63 - 1, 2**64 - 1]))
    elif what == 2:
        _set(s, key, rng.choice((F32, F64)), rng.choice(FLOATS))
    else:
        _set(s, key, *_any_value(rng))
    if rng.random() < 0.3:
        _set(s, rng.choice(["tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
                            "tokenizer.ggml.add_space_prefix"]), *rng.choice([(BOOL, True, None), (STR, "yes", None),
                                                                              (U32, 7, None)]))


def m_arch(rng, s):
    _set(s, "general.architecture", *rng.choice([(STR, rng.choice(ARCHS + ("bert", "", "LLAMA")), None),
                                                 (U32, 1, None), (ARR, ["llama"], STR), (F32, math.nan, None),
                                                 (ARR, ["llama", "qwen2"], STR)]))


def m_alignment(rng, s):
    _set(s, "general.alignment", rng.choice((U32, U64, I32, F32, STR)), rng.choice([0, 1, 16, 33, 64, 2**31, -32]))


def m_tensor_shape(rng, s):
    t = rng.choice(s.tensors)
    shape = list(t[1])
    what = rng.randrange(5)
    if what == 0:
        i = rng.randrange(len(shape))
        shape[i] = rng.choice([0, 1, shape[i] * 2, shape[i] // 2, shape[i] + 32, 2**32, 2**40, 2**63, 2**64 - 1])
    elif what == 1:
        shape.reverse()
    elif what == 2:
        shape.append(rng.choice([1, 2, 0]))
    elif what == 3 and len(shape) > 1:
        shape.pop()
    else:
        shape = [rng.choice(HUGE) & (2**64 - 1) for _ in range(rng.choice([0, 1, 2, 5]))]
    t[1] = shape


def m_tensor_offset(rng, s):
    t = rng.choice(s.tensors)
    t[3] = rng.choice([0, t[3] + 32, t[3] - 32, t[3] + 1, len(s.data), 2**63, 2**64 - 32, rng.choice(s.tensors)[3]])


def m_tensor_type(rng, s):
    t = rng.choice(s.tensors)
    t[2] = rng.choice([0, 1, 2, 3, 6, 7, 8, 9, 10, 12, 14, 15, 16, 30, 31, 39, 40, 1000, 2**32 - 1])


def m_tensor_list(rng, s):
    what = rng.randrange(4)
    i = rng.randrange(len(s.tensors))
    if what == 0:
        del s.tensors[i]
    elif what == 1:
        s.tensors[i][0] = rng.choice([t[0] for t in s.tensors] + ["", "blk.99.attn_q.weight", "x" * 70000])
    elif what == 2:
        s.tensors.append(list(s.tensors[i]))
        s.tensors[-1][0] = rng.choice(["blk.2.attn_q.weight", "output.weight", "blk.0.attn_qkv.weight",
                                       "blk.0.ffn_gate.weight", "blk.1.attn_q.bias"])
    else:
        a, b = rng.sample(range(len(s.tensors)), 2)
        s.tensors[a][0], s.tensors[b][0] = s.tensors[b][0], s.tensors[a][0]


def m_template(rng, s):
    _set(s, "tokenizer.chat_template", *rng.choice([(STR, "", None), (STR, "{{", None), (U32, 5, None),
                                                    (STR, "{{ messages[0]['content'] }}", None), (ARR, ["x"], STR),
                                                    (ARR, [], U32)]))


STRUCTURE = (m_retype, m_count, m_count, m_long_string, m_drop_key, m_vocab, m_vocab, m_merges, m_token_id,
             m_token_id, m_arch, m_alignment, m_tensor_shape, m_tensor_shape, m_tensor_offset, m_tensor_type,
             m_tensor_list, m_template)


def mutate_bytes(rng: random.Random, b: bytearray, head: int) -> bytearray:
    """Byte-level mutations, mostly in the header, metadata and tensor table (the first `head` bytes)."""
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(min(head, len(b))) if rng.random() < 0.9 or len(b) <= head else rng.randrange(len(b))
        what = rng.randrange(6)
        if what == 0:
            b[where] ^= 1 << rng.randrange(8)
        elif what == 1:
            b[where:where + 8] = struct.pack("<Q", rng.choice(HUGE) & (2**64 - 1))
        elif what == 2:
            b[where:where + 4] = struct.pack("<I", rng.choice(HUGE) & 0xFFFFFFFF)
        elif what == 3:
            del b[rng.randrange(len(b)):]
        elif what == 4:
            b[where:where] = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 8, 13])))
        else:
            del b[where:where + rng.choice([1, 4, 8, 32])]
        if not b:
            break
    return b


class Campaign:
    def __init__(self, seed_dir: Path):
        self.seeds = []
        for arch in ARCHS:
            for qtype in TYPES:
                self.seeds.append(load_seed(write_seed(seed_dir / f"{arch}-{qtype}.gguf", arch, qtype)))

    def case(self, seed: int, index: int) -> tuple[bytes, str]:
        """The bytes of case `index` of campaign `seed`, and what was done to it."""
        rng = random.Random(f"{seed}:{index}")
        base = self.seeds[index % len(self.seeds)]
        s = Seed(base.name, [list(kv) for kv in base.kv], [[t[0], list(t[1]), t[2], t[3]] for t in base.tensors],
                 base.data)
        done = []
        if rng.random() < 0.75:
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                op = rng.choice(STRUCTURE)
                op(rng, s)
                done.append(op.__name__[2:])
            return serialize(s), f"{s.name}: {', '.join(done)}"
        raw = serialize(s)
        head = len(raw) - len(s.data)
        return bytes(mutate_bytes(rng, bytearray(raw), head)), f"{s.name}: bytes"


# ---- running a case ---------------------------------------------------------------------------------------------


def run_case(path: Path) -> str:
    """Open the model, render a chat prompt and generate 2 tokens: 'ran', or raises."""
    settings = Settings(threads=1, cores="all", strict_pinning=False, context_length=128, batch_size=16)
    gen = loader.open_generator(path, settings, available_bytes=MEMORY_BUDGET)
    try:
        template = ChatTemplate.from_gguf(gen.model.gguf, gen.tokenizer)
        ids = template.encode([{"role": "user", "content": "Hi there, the weather?"}])
        sampler = Sampler(SamplingParams(temperature=0.0, repeat_penalty=1.0))
        for _ in gen.stream(ids, 2, sampler):
            pass
    finally:
        gen.close()
    return "ran"


class _LongMessages(logging.Handler):
    """Remembers the longest message logged: a warning must never echo a metadata string whole."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.longest = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.longest = max(self.longest, len(record.getMessage()))


def checked_run(path: Path) -> tuple[str, str]:
    """(outcome, what was raised) of one case; an error or warning of over MAX_MESSAGE characters is 'other'."""
    handler = _LongMessages()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        outcome, text = run_case(path), ""
    except BaseException as e:  # noqa: BLE001 - everything is counted
        outcome, text = classify(e), f"{type(e).__name__}: {e}"
    finally:
        root.removeHandler(handler)
    if outcome == "refused" and len(text) > MAX_MESSAGE:
        outcome, text = "other", f"an error message of {len(text)} characters: {text[:200]}"
    if handler.longest > MAX_MESSAGE:
        outcome, text = "other", f"a log message of {handler.longest} characters; {text[:200]}"
    return outcome, text


def classify(e: BaseException) -> str:
    if isinstance(e, REFUSED):
        return "refused"
    if isinstance(e, MemoryError):
        return "memory"
    return "other"


def _child(path: Path, data: bytes, as_limit: int, report_fd: int) -> None:
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a hang ends by SIGALRM, whatever Python or C is doing
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    outcome, text = "other", ""
    try:
        path.write_bytes(data)
        outcome, text = checked_run(path)
    except BaseException as e:  # noqa: BLE001 - everything is counted
        outcome, text = classify(e), f"{type(e).__name__}: {e}"
    try:
        os.write(report_fd, text[:300].encode("utf-8", "replace"))
    finally:
        os._exit(EXIT_CODES[outcome])


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def campaign(seed: int, cases: int, jobs: int, max_seconds: float | None, verbose: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="wren-fuzz-") as tmp:
        tmp = Path(tmp)
        c = Campaign(tmp)
        as_limit = _mapped_bytes() + AS_HEADROOM
        counts = dict.fromkeys(OUTCOMES, 0)
        failures = []
        running = {}  # pid -> (index, path, read end, what)
        start = time.monotonic()
        index = 0

        def reap(block: bool) -> None:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            if pid == 0:
                return
            i, path, rfd, what = running.pop(pid)
            text = os.read(rfd, 4096).decode("utf-8", "replace")
            os.close(rfd)
            path.unlink(missing_ok=True)
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                outcome = "hang" if sig == signal.SIGALRM else ("memory" if sig == signal.SIGKILL else "signal")
                text = signal.Signals(sig).name
            else:
                outcome = {v: k for k, v in EXIT_CODES.items()}.get(os.WEXITSTATUS(status), "other")
            counts[outcome] += 1
            if outcome not in ("refused", "ran"):
                failures.append(f"{seed}:{i} {outcome} [{what}] {text}")
            elif verbose:
                print(f"{seed}:{i} {outcome} [{what}] {text[:160]}")

        while index < cases and (max_seconds is None or time.monotonic() - start < max_seconds):
            while len(running) >= jobs:
                reap(True)
            data, what = c.case(seed, index)
            path = tmp / f"case-{index}.gguf"
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(rfd)
                _child(path, data, as_limit, wfd)
            os.close(wfd)
            running[pid] = (index, path, rfd, what)
            index += 1
        while running:
            reap(True)
        elapsed = time.monotonic() - start
    print(f"fuzz seed {seed}: {index} cases in {elapsed:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for f in failures:
        print("FAIL", f)
    if failures:
        print(f"replay one with: python tools/fuzz.py --replay SEED:INDEX ({len(failures)} failing)")
    if index < cases:
        print(f"stopped at the time limit after {index} of {cases} cases")
    return 1 if failures else 0


def replay(spec: str) -> int:
    seed, index = (int(x) for x in spec.split(":"))
    with tempfile.TemporaryDirectory(prefix="wren-fuzz-") as tmp:
        c = Campaign(Path(tmp))
        data, what = c.case(seed, index)
        path = Path(tmp) / "case.gguf"
        path.write_bytes(data)
        print(f"case {seed}:{index} [{what}], {len(data)} bytes")
        try:
            run_case(path)
        except BaseException:  # noqa: BLE001
            traceback.print_exc(limit=-8)
        outcome, text = checked_run(path)
        print(outcome, text[:500])
    return 0 if outcome in ("refused", "ran") else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", default="date", help="an integer, or 'date' for today's (UTC) as YYYYMMDD")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--max-seconds", type=float, default=None, help="stop starting cases after this long")
    ap.add_argument("--replay", metavar="SEED:INDEX")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().handlers[0].setLevel(logging.ERROR)  # warnings about hostile files would fill the log
    warnings.simplefilter("ignore")
    if args.replay:
        return replay(args.replay)
    seed = int(datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")) if args.seed == "date" \
        else int(args.seed)
    return campaign(seed, args.cases, max(1, args.jobs), args.max_seconds, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
