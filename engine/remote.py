"""A remote engine: the window's engine interface over HTTP, to an OpenAI-compatible server (`wren serve` on another
machine, llama.cpp's llama-server, Ollama, LM Studio, vLLM).

    engine = await RemoteEngine.open("http://board.local:8080", key, settings)
    async for ev in engine.generate(Request(messages=[...])):  # Token ... Done, as Engine's
        ...
    engine.cancel()                                           # closes the response: the server stops

Each generation is one POST /v1/chat/completions with stream: true (SSE). The server renders the chat template and
tokenizes; the messages go as they are. Stop closes the response (a server notices the closed connection and stops
generating). A connection lost mid-answer ends with a Done whose reason is "error", its message saying so, and the
text received so far kept. The figures (TTFT, tok/s) come from the server's `timings` (wren serve and llama-server
send one), else they are measured here. A conversation that outgrew the context is trimmed by the server where it is
Wren, else here by the estimated counts. A mode's output format (Request.grammar) is sent to a Wren server as its
`wren_grammar` field, and dropped for other servers. Token counts (the summarize mode's splitting) come from the
server's /tokenize where it has one (Wren, llama-server), else an estimate of one token per 4 characters.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass
from typing import AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp

from wren.engine.engine import (ContextTrimmed, Done, Engine, EngineClosedError, Event, Request, Stats, Token,
                                fit_messages)
from wren.engine.runtime.generate import ContextFullError
from wren.engine.settings import Settings

CONNECT_TIMEOUT = 10.0  # seconds to reach the server; a generation itself may take as long as it takes
CHARS_PER_TOKEN = 4  # the estimate where the server cannot count tokens
MESSAGE_OVERHEAD = 8  # tokens a chat template adds around each message, in the estimate


class RemoteError(RuntimeError):
    """The server cannot be used: unreachable, a refused key, not an OpenAI-compatible server."""


def server_root(url: str) -> str:
    """The server's address without a trailing slash or /v1: http://host:port"""
    root = url.strip().rstrip("/")
    return root[:-3].rstrip("/") if root.endswith("/v1") else root


def host_of(url: str) -> str:
    """host:port of a server's address (what the status bar shows)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or url
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


async def _error_text(resp: aiohttp.ClientResponse) -> str:
    """What an error answer says: the OpenAI-style body's message, else the start of the body."""
    raw = await resp.text(errors="replace")
    try:
        err = json.loads(raw).get("error")
        message = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        message = None
    return str(message or raw.strip()[:300] or resp.reason)


def _refusal(status: int, host: str, message: str) -> str:
    if status == 401:
        return f"the server at {host} refused the API key (401): check the key in Settings -> Engine ({message})"
    return f"the server at {host} answered {status}: {message}"


@dataclass(frozen=True)
class ServerInfo:
    kind: str  # "wren", "llama-server" or "openai" (any other OpenAI-compatible server)
    model: str
    n_ctx: int | None
    threads: int | None


class RemoteTemplate:
    """What the modes ask of a chat template here: a prompt's length (summarize sizes its parts with it). The server
    renders the real template; this estimates the messages' tokens and a few per message for the template's markers."""

    @staticmethod
    def encode(messages: list[dict]) -> list[int]:
        n = sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages)
        return [0] * n  # the length is what counts: the ids are the server's


