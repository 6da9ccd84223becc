"""Commands about the machine and the runtime: info, bench, tokenize, run --raw."""
from __future__ import annotations

import argparse
import platform
import sys

from wren.engine.cli.common import read_input, version, with_flags


def cmd_info(args: argparse.Namespace) -> int:
    from wren.engine.runtime import native, topology

    topo = topology.read_topology()
    print(f"Wren {version()} on Python {platform.python_version()}, {platform.system()} {platform.machine()}")
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
    from dataclasses import replace

    from wren.engine.bench import compare as bench
    from wren.engine.runtime import loader, placement, topology
    from wren.engine.settings import Settings

    path = loader.resolve_model_path(args.model)
    settings = bench.settings(with_flags(Settings(), args), args.prompt_tokens, args.gen_tokens)
    if args.ctx is not None:
        if args.ctx < args.prompt_tokens + args.gen_tokens:
            raise ValueError(f"--ctx {args.ctx} cannot hold the {args.prompt_tokens}-token prompt and "
                             f"{args.gen_tokens} generated tokens")
        settings = replace(settings, context_length=args.ctx)
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
               "--ctx", str(settings.context_length), "--engine", engine]
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


def cmd_tokenize(args: argparse.Namespace) -> int:
    import json

    from wren.engine.runtime import gguffile
    from wren.engine.runtime.loader import resolve_model_path
    from wren.engine.runtime.tokenizer import Tokenizer

    with gguffile.read(resolve_model_path(args.model)) as g:
        tok = Tokenizer.from_gguf(g)
    ids = tok.encode(read_input(args.file), add_special=not args.no_bos, parse_special=args.special)
    print(json.dumps(ids))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.raw:
        print("wren run: only --raw is available (the chat modes come with `wren chat`)", file=sys.stderr)
        return 2
    from wren.engine.runtime.loader import open_generator
    from wren.engine.runtime.sampling import GREEDY, Sampler, SamplingParams
    from wren.engine.settings import Settings

    text = read_input(args.file)
    gen = open_generator(None, with_flags(Settings(), args))
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
