"""The `wren` command line: the same engine as the window, scriptable and usable without a display."""
from __future__ import annotations

import argparse
import os
import platform
import sys

from wren import engine as _engine_pkg  # noqa: F401  (the package must import without Qt)


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
    if not args.kernels:
        print("wren bench: model benchmarks come with model loading; use --kernels for the kernel benchmark",
              file=sys.stderr)
        return 2
    from wren.engine import kbench, native

    try:
        threads = sorted({int(t) for t in args.threads.split(",")})
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


def cmd_window(args: argparse.Namespace) -> int:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("QT_QPA_PLATFORM") == "offscreen"):
        print("No display found. Wren's command line works without one:\n"
              "  wren info                 CPU features, chosen kernels, big/LITTLE layout\n"
              "  wren bench --kernels      kernel speed against this machine's memory bandwidth")
        return 0
    print("The window is not built yet; `wren info` shows what this machine runs.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wren", description="Private, fast local assistant.")
    parser.add_argument("--version", action="version", version=f"wren {_version()}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("info", help="CPU features, chosen kernels and CPU topology")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="benchmarks")
    p.add_argument("--kernels", action="store_true", help="GEMV bandwidth and GEMM throughput of the kernels")
    p.add_argument("-t", "--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--formats", default="", help="q4_0,q4_1,q8_0 (default all)")
    p.add_argument("--quick", action="store_true", help="two small shapes, fewer repeats")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.add_argument("-o", "--output", help="also write the result (.md as a table, else JSON)")
    p.set_defaults(func=cmd_bench)
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
    except (ValueError, OSError) as e:
        print(f"wren: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
