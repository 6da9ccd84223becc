"""`wren serve`: the OpenAI-compatible server (engine/serve/)."""
from __future__ import annotations

import argparse
import os

from wren.engine.cli.common import open_engine


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from wren.engine.serve import app as server

    api_key = args.api_key or os.environ.get("WREN_API_KEY") or None
    server.check_bind(args.host, api_key)  # refused before the long model load
    if args.advertise:
        from wren.engine.serve.mdns import check_host

        check_host(args.host)
    if args.queue < 0 or args.max_body_mb <= 0:
        raise ValueError("--queue must be 0 or more and --max-body-mb above 0")
    server.configure_logging()

    def ready(url: str) -> None:
        print(f"wren serve: {url} (OpenAI API at {url}/v1{', key required' if api_key else ''})", flush=True)

    async def main():
        engine = await open_engine(args)
        try:
            await server.serve(engine, args.host, args.port, api_key, args.queue, int(args.max_body_mb * 2**20),
                               ready, args.advertise)
        finally:
            await engine.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0
