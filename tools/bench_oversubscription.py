"""Decode and prefill speed with other programs busy on the same cores, and with more threads than cores.

    python tools/bench_oversubscription.py --python main=/path/to/main/.venv/bin/python --python branch=.venv/bin/python

For each Python (each a Wren install), each number of busy cores (a shell busy loop pinned to CPU 0, 1, ...) and each
thread count (the CPUs allowed, and one more), it runs `measure` in a fresh process `--runs` times and prints the
medians as a Markdown table. `measure THREADS` places the threads by the settings' rules, except that more threads than
CPUs (which Wren clamps) are kept: one more thread than cores is what is measured. A run that takes longer than
--timeout seconds (model load included) counts as 0 tok/s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

MODEL = "SmolLM2-135M-Instruct"


def measure(threads: int, n_prompt: int, n_gen: int) -> dict:
    from dataclasses import replace

    from wren.engine.bench import compare
    from wren.engine.runtime import loader, native, placement
    from wren.engine.settings import Settings

    place = placement.place

    def unclamped(settings, topo, allowed=None):
        if settings.threads > len(topo.allowed):
            return native.PoolSettings(settings.threads, tuple(sorted(topo.allowed)))
        return place(settings, topo, allowed)

    placement.place = unclamped
    settings = compare.settings(replace(Settings(), threads=threads), n_prompt, n_gen)
    r = compare.bench_wren(loader.resolve_model_path(MODEL), settings, n_prompt, n_gen, repeats=1)
    return {"threads": r.threads, "prefill": r.prefill_tok_s, "decode": r.decode_tok_s}


def drive(pythons: list[str], runs: int, n_prompt: int, n_gen: int, timeout_s: int) -> None:
    cores = len(os.sched_getaffinity(0))
    rows = []
    for busy in (0, 1):
        loops = [subprocess.Popen(["taskset", "-c", str(c), "sh", "-c", "while :; do :; done"]) for c in range(busy)]
        try:
            for threads in (cores, cores + 1):
                results = {spec: ([], []) for spec in pythons}
                for _ in range(runs):  # the builds take turns, so that a change in the machine's load hits both
                    for spec in pythons:
                        name, python = spec.split("=", 1)
                        decode, prefill = results[spec]
                        cmd = [python, __file__, "measure", str(threads), "-p", str(n_prompt), "-n", str(n_gen)]
                        try:
                            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=True)
                            r = json.loads(out.stdout.strip().splitlines()[-1])
                            decode.append(r["decode"])
                            prefill.append(r["prefill"])
                        except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as e:
                            print(f"{name}: {threads} threads, {busy} busy: {type(e).__name__}", file=sys.stderr)
                            decode.append(0.0)
                            prefill.append(0.0)
                for spec in pythons:
                    name, decode, prefill = spec.split("=", 1)[0], *results[spec]
                    rows.append((name, busy, threads, statistics.median(prefill), statistics.median(decode)))
                    print(f"{name}: {busy} busy, {threads} threads: decode {decode}, prefill {prefill}",
                          file=sys.stderr, flush=True)
        finally:
            for p in loops:
                p.kill()
                p.wait()
    print("| build | busy cores | threads | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|---|")
    for name, busy, threads, prefill, decode in rows:
        print(f"| {name} | {busy} | {threads} | {prefill:.1f} | {decode:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="drive", choices=["drive", "measure"])
    ap.add_argument("threads", nargs="?", type=int, default=0)
    ap.add_argument("--python", action="append", default=[], help="NAME=PATH of a Python with Wren installed")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-p", type=int, default=64, dest="n_prompt")
    ap.add_argument("-n", type=int, default=32, dest="n_gen")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per run (a run over it counts as 0 tok/s)")
    args = ap.parse_args()
    if args.what == "measure":
        print(json.dumps(measure(args.threads, args.n_prompt, args.n_gen)))
    else:
        drive(args.python or [f"this={sys.executable}"], args.runs, args.n_prompt, args.n_gen, args.timeout)


if __name__ == "__main__":
    main()
