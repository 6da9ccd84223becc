"""Sampling: small pure functions over logits, and a Sampler that chains them with its own RNG.

The chain follows llama.cpp's default order: repetition penalty, top-k, top-p, min-p, temperature, draw. A seed
makes a run repeatable: the same seed, prompt and settings give the same text.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, Sequence

import numpy as np

WIDE_CANDIDATES = 2048  # with top-k off, the nucleus is searched among this many first (when they hold the mass)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_k: int = 40  # 0: off
    top_p: float = 0.95  # 1: off
    min_p: float = 0.05  # 0: off
    repeat_penalty: float = 1.1  # 1: off
    repeat_last_n: int = 64
    seed: int | None = None
    loop_repeats: int = 3  # the answer stops when its end is one block said this many times in a row (0: off)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def validated(self) -> "SamplingParams":
        problems = []
        if not 0.0 <= self.temperature <= 10.0:
            problems.append(f"temperature {self.temperature} (0 to 10)")
        if self.top_k < 0:
            problems.append(f"top_k {self.top_k} (0 or more)")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p {self.top_p} (above 0, at most 1)")
        if not 0.0 <= self.min_p < 1.0:
            problems.append(f"min_p {self.min_p} (0 to below 1)")
        if not 0.0 < self.repeat_penalty <= 10.0:
            problems.append(f"repeat_penalty {self.repeat_penalty} (above 0, at most 10)")
        if self.repeat_last_n < 0:
            problems.append(f"repeat_last_n {self.repeat_last_n} (0 or more)")
        if self.loop_repeats < 0 or self.loop_repeats == 1:
            problems.append(f"loop_repeats {self.loop_repeats} (0: off, or 2 or more)")
        if problems:
            raise ValueError("invalid sampling settings: " + ", ".join(problems))
        return self


class NonFiniteLogitsError(ValueError):
    """The model's logits hold NaN or +infinity, or no finite value at all (-infinity alone may mark a token a
    constraint forbids): its weights or activations overflowed, and no token can be drawn. Ends the generation."""


def check_logits(logits: np.ndarray) -> None:
    """Raise NonFiniteLogitsError unless the logits can be sampled: no NaN, no +inf, at least one finite value."""
    if logits.size == 0 or not np.isfinite(logits.max()):  # max is NaN when any is NaN
        bad = int(np.count_nonzero(~np.isfinite(logits)))
        raise NonFiniteLogitsError(f"the model produced non-finite logits ({bad} of {logits.size} are NaN or "
                                   "infinite): its weights or activations overflowed; the generation stopped")


class LogitsProcessor(Protocol):
    """What Generator.stream asks before and after each draw (runtime/constrained.Constraint is one)."""
    finished: bool

    def mask(self, logits: np.ndarray) -> np.ndarray: ...

    def accept(self, token: int) -> None: ...


GREEDY = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, loop_repeats=0)

LOOP_MIN_TOKENS = 32  # a loop spans at least this many tokens: "!!!" or a ruler of dashes is not one
LOOP_MAX_BLOCK = 256  # the longest repeated block looked for, in tokens


def loop_block(tokens: Sequence[int], repeats: int, min_tokens: int = LOOP_MIN_TOKENS,
               max_block: int = LOOP_MAX_BLOCK) -> int:
    """The length of the block of tokens that the end of tokens repeats at least `repeats` times in a row (and over
    at least min_tokens tokens), or 0 when it does not end in such a loop."""
    if repeats < 2 or len(tokens) < min_tokens:
        return 0
    tail = np.asarray(tokens[-max(min_tokens, repeats * max_block):], dtype=np.int64)
    n = tail.size
    for size in np.flatnonzero(tail[n - 1] == tail[n - 2 - np.arange(min(max_block, n - 1))]) + 1:
        span = size * max(repeats, -(-min_tokens // size))
        if span <= n and np.array_equal(tail[n - span + size:], tail[n - span:n - size]):
            return int(size)
    return 0


def apply_repetition_penalty(logits: np.ndarray, recent: Sequence[int], penalty: float) -> np.ndarray:
    """Positive logits of recently seen tokens divided by the penalty, negative ones multiplied (llama.cpp's rule)."""
    if penalty == 1.0 or len(recent) == 0:
        return logits
    out = logits.copy()
    ids = np.unique(np.asarray(recent, dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < out.size)]
    vals = out[ids]
    out[ids] = np.where(vals > 0, vals / penalty, vals * penalty)
    return out


def top_k_candidates(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, logits) of the k largest, sorted descending; all of them when k is 0 or too large."""
    n = logits.size
    if 0 < k < n:
        ids = np.argpartition(logits, n - k)[n - k:]
    else:
        ids = np.arange(n)
    order = np.argsort(-logits[ids], kind="stable")
    ids = ids[order]
    return ids, logits[ids]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp((x - x.max()).astype(np.float64))
    return e / e.sum()


def top_p_cut(probs_sorted: np.ndarray, p: float) -> int:
    """How many of the sorted candidates keep at least probability mass p (at least one)."""
    if p >= 1.0:
        return probs_sorted.size
    cum = np.cumsum(probs_sorted)
    return int(min(probs_sorted.size, np.searchsorted(cum, p * cum[-1]) + 1))


def min_p_cut(probs_sorted: np.ndarray, min_p: float) -> int:
    """How many sorted candidates have at least min_p times the top probability (at least one)."""
    if min_p <= 0.0:
        return probs_sorted.size
    return max(1, int(np.count_nonzero(probs_sorted >= min_p * probs_sorted[0])))


class Sampler:
    """Draws tokens from logits under SamplingParams, with its own RNG state."""

    def __init__(self, params: SamplingParams = SamplingParams()):
        self.params = params.validated()
        self.rng = np.random.default_rng(params.seed)

    def reseed(self, seed: int | None) -> None:
        self.params = replace(self.params, seed=seed)
        self.rng = np.random.default_rng(seed)

    def sample(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        """A token id drawn from the logits; NonFiniteLogitsError when they cannot be sampled."""
        p = self.params
        logits = np.asarray(logits, dtype=np.float32).reshape(-1)
        check_logits(logits)
        if p.repeat_penalty != 1.0 and p.repeat_last_n > 0:
            logits = apply_repetition_penalty(logits, list(history)[-p.repeat_last_n:], p.repeat_penalty)
        if p.greedy or p.top_k == 1:
            return int(np.argmax(logits))
        k = p.top_k
        if k == 0 and logits.size > WIDE_CANDIDATES:
            # the nucleus almost always lies in the first few thousand; take them when they hold the mass
            ids, vals = top_k_candidates(logits, WIDE_CANDIDATES)
            full = softmax(logits)
            if full[ids].sum() < p.top_p:
                ids, vals = top_k_candidates(logits, 0)
        else:
            ids, vals = top_k_candidates(logits, k)
        probs = softmax(vals)
        keep = min(top_p_cut(probs, p.top_p), min_p_cut(probs, p.min_p))
        ids, vals = ids[:keep], vals[:keep]
        probs = softmax(vals / np.float32(p.temperature))
        return int(ids[self.rng.choice(ids.size, p=probs)])
