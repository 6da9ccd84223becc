"""`wren serve`: an OpenAI-compatible HTTP server (aiohttp) on the engine's own asyncio loop.

    GET  /health                    {"status": "ok"} (no key needed)
    GET  /v1/models                 the one model served
    POST /v1/chat/completions       messages; stream (SSE, data: [DONE]); response_format json_object/json_schema
    POST /v1/completions            raw text prompt
    POST /wren/v1/email|reply|summarize   the assistant modes, answering the JSON of `wren <mode> --json`

One generation runs at a time (the engine's lock); at most `queue` more wait, and a request beyond that is answered
503 with Retry-After. A client that goes away cancels its generation. With an API key every route but /health
needs `Authorization: Bearer <key>` (compared in constant time).
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from wren.engine.engine import ContextTrimmed, Done, Engine, Request, Token
from wren.engine.runtime.chat_template import ChatTemplateError
from wren.engine.runtime.constrained import Constraint, ConstraintError
from wren.engine.runtime.generate import ContextFullError
from wren.engine.serve import protocol as P
from wren.engine.serve.protocol import ApiError

log = logging.getLogger("wren.serve")

DEFAULT_PORT = 8080
DEFAULT_QUEUE = 4
DEFAULT_MAX_BODY = 4 << 20
LOOPBACK = ("127.0.0.1", "::1", "localhost")

SERVED = web.AppKey("served", object)
CONFIG = web.AppKey("config", dict)
GATE = web.AppKey("gate", object)


class Served:
    """The engine the server answers with. The admin API can put another installed model in its place (the gate
    is paused meanwhile)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.advertiser = None  # the mDNS announcement (serve --advertise), which names the model


def switching_error() -> ApiError:
    return ApiError(503, "the server is switching to another model; retry shortly", type="server_busy",
                    code="switching_model", headers={"Retry-After": "5"})


def engine_of(request: web.Request) -> Engine:
    if request.app[GATE].switching:
        raise switching_error()
    return request.app[SERVED].engine


class Gate:
    """Admission: one request runs, `queue` wait; beyond that the server is busy. Counts how requests ended.
    While the model is switched (switching) nothing new is admitted, and the switch waits for idle()."""

    def __init__(self, queue: int):
        self.limit = 1 + queue
        self.active = 0
        self.counts = {"answered": 0, "cancelled": 0, "refused": 0, "failed": 0}
        self.switching = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def idle(self) -> None:
        """Until no request runs or waits."""
        await self._idle.wait()

    @contextlib.contextmanager
    def admit(self):
        if self.switching:
            self.counts["refused"] += 1
            raise switching_error()
        if self.active >= self.limit:
            self.counts["refused"] += 1
            raise ApiError(503, f"the server is busy ({self.active} requests running or waiting); retry later",
                           type="server_busy", code="queue_full", headers={"Retry-After": "2"})
        self.active += 1
        self._idle.clear()
        outcome = "failed"
        try:
            yield
            outcome = "answered"
        except (asyncio.CancelledError, ConnectionResetError):  # the client went away
            outcome = "cancelled"
            raise
        finally:
            self.active -= 1
            self.counts[outcome] += 1
            if self.active == 0:
                self._idle.set()


def check_bind(host: str, api_key: str | None) -> None:
    """Binding anything but loopback needs an API key."""
    if host not in LOOPBACK and not api_key:
        raise ValueError(f"binding {host} exposes the engine to the network: give an API key with --api-key or "
                         "WREN_API_KEY (clients send it as Authorization: Bearer <key>), or bind 127.0.0.1")


# ---- middleware -------------------------------------------------------------------------------------------------


def _error_response(e: ApiError) -> web.Response:
    return web.json_response(e.body(), status=e.status, headers=e.headers)


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return _error_response(e)
    except web.HTTPException as e:  # 404, 405, 413 from aiohttp itself: the same error body
        if e.status < 400:
            raise
        kind = "not_found_error" if e.status == 404 else "invalid_request_error"
        return web.json_response(P.error_body(e.reason or str(e), kind), status=e.status)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # a bug: the client gets a 500 with an error body, the log the traceback
        log.exception("internal error on %s %s", request.method, request.path)
        return web.json_response(P.error_body("internal server error", "server_error"), status=500)


