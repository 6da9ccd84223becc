"""A stand-in for the Hugging Face Hub on 127.0.0.1, for the calls huggingface_hub makes to fetch and search models.

Two origins, as on the real hub: the hub (HEAD/GET /{repo}/resolve/{revision}/{file}, /api/models, /api/models/{repo})
and a CDN on another port that LFS files are redirected to (GET /cdn/{sha256}, with Range). The hub answers a
resolve with X-Repo-Commit, ETag (the git oid of the LFS pointer), X-Linked-Etag (the sha256) and X-Linked-Size, and
with a 302 to the CDN (or, with redirect=False, the file itself). Every request is logged with its headers."""
from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from dataclasses import dataclass, field

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Request:
    method: str
    origin: str  # "hub" or "cdn"
    path: str
    query: dict
    headers: dict


@dataclass
class HubServer:
    """repos: {"owner/name": {path in repo: bytes}}. token: the Authorization the hub requires (None: any).
    lie_sha256, lie_size: files (by path) whose X-Linked-Etag is wrong, whose X-Linked-Size is
    10 bytes short. drop_once: files (by path) whose first CDN transfer
    stops halfway (the connection closes). redirect: LFS files are sent from the CDN (else from resolve)."""
    repos: dict = field(default_factory=dict)
    token: str | None = None
    lie_sha256: set = field(default_factory=set)
    lie_size: set = field(default_factory=set)
    drop_once: set = field(default_factory=set)
    redirect: bool = True
    log: list = field(default_factory=list)

    # ---- running it on a thread of its own ----

    def __enter__(self) -> "HubServer":
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sites = [web.TCPSite(self._runner, "127.0.0.1", 0) for _ in range(2)]
        for s in sites:
            await s.start()
        self.hub_port, self.cdn_port = (s._server.sockets[0].getsockname()[1] for s in sites)
        self.endpoint = f"http://127.0.0.1:{self.hub_port}"

    # ---- what it serves ----

    def requests(self, method: str | None = None, origin: str | None = None) -> list[Request]:
        return [r for r in self.log
                if (method is None or r.method == method) and (origin is None or r.origin == origin)]

    def _files(self) -> dict:
        return {hashlib.sha256(data).hexdigest(): data for files in self.repos.values() for data in files.values()}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        origin = "cdn" if request.url.port == self.cdn_port else "hub"
        self.log.append(Request(request.method, origin, request.path, dict(request.query), dict(request.headers)))
        if origin == "cdn":
            m = re.fullmatch(r"/cdn/([0-9a-f]{64})", request.path)
            data = self._files().get(m.group(1)) if m else None
            if data is None:
                return web.Response(status=404)
            return await self._send(request, data, self._path_of(data))
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401, headers={"X-Error-Code": "RepoNotFound"},
                                text='{"error": "Invalid credentials"}', content_type="application/json")
        if request.path == "/api/models":
            return self._list_models(request)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", request.path)
        if m:
            return self._model_info(m.group(1), request.query.get("blobs", "").lower() == "true")
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", request.path)
        if m and request.method in ("HEAD", "GET"):
            return await self._resolve(request, *m.groups())
        return web.Response(status=404)

    def _path_of(self, data: bytes) -> str:
        return next(p for files in self.repos.values() for p, d in files.items() if d is data)

    def _list_models(self, request: web.Request) -> web.Response:
        text = request.query.get("search", "").lower()
        gguf = "gguf" in request.query.getall("filter", [])
        found = [dict(id=repo, modelId=repo, downloads=100 * (i + 1), likes=i, tags=["gguf"] if gguf else [])
                 for i, repo in enumerate(self.repos) if text in repo.lower()]
        return web.json_response(found)

    def _model_info(self, repo: str, blobs: bool) -> web.Response:
        files = self.repos.get(repo)
        if files is None:
            return web.Response(status=404, headers={"X-Error-Code": "RepoNotFound"})
        siblings = []
        for path, data in files.items():
            s = {"rfilename": path}
            if blobs:
                s.update(size=len(data), blobId=hashlib.sha1(data).hexdigest(),
                         lfs={"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134})
            siblings.append(s)
        return web.json_response(dict(id=repo, modelId=repo, sha=COMMIT, siblings=siblings, tags=["gguf"]))

    async def _resolve(self, request: web.Request, repo: str, revision: str, path: str) -> web.StreamResponse:
        files = self.repos.get(repo)
        if files is None:
            return web.Response(status=404, headers={"X-Error-Code": "RepoNotFound"})
        if revision not in ("main", COMMIT):
            return web.Response(status=404, headers={"X-Error-Code": "RevisionNotFound"})
        data = files.get(path)
        if data is None:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        sha = hashlib.sha256(data).hexdigest()
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                   "X-Linked-Etag": f'"{"0" * 64 if path in self.lie_sha256 else sha}"',
                   "X-Linked-Size": str(len(data) - 10 if path in self.lie_size else len(data))}
        if self.redirect:
            headers["Location"] = f"http://127.0.0.1:{self.cdn_port}/cdn/{sha}?signature=x"
            return web.Response(status=302, headers=headers)
        return await self._send(request, data, path, headers)

    async def _send(self, request: web.Request, data: bytes, path: str, headers: dict | None = None):
        """The file (from byte N on, for Range: bytes=N-); for a drop_once file, half of it and a closed connection."""
        headers = dict(headers or {}, **{"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"})
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", request.headers.get("Range", ""))
        if m:
            start, status = int(m.group(1)), 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if request.method == "HEAD":
            return web.Response(status=status, headers=dict(headers, **{"Content-Length": str(len(body))}))
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = len(body)
        await resp.prepare(request)
        if path in self.drop_once:
            self.drop_once.discard(path)
            await resp.write(body[: len(body) // 2])
            request.transport.close()  # the peer sees a body cut short
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp
