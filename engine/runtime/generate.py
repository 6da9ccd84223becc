"""Synchronous generation: a loaded model, its tokenizer, one context and a thread pool, streaming tokens.

This is the layer under the asynchronous engine and the command line: token ids in, (token, text) out, with the
timings a user sees (time to first token, prefill and decode speed).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from wren.engine.runtime import native
from wren.engine.runtime.model import Context, Model
from wren.engine.runtime.sampling import LogitsProcessor, Sampler, loop_block
from wren.engine.runtime.tokenizer import Tokenizer


class ContextFullError(ValueError):
    """The prompt does not fit the context window."""


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    ttft_seconds: float = 0.0  # from the request to the first generated token
    finish_reason: str = ""  # stop, length, cancelled, repetition (the engine adds error)
    cached_tokens: int = 0  # prompt tokens the KV cache already held (not prefilled again)
    error: str = ""

    @property
    def prefilled_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prefilled_tokens / self.prefill_seconds if self.prefill_seconds > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        # the first token comes out of prefill; the others each cost one decode step
        steps = max(self.generated_tokens - 1, 0)
        return steps / self.decode_seconds if self.decode_seconds > 0 and steps else 0.0


@dataclass
class Generator:
    """Made by engine/runtime/loader.py (open_generator); its fields are read from outside, changed only by its
    methods."""
    model: Model
    tokenizer: Tokenizer
    pool: native.Pool | None
    context: Context
    tokens: list[int] = field(default_factory=list)  # what the KV cache holds, position by position

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    # ---- from another thread: stopping a prompt batch between layers --------------------------------------------

    def abort(self) -> None:
        """Stop the prompt batch running now between two layers (prefill then returns None); any thread."""
        self.context.abort[0] = 1

    def start(self) -> None:
        """Clear an earlier abort before a new generation."""
        self.context.abort[0] = 0

    # ---- while no generation runs ------------------------------------------------------------------------------

    def reconfigure(self, pool: native.PoolSettings, n_ctx: int, n_batch: int, n_threads: int) -> None:
        """Run on other threads or with another context size: a pool whose settings differ replaces the old one
        (ThreadSettingsError, and nothing changed, when it cannot start); a context of another size or batch, or
        with scratch for fewer threads than the pool has, is made anew and the KV cache starts empty."""
        if self.pool is None or self.pool.settings != pool:
            new = pool.start()
            if self.pool is not None:
                self.pool.close()
            self.pool = new
        else:
            self.pool.settings = pool  # the same pool; its note may have changed
        ctx = self.context
        if (n_ctx, min(n_batch, n_ctx)) != (ctx.n_ctx, ctx.n_batch) or self.pool.threads > ctx.n_threads:
            self.context = self.model.context(n_ctx, n_batch, max(n_threads, self.pool.threads))
            self.tokens = []

    def cached_prefix(self, ids: Sequence[int]) -> int:
        """How many leading tokens of ids the KV cache already holds (at most len(ids) - 1: the last one always
        runs, for its logits)."""
        common = 0
        for a, b in zip(self.tokens, ids):
            if a != b:
                break
            common += 1
        return min(common, len(ids) - 1)

    def prefill(self, ids: Sequence[int],
                on_chunk: Callable[[int, int], bool] | None = None) -> np.ndarray | None:
        """Run the prompt, reusing the cached prefix it shares with what the cache holds; logits of its last token.

        With on_chunk, on_chunk(done, total) is called after each batch; when it returns False, or when the
        context's abort flag stops a batch, the prefill stops and None is returned. The cache then holds the
        prompt up to where it stopped."""
        ids = list(ids)
        if not ids:
            raise ValueError("empty prompt")
        if len(ids) >= self.context.n_ctx:
            raise ContextFullError(f"the prompt has {len(ids)} tokens; the context holds {self.context.n_ctx}")
        common = self.cached_prefix(ids)
        self.tokens = ids[:common]
        if on_chunk is None:
            logits = self.context.forward(ids[common:], common, self.pool)
            self.tokens = ids
            return logits[0]
        pos, total, step = common, len(ids), self.context.n_batch
        while pos < total:
            n = min(step, total - pos)
            last = pos + n == total
            try:
                out = self.context.forward(ids[pos:pos + n], pos, self.pool, logits=last)
            except native.AbortedError:  # the context's abort flag: the cache keeps what ran before this batch
                return None
            pos += n
            self.tokens = ids[:pos]
            if not on_chunk(pos - common, total - common) and not last:
                return None
            if last:
                return out[0]
        raise AssertionError("unreachable")

    def stream(self, prompt_ids: Sequence[int], max_new_tokens: int, sampler: Sampler,
               stop_ids: set[int] | None = None, stats: GenerationStats | None = None,
               cancelled: Callable[[], bool] | None = None,
               on_prefill: Callable[[int, int], None] | None = None,
               constraint: LogitsProcessor | None = None) -> Iterator[tuple[int, str]]:
        """Yield (token id, text) for each new token; text pieces are whole UTF-8 characters.

        cancelled() is asked before the prompt, after every prompt batch and every decoded token; when it says yes
        the stream ends with finish_reason "cancelled" (set the context's abort flag too, to stop a prompt batch
        between layers).
        An answer whose end repeats one block sampler.params.loop_repeats times in a row ends with "repetition".
        on_prefill(done, total) reports prefill progress after each batch. A constraint masks the logits before each
        draw and is told each token drawn; when it is finished the stream ends with finish_reason "stop"."""
        stats = stats if stats is not None else GenerationStats()
        stop = set(stop_ids) if stop_ids is not None else set(self.tokenizer.eog_ids)
        start = time.perf_counter()
        stats.prompt_tokens = len(prompt_ids)
        stats.cached_tokens = self.cached_prefix(prompt_ids) if prompt_ids else 0

        if cancelled and cancelled():  # cancelled before it started: no prompt batch runs
            stats.finish_reason = "cancelled"
            return

        def on_chunk(done: int, total: int) -> bool:
            if on_prefill is not None:
                on_prefill(done, total)
            return not (cancelled and cancelled())

        logits = self.prefill(prompt_ids, on_chunk if (cancelled or on_prefill) else None)
        stats.prefill_seconds = time.perf_counter() - start
        if logits is None or (cancelled and cancelled()):
            stats.finish_reason = "cancelled"
            return
        decoder = self.tokenizer.stream()
        history = list(prompt_ids)
        stats.finish_reason = "length"
        t_decode = time.perf_counter()
        for i in range(max_new_tokens):
            if constraint is not None:
                logits = constraint.mask(logits)
            token = sampler.sample(logits, history)
            if i == 0:
                stats.ttft_seconds = time.perf_counter() - start
                t_decode = time.perf_counter()
            if token in stop:
                stats.finish_reason = "stop"
                break
            history.append(token)
            stats.generated_tokens += 1
            text = decoder.feed(token)
            yield token, text
            if constraint is not None:
                constraint.accept(token)
                if constraint.finished:
                    stats.finish_reason = "stop"
                    break
            if cancelled and cancelled():
                stats.finish_reason = "cancelled"
                break
            if loop_block(history[len(prompt_ids):], sampler.params.loop_repeats):
                stats.finish_reason = "repetition"
                break
            if i + 1 == max_new_tokens:
                break
            if len(self.tokens) + 1 >= self.context.n_ctx:
                stats.finish_reason = "length"
                break
            logits = self.context.forward([token], len(self.tokens), self.pool)[0]
            self.tokens.append(token)
        stats.decode_seconds = time.perf_counter() - t_decode
        tail = decoder.flush()
        if tail:
            yield -1, tail
