"""What the commands share: settings with the command's flags, opening the engine, reading input, Ctrl+C, JSON."""
from __future__ import annotations

import argparse
import sys


def version() -> str:
    try:
        from importlib.metadata import version

        return version("wren")
    except Exception:
        return "unknown"


def with_flags(s, args: argparse.Namespace):
    """Settings with the command's -m, -t, --ctx and --weights where given. Threads or cores this machine cannot
    honour are said before a model loads: wrong cores refused, more threads than CPUs clamped with a note."""
    from dataclasses import replace

    from wren.engine.runtime import placement, topology

    if getattr(args, "model", None):
        s = replace(s, model=args.model)
    if getattr(args, "threads", None):
        try:
            s = replace(s, threads=int(args.threads))
        except ValueError:
            raise ValueError(f"-t takes a number of threads, not {args.threads!r}") from None
    if getattr(args, "ctx", None) is not None:
        from wren.engine.cli.flags import check_model_context

        s = replace(s, context_length=args.ctx)
        check_model_context(s)
    if getattr(args, "weights", None):
        s = replace(s, weight_policy=args.weights)
    s = s.validated()
    note = placement.place(s, topology.read_topology()).note
    if note:
        print(f"wren: {note}", file=sys.stderr)
    return s


def read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def load_settings(args: argparse.Namespace):
    from wren.engine import settings as wsettings

    loaded = wsettings.load()
    if loaded.problem:
        print(f"wren: {loaded.problem}", file=sys.stderr)
    return with_flags(loaded.settings, args)


async def open_engine(args: argparse.Namespace):
    from wren.engine.engine import Engine

    settings = load_settings(args)
    show = sys.stderr.isatty() and not getattr(args, "json", False)

    def progress(done: int, total: int) -> None:
        if show:
            sys.stderr.write(f"\rloading the model {100 * done // max(total, 1):3d}%")
            if done >= total:
                sys.stderr.write("\r" + " " * 24 + "\r")
            sys.stderr.flush()

    return await Engine.open(None, settings, progress=progress)


def read_arg_file(path: str | None) -> str:
    text = read_input(path or "-")
    if not text.strip():
        raise ValueError("the input is empty")
    return text


def run_cancellable(args: argparse.Namespace, job):
    """Open the engine and run `await job(engine)`; Ctrl+C cancels the generation in progress (the job then ends
    with what it has)."""
    import asyncio
    import signal

    async def main():
        engine = await open_engine(args)
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, engine.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        try:
            return await job(engine)
        finally:
            await engine.close()

    return asyncio.run(main())


def emit_json(obj) -> None:
    import json

    print(json.dumps(obj, ensure_ascii=False))
