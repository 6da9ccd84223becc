"""SentencePiece-style vocabularies (`tokenizer.ggml.model` = llama: Llama 2, Gemma): spaces become U+2581, a space is
prefixed after the start and after each special token when `add_space_prefix` says so, symbols are merged best score
first, and characters that are no token fall back to ``<0xNN>`` byte tokens."""
from __future__ import annotations

import re

from wren.engine.runtime.tokenizer.merge import WordEncoder, merge
from wren.engine.runtime.tokenizer.vocab import Vocab


class Spm(WordEncoder):
    def __init__(self, vocab: Vocab, unk_id: int | None, add_space_prefix: bool):
        super().__init__()
        self._ids = t2i = vocab.ids
        self._unk_id = unk_id
        self._add_space_prefix = add_space_prefix
        self._neg_scores = {t: -s for t, s in zip(vocab.tokens, vocab.scores)}  # merge ranks: lower merges first
        self._byte_ids = []
        for b in range(256):
            tid = t2i.get(f"<0x{b:02X}>")
            if tid is None and b < 128:
                tid = t2i.get(chr(b))
            self._byte_ids.append(tid if tid is not None else unk_id)
        # a boundary just before U+2581 can be cut (and the halves cached) unless some token spans it
        left = {t[i - 1] for t in vocab.tokens if "\u2581" in t[1:]
                for i in range(1, len(t)) if t[i] == "\u2581" and t[i - 1] != "\u2581"}
        left.add("\u2581")
        self._split = (re.compile("(?<=[^" + "".join(re.escape(c) for c in sorted(left)) + "])(?=\u2581)")
                       if len(left) < 512 else None)

    def encode(self, fragments: list, out: list[int]) -> None:
        """Append the ids of partitioned text (str fragments and special-token ids) to `out`."""
        prev_special = True
        for frag in fragments:
            if isinstance(frag, int):
                out.append(frag)
                prev_special = True
                continue
            if self._add_space_prefix and prev_special:
                frag = " " + frag
            frag = frag.replace(" ", "\u2581")
            self.extend(self._split.split(frag) if self._split is not None else (frag,), out)
            prev_special = False

    def word_ids(self, word: str) -> tuple[int, ...]:
        """llm_tokenizer_spm_session::tokenize on one segment (spaces already U+2581)."""
        t2i = self._ids
        ids = []
        for s in merge(list(word), self._neg_scores, joined=True):
            tid = t2i.get(s)
            if tid is not None:
                ids.append(tid)
                continue
            for byte in s.encode("utf-8"):  # byte fallback
                tid = self._byte_ids[byte]
                if tid is not None:
                    ids.append(tid)
        return tuple(ids)

    @staticmethod
    def piece(text: str) -> bytes:
        """The bytes of a NORMAL token's text."""
        return text.replace("\u2581", " ").encode("utf-8")
