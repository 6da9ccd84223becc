"""The assistant modes over HTTP: POST /wren/v1/email, /wren/v1/reply, /wren/v1/summarize.

Each answers exactly the JSON of `wren email|reply|summarize --json`; bad inputs (an unknown tone, an empty text)
are 400s with the OpenAI-style error body.
"""
from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from wren.engine import assistant
from wren.engine.serve import protocol as P
from wren.engine.serve.protocol import ApiError


def _sampling(engine, mode: str, f: P.Fields):
    params = engine.settings.mode(mode).params()
    seed = f.get("seed", int)
    temperature = f.number("temperature", None, 0.0, 2.0)
    if seed is not None:
        params = replace(params, seed=seed)
    if temperature is not None:
        params = replace(params, temperature=temperature)
    return params


async def _run(request: web.Request, mode: str, job) -> web.Response:
    from wren.engine.serve.app import GATE, engine_of, read_body

    engine = engine_of(request)
    f = P.Fields(await read_body(request))
    with request.app[GATE].admit():
        try:
            return web.json_response(await job(engine, f, _sampling(engine, mode, f)))
        except assistant.ModeError as e:
            raise ApiError(400, str(e)) from None


def _text(f: P.Fields, name: str, required: bool = False) -> str:
    return f.get(name, str, "", required=required)


async def email(request: web.Request) -> web.Response:
    async def job(engine, f, sampling):
        args = dict(points=_text(f, "points", True), to=_text(f, "to"), thread=_text(f, "thread"),
                    tone=f.get("tone", str, "neutral"), length=f.get("length", str, "medium"))
        f.finish()
        draft = await assistant.draft_email(engine, sampling=sampling, **args)
        return {"subject": draft.subject, "body": draft.body}

    return await _run(request, "email", job)


async def reply(request: web.Request) -> web.Response:
    async def job(engine, f, sampling):
        message = _text(f, "message", True)
        f.finish()
        return (await assistant.smart_reply(engine, message, sampling=sampling)).as_json()

    return await _run(request, "reply", job)


async def summarize(request: web.Request) -> web.Response:
    async def job(engine, f, sampling):
        args = dict(text=_text(f, "text", True), style=f.get("style", str, "paragraph"),
                    length=f.get("length", str, "medium"))
        f.finish()
        return {"summary": (await assistant.summarize(engine, sampling=sampling, **args)).summary}

    return await _run(request, "summarize", job)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/wren/v1/email", email)
    app.router.add_post("/wren/v1/reply", reply)
    app.router.add_post("/wren/v1/summarize", summarize)
