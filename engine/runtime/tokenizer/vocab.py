"""The token table of a GGUF vocabulary: texts, text -> id, scores and llama.cpp's attribute bits per token."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from wren.engine.runtime.gguffile import short


class TokenizerError(ValueError):
    """The GGUF vocabulary cannot be turned into a tokenizer; the message says why."""


# token types in GGUF (llama_token_type) and llama.cpp's attribute bits (llama_token_attr)
TYPE_UNDEFINED, TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_USER_DEFINED, TYPE_UNUSED, TYPE_BYTE = range(7)
ATTR_UNDEFINED = 0
ATTR_UNKNOWN = 1 << 0
ATTR_UNUSED = 1 << 1
ATTR_NORMAL = 1 << 2
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4
ATTR_BYTE = 1 << 5
ATTR_LSTRIP = 1 << 7
ATTR_RSTRIP = 1 << 8
_TYPE_TO_ATTR = np.array([ATTR_UNDEFINED, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_UNUSED,
                          ATTR_BYTE], dtype=np.int64)
ATTR_SPECIAL = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN  # what tokenizer_st_partition looks for
ATTR_HIDDEN = ATTR_CONTROL | ATTR_UNKNOWN  # skipped unless parse_special / rendered only with special=True


class Vocab:
    """tokens: the texts (llama.cpp renames empty ones), ids: text -> id, scores (0.0 when the file has none),
    attrs: attribute bits (NORMAL when the file has no types; special-token detection adds to them later)."""

    def __init__(self, tokens: list[str], token_types: Iterable[int] | None = None,
                 scores: Iterable[float] | None = None):
        n = len(tokens)
        if n == 0:
            raise TokenizerError("the vocabulary is empty")
        tokens = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        self.tokens = tokens
        self.ids: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        if len(self.ids) != n:
            seen: dict[str, int] = {}
            for i, t in enumerate(tokens):
                if t in seen:
                    raise TokenizerError(f"duplicate token in vocabulary: {short(repr(t))} has ids {seen[t]} and {i}")
                seen[t] = i
        if scores is None:
            self.scores = [0.0] * n
        else:
            sc = np.asarray(scores, dtype=np.float64)
            if sc.shape[0] < n:
                raise TokenizerError(f"{sc.shape[0]} scores for {n} tokens")
            self.scores = sc[:n].tolist()
        if token_types is None:
            attrs = np.full(n, ATTR_NORMAL, dtype=np.int64)
        else:
            tt = np.asarray(token_types, dtype=np.int64)
            if tt.shape[0] < n:
                raise TokenizerError(f"{tt.shape[0]} token types for {n} tokens")
            tt = tt[:n]
            attrs = np.where((tt >= 0) & (tt < len(_TYPE_TO_ATTR)), _TYPE_TO_ATTR[np.clip(tt, 0, 6)], ATTR_UNDEFINED)
        self.attrs: list[int] = attrs.tolist()

    def __len__(self) -> int:
        return len(self.tokens)
