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
    from wren.engine import native, topology

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

    from wren.engine import bench
    from wren.engine.generate import resolve_model_path

    path = resolve_model_path(args.model)
    threads = int(args.threads) if args.threads else 2
    if args.engine:  # one engine in this process (the parent runs each in its own, for clean peak memory)
        run = bench.bench_wren if args.engine == "wren" else bench.bench_llama_cpp
        kwargs = dict(policy=args.weights) if args.engine == "wren" else {}
        result = run(path, threads, args.prompt_tokens, args.gen_tokens, **kwargs)
        print(json.dumps(bench.asdict(result)))
        return 0
    engines = ["wren"] + (["llama.cpp"] if args.compare else [])
    results = []
    for engine in engines:
        cmd = [sys.executable, "-m", "wren.engine.cli", "bench", "-m", str(path), "-t", str(threads),
               "-p", str(args.prompt_tokens), "-n", str(args.gen_tokens), "--weights", args.weights,
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
    from wren.engine import kbench, native

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


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def cmd_tokenize(args: argparse.Namespace) -> int:
    import json

    from wren.engine import gguffile
    from wren.engine.generate import resolve_model_path
    from wren.engine.tokenizer import Tokenizer

    with gguffile.read(resolve_model_path(args.model)) as g:
        tok = Tokenizer.from_gguf(g)
    ids = tok.encode(_read_input(args.file), add_special=not args.no_bos, parse_special=args.special)
    print(json.dumps(ids))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.raw:
        print("wren run: only --raw is available (the chat modes come with `wren chat`)", file=sys.stderr)
        return 2
    from wren.engine.generate import Generator, resolve_model_path
    from wren.engine.sampling import GREEDY, Sampler, SamplingParams

    text = _read_input(args.file)
    gen = Generator.load(resolve_model_path(args.model), policy=args.weights,
                         threads=int(args.threads) if args.threads else None, n_ctx=args.ctx)
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


def cmd_window(args: argparse.Namespace) -> int:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("QT_QPA_PLATFORM") == "offscreen"):
        print("No display found. Wren's command line works without one:\n"
              "  wren info                         CPU features, chosen kernels, big/LITTLE layout\n"
              "  wren run --raw [--greedy] FILE     continue a text file with the default model (SmolLM2-135M)\n"
              "  wren tokenize FILE                 token ids of a text file\n"
              "  wren bench [-m MODEL] [--compare]  prefill and decode speed, time to first token\n"
              "  wren bench --kernels               kernel speed against this machine's memory bandwidth")
        return 0
    print("The window is not built yet; `wren info` shows what this machine runs.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wren", description="Private, fast local assistant.")
    parser.add_argument("--version", action="version", version=f"wren {_version()}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("info", help="CPU features, chosen kernels and CPU topology")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="model benchmark (or --kernels)")
    p.add_argument("-m", "--model", help="GGUF file or known model name (default: the default model)")
    p.add_argument("-t", "--threads", help="threads (model bench, default 2) or a list like 1,2 (--kernels)")
    p.add_argument("-p", "--prompt-tokens", type=int, default=128)
    p.add_argument("-n", "--gen-tokens", type=int, default=64)
    p.add_argument("--weights", choices=["mixed", "int4"], default="mixed", help="weight policy")
    p.add_argument("--compare", action="store_true", help="also llama.cpp (llama-cpp-python) in the same run")
    p.add_argument("--engine", choices=["wren", "llama.cpp"], help=argparse.SUPPRESS)
    p.add_argument("--kernels", action="store_true", help="GEMV bandwidth and GEMM throughput of the kernels")
    p.add_argument("--formats", default="", help="--kernels: q4_0,q4_1,q8_0 (default all)")
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
    p.add_argument("--ctx", type=int, default=4096, help="context length")
    p.add_argument("--weights", choices=["mixed", "int4"], default="mixed", help="weight policy")
    p.add_argument("file", help="text file, or - for stdin")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        return cmd_window(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, LookupError) as e:
        print(f"wren: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the loader's own errors and the native core's carry a message meant for the user
        from wren.engine.gguffile import GGUFError
        from wren.engine.native import NativeError

        if isinstance(e, (GGUFError, NativeError)):
            print(f"wren: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
