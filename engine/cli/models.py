"""`wren models`: the model library (list, fetch, import, remove)."""
from __future__ import annotations

import argparse
import sys

from wren.engine.cli.common import emit_json


def cmd_models(args: argparse.Namespace) -> int:
    from wren.engine.library import catalog

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
        raise ValueError(f"wren models {args.action} needs a {'file' if args.action == 'import' else 'model name'}")
    bar = catalog.copy_progress_bar() if sys.stderr.isatty() else None
    if args.action == "fetch":
        path = catalog.fetch(args.name, progress=bar)
        print(f"{path}")
    elif args.action == "import":
        path = catalog.import_file(args.name, progress=bar)
        print(f"{path}")
    elif args.action == "remove":
        path = catalog.remove(args.name)
        print(f"removed {path}")
    return 0
