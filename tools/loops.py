"""How often chat answers loop, with the repetition guard off and on: fixed chat prompts, the chat mode's sampling
with fixed seeds, the default model unless --model names another.

    .venv/bin/python tools/loops.py [--model NAME_OR_PATH] [--max-new-tokens 256] [--threads 2]

For each prompt and each run (guard off: loop_repeats=0, guard on: the default) it prints the finish reason, the
tokens generated and how often the most repeated line occurs; then the counts: answers that looped by the guard's own
test (a block of tokens said 3 times in a row, over 32 tokens or more), answers stopped by the guard, answers with a
line said 3 or 5 times (results: docs/loops.md).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import sys

from wren.engine.engine import Engine, Request, Token
from wren.engine.runtime.sampling import SamplingParams, loop_block
from wren.engine.settings import Settings

PROMPTS = [
    "Write a poem about the sea.",
    "List ten fruits.",
    "What is the capital of France?",
    "Explain how a rainbow forms.",
    "Give me five tips for better sleep.",
    "Write a short story about a cat who learns to fly.",
    "What are the benefits of exercise?",
    "How do I make a cup of tea?",
    "Tell me a joke.",
    "Describe your ideal weekend.",
    "What is photosynthesis?",
    "List the days of the week in French.",
    "Write a haiku about autumn.",
    "Why is the sky blue?",
    "Give me a recipe for pancakes.",
    "What should I pack for a camping trip?",
    "Explain what a computer virus is.",
    "Write a motivational message for a student before an exam.",
    "What are the planets of the solar system?",
    "How can I save money on groceries?",
]


def looped(ids: list[int]) -> bool:
    """Whether the answer, at some point, ended in a loop by the guard's own test (its default repeat count)."""
    repeats = SamplingParams().loop_repeats
    return any(loop_block(ids[:n], repeats) for n in range(1, len(ids) + 1))


def top_line_count(text: str) -> int:
    """How often the most frequent line of a few words or more occurs in text."""
    lines = [ln.strip() for ln in text.splitlines() if len(ln.split()) >= 3]
    return max(collections.Counter(lines).values(), default=0)


async def measure(args: argparse.Namespace) -> int:
    settings = Settings(model=args.model, threads=args.threads)
    engine = await Engine.open(None, settings)
    base = settings.mode("chat").params()
    runs = {"off": dataclasses.replace(base, loop_repeats=0), "on": base}
    totals = {k: collections.Counter() for k in runs}
    try:
        print(f"model {engine.model_name}, chat sampling, max {args.max_new_tokens} new tokens")
        print(f"{'#':>2}  {'guard off':>24}  {'guard on':>24}  prompt")
        for i, prompt in enumerate(PROMPTS):
            cells = []
            for name, params in runs.items():
                request = Request(messages=[{"role": "user", "content": prompt}],
                                  sampling=dataclasses.replace(params, seed=1000 + i),
                                  max_new_tokens=args.max_new_tokens)
                # the same start for both runs: a one-token prompt leaves nothing of this prompt in the KV cache, so
                # both prefill it whole and give the same tokens until the guard stops one of them
                async for _ in engine.generate(Request(ids=[0], max_new_tokens=1)):
                    pass
                ids = []
                async for ev in engine.generate(request):
                    if isinstance(ev, Token) and ev.id >= 0:
                        ids.append(ev.id)
                top = top_line_count(ev.text)
                t = totals[name]
                t["tokens"] += ev.stats.generated_tokens
                t["repetition"] += ev.reason == "repetition"
                t["length"] += ev.reason == "length"
                t["looped"] += looped(ids)
                t["line x3"] += top >= 3
                t["line x5"] += top >= 5
                cells.append(f"{ev.reason:>10} {ev.stats.generated_tokens:4d} tok x{top:<2d}")
            print(f"{i + 1:2d}  {cells[0]:>24}  {cells[1]:>24}  {prompt}", flush=True)
    finally:
        await engine.close()
    print()
    print(f"{len(PROMPTS)} prompts            guard off  guard on")
    rows = [("answers that looped (guard's test)", "looped"), ("answers cut at the token limit", "length"), ("answers stopped by the guard", "repetition"),
            ("answers with a line said 3+ times", "line x3"), ("answers with a line said 5+ times", "line x5"),
            ("tokens generated in all", "tokens")]
    for label, key in rows:
        print(f"{label:34} {totals['off'][key]:8d}  {totals['on'][key]:8d}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="", help="a model name or GGUF path (default: the default model)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    return asyncio.run(measure(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
