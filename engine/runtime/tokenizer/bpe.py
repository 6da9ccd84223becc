"""Byte-level BPE (`tokenizer.ggml.model` = gpt2): the pre-tokenizer's words, each mapped to GPT-2's byte-level
alphabet and merged by merge rank."""
from __future__ import annotations

from wren.engine.runtime.tokenizer import bytelevel
from wren.engine.runtime.tokenizer.merge import WordEncoder, merge
from wren.engine.runtime.tokenizer.pretokenize import PreTokenizer


class Bpe(WordEncoder):
    """ids: the vocabulary's text -> id; merges: "first second" lines, best first; ignore_merges: a word that is a
    token as a whole is that token (llama 3 style)."""

    def __init__(self, ids: dict[str, int], merges: list[str], pre_tokenizer: PreTokenizer, ignore_merges: bool):
        super().__init__()
        self._ids = ids
        self.pre_tokenizer = pre_tokenizer
        self.ignore_merges = ignore_merges
        # a merge splits at the first space after position 0; the first rank of a pair wins
        pairs = []
        for m in merges:
            p = m.find(" ", 1)
            pairs.append((m[:p], m[p + 1:]) if p >= 0 else ("", ""))
        self.ranks: dict[tuple[str, str], int] = dict(zip(reversed(pairs), range(len(pairs) - 1, -1, -1)))

    def encode(self, fragments: list, out: list[int]) -> None:
        """Append the ids of partitioned text (str fragments and special-token ids) to `out`."""
        for frag in fragments:
            if isinstance(frag, int):
                out.append(frag)
            else:
                self.extend(self.pre_tokenizer.split(frag), out)

    def word_ids(self, word: str) -> tuple[int, ...]:
        t2i = self._ids
        word = bytelevel.encode(word)
        if self.ignore_merges:
            tid = t2i.get(word)
            if tid is not None:
                return (tid,)
        ids = []
        for s in merge(list(word), self.ranks, joined=False):
            tid = t2i.get(s)
            if tid is not None:
                ids.append(tid)
            else:  # llama.cpp looks each byte of the symbol up as a one-byte token; others are dropped
                for ch in s:
                    if len(ch.encode("utf-8")) == 1:
                        tid = t2i.get(ch)
                        if tid is not None:
                            ids.append(tid)
        return tuple(ids)

    @staticmethod
    def piece(text: str) -> bytes:
        """The bytes of a NORMAL token's text."""
        return bytelevel.decode(text)
