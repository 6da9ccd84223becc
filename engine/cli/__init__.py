"""The `wren` command line: the same engine as the window, scriptable and usable without a display.

One module per command group; nothing here imports the window (wren.gui) until the window is asked for."""
from __future__ import annotations

import argparse
import sys

from wren.engine.cli.common import version
from wren.engine.cli.flags import add_context_flag
from wren.engine.cli.chat import cmd_chat
from wren.engine.cli.models import cmd_models
from wren.engine.cli.modes import cmd_email, cmd_reply, cmd_summarize
from wren.engine.cli.serve import cmd_serve
from wren.engine.cli.system import cmd_bench, cmd_info, cmd_run, cmd_tokenize
from wren.engine.cli.window import cmd_window


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wren", description="Private, fast local assistant.")
    parser.add_argument("--version", action="version", version=f"wren {version()}")
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
    add_context_flag(p, "what the prompt and the generated tokens need, 512 at least")
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
    add_context_flag(p, "4096")
    p.add_argument("--weights", help="weight policy: mixed (the default) or int4")
    p.add_argument("file", help="text file, or - for stdin")
    p.set_defaults(func=cmd_run)

    def engine_flags(p: argparse.ArgumentParser, json_flag: bool = True) -> None:
        p.add_argument("-m", "--model", help="GGUF file or installed model name (default: the settings' model)")
        p.add_argument("-t", "--threads", help="threads (default: the settings', one per fast core)")
        add_context_flag(p, "the settings', 4096")
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

    p = sub.add_parser("models", help="list, fetch, import or remove models; search Hugging Face")
    p.add_argument("action", choices=["list", "fetch", "import", "remove", "search"])
    p.add_argument("name", nargs="?", help="model name or hf:OWNER/REPO/FILE.gguf[@REVISION] (fetch), model name "
                   "(remove), GGUF file (import), words or OWNER/REPO (search)")
    p.add_argument("--json", action="store_true", help="list, search: print JSON")
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
        from wren.engine.store import StoreError

        if isinstance(e, (GGUFError, NativeError, CatalogError, ChatTemplateError, StoreError)):
            print(f"wren: {e}", file=sys.stderr)
            return 1
        raise
