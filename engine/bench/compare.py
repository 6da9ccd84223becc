"""Model benchmark: load time, prefill and decode speed, time to first token, peak memory; optionally llama.cpp
(llama-cpp-python, an optional development extra) on the same file, prompt and thread count, in the same run."""
from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from wren.engine.settings import Settings

PROMPT_TEXT = ("The history of the printing press begins in the fifteenth century, when movable type changed how "
               "books were made, sold and read across Europe. ")


@dataclass
class BenchResult:
    engine: str
    model: str
    threads: int
    prompt_tokens: int
    gen_tokens: int
    load_s: float
    prefill_tok_s: float
    decode_tok_s: float
    ttft_s: float
    peak_rss_mib: float

    def row(self) -> str:
        return (f"{self.engine:10s} load {self.load_s:6.2f} s  prefill {self.prefill_tok_s:7.1f} tok/s  "
                f"decode {self.decode_tok_s:6.1f} tok/s  TTFT {1000 * self.ttft_s:6.1f} ms  "
                f"peak RSS {self.peak_rss_mib:6.0f} MiB")


def prompt_ids(tokenizer_encode, n: int, bos: list[int]) -> list[int]:
    ids = list(bos)
    piece = tokenizer_encode(PROMPT_TEXT)
    while len(ids) < n:
        ids.extend(piece)
    return ids[:n]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings(base: Settings, n_prompt: int, n_gen: int) -> Settings:
    """`base` with a context that holds the prompt and what is generated, prefilled in batches of 512."""
    return replace(base, context_length=max(512, n_prompt + n_gen + 8), batch_size=512).validated()


def bench_wren(path: Path, settings: Settings, n_prompt: int, n_gen: int, repeats: int = 3) -> BenchResult:
    from wren.engine.runtime.loader import open_generator

    t0 = time.perf_counter()
    gen = open_generator(path, settings)
    load_s = time.perf_counter() - t0
    bos = [gen.tokenizer.bos_id] if gen.tokenizer.add_bos and gen.tokenizer.bos_id is not None else []
    ids = prompt_ids(lambda s: gen.tokenizer.encode(s, add_special=False), n_prompt, bos)
    prefill, decode, ttft = [], [], []
    try:
        for _ in range(repeats):
            t = time.perf_counter()
            logits = gen.context.forward(ids, 0, gen.pool)[0]
            tok = int(np.argmax(logits))
            t_first = time.perf_counter()
            prefill.append(len(ids) / (t_first - t))
            ttft.append(t_first - t)
            pos = len(ids)
            t = time.perf_counter()
            for _ in range(n_gen):
                logits = gen.context.forward([tok], pos, gen.pool)[0]
                tok = int(np.argmax(logits))
                pos += 1
            decode.append(n_gen / (time.perf_counter() - t))
    finally:
        gen.close()
    return BenchResult("wren", Path(path).name, gen.pool.threads, len(ids), n_gen, load_s, statistics.median(prefill),
                       statistics.median(decode), statistics.median(ttft), _rss_mib())


def bench_llama_cpp(path: Path, threads: int, n_prompt: int, n_gen: int, repeats: int = 3) -> BenchResult:
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(str(path), n_threads=threads, n_threads_batch=threads, n_ctx=max(512, n_prompt + n_gen + 8),
                          n_batch=512, verbose=False, logits_all=False)
    load_s = time.perf_counter() - t0
    bos = [llm.token_bos()] if llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true" else []
    ids = prompt_ids(lambda s: llm.tokenize(s.encode(), add_bos=False, special=False), n_prompt, bos)
    prefill, decode, ttft = [], [], []
    for _ in range(repeats):
        llm.reset()
        llm._ctx.memory_clear(True) if hasattr(llm._ctx, "memory_clear") else None
        t = time.perf_counter()
        llm.eval(ids)
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t_first = time.perf_counter()
        prefill.append(len(ids) / (t_first - t))
        ttft.append(t_first - t)
        t = time.perf_counter()
        for _ in range(n_gen):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        decode.append(n_gen / (time.perf_counter() - t))
    return BenchResult("llama.cpp", Path(path).name, threads, len(ids), n_gen, load_s, statistics.median(prefill),
                       statistics.median(decode), statistics.median(ttft), _rss_mib())


def machine() -> str:
    from wren.engine.runtime.topology import read_topology

    return f"{read_topology().cpu_name or platform.processor()} ({platform.machine()})"


def to_json(results: list[BenchResult]) -> str:
    return json.dumps({"machine": machine(), "results": [asdict(r) for r in results]}, indent=2)
