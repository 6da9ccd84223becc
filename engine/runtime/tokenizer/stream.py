"""Incremental decoding of generated ids into whole characters."""
from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

from wren.engine.runtime.tokenizer.vocab import ATTR_HIDDEN

if TYPE_CHECKING:
    from wren.engine.runtime.tokenizer.core import Tokenizer


class StreamDecoder:
    """Turns a stream of token ids into text. A byte-fallback or byte-level token may carry part of a UTF-8
    character; its bytes are held until the character is complete, so every string returned is whole characters.
    Invalid byte sequences come out as U+FFFD. flush() returns what is still held (as U+FFFD if incomplete)."""

    def __init__(self, tokenizer: Tokenizer, special: bool = True):
        self._tok = tokenizer
        self._special = special
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._strip = tokenizer.add_space_prefix

    def feed(self, token_id: int) -> str:
        tok = self._tok
        piece = tok.token_bytes(int(token_id), self._special)
        if self._strip and piece and not tok.token_attr(int(token_id)) & ATTR_HIDDEN:
            if piece.startswith(b" "):
                piece = piece[1:]
            self._strip = False
        return self._dec.decode(piece, final=False)

    def flush(self) -> str:
        out = self._dec.decode(b"", final=True)
        self._dec.reset()
        return out

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished character are being held."""
        return bool(self._dec.getstate()[0])
