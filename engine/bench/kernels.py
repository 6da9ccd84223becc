"""Kernel benchmark: GEMV weight bandwidth against the machine's read bandwidth, and GEMM int8 throughput.

Weights are cycled through enough copies to exceed the last-level cache, so GEMV reads them from DRAM as a
forward pass does; each figure is the median of several runs, each run timed inside one pool job.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from wren.engine.runtime import native
from wren.engine.runtime.native import Activations, Format, PackedWeights, Pool
from wren.engine.runtime.topology import read_topology

# (n, k) = (rows/outputs, columns/inputs) of real models' matrices: SmolLM2-135M ffn down/up, Qwen2.5-1.5B ffn
# down/up, SmolLM2's 49152-token output layer.
SHAPES = [(576, 1536), (1536, 576), (1536, 8960), (8960, 1536), (49152, 576)]
STREAM_BYTES = 512 << 20  # weights cycled per measurement: far past any last-level cache


@dataclass
class KernelBench:
    machine: dict
    read_gbs: dict = field(default_factory=dict)  # threads -> GB/s
    gemv: list = field(default_factory=list)  # {format, n, k, threads, gbs, fraction}
    gemm: list = field(default_factory=list)  # {format, n, k, m, threads, gops}


def machine_info() -> dict:
    return {
        "machine": platform.machine(),
        "cpu": read_topology().cpu_name or platform.processor() or "unknown",
        "logical_cpus": os.cpu_count(),
        "features": native.cpu_features(),
        "kernels": {f.label: native.chosen_variant(f).label for f in Format},
        "date": time.strftime("%Y-%m-%d"),
    }


def _median_time(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def _iters_for(seconds_per_iter: float, target: float = 0.25) -> int:
    return max(1, min(10000, int(target / max(seconds_per_iter, 1e-7))))


def read_buffer() -> np.ndarray:
    buf = native.aligned_empty(512 << 20)
    buf[:] = 1  # touch every page before timing
    return buf


def measure_read(pool: Pool, repeats: int, buf: np.ndarray | None = None) -> float:
    buf = read_buffer() if buf is None else buf
    native.bench_read(buf, 1, pool)
    secs = _median_time(lambda: native.bench_read(buf, 2, pool), repeats)
    return 2 * buf.nbytes / secs / 1e9


def _copies(w: PackedWeights) -> list[PackedWeights]:
    count = max(1, -(-STREAM_BYTES // w.nbytes))
    return [w] + [w.copy() for _ in range(count - 1)]


def run(threads=(1, 2), formats=tuple(Format), shapes=SHAPES, gemm_rows: int = 128, repeats: int = 5,
        progress=print) -> KernelBench:
    result = KernelBench(machine=machine_info())
    rng = np.random.default_rng(1)
    pools = {t: Pool(t, spin_us=1000) for t in threads}
    rbuf = read_buffer()
    reads: dict[int, list[float]] = {t: [] for t in threads}
    try:
        for t, pool in pools.items():
            reads[t].append(measure_read(pool, repeats, rbuf))
            progress(f"read bandwidth, {t} thread(s): {reads[t][-1]:.1f} GB/s")
        for n, k in shapes:
            x1_f = rng.standard_normal((1, k), dtype=np.float32)
            xm_f = rng.standard_normal((gemm_rows, k), dtype=np.float32)
            w_float = rng.standard_normal((n, k), dtype=np.float32)
            for fmt in formats:
                group = fmt.block_weights     # K-quant super-blocks take activations with a scale per 256 values
                if k % group:
                    continue
                x1, xm = Activations(x1_f, scale_group=group), Activations(xm_f, scale_group=group)
                if fmt.super_block:
                    w = PackedWeights(fmt, native.random_super_blocks(fmt, n, k, rng), n, k)
                else:
                    w = PackedWeights.from_floats(fmt, w_float)
                copies = _copies(w)
                for t, pool in pools.items():
                    # the machine's read bandwidth right next to each measurement: a shared machine drifts
                    read = measure_read(pool, 3, rbuf)
                    reads[t].append(read)
                    once = native.bench_matmul(copies, x1, len(copies), pool) / len(copies)
                    iters = _iters_for(once)
                    secs = _median_time(lambda: native.bench_matmul(copies, x1, iters, pool), repeats) / iters
                    gbs = w.nbytes / secs / 1e9
                    result.gemv.append(dict(format=fmt.label, n=n, k=k, threads=t, gbs=round(gbs, 2),
                                            read_gbs=round(read, 2), fraction=round(gbs / read, 3)))
                    once = native.bench_matmul([w], xm, 1, pool)
                    iters = _iters_for(once, 0.15)
                    secs = _median_time(lambda: native.bench_matmul([w], xm, iters, pool), repeats) / iters
                    gops = 2.0 * gemm_rows * n * k / secs / 1e9
                    result.gemm.append(dict(format=fmt.label, n=n, k=k, m=gemm_rows, threads=t, gops=round(gops, 1)))
                    progress(f"{fmt.label} {n}x{k} t={t}: GEMV {gbs:.1f} GB/s ({100 * gbs / read:.0f}% of "
                             f"{read:.1f} GB/s read), GEMM m={gemm_rows} {gops:.1f} GOPS")
    finally:
        for pool in pools.values():
            pool.close()
    result.read_gbs = {t: round(statistics.median(v), 2) for t, v in reads.items()}
    return result


def to_markdown(r: KernelBench) -> str:
    m = r.machine
    lines = [
        f"Machine: {m['cpu']} ({m['machine']}, {m['logical_cpus']} logical CPUs), features {' '.join(m['features'])}; "
        f"kernels {', '.join(f'{k}: {v}' for k, v in m['kernels'].items())}; measured {m['date']}.",
        "",
        "Read bandwidth (median over the run): "
        + ", ".join(f"{t} thread(s) {g:.1f} GB/s" for t, g in r.read_gbs.items()),
        "",
        "| format | n x k | threads | GEMV GB/s of weights | read GB/s (next to it) | GEMV / read | GEMM m=128 GOPS |",
        "|---|---|---|---|---|---|---|",
    ]
    gemm = {(g["format"], g["n"], g["k"], g["threads"]): g for g in r.gemm}
    for g in r.gemv:
        mm = gemm[(g["format"], g["n"], g["k"], g["threads"])]
        lines.append(f"| {g['format']} | {g['n']}x{g['k']} | {g['threads']} | {g['gbs']:.1f} | {g['read_gbs']:.1f} | "
                     f"{100 * g['fraction']:.0f}% | {mm['gops']:.1f} |")
    return "\n".join(lines) + "\n"


def to_json(r: KernelBench) -> str:
    return json.dumps(asdict(r), indent=2)
