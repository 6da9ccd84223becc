"""The `wren` command line: the same engine as the window, scriptable and usable without a display."""
from __future__ import annotations

import argparse
import os
import platform
import sys


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("wren")
    except Exception:
        return "unknown"


def cmd_info(args: argparse.Namespace) -> int:
    from wren.engine.runtime import native, topology

    topo = topology.read_topology()
    print(f"Wren {_version()} on Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    print("CPU features: " + (" ".join(native.cpu_features()) or "(none detected)"))
    print("Kernels:" + ("  (WREN_KERNELS=reference forces the scalar reference)" if native.forced_reference() else ""))
    for fmt in native.Format:
        variant = native.chosen_variant(fmt)
        print(f"  {fmt.label}: {variant.label} (tiles of {variant.rows} row{'s' if variant.rows > 1 else ''})")
    available = ", ".join(v.label for v in native.available_variants())
    print(f"  available here: {available}")
    print("CPU topology:" + (" big.LITTLE" if topo.is_big_little else ""))
    for line in topo.describe():
        print(f"  {line}")
    print(f"  recommended for generation: CPUs {topology.format_cpu_list(topo.recommended)} "
          f"({len(topo.recommended)} threads, pinned)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.kernels:
        return _bench_kernels(args)
    import json
    import subprocess

    from wren.engine.bench import compare as bench
    from wren.engine.runtime import loader, placement, topology
    from wren.engine.settings import Settings

    path = loader.resolve_model_path(args.model)
    settings = bench.settings(_with_flags(Settings(), args), args.prompt_tokens, args.gen_tokens)
    threads = placement.place(settings, topology.read_topology()).threads
    if args.engine:  # one engine in this process (the parent runs each in its own, for clean peak memory)
        if args.engine == "wren":
            result = bench.bench_wren(path, settings, args.prompt_tokens, args.gen_tokens)
        else:
            result = bench.bench_llama_cpp(path, threads, args.prompt_tokens, args.gen_tokens)
        print(json.dumps(bench.asdict(result)))
        return 0
    engines = ["wren"] + (["llama.cpp"] if args.compare else [])
    results = []
    for engine in engines:
        cmd = [sys.executable, "-m", "wren.engine.cli", "bench", "-m", str(path), "-t", str(threads),
               "-p", str(args.prompt_tokens), "-n", str(args.gen_tokens), "--weights", settings.weight_policy,
               "--engine", engine]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"wren bench: {engine} failed:\n{proc.stderr.strip()[-2000:]}", file=sys.stderr)
            return 1
        results.append(bench.BenchResult(**json.loads(proc.stdout.strip().splitlines()[-1])))
    if args.json:
        print(bench.to_json(results))
    else:
        print(f"{path.name}, {threads} threads, {args.prompt_tokens}-token prompt, {args.gen_tokens} generated, "
              f"on {bench.machine()}")
        for r in results:
            print("  " + r.row())
        if len(results) == 2:
            w, l = results
            print(f"  ratio wren/llama.cpp: prefill {w.prefill_tok_s / l.prefill_tok_s:.2f}, "
                  f"decode {w.decode_tok_s / l.decode_tok_s:.2f}")
    return 0


def _bench_kernels(args: argparse.Namespace) -> int:
    from wren.engine.bench import kernels as kbench
    from wren.engine.runtime import native

    try:
        threads = sorted({int(t) for t in (args.threads or "1,2").split(",")})
    except ValueError:
        raise ValueError(f"--threads takes numbers separated by commas, not {args.threads!r}") from None
    names = {f.label: f for f in native.Format}
    formats = list(native.Format)
    if args.formats:
        unknown = [f for f in args.formats.split(",") if f not in names]
        if unknown:
            raise ValueError(f"unknown format {', '.join(unknown)}; choose from {', '.join(names)}")
        formats = [names[f] for f in args.formats.split(",")]
    shapes = kbench.SHAPES[:2] if args.quick else kbench.SHAPES
    quiet = args.json
    result = kbench.run(threads=threads, formats=formats, shapes=shapes, repeats=3 if args.quick else 5,
                        progress=(lambda s: None) if quiet else (lambda s: print(s, flush=True)))
    if args.json:
        print(kbench.to_json(result))
    else:
        print()
        print(kbench.to_markdown(result))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(kbench.to_markdown(result) if args.output.endswith(".md") else kbench.to_json(result))
    return 0


def _with_flags(s, args: argparse.Namespace):
    """Settings with the command's -m, -t, --ctx and --weights where given."""
    from dataclasses import replace

    if getattr(args, "model", None):
        s = replace(s, model=args.model)
    if getattr(args, "threads", None):
        try:
            s = replace(s, threads=int(args.threads))
        except ValueError:
            raise ValueError(f"-t takes a number of threads, not {args.threads!r}") from None
        from wren.engine.runtime import placement, topology

        placement.place(s.validated(), topology.read_topology())  # more threads than CPUs: said before loading
    if getattr(args, "ctx", None):
        s = replace(s, context_length=int(args.ctx))
    if getattr(args, "weights", None):
        s = replace(s, weight_policy=args.weights)
    return s.validated()


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def cmd_tokenize(args: argparse.Namespace) -> int:
    import json

    from wren.engine.runtime import gguffile
    from wren.engine.runtime.loader import resolve_model_path
    from wren.engine.runtime.tokenizer import Tokenizer

    with gguffile.read(resolve_model_path(args.model)) as g:
        tok = Tokenizer.from_gguf(g)
    ids = tok.encode(_read_input(args.file), add_special=not args.no_bos, parse_special=args.special)
    print(json.dumps(ids))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.raw:
        print("wren run: only --raw is available (the chat modes come with `wren chat`)", file=sys.stderr)
        return 2
    from wren.engine.runtime.loader import open_generator
    from wren.engine.runtime.sampling import GREEDY, Sampler, SamplingParams
    from wren.engine.settings import Settings

    text = _read_input(args.file)
    gen = open_generator(None, _with_flags(Settings(), args))
    try:
        ids = gen.tokenizer.encode(text, add_special=True, parse_special=True)
        params = GREEDY if args.greedy else SamplingParams(seed=args.seed)
        out = sys.stdout
        for _, piece in gen.stream(ids, args.n, Sampler(params), set(gen.tokenizer.eog_ids)):
            out.write(piece)
            out.flush()
        out.write("\n")
    finally:
        gen.close()
    return 0


# ---- the assistant modes -----------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace):
    from wren.engine import settings as wsettings

    loaded = wsettings.load()
    if loaded.problem:
        print(f"wren: {loaded.problem}", file=sys.stderr)
    return _with_flags(loaded.settings, args)


async def _open_engine(args: argparse.Namespace):
    from wren.engine.engine import Engine

    settings = _settings(args)
    show = sys.stderr.isatty() and not getattr(args, "json", False)

    def progress(done: int, total: int) -> None:
        if show:
            sys.stderr.write(f"\rloading the model {100 * done // max(total, 1):3d}%")
            if done >= total:
                sys.stderr.write("\r" + " " * 24 + "\r")
            sys.stderr.flush()

    return await Engine.open(None, settings, progress=progress)


def _read_arg_file(path: str | None) -> str:
    text = _read_input(path or "-")
    if not text.strip():
        raise ValueError("the input is empty")
    return text


def _run_cancellable(args: argparse.Namespace, job):
    """Open the engine and run `await job(engine)`; Ctrl+C cancels the generation in progress (the job then ends
    with what it has)."""
    import asyncio
    import signal

    async def main():
        engine = await _open_engine(args)
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


def _emit_json(obj) -> None:
    import json

    print(json.dumps(obj, ensure_ascii=False))


def cmd_email(args: argparse.Namespace) -> int:
    from wren.engine.assistant import draft_email

    thread = _read_input(args.thread) if args.thread else ""

    async def job(engine):
        return await draft_email(engine, args.points, to=args.to or "", thread=thread, tone=args.tone,
                                 length=args.length)

    draft = _run_cancellable(args, job)
    if args.json:
        _emit_json({"subject": draft.subject, "body": draft.body})
    else:
        print(f"Subject: {draft.subject}\n\n{draft.body}")
    return 130 if draft.cancelled else 0


def cmd_reply(args: argparse.Namespace) -> int:
    from wren.engine.assistant import smart_reply

    message = _read_arg_file(args.file)

    async def job(engine):
        return await smart_reply(engine, message)

    result = _run_cancellable(args, job)
    if args.json:
        _emit_json(result.as_json())
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

    text = _read_arg_file(args.file)
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
        result = _run_cancellable(args, job)
    finally:
        if terminal:
            redraw("")
            sys.stderr.write("\r")
    if args.json:
        _emit_json({"summary": result.summary})
    else:
        print(result.summary)
    return 130 if result.cancelled else 0


def _open_history():
    """The conversations database the window uses too, or None (with a note) when it cannot be used."""
    from wren.engine.store import Store, StoreError

    try:
        return Store()
    except StoreError as e:
        print(f"wren: {e}; this chat is not kept", file=sys.stderr)
        return None


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
        engine = loop.run_until_complete(_open_engine(args))
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
        _emit_json({"reply": done.text.strip(), "finish_reason": done.reason, "error": done.error or None,
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
        engine = await _open_engine(args)
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
            _emit_json(rows)
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


CLI_HELP = """Wren's command line works without a window:
  wren info                         CPU features, chosen kernels, big/LITTLE layout
  wren chat                         chat in the terminal (Ctrl+C stops an answer)
  wren email --points TEXT          draft an email (--to, --thread FILE, --tone, --length)
  wren reply FILE                   three short replies to a message
  wren summarize FILE               summarize a text (--style, --length)
  wren models list                  installed and known models (fetch, import, remove)
  wren run --raw [--greedy] FILE    continue a text file with the default model (SmolLM2-135M)
  wren tokenize FILE                token ids of a text file
  wren bench [-m MODEL] [--compare]  prefill and decode speed, time to first token
  wren bench --kernels               kernel speed against this machine's memory bandwidth"""


def cmd_window(args: argparse.Namespace) -> int:
    if not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        print("No display found. " + CLI_HELP)
        return 0
    from wren.gui import display  # plain Python: looks at the system before Qt is started (Qt aborts on failure)

    choice = display.choose()
    if choice.platform is None:
        print(f"The window cannot start: {choice.problem}.\n" + CLI_HELP, file=sys.stderr)
        return 1
    os.environ["QT_QPA_PLATFORM"] = choice.platform
    from wren.gui.app import main as window_main

    return window_main(summarize_clipboard=args.summarize_clipboard)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wren", description="Private, fast local assistant.")
    parser.add_argument("--version", action="version", version=f"wren {_version()}")
    parser.add_argument("--install-desktop", action="store_true", help="install the launcher and icons for this user")
    parser.add_argument("--summarize-clipboard", action="store_true", help="summarize the clipboard in the window")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("info", help="CPU features, chosen kernels and CPU topology")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="model benchmark (or --kernels)")
    p.add_argument("-m", "--model", help="GGUF file or known model name (default: the default model)")
    p.add_argument("-t", "--threads", help="threads (model bench, default: one per core of the fastest cluster) "
                   "or a list like 1,2 (--kernels)")
    p.add_argument("-p", "--prompt-tokens", type=int, default=128)
    p.add_argument("-n", "--gen-tokens", type=int, default=64)
    p.add_argument("--weights", help="weight policy: mixed (the default) or int4")
    p.add_argument("--compare", action="store_true", help="also llama.cpp (llama-cpp-python) in the same run")
    p.add_argument("--engine", choices=["wren", "llama.cpp"], help=argparse.SUPPRESS)
    p.add_argument("--kernels", action="store_true", help="GEMV bandwidth and GEMM throughput of the kernels")
    p.add_argument("--formats", default="", help="--kernels: q4_0,q4_1,q8_0,q8_16,q4_k,q6_k (default all)")
    p.add_argument("--quick", action="store_true", help="--kernels: two small shapes, fewer repeats")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("-o", "--output", help="--kernels: also write the result (.md as a table, else JSON)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tokenize", help="token ids of a file's text, as a JSON list")
    p.add_argument("-m", "--model", help="GGUF file or known model name")
    p.add_argument("--no-bos", action="store_true", help="add no BOS/EOS (llama_tokenize add_special=false)")
    p.add_argument("--special", action="store_true", help="parse special-token text (parse_special=true)")
    p.add_argument("file", help="text file, or - for stdin")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("run", help="continue a file's text")
    p.add_argument("-m", "--model", help="GGUF file or known model name")
    p.add_argument("--raw", action="store_true", help="raw text, no chat template (special tokens parsed)")
    p.add_argument("--greedy", action="store_true", help="always the most likely token")
    p.add_argument("-n", type=int, default=128, help="tokens to generate (default 128)")
    p.add_argument("-t", "--threads", help="threads (default: one per core of the fastest cluster)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ctx", type=int, help="context length (default 4096)")
    p.add_argument("--weights", help="weight policy: mixed (the default) or int4")
    p.add_argument("file", help="text file, or - for stdin")
    p.set_defaults(func=cmd_run)

    def engine_flags(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
        p.add_argument("-m", "--model", help="GGUF file or installed model name (default: the settings' model)")
        p.add_argument("-t", "--threads", help="threads (default: the settings', one per fast core)")
        p.add_argument("--ctx", type=int, help="context length (default: the settings', 4096)")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("chat", help="chat in the terminal")
    engine_flags(p)
    p.add_argument("--system", help="system prompt")
    p.add_argument("--no-save", action="store_true", help="do not keep this chat in the history (the window's)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("email", help="draft an email: JSON {subject, body} with --json")
    engine_flags(p)
    p.add_argument("--points", required=True, help="what the email should say (free text or points)")
    p.add_argument("--to", help="who it is for (name or relationship)")
    p.add_argument("--thread", help="file with the message being replied to (- for stdin)")
    p.add_argument("--tone", default="neutral", help="formal, neutral, friendly or direct")
    p.add_argument("--length", default="medium", help="short, medium or long")
    p.set_defaults(func=cmd_email)

    p = sub.add_parser("reply", help="three short replies to a message: JSON {replies} or {no_reply_needed}")
    engine_flags(p)
    p.add_argument("file", nargs="?", default="-", help="file with the message, or - for stdin (default)")
    p.set_defaults(func=cmd_reply)

    p = sub.add_parser("summarize", help="summarize a text: JSON {summary} with --json")
    engine_flags(p)
    p.add_argument("file", nargs="?", default="-", help="text file, or - for stdin (default)")
    p.add_argument("--style", default="paragraph", help="paragraph, key-points, tldr or action-items")
    p.add_argument("--length", default="medium", help="short, medium or detailed")
    p.set_defaults(func=cmd_summarize)

    p = sub.add_parser("serve", help="an OpenAI-compatible HTTP server (127.0.0.1 unless given a key)")
    engine_flags(p, json_flag=False)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (another than loopback needs a key)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port)")
    p.add_argument("--api-key", help="require Authorization: Bearer KEY (default: $WREN_API_KEY)")
    p.add_argument("--queue", type=int, default=4, help="requests that may wait for the running one (default 4)")
    p.add_argument("--max-body-mb", type=float, default=4.0, help="largest request body in MiB (default 4)")
    p.add_argument("--advertise", action="store_true",
                   help="announce this server on the local network (mDNS _wren._tcp), for windows to find")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("models", help="list, fetch, import or remove models")
    p.add_argument("action", choices=["list", "fetch", "import", "remove"])
    p.add_argument("name", nargs="?", help="model name (fetch, remove) or GGUF file (import)")
    p.add_argument("--json", action="store_true", help="list: print JSON")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) and (args.install_desktop or args.summarize_clipboard):
        parser.error("--install-desktop and --summarize-clipboard take no command")
    if not getattr(args, "func", None) and not args.install_desktop:
        return cmd_window(args)
    try:
        if args.install_desktop:
            from wren.gui.desktop import install
            print("\n".join(map(str, install())))
            return 0
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, LookupError, MemoryError) as e:
        print(f"wren: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the loader's own errors and the native core's carry a message meant for the user
        from wren.engine.library.catalog import CatalogError
        from wren.engine.runtime.chat_template import ChatTemplateError
        from wren.engine.runtime.gguffile import GGUFError
        from wren.engine.runtime.native import NativeError

        if isinstance(e, (GGUFError, NativeError, CatalogError, ChatTemplateError)):
            print(f"wren: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
