"""The merge loop that byte-level BPE and SentencePiece share (llm_tokenizer_bpe_session / llm_tokenizer_spm_session).

A word starts as one symbol per character. Every adjacent pair that the ranking knows is queued; the best pair (lowest
rank, then leftmost) is merged into one symbol, its new neighbours are queued, and so on until no queued pair is left.
A merge puts a new string object on the left and empties the right, so a queued pair is still current exactly when
both positions hold the very objects it was queued with (the queue keeps them alive, so no other string can have
their identity).

BPE ranks a pair (a, b) by its merge rank, SentencePiece ranks the merged text a + b by its negated score; `joined`
says which key the ranking uses.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

#: words whose ids an encoder remembers before it starts over
CACHE_LIMIT = 200_000


def merge(syms: list[str], ranks: dict[Any, float], joined: bool) -> list[str]:
    """The symbols of `syms` (single characters) after merging; `ranks` maps a pair key to its rank."""
    n = len(syms)
    if n < 2:
        return syms
    get = ranks.get
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    heap = []
    for i in range(n - 1):
        a, b = syms[i], syms[i + 1]
        r = get(a + b if joined else (a, b))
        if r is not None:
            heap.append((r, i, i + 1, a, b))
    heapq.heapify(heap)
    push, pop = heapq.heappush, heapq.heappop
    while heap:
        _, left, right, a, b = pop(heap)
        if syms[left] is not a or syms[right] is not b:
            continue
        merged = a + b
        syms[left], syms[right] = merged, ""
        nr = nxt[right]
        nxt[left] = nr
        if nr >= 0:
            prv[nr] = left
        pl = prv[left]
        if pl >= 0:
            s = syms[pl]
            r = get(s + merged if joined else (s, merged))
            if r is not None:
                push(heap, (r, pl, left, s, merged))
        if nr >= 0:
            s = syms[nr]
            r = get(merged + s if joined else (merged, s))
            if r is not None:
                push(heap, (r, left, nr, merged, s))
    return [s for s in syms if s]


class WordEncoder:
    """Base of the two encoders: ids of words, each word's ids computed once (`word_ids`) and remembered."""

    def __init__(self):
        self._cache: dict[str, tuple[int, ...]] = {}

    def word_ids(self, word: str) -> tuple[int, ...]:
        raise NotImplementedError

    def extend(self, words: Iterable[str], out: list[int]) -> None:
        cache = self._cache
        for word in words:
            ids = cache.get(word)
            if ids is None:
                ids = self.word_ids(word)
                if len(cache) >= CACHE_LIMIT:
                    cache.clear()
                cache[word] = ids
            out.extend(ids)
