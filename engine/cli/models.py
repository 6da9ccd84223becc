"""`wren models`: the model library (list, fetch, import, remove) and Hugging Face (fetch hf:..., search)."""
from __future__ import annotations

import argparse
import sys

from wren.engine.cli.common import emit_json


def cmd_models(args: argparse.Namespace) -> int:
    from wren.engine.library import catalog, hub

    if args.action == "list":
        rows = []
        have = {m.name: m for m in catalog.installed()}
        for m in have.values():
            try:
                info = catalog.describe(m.path)
                detail = f"{info.architecture}, {info.parameters / 1e6:.0f}M parameters, {info.quantization}"
            except Exception as e:  # a damaged file is listed with its problem
                info, detail = None, f"unreadable: {e}"
            rows.append(dict(name=m.name, installed=True, source=m.source, path=str(m.path), size=m.size,
                             detail=detail))
        for k in catalog.CATALOG.values():
            if k.name not in have:
                rows.append(dict(name=k.name, installed=False, source="", path="", size=k.size,
                                 detail=k.description))
        if args.json:
            emit_json(rows)
            return 0
        for r in rows:
            state = f"installed ({r['source']})" if r["installed"] else "not installed: wren models fetch " + r["name"]
            print(f"{r['name']:32s} {r['size'] / 2**20:8.1f} MiB  {state}\n{'':32s} {r['detail']}")
            if r["path"]:
                print(f"{'':32s} {r['path']}")
        return 0
    if not args.name:
        raise ValueError(f"wren models {args.action} needs a "
                         f"{ {'import': 'file', 'search': 'text or OWNER/REPO'}.get(args.action, 'model name')}")
    bar = catalog.copy_progress_bar() if sys.stderr.isatty() else None
    if args.action == "search":
        return _search(args.name, args.json)
    if args.action == "fetch":
        path = (hub.fetch if args.name.startswith(hub.PREFIX) else catalog.fetch)(args.name, progress=bar)
        print(f"{path}")
    elif args.action == "import":
        path = catalog.import_file(args.name, progress=bar)
        print(f"{path}")
    elif args.action == "remove":
        path = catalog.remove(args.name)
        print(f"removed {path}")
    return 0


def _search(text: str, as_json: bool) -> int:
    """GGUF files of OWNER/REPO (size, quantization), or GGUF repos matching the text, a line each."""
    from dataclasses import asdict

    from wren.engine.library import hub

    found = hub.search(text)
    if as_json:
        emit_json([asdict(f) for f in found])
        return 0
    for f in found:
        if isinstance(f, hub.HubFile):
            size = f"{f.size / 2**20:9.1f} MiB" if f.size is not None else f"{'?':>13s}"
            print(f"{f.quantization or '-':8s} {size}  hf:{f.repo}/{f.path}")
        else:
            print(f"{f.repo:60s} {f.downloads or 0:>10d} downloads")
    if not found:
        print(f"no GGUF {'file' if '/' in text else 'repo'} found for {text!r}", file=sys.stderr)
    return 0
