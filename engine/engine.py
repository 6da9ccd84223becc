"""The asynchronous engine: a model opened in a worker thread, generations streamed as events to asyncio.

    engine = await Engine.open(path, settings, progress=cb)   # cb(done, total) on the event loop's thread
    async for ev in engine.generate(Request(messages=[...])):  # Token | Progress | ContextTrimmed | Done
        ...
    engine.cancel()                                           # within one decode step or one prefill chunk

A cancel is never lost: it ends the generation running, and every request made before it that has not started yet
(each ends at once, when its turn comes). A job of several generations (summarizing a long text) reads `cancels`
when it starts and stops at its next step once it has changed.

All model work runs on one worker thread per engine, so one generation runs at a time; a request made while another
runs waits for its turn. The native forward pass releases the GIL, so the event loop stays free while it computes.
Nothing here imports Qt: the window drives this through qasync, the command line through asyncio.run.
"""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Callable

from wren.engine.library import catalog
from wren.engine.runtime import loader, native
from wren.engine.runtime.chat_template import ChatTemplate
from wren.engine.runtime.generate import ContextFullError, GenerationStats, Generator
from wren.engine.runtime.sampling import LogitsProcessor, Sampler, SamplingParams
from wren.engine.settings import Settings
from wren.engine.runtime.tokenizer import Tokenizer


# ---- events ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    text: str
    id: int = -1


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    stage: str = "prefill"  # prefill | summarize

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class ContextTrimmed:
    """The conversation outgrew the context: its oldest messages (after the system prompt) were left out."""
    dropped_messages: int
    prompt_tokens: int


Stats = GenerationStats


@dataclass(frozen=True)
class Done:
    stats: Stats
    text: str = ""

    @property
    def reason(self) -> str:
        return self.stats.finish_reason

    @property
    def error(self) -> str:
        return self.stats.error


Event = Token | Progress | ContextTrimmed | Done


@dataclass
class Request:
    """What to generate from: token ids, raw text (BOS and special tokens as llama.cpp's raw path), or messages
    rendered with the model's chat template. Messages that outgrow the context lose their oldest turns when `trim`
    is set (the system prompt stays); otherwise a prompt that does not fit is an error."""
    messages: list[dict] | None = None
    text: str | None = None
    ids: list[int] | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_new_tokens: int = 512
    trim: bool = True
    constraint: LogitsProcessor | None = None  # masks the logits of each draw (runtime/constrained.Constraint)
    grammar: str | None = None  # or an assistant mode's output format by name (constrained.MODE_GRAMMARS)


class EngineClosedError(RuntimeError):
    pass


# ---- the engine ------------------------------------------------------------------------------------------------


class Engine:
    def __init__(self, gen: Generator, template: ChatTemplate, settings: Settings, path: Path,
                 executor: ThreadPoolExecutor):
        self._gen = gen
        self.template = template
        self.settings = settings
        self.path = path
        self._executor = executor
        self._lock = asyncio.Lock()
        self._cancel_lock = threading.Lock()
        self._cancels = 0
        self._closed = False
        self.last_stats: Stats | None = None

    # ---- opening -----------------------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path | None = None, settings: Settings | None = None,
                   progress: Callable[[int, int], None] | None = None, check_memory: bool = True,
                   available_bytes: int | None = None) -> "Engine":
        """Load a model (a path or a known model's name; by default the settings' model) in a worker thread, with
        loader.open_generator: its errors are raised here."""
        settings = (settings or Settings()).validated()
        loop = asyncio.get_running_loop()

        def report(done: int, total: int) -> None:
            if progress is not None:
                loop.call_soon_threadsafe(progress, done, total)

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wren-engine")

        def load() -> tuple[Generator, ChatTemplate]:
            gen = loader.open_generator(path, settings, report, check_memory, available_bytes)
            try:
                return gen, ChatTemplate.from_gguf(gen.model.gguf, gen.tokenizer)
            except BaseException:
                gen.close()
                raise

        try:
            gen, template = await loop.run_in_executor(executor, load)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(gen, template, settings, gen.model.path, executor)

    # ---- what is running ---------------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        known = catalog.known_by_file(self.path.name)
        name = known.name if known else self._gen.model.gguf.metadata.get("general.name")
        return name if isinstance(name, str) and name else self.path.stem

    @property
    def n_ctx(self) -> int:
        return self._gen.context.n_ctx

    @property
    def threads(self) -> int:
        return self._gen.pool.threads

    @property
    def cpus(self) -> tuple[int, ...] | None:
        return self._gen.pool.settings.cpus

    @property
    def pinned(self) -> bool:
        return self._gen.pool.settings.strict

    @property
    def threads_note(self) -> str:
        """Why the threads differ from the settings ("" when they do not): more than the CPUs allowed are clamped."""
        return self._gen.pool.settings.note

    @property
    def tokenizer(self) -> Tokenizer:
        return self._gen.tokenizer

    @property
    def load_stats(self):
        return self._gen.model.stats

    @property
    def cached_tokens(self) -> int:
        return len(self._gen.tokens)

    def count_tokens(self, text: str) -> int:
        return len(self._gen.tokenizer.encode(text, add_special=False))

    async def worker_cpus(self) -> list[int]:
        """The CPU each pool worker runs on right now."""
        return await self._call(self._gen.pool.probe_cpus)

    async def _call(self, fn, *args):
        self._check_open()
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("the engine is closed")

    # ---- settings ----------------------------------------------------------------------------------------------

    async def apply_settings(self, settings: Settings) -> set[str]:
        """Apply threads, cores, pinning, context length and batch size to the running engine (the model stays
        loaded). Returns the names of the changed settings that need the model reopened (model, weight_policy).
        A setting that cannot be applied raises SettingsError and leaves the engine as it was."""
        settings = settings.validated()
        self._check_open()
        async with self._lock:
            await asyncio.get_running_loop().run_in_executor(self._executor, loader.reconfigure, self._gen, settings)
        reopen = set()
        if settings.model != self.settings.model:
            reopen.add("model")
        if settings.weight_policy != self.settings.weight_policy:
            reopen.add("weight_policy")
        self.settings = settings
        return reopen

    # ---- generation --------------------------------------------------------------------------------------------

    @property
    def cancels(self) -> int:
        """How many times cancel() was called: a job that saw it change since it began was cancelled."""
        return self._cancels

    def cancel(self) -> None:
        """Stop the running generation (it ends with a Done whose reason is "cancelled"): between decode steps,
        or inside a prompt batch between two layers; requests waiting for their turn end as soon as it comes."""
        with self._cancel_lock:  # any thread (a signal handler, the window)
            self._cancels += 1
        self._gen.abort()

    async def generate(self, request: Request) -> AsyncIterator[Event]:
        """Events of one generation, ending with Done. Waits while another generation runs; a cancel() made after
        this call ends it, even before it starts (its Done then comes at once, reason "cancelled")."""
        self._check_open()
        cancels = self._cancels
        stop = threading.Event()  # set when the consumer leaves early
        loop = asyncio.get_running_loop()
        async with self._lock:
            self._check_open()
            self._gen.start()  # clears the abort flag an earlier cancel left; one from now on sets it again

            def cancelled() -> bool:
                return stop.is_set() or self._cancels != cancels

            if cancelled():
                self.last_stats = Stats(finish_reason="cancelled")
                yield Done(self.last_stats)
                return
            queue: asyncio.Queue = asyncio.Queue()

            def emit(ev: Event) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, ev)

            job = loop.run_in_executor(self._executor, self._run, request, emit, cancelled)
            finished = False
            try:
                while True:
                    ev = await queue.get()
                    if isinstance(ev, Done):
                        finished = True
                        self.last_stats = ev.stats
                    yield ev
                    if finished:
                        break
            finally:
                if not finished:  # the consumer left early: stop the work before releasing the engine
                    stop.set()
                await asyncio.shield(job)

    def _prompt(self, req: Request, emit: Callable[[Event], None]) -> list[int]:
        tok = self._gen.tokenizer
        n_ctx = self._gen.context.n_ctx
        if req.ids is not None:
            ids = list(req.ids)
        elif req.text is not None:
            ids = tok.encode(req.text, add_special=True, parse_special=True)
        elif req.messages is not None:
            ids, dropped = fit_messages(self.template, req.messages, n_ctx,
                                        reserve=min(req.max_new_tokens, n_ctx // 4) if req.trim else 1)
            if dropped:
                emit(ContextTrimmed(dropped, len(ids)))
        else:
            raise ValueError("the request has no prompt")
        if not ids:
            raise ValueError("the prompt is empty")
        if len(ids) >= n_ctx:
            raise ContextFullError(f"the prompt has {len(ids)} tokens and the context holds {n_ctx}; "
                                   "shorten it or raise the context length in the settings")
        return ids

    def _run(self, req: Request, emit: Callable[[Event], None], cancelled: Callable[[], bool]) -> None:
        stats = Stats()
        parts: list[str] = []
        start = time.perf_counter()
        try:
            req.sampling.validated()
            if req.max_new_tokens < 1:
                raise ValueError(f"max_new_tokens must be at least 1, not {req.max_new_tokens}")
            ids = self._prompt(req, emit)
            constraint = req.constraint
            if constraint is None and req.grammar is not None:
                from wren.engine.runtime.constrained import mode_constraint

                constraint = mode_constraint(self, req.grammar)
            stop = set(self.template.stop_ids if req.messages is not None else ()) | set(self._gen.tokenizer.eog_ids)
            for token, text in self._gen.stream(
                    ids, req.max_new_tokens, Sampler(req.sampling), stop, stats,
                    cancelled=cancelled, on_prefill=lambda d, t: emit(Progress(d, t)),
                    constraint=constraint):
                if text:
                    parts.append(text)
                    emit(Token(text, token))
        except Exception as e:  # reported as the generation's outcome; the engine stays usable
            stats.finish_reason = "error"
            stats.error = _describe(e)
            if stats.prefill_seconds == 0.0:
                stats.prefill_seconds = time.perf_counter() - start
        emit(Done(stats, "".join(parts)))

    # ---- closing -----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self.cancel()
        async with self._lock:
            self._closed = True
            gen = self._gen
            await asyncio.get_running_loop().run_in_executor(self._executor, gen.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> "Engine":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _describe(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text if isinstance(e, (ValueError, OSError, LookupError, native.NativeError)) else \
        f"{type(e).__name__}: {text}"


def fit_messages(template: ChatTemplate, messages: list[dict], n_ctx: int, reserve: int) -> tuple[list[int], int]:
    """Token ids of the conversation, leaving out its oldest turns (never the system prompt, never the last
    message) until it leaves `reserve` tokens free for the answer. Returns (ids, messages left out)."""
    ids = template.encode(messages)
    if len(ids) + reserve <= n_ctx:
        return ids, 0
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    rest = list(messages[len(head):])
    dropped = 0
    # drop down to three quarters of the room, so that the next turns reuse the cache instead of trimming again
    target = max(n_ctx - reserve - n_ctx // 4, (n_ctx - reserve) // 2)
    while len(rest) > 1 and (len(ids) + reserve > n_ctx or (dropped and len(ids) > target)):
        step = 2 if len(rest) > 2 and rest[0]["role"] == "user" and rest[1]["role"] == "assistant" else 1
        rest = rest[step:]
        dropped += step
        ids = template.encode(head + rest)
    if len(ids) + 1 >= n_ctx:
        raise ContextFullError(f"the last message needs {len(ids)} tokens and the context holds {n_ctx}; "
                               "shorten it or raise the context length in the settings")
    return ids, dropped
