"""The Tokenizer: a GGUF vocabulary's encode / decode, reproducing llama.cpp's `llama_tokenize` /
`llama_token_to_piece`. Special tokens are cut out of the text first (special.py); the rest goes to the vocabulary
type's encoder, byte-level BPE (bpe.py) or SentencePiece (spm.py)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from wren.engine.runtime.gguffile import describe_value, short
from wren.engine.runtime.tokenizer import pretokenize, special
from wren.engine.runtime.tokenizer.bpe import Bpe
from wren.engine.runtime.tokenizer.spm import Spm
from wren.engine.runtime.tokenizer.stream import StreamDecoder
from wren.engine.runtime.tokenizer.vocab import (ATTR_BYTE, ATTR_CONTROL, ATTR_HIDDEN, ATTR_NORMAL, ATTR_USER_DEFINED,
                                                 TokenizerError, Vocab)

_SURROGATES = re.compile("[\ud800-\udfff]")
MAX_ENTRIES = 1 << 22  # tokens or merges; the largest vocabularies have a quarter million
# the ids a file may name for each kind of special token: (kind, key in tokenizer.ggml.<key>_token_id), first wins
_KIND_KEYS = (("eot", "eot"), ("eom", "eom"), ("fim_pre", "fim_pre"), ("fim_suf", "fim_suf"), ("fim_mid", "fim_mid"),
              ("fim_pad", "fim_pad"), ("fim_rep", "fim_rep"), ("fim_sep", "fim_sep"), ("fim_pre", "prefix"),
              ("fim_suf", "suffix"), ("fim_mid", "middle"))


def _meta(g: Any) -> Mapping[str, Any]:
    if isinstance(g, Mapping):
        return g
    md = getattr(g, "metadata", None)
    if isinstance(md, Mapping):
        return md
    raise TypeError("Tokenizer.from_gguf needs a GGUFFile (wren.engine.runtime.gguffile.read) or its metadata dict")


def _typed(md: Mapping[str, Any], key: str, kind: type, what: str):
    """An optional value of one type; a hostile file's other types raise TokenizerError naming the key."""
    v = md.get(key)
    if v is not None and not isinstance(v, kind):
        raise TokenizerError(f"{key} is {describe_value(v)}, not {what}")
    return v


def _token_id(md: Mapping[str, Any], key: str) -> int | None:
    v = _typed(md, key, int, "a token id")
    if isinstance(v, bool):
        raise TokenizerError(f"{key} is {describe_value(v)}, not a token id")
    return v


def _strings(md: Mapping[str, Any], key: str) -> list[str] | None:
    v = _typed(md, key, list, "an array of strings")  # the reader gives string arrays as lists, numbers as ndarrays
    if v is not None and not all(isinstance(s, str) for s in v):
        raise TokenizerError(f"{key} is not an array of strings")
    return v


def _numbers(md: Mapping[str, Any], key: str, kinds: str) -> np.ndarray | None:
    v = md.get(key)
    if v is not None and not (isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in kinds):
        raise TokenizerError(f"{key} is {describe_value(v)}, not an array of "
                             f"{'integers' if kinds == 'iu' else 'numbers'}")
    return v


