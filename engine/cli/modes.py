"""The assistant modes from the command line: email, reply, summarize."""
from __future__ import annotations

import argparse
import sys

from wren.engine.cli.common import emit_json, read_arg_file, read_input, run_cancellable


def cmd_email(args: argparse.Namespace) -> int:
    from wren.engine.assistant import draft_email

    thread = read_input(args.thread) if args.thread else ""

    async def job(engine):
        return await draft_email(engine, args.points, to=args.to or "", thread=thread, tone=args.tone,
                                 length=args.length)

    draft = run_cancellable(args, job)
    if args.json:
        emit_json({"subject": draft.subject, "body": draft.body})
    else:
        print(f"Subject: {draft.subject}\n\n{draft.body}")
    return 130 if draft.cancelled else 0


def cmd_reply(args: argparse.Namespace) -> int:
    from wren.engine.assistant import smart_reply

    message = read_arg_file(args.file)

    async def job(engine):
        return await smart_reply(engine, message)

    result = run_cancellable(args, job)
    if args.json:
        emit_json(result.as_json())
    elif result.no_reply_needed:
        print(f"No reply needed: {result.reason}.")
    else:
        for i, r in enumerate(result.replies, 1):
            print(f"{i}. {r}")
    return 130 if result.reason == "cancelled" else 0


def cmd_summarize(args: argparse.Namespace) -> int:
    """The summary alone goes to stdout, once it is final (tidied to its style); how the job gets on goes to stderr:
    a redrawn line on a terminal, else a line per quarter when the text is long enough to be cut into parts."""
    from wren.engine.assistant import summarize

    text = read_arg_file(args.file)
    terminal = sys.stderr.isatty() and not args.json
    state = {"parts": 0, "quarter": 0, "words": 0}

    def redraw(line: str) -> None:
        sys.stderr.write(f"\r{line:40}")
        sys.stderr.flush()

    def on_parts(n: int) -> None:
        state["parts"] = n
        if not terminal and not args.json:
            print(f"wren: summarizing a long text in {n} parts", file=sys.stderr, flush=True)

    def progress(frac: float) -> None:
        if terminal:
            redraw(f"summarizing {100 * frac:3.0f}%")
        elif state["parts"] and not args.json and int(frac * 4) > state["quarter"]:
            state["quarter"] = int(frac * 4)
            print(f"wren: summarizing {25 * state['quarter']}%", file=sys.stderr, flush=True)

    def on_token(piece: str) -> None:
        state["words"] += piece.count(" ")
        if terminal:
            redraw(f"summarizing, writing ({state['words']} words)")

    async def job(engine):
        return await summarize(engine, text, style=args.style, length=args.length, progress=progress,
                               on_token=on_token, on_parts=on_parts)

    try:
        result = run_cancellable(args, job)
    finally:
        if terminal:
            redraw("")
            sys.stderr.write("\r")
    if args.json:
        emit_json({"summary": result.summary})
    else:
        print(result.summary)
    return 130 if result.cancelled else 0
