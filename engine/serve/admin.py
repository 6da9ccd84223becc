"""What a window using this server as its engine asks beyond the OpenAI API: token counts, and the engine's own
settings (threads and cores of this machine, its installed models).

    POST /tokenize                   {"content", "add_special"?} -> {"tokens": [...]} (as llama-server's)
    GET  /wren/v1/admin/settings     threads, cores, CPUs of this machine, the model and the installed ones
    POST /wren/v1/admin/settings     {model?, threads?, cores?, custom_cpus?, strict_pinning?} -> the same, applied

A model is one of the installed ones, by name (never a path): the running requests end, new ones are answered 503
with Retry-After while it loads, and if it cannot be opened the server goes on with the model it had.

Like every route but /health these need the server's key when it has one.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from aiohttp import web

from wren.engine.library import catalog
from wren.engine.runtime import placement, topology
from wren.engine.serve import protocol as P
from wren.engine.serve.protocol import ApiError
from wren.engine.settings import CORE_PRESETS, SettingsError

log = logging.getLogger("wren.serve")


async def tokenize(request: web.Request) -> web.Response:
    from wren.engine.serve.app import engine_of, read_body

    engine = engine_of(request)
    f = P.Fields(await read_body(request))
    content = f.get("content", str, required=True)
    add_special = f.get("add_special", bool, False)
    f.finish()
    ids = await asyncio.to_thread(engine.tokenizer.encode, content, add_special=add_special)
    return web.json_response({"tokens": [int(i) for i in ids]})


def _state(engine) -> dict:
    topo = topology.read_topology()
    s = engine.settings
    return {"model": engine.model_name, "file": engine.path.name, "threads": engine.threads,
            "cpus": list(engine.cpus) if engine.cpus else None, "pinned": engine.pinned,
            "settings": {"threads": s.threads, "cores": s.cores, "custom_cpus": list(s.custom_cpus),
                         "strict_pinning": s.strict_pinning},
            "machine": {"allowed": list(topo.allowed),
                        "cpus": [{"id": c.id, "core": c.core_name, "max_freq_khz": c.max_freq_khz,
                                  "cluster": c.cluster} for c in topo.cpus if c.online]},
            "models": [{"name": m.name, "size": m.size, "serving": _same_file(m.path, engine.path)}
                       for m in catalog.installed()]}


def _same_file(a, b) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


async def get_settings(request: web.Request) -> web.Response:
    from wren.engine.serve.app import engine_of

    engine = engine_of(request)
    return web.json_response(await asyncio.to_thread(_state, engine))


async def _switch(request: web.Request, name: str) -> None:
    """Put the installed model `name` in the served engine's place (see the module's docstring)."""
    from wren.engine.engine import Engine
    from wren.engine.serve.app import GATE, SERVED

    served, gate = request.app[SERVED], request.app[GATE]
    models = await asyncio.to_thread(catalog.installed)
    chosen = next((m for m in models if name.lower() in (m.name.lower(), m.path.name.lower())), None)
    if chosen is None:
        raise ApiError(400, f"no installed model is called {name[:80]!r}; installed: "
                            f"{', '.join(m.name for m in models) or 'none'}", param="model")
    old = served.engine
    if _same_file(chosen.path, old.path):
        return
    gate.switching = True
    try:
        await gate.idle()
        await old.close()
        try:
            served.engine = await Engine.open(chosen.name, old.settings)
        except Exception as e:  # the file is refused, or does not fit in memory: the server keeps its model
            log.warning("cannot switch to %s (%s); back to %s", chosen.name, e, old.model_name)
            served.engine = await Engine.open(old.path, old.settings)
            raise ApiError(400, f"cannot open {chosen.name}: {e}", param="model") from None
        log.info("now serving %s", served.engine.model_name)
        if served.advertiser is not None:
            await served.advertiser.update_model(served.engine.model_name)
    finally:
        gate.switching = False


async def post_settings(request: web.Request) -> web.Response:
    from wren.engine.serve.app import engine_of, read_body

    engine_of(request)  # not while a switch runs
    f = P.Fields(await read_body(request))
    model = f.get("model", str)
    changes = {"threads": f.get("threads", int), "cores": f.get("cores", str),
               "custom_cpus": f.get("custom_cpus", list), "strict_pinning": f.get("strict_pinning", bool)}
    f.finish()
    changes = {k: v for k, v in changes.items() if v is not None}
    if "cores" in changes and changes["cores"] not in CORE_PRESETS:
        raise ApiError(400, f"cores must be one of {', '.join(CORE_PRESETS)}", param="cores")
    if "custom_cpus" in changes:
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in changes["custom_cpus"]):
            raise ApiError(400, "custom_cpus must be a list of CPU numbers", param="custom_cpus")
        changes["custom_cpus"] = tuple(changes["custom_cpus"])
    engine = engine_of(request)
    try:
        new = replace(engine.settings, **changes).validated()
        placement.place(new, topology.read_topology())  # CPUs this machine has and this process may use
        if changes:
            await engine.apply_settings(new)
    except SettingsError as e:
        raise ApiError(400, str(e), param=next(iter(changes), None)) from None
    if model is not None:
        await _switch(request, model)
    return web.json_response(await asyncio.to_thread(_state, engine_of(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/tokenize", tokenize)
    app.router.add_get("/wren/v1/admin/settings", get_settings)
    app.router.add_post("/wren/v1/admin/settings", post_settings)
