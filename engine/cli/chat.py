"""`wren chat`: a conversation in the terminal, kept in the same history as the window's."""
from __future__ import annotations

import argparse
import sys

from wren.engine.cli.common import emit_json, open_engine


def _open_history():
    """The conversations database the window uses too; where it cannot be written (a read-only data dir, a full
    disk, a newer version's file), a read-only copy, and why."""
    from wren.engine.store import open_history

    store, note = open_history()
    if note:
        print(f"wren: {note}", file=sys.stderr)
    return store


CHAT_COMMANDS = (("/help", "lists these commands"), ("/new", "starts a new conversation"),
                 ("/regen", "answers the last message again"), ("/quit", "leaves (so does Ctrl+D)"))


def read_prompt(prompt: str) -> str | None:
    """One line typed at the chat prompt; Ctrl+C clears the line (""), Ctrl+D (end of input) gives None."""
    try:
        return input(prompt)
    except EOFError:
        return None
    except KeyboardInterrupt:
        print("\n(line cleared; Ctrl+D or /quit leaves)", file=sys.stderr)
        return ""


def cmd_chat(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    from contextlib import aclosing

    from wren.engine.assistant import ChatController
    from wren.engine.engine import ContextTrimmed, Done, Token

    loop = asyncio.new_event_loop()
    try:
        engine = loop.run_until_complete(open_engine(args))
    except BaseException:
        loop.close()
        raise
    store = None if args.no_save else _open_history()
    chat = ChatController(args.system or "", store)
    interactive = sys.stdin.isatty()
    if interactive and not args.json:
        print(f"{engine.model_name} · {engine.threads} threads on CPUs "
              f"{','.join(map(str, engine.cpus)) if engine.cpus else 'any'} · context {engine.n_ctx}\n"
              "Ctrl+C stops an answer or clears the line; /help lists the commands; Ctrl+D leaves.",
              file=sys.stderr)

    async def turn() -> None:
        try:
            loop.add_signal_handler(signal.SIGINT, engine.cancel)
        except (NotImplementedError, RuntimeError):
            pass
        try:
            async with aclosing(chat.answer(engine)) as events:
                async for ev in events:
                    if isinstance(ev, Token):
                        if not args.json:
                            sys.stdout.write(ev.text)
                            sys.stdout.flush()
                    elif isinstance(ev, ContextTrimmed) and not args.json:
                        print(f"[the conversation outgrew the context: {ev.dropped_messages} oldest messages left "
                              "out]", file=sys.stderr)
                    elif isinstance(ev, Done):
                        _show_turn(ev, args.json, interactive)
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):
                pass

    try:
        while True:
            line = read_prompt("> " if interactive and not args.json else "")
            if line is None:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            if text == "/help":
                print("\n".join(f"{c:7} {what}" for c, what in CHAT_COMMANDS), file=sys.stderr)
                continue
            if text == "/new":
                chat = ChatController(args.system or "", store)
                print("[new conversation]", file=sys.stderr)
                continue
            if text.startswith("/") and text[1:].isalpha() and text != "/regen":
                print(f"unknown command {text}; /help lists the commands", file=sys.stderr)
                continue
            if text == "/regen":
                if not chat.regenerate():
                    continue
            else:
                chat.add_user(text)
            loop.run_until_complete(turn())
    finally:
        loop.run_until_complete(engine.close())
        loop.close()
        if store is not None:
            store.close()
    return 0


def _show_turn(done, as_json: bool, interactive: bool) -> None:
    st = done.stats
    if as_json:
        emit_json({"reply": done.text.strip(), "finish_reason": done.reason, "error": done.error or None,
                    "ttft_s": round(st.ttft_seconds, 4), "prefill_tok_s": round(st.prefill_tokens_per_s, 1),
                    "decode_tok_s": round(st.decode_tokens_per_s, 1), "prompt_tokens": st.prompt_tokens,
                    "cached_tokens": st.cached_tokens, "generated_tokens": st.generated_tokens})
        return
    print()
    if done.reason == "error":
        print(f"wren: {done.error}", file=sys.stderr)
    elif interactive:
        note = {"cancelled": " (stopped)", "repetition": " (stopped: the answer began repeating itself)"}.get(
            done.reason, "")
        print(f"[{1000 * st.ttft_seconds:.0f} ms to first token · prefill {st.prefill_tokens_per_s:.0f} tok/s · "
              f"decode {st.decode_tokens_per_s:.0f} tok/s{note}]", file=sys.stderr)