def auth(api_key: str | None):
    expected = f"Bearer {api_key}".encode() if api_key else None

    @web.middleware
    async def check(request: web.Request, handler):
        if expected is not None and request.path != "/health":
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise ApiError(401, "a valid API key is required (Authorization: Bearer <key>)",
                               type="authentication_error", code="invalid_api_key")
        return await handler(request)

    return check


# ---- simple routes ----------------------------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    gate = request.app[GATE]
    return web.json_response({"status": "ok", "busy": gate.active > 0, "waiting": max(gate.active - 1, 0),
                              "requests": gate.counts})


async def models(request: web.Request) -> web.Response:
    engine = engine_of(request)
    return web.json_response({"object": "list", "data": [
        {"id": engine.model_name, "object": "model", "created": int(engine.path.stat().st_mtime),
         "owned_by": "wren", "meta": {"n_ctx": engine.n_ctx, "threads": engine.threads,
                                      "n_vocab": engine.tokenizer.vocab_size, "file": engine.path.name}}]})


async def read_body(request: web.Request) -> dict:
    return P.parse_json(await request.read())  # over the size limit: aiohttp's 413


# ---- generation -------------------------------------------------------------------------------------------------


async def _prepare(engine: Engine, req: P.GenRequest) -> Request:
    """The engine request: prompt length checked against the context, the constraint compiled (off the loop)."""
    def build():
        if req.messages is not None:
            try:
                n = len(engine.template.encode(req.messages))
            except ChatTemplateError as e:  # a conversation the model's template refuses (roles out of order)
                raise ApiError(400, str(e), param="messages") from None
        else:
            n = len(engine.tokenizer.encode(req.text, add_special=True, parse_special=True))
        if n + 1 >= engine.n_ctx and not req.trim:
            raise ApiError(400, f"the prompt has {n} tokens and the context holds {engine.n_ctx}",
                           code="context_length_exceeded", param="messages" if req.messages else "prompt")
        constraint = None
        if req.response_format is not None:
            stops = engine.template.stop_ids if req.messages is not None else ()
            try:
                constraint = Constraint.json_schema(req.response_format["schema"], engine.tokenizer, stops)
            except ConstraintError as e:
                raise ApiError(400, str(e), param="response_format") from None
        limit = req.max_tokens or max(engine.n_ctx - n - 1, engine.n_ctx // 4)
        return Request(messages=req.messages, text=req.text, sampling=req.sampling, max_new_tokens=limit,
                       trim=req.trim, constraint=constraint, grammar=req.grammar)

    try:
        return await asyncio.to_thread(build)
    except ContextFullError as e:
        raise ApiError(400, str(e), code="context_length_exceeded") from None


async def _events(engine: Engine, request: Request, stops: P.StopStrings):
    """(text piece, None) as they may be shown, then (None, (stats, reason)); (ContextTrimmed, None) when the oldest
    messages were left out (wren_trim). A stop string cancels the generation; what comes after it is not shown."""
    stopped = False
    async with contextlib.aclosing(engine.generate(request)) as gen:
        async for ev in gen:
            if isinstance(ev, ContextTrimmed):
                yield ev, None
            elif isinstance(ev, Token) and not stopped:
                shown, stopped = stops.feed(ev.text)
                if shown:
                    yield shown, None
                if stopped:
                    engine.cancel()  # the Done that follows still brings the counts
            elif isinstance(ev, Done):
                if ev.reason == "error":
                    raise ApiError(500, ev.error, type="server_error")
                if not stopped:
                    tail = stops.flush()
                    if tail:
                        yield tail, None
                yield None, (ev.stats, P.finish_reason(ev.stats, stopped))


async def _generate(request: web.Request, chat: bool) -> web.StreamResponse:
    engine = engine_of(request)
    body = await read_body(request)
    defaults = engine.settings.mode("chat").params()
    parse = P.chat_request if chat else P.completion_request
    req = parse(body, defaults, engine.n_ctx)
    with request.app[GATE].admit():
        ereq = await _prepare(engine, req)
        model = engine.model_name
        rid = P.new_id("chatcmpl" if chat else "cmpl")
        # closed on every way out (a client gone mid-stream included), so that the engine is freed at once
        async with contextlib.aclosing(_events(engine, ereq, P.StopStrings(req.stop))) as events:
            if req.stream:
                return await _stream(request, events, rid, model, chat, req.include_usage)
            parts = []
            async for piece, end in events:
                if isinstance(piece, ContextTrimmed):
                    continue
                if piece is not None:
                    parts.append(piece)
                else:
                    stats, reason = end
            answer = P.chat_answer if chat else P.completion_answer
            return web.json_response(answer(rid, model, "".join(parts), reason, stats))


async def _stream(request: web.Request, events, rid: str, model: str, chat: bool,
                  include_usage: bool) -> web.StreamResponse:
    created = int(time.time())
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    started = False

    async def send(obj) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        await resp.write(f"data: {data}\n\n".encode())

    def chunk(delta_text: str | None, reason: str | None = None, role: bool = False) -> dict:
        if chat:
            delta = {"role": "assistant", "content": ""} if role else (
                {"content": delta_text} if delta_text is not None else {})
            return P.chat_chunk(rid, model, created, delta, reason)
        return P.completion_chunk(rid, model, created, delta_text or "", reason)

    try:
        async for piece, end in events:
            if not started:  # the headers go out with the first piece, so that an early error is still a 4xx
                await resp.prepare(request)
                started = True
                if chat:
                    await send(chunk(None, role=True))
            if isinstance(piece, ContextTrimmed):  # only asked for by wren_trim: a chunk that says so
                await send({**chunk(None), "wren_trimmed": {"dropped_messages": piece.dropped_messages,
                                                            "prompt_tokens": piece.prompt_tokens}})
                continue
            if piece is not None:
                await send(chunk(piece))
                continue
            stats, reason = end
            last = chunk(None, reason)
            last["usage"] = P.usage(stats)
            last["timings"] = P.timings(stats)
            await send(last)
            if include_usage:
                tail = chunk(None)
                tail["choices"] = []
                tail["usage"] = P.usage(stats)
                await send(tail)
            await send("[DONE]")
    except ApiError as e:
        if not started:
            raise
        await send(e.body())
        await send("[DONE]")
    await resp.write_eof()
    return resp


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=True)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, chat=False)