class RemoteEngine:
    """Engine's interface (generate, cancel, close, settings, model_name, n_ctx, count_tokens, last_stats) over
    HTTP. One generation at a time, as Engine."""

    def __init__(self, url: str, key: str, settings: Settings, session: aiohttp.ClientSession, info: ServerInfo):
        self.url = server_root(url)
        self.key = key
        self.host = host_of(self.url)
        self.settings = settings
        self.info = info
        self.template = RemoteTemplate()
        self.last_stats: Stats | None = None
        self._session = session
        self._lock = asyncio.Lock()
        self._response: aiohttp.ClientResponse | None = None
        self._cancelled = False
        self.cancels = 0  # cancel() calls: a job of several generations (summarize) stops once it changes
        self._closed = False

    # ---- opening -----------------------------------------------------------------------------------------------

    @classmethod
    async def open(cls, url: str, key: str = "", settings: Settings | None = None) -> "RemoteEngine":
        """Reach the server and ask what it serves (GET /v1/models); RemoteError says why it cannot be used."""
        settings = settings or Settings()
        root = server_root(url)
        host = host_of(root)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT))
        try:
            info = await _server_info(session, root, host, settings)
        except BaseException:
            await session.close()
            raise
        return cls(root, key, settings, session, info)

    # ---- what is running ---------------------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        return self.info.model

    @property
    def n_ctx(self) -> int:
        return self.info.n_ctx or self.settings.context_length

    @property
    def threads(self) -> int | None:
        return self.info.threads

    def count_tokens(self, text: str) -> int:
        """The server's count (POST /tokenize) where it has one, else the estimate. Blocking: call it off the event
        loop's thread (the modes do)."""
        if self.info.kind == "openai":
            return estimate_tokens(text)
        req = urllib.request.Request(self.url + "/tokenize", data=json.dumps({"content": text}).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.key}"} if self.key else {})})
        try:
            with urllib.request.urlopen(req, timeout=CONNECT_TIMEOUT) as resp:
                return len(json.load(resp)["tokens"])
        except (OSError, ValueError, KeyError, TypeError):  # the server cannot count now: the estimate
            return estimate_tokens(text)

    async def apply_settings(self, settings: Settings) -> set[str]:
        """Threads, cores and the model are the server's (Settings -> Engine reaches a Wren server's): what it
        serves is asked again, since the model may have been switched there. The sampling defaults are this
        window's and apply at once."""
        self.settings = settings
        try:
            self.info = await _server_info(self._session, self.url, self.host, settings)
        except RemoteError:  # not reachable now: the next generation says so
            pass
        return set()

    # ---- generation --------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the running generation: its response is closed, which the server takes as the client leaving."""
        self.cancels += 1
        if self._response is not None:
            self._cancelled = True
            self._response.close()

    def _fit(self, request: Request) -> tuple[list[dict], ContextTrimmed | None]:
        """The messages to send. A Wren server trims a conversation that outgrew its context itself (wren_trim);
        for another server the oldest turns are left out here, as Engine does, by the estimated token counts."""
        messages = request.messages
        if not request.trim or self.info.kind == "wren":
            return messages, None
        n_ctx = self.n_ctx
        ids, dropped = fit_messages(self.template, messages, n_ctx, reserve=min(request.max_new_tokens, n_ctx // 4))
        if not dropped:
            return messages, None
        head = 1 if messages[0]["role"] == "system" else 0
        return messages[:head] + messages[head + dropped:], ContextTrimmed(dropped, len(ids))

    def _body(self, request: Request, messages: list[dict]) -> dict:
        s = request.sampling
        body = {"model": self.info.model, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": request.max_new_tokens,
                "temperature": s.temperature, "top_p": s.top_p}
        if s.seed is not None:
            body["seed"] = s.seed
        if self.info.kind in ("wren", "llama-server"):  # llama-server's sampling fields, which Wren takes too
            body.update(top_k=s.top_k, min_p=s.min_p, repeat_penalty=s.repeat_penalty)
        if self.info.kind == "wren":  # Wren's extensions: the mode's format, and trimming on the server
            if request.grammar is not None:
                body["wren_grammar"] = request.grammar
            if request.trim:
                body["wren_trim"] = True
        return body

    async def generate(self, request: Request) -> AsyncIterator[Event]:
        """Events of one generation, ending with Done (as Engine.generate). Waits while another one runs."""
        if self._closed:
            raise EngineClosedError("the engine is closed")
        async with self._lock:
            self._cancelled = False
            stats = Stats()
            parts: list[str] = []
            try:
                if request.messages is None or request.constraint is not None:
                    raise RemoteError("a remote engine takes messages (and a mode's grammar by name), "
                                      "not token ids, raw text or a constraint object")
                async for ev in self._stream(request, stats):
                    if isinstance(ev, Token):
                        parts.append(ev.text)
                    yield ev
            except (RemoteError, ContextFullError) as e:
                stats.finish_reason, stats.error = "error", str(e)
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
                if self._cancelled:
                    stats.finish_reason = "cancelled"
                else:
                    stats.finish_reason = "error"
                    kept = "; the partial answer is kept" if parts else ""
                    stats.error = f"the connection to {self.host} was lost mid-answer ({_describe(e)}){kept}"
            finally:
                self._response = None
            done = Done(stats, "".join(parts))
            self.last_stats = stats
            yield done

    async def _stream(self, request: Request, stats: Stats) -> AsyncIterator[Token | ContextTrimmed]:
        """The events of one streamed answer; stats are filled from the chunks (or measured)."""
        start = time.perf_counter()
        first = last = None
        timings = usage = None
        reason = None
        messages, trimmed = self._fit(request)
        if trimmed is not None:
            yield trimmed
        body = self._body(request, messages)
        async with self._session.post(self.url + "/v1/chat/completions", json=body) as resp:
            if resp.status != 200:
                raise RemoteError(_refusal(resp.status, self.host, await _error_text(resp)))
            self._response = resp
            ended = False
            async for raw in resp.content:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise RemoteError(f"the server at {self.host} sent a chunk that is not JSON: {data[:80]}") \
                        from None
                if "error" in chunk:
                    err = chunk["error"]
                    raise RemoteError(f"the server at {self.host} failed: "
                                      f"{err.get('message') if isinstance(err, dict) else err}")
                trimmed = chunk.get("wren_trimmed")
                if isinstance(trimmed, dict):
                    yield ContextTrimmed(int(trimmed.get("dropped_messages", 0)), int(trimmed.get("prompt_tokens", 0)))
                usage = chunk.get("usage") or usage
                timings = chunk.get("timings") or timings
                for choice in chunk.get("choices") or ():
                    reason = choice.get("finish_reason") or reason
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        last = time.perf_counter()
                        if first is None:
                            first = last
                        stats.generated_tokens += 1
                        yield Token(text)
            if self._cancelled:
                raise aiohttp.ClientConnectionError("stopped")
            if not ended and reason is None:
                raise aiohttp.ClientPayloadError("the server closed the stream before its end")
        stats.finish_reason = reason if reason in ("length", "repetition") else "stop"  # Wren's repetition guard
        _fill_stats(stats, start, first, last, usage, timings)

    # ---- closing -----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.cancel()
        async with self._lock:  # the running generation ends (cancelled) first
            await self._session.close()

    async def __aenter__(self) -> "RemoteEngine":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _fill_stats(stats: Stats, start: float, first: float | None, last: float | None, usage: dict | None,
                timings: dict | None) -> None:
    """The server's figures where it sent them (timings, usage), else those measured here."""
    if first is not None:
        stats.ttft_seconds = first - start
        stats.prefill_seconds = first - start
        stats.decode_seconds = (last or first) - first
    if usage:
        stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        stats.generated_tokens = int(usage.get("completion_tokens") or stats.generated_tokens)
        stats.cached_tokens = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    if timings:
        cached = int(timings.get("cache_n") or 0)
        stats.cached_tokens = cached
        stats.prompt_tokens = int(timings.get("prompt_n") or 0) + cached
        stats.prefill_seconds = float(timings.get("prompt_ms") or 0.0) / 1000.0
        stats.generated_tokens = int(timings.get("predicted_n") or stats.generated_tokens)
        stats.decode_seconds = float(timings.get("predicted_ms") or 0.0) / 1000.0
        if timings.get("ttft_ms") is not None:
            stats.ttft_seconds = float(timings["ttft_ms"]) / 1000.0


def _describe(e: BaseException) -> str:
    return str(e) or type(e).__name__


async def _server_info(session: aiohttp.ClientSession, root: str, host: str, settings: Settings) -> ServerInfo:
    try:
        async with session.get(root + "/v1/models") as resp:
            if resp.status != 200:
                raise RemoteError(_refusal(resp.status, host, await _error_text(resp)))
            try:
                models = (await resp.json(content_type=None))["data"]
                model = models[0]
            except (ValueError, KeyError, IndexError, TypeError):
                raise RemoteError(f"{host} is not an OpenAI-compatible server (GET /v1/models lists no model)") \
                    from None
        if model.get("owned_by") == "wren":
            meta = model.get("meta") or {}
            return ServerInfo("wren", str(model.get("id")), meta.get("n_ctx"), meta.get("threads"))
        async with session.get(root + "/props") as resp:  # llama-server says its context length here
            props = await resp.json(content_type=None) if resp.status == 200 else None
        gen = props.get("default_generation_settings") if isinstance(props, dict) else None
        if isinstance(gen, dict):
            return ServerInfo("llama-server", str(model.get("id")), gen.get("n_ctx"), None)
        return ServerInfo("openai", str(model.get("id")), None, None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
        raise RemoteError(f"cannot reach the server at {host}: {_describe(e)}") from None


async def open_engine(path=None, settings: Settings | None = None,
                      progress: Callable[[int, int], None] | None = None, **kw) -> Engine | RemoteEngine:
    """What the window opens: the settings' server when engine_url is set, else the model on this computer."""
    settings = settings or Settings()
    if settings.engine_url:
        return await RemoteEngine.open(settings.engine_url, settings.engine_key, settings)
    return await Engine.open(path, settings, progress=progress, **kw)


async def admin(url: str, key: str = "", changes: dict | None = None) -> dict:
    """A Wren server's engine settings (GET /wren/v1/admin/settings), or changed (POST with changes): threads,
    cores, custom_cpus, strict_pinning; with its CPUs and installed models. RemoteError says why not."""
    root = server_root(url)
    host = host_of(root)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as session:
            call = session.post(root + "/wren/v1/admin/settings", json=changes) if changes is not None else \
                session.get(root + "/wren/v1/admin/settings")
            async with call as resp:
                if resp.status == 404:
                    raise RemoteError(f"the server at {host} is not a Wren server: its cores are its own")
                if resp.status != 200:
                    raise RemoteError(_refusal(resp.status, host, await _error_text(resp)))
                return await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as e:
        raise RemoteError(f"cannot reach the server at {host}: {_describe(e)}") from None