class Tokenizer:
    """Encode / decode text exactly as llama.cpp does for the vocabulary in a GGUF file.

    Tokenizer.from_gguf(g)                      build from a GGUFFile or its metadata dict (no network)
    encode(text, add_special=True, parse_special=False) -> list[int]    as llama_tokenize
    decode(ids, special=True) -> str           special=False hides CONTROL/UNKNOWN tokens
    token_bytes(id, special=True) -> bytes     the piece a token stands for (llama_token_to_piece)
    stream(special=True) -> StreamDecoder      feed(id) -> str / flush() -> str, whole characters only
    bos_id, eos_id, eot_id, vocab_size, add_bos, add_eos, add_space_prefix, vocab_type ("bpe"/"spm"), pre
    special_ids (what partitioning looks for), eog_ids (llama.cpp's end-of-generation set), is_control(id),
    is_eog(id), token_text(id), token_to_id(text)
    """

    def __init__(self, tokens: list[str], token_types: Iterable[int] | None = None,
                 scores: Iterable[float] | None = None, merges: list[str] | None = None, *,
                 model: str = "gpt2", pre: str | None = None, bos_id: int | None = None, eos_id: int | None = None,
                 unk_id: int | None = None, add_bos: bool | None = None, add_eos: bool | None = None,
                 add_space_prefix: bool | None = None, special_ids_by_kind: Mapping[str, int] | None = None,
                 model_name: str = ""):
        if model not in ("gpt2", "llama"):
            raise TokenizerError(f"tokenizer model {short(repr(model))} is not supported "
                                 "(only 'gpt2' BPE and 'llama' SPM)")
        self.model = model
        self._vocab = vocab = Vocab(tokens, token_types, scores)
        n = len(vocab)

        # pre-tokenizer, flags and defaults as llama.cpp's load() sets them
        if model == "gpt2":
            self.vocab_type = "bpe"
            if merges is None:
                raise TokenizerError("a gpt2 (BPE) vocabulary needs tokenizer.ggml.merges")
            pre, pre_tokenizer, pre_flags = pretokenize.named(pre)
            self.ignore_merges = bool(pre_flags.get("ignore_merges"))
            d_bos, d_eos, d_unk = None if pre_flags.get("no_bos") else 11, 11, None
            d_add_bos, d_space = bool(pre_flags.get("add_bos", False)), False
        else:
            self.vocab_type = "spm"
            self.ignore_merges = False
            pre = pre or "default"
            d_bos, d_eos, d_unk = 1, 2, 0
            d_add_bos, d_space = True, True
        self.pre = pre
        self.add_space_prefix = d_space if add_space_prefix is None else bool(add_space_prefix)
        self.add_bos = d_add_bos if add_bos is None else bool(add_bos)
        self.add_eos = False if add_eos is None else bool(add_eos)

        def valid(i):
            return i if i is not None and 0 <= int(i) < n else None

        self.bos_id = valid(bos_id) if bos_id is not None else valid(d_bos)
        self.eos_id = valid(eos_id) if eos_id is not None else valid(d_eos)
        self.unk_id = valid(unk_id) if unk_id is not None else valid(d_unk)
        if self.add_bos and self.bos_id is None:
            raise TokenizerError("add_bos_token is true, but there is no valid bos_token_id")
        if self.add_eos and self.eos_id is None:
            raise TokenizerError("add_eos_token is true, but there is no valid eos_token_id")

        self.eot_id, self.eog_ids = special.detect(vocab, self.eos_id, dict(special_ids_by_kind or {}), model_name)
        self._partition = special.Partition(vocab)
        #: ids llama.cpp cuts out of the text before tokenizing: CONTROL and UNKNOWN (only with parse_special) and
        #: USER_DEFINED (always)
        self.special_ids = self._partition.ids
        self._encoder = (Bpe(vocab.ids, merges, pre_tokenizer, self.ignore_merges) if self.vocab_type == "bpe"
                         else Spm(vocab, self.unk_id, self.add_space_prefix))
        self._pieces: list[bytes | None] = [None] * n

    @classmethod
    def from_gguf(cls, g: Any) -> "Tokenizer":
        """Build from a GGUFFile (wren.engine.runtime.gguffile.read) or its metadata dict."""
        md = _meta(g)
        model = _typed(md, "tokenizer.ggml.model", str, "a string")
        if model is None:
            raise TokenizerError("GGUF has no tokenizer.ggml.model")
        tokens = _strings(md, "tokenizer.ggml.tokens")
        if tokens is None:
            raise TokenizerError("GGUF has no tokenizer.ggml.tokens")
        merges = _strings(md, "tokenizer.ggml.merges")
        for key, n in (("tokens", len(tokens)), ("merges", len(merges or ()))):
            if n > MAX_ENTRIES:
                raise TokenizerError(f"tokenizer.ggml.{key} has {n} entries (at most {MAX_ENTRIES})")
        kinds = {}
        for kind, key in _KIND_KEYS:
            v = _token_id(md, f"tokenizer.ggml.{key}_token_id")
            if v is not None and kind not in kinds:
                kinds[kind] = v
        name = md.get("general.name")
        return cls(tokens, _numbers(md, "tokenizer.ggml.token_type", "iu"),
                   _numbers(md, "tokenizer.ggml.scores", "iuf"), merges, model=model,
                   pre=_typed(md, "tokenizer.ggml.pre", str, "a string"),
                   bos_id=_token_id(md, "tokenizer.ggml.bos_token_id"),
                   eos_id=_token_id(md, "tokenizer.ggml.eos_token_id"),
                   unk_id=_token_id(md, "tokenizer.ggml.unknown_token_id"),
                   add_bos=_typed(md, "tokenizer.ggml.add_bos_token", bool, "true or false"),
                   add_eos=_typed(md, "tokenizer.ggml.add_eos_token", bool, "true or false"),
                   add_space_prefix=_typed(md, "tokenizer.ggml.add_space_prefix", bool, "true or false"),
                   special_ids_by_kind=kinds, model_name=name if isinstance(name, str) else "")

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return len(self._vocab)

    def __len__(self) -> int:
        return len(self._vocab)

    def is_control(self, token_id: int) -> bool:
        """CONTROL tokens (after llama.cpp's overrides): matched only with parse_special, hidden with special=False."""
        return bool(self._vocab.attrs[token_id] & ATTR_CONTROL)

    def is_eog(self, token_id: int) -> bool:
        return token_id in self.eog_ids

    def token_text(self, token_id: int) -> str:
        """The raw vocabulary string of a token (U+2581 / byte-level characters as stored)."""
        return self._vocab.tokens[token_id]

    def token_to_id(self, text: str) -> int | None:
        """The id of the token whose vocabulary string is exactly `text`, or None."""
        return self._vocab.ids.get(text)

    def token_attr(self, token_id: int) -> int:
        return self._vocab.attrs[token_id]

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Token ids of `text`, as llama_tokenize(text, add_special, parse_special)."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes str, not {type(text).__name__}")
        if _SURROGATES.search(text):
            text = _SURROGATES.sub("\ufffd", text)
        out: list[int] = []
        if add_special and self.add_bos:
            out.append(self.bos_id)
        if text:
            self._encoder.encode(self._partition.split(text, parse_special), out)
        if add_special and self.add_eos:
            out.append(self.eos_id)
        return out

    def __call__(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        return self.encode(text, add_special, parse_special)

    # ------------------------------------------------------------------ decoding
    def token_bytes(self, token_id: int, special: bool = True) -> bytes:
        """The bytes a token stands for (llama_token_to_piece). CONTROL/UNKNOWN tokens give their text when
        `special`, else b''; UNUSED/UNDEFINED tokens give b'' (as llama.cpp)."""
        if not special and self._vocab.attrs[token_id] & ATTR_HIDDEN:
            return b""
        piece = self._pieces[token_id]
        if piece is None:
            piece = self._piece(token_id)
            self._pieces[token_id] = piece
        return piece

    def _piece(self, token_id: int) -> bytes:
        text, attr = self._vocab.tokens[token_id], self._vocab.attrs[token_id]
        if attr & (ATTR_HIDDEN | ATTR_USER_DEFINED):
            return text.encode("utf-8")
        if attr & ATTR_NORMAL:
            return self._encoder.piece(text)
        if attr & ATTR_BYTE:
            try:
                return bytes((int(text[3:5], 16),))
            except ValueError:
                return text.encode("utf-8")
        return b""

    def decode(self, ids: Iterable[int], special: bool = True) -> str:
        """The text of `ids`. Special (CONTROL) tokens are rendered as their text unless special=False. With
        add_space_prefix (Llama 2 style SPM) the space the encoder prefixed is removed from the first text token
        (llama.cpp removes it only when that token comes first, before any BOS). Bytes that do not form valid
        UTF-8 become U+FFFD."""
        ids = [int(i) for i in ids]
        parts = []
        strip = self.add_space_prefix
        for i in ids:
            piece = self.token_bytes(i, special)
            if strip and piece and not self._vocab.attrs[i] & ATTR_HIDDEN:
                if piece.startswith(b" "):
                    piece = piece[1:]
                strip = False
            parts.append(piece)
        return b"".join(parts).decode("utf-8", errors="replace")

    def stream(self, special: bool = True) -> StreamDecoder:
        """An incremental decoder for generated ids: feed(id) -> text, never half a UTF-8 character."""
        return StreamDecoder(self, special)

    def __repr__(self) -> str:
        return (f"Tokenizer({self.vocab_type}, pre={self.pre!r}, vocab={self.vocab_size}, bos={self.bos_id}, "
                f"eos={self.eos_id}, add_bos={self.add_bos})")