# ---- the application ---------------------------------------------------------------------------------------------


def make_app(engine: Engine, api_key: str | None = None, queue: int = DEFAULT_QUEUE,
             max_body: int = DEFAULT_MAX_BODY) -> web.Application:
    from wren.engine.serve import admin, modes

    app = web.Application(middlewares=[errors, auth(api_key)], client_max_size=max_body)
    app[SERVED] = Served(engine)
    app[GATE] = Gate(queue)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    modes.add_routes(app)
    admin.add_routes(app)
    return app


async def serve(engine: Engine, host: str = "127.0.0.1", port: int = DEFAULT_PORT, api_key: str | None = None,
                queue: int = DEFAULT_QUEUE, max_body: int = DEFAULT_MAX_BODY,
                ready=None, advertise: bool = False) -> None:
    """Serve until cancelled. ready(url) is called once the socket listens; with advertise, the server is
    announced on the local network (mDNS, engine/serve/mdns.py) while it runs."""
    check_bind(host, api_key)
    # tokenizing prompts and compiling grammars off the loop: one helper thread, so the thread count stays flat
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="wren-serve"))
    app = make_app(engine, api_key, queue, max_body)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    advertiser = None
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound = runner.addresses[0]
        if advertise:
            from wren.engine.serve.mdns import Advertiser

            advertiser = Advertiser(host, bound[1], engine.model_name, bool(api_key))
            await advertiser.start()
            app[SERVED].advertiser = advertiser
        if ready is not None:
            ready(f"http://{host if ':' not in host else f'[{host}]'}:{bound[1]}")
        await asyncio.Event().wait()
    finally:
        if advertiser is not None:
            await advertiser.stop()
        await runner.cleanup()


def configure_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="wren serve: %(message)s")
