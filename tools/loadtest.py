#!/usr/bin/env python3
"""A bounded load test of `wren serve` on 127.0.0.1: N concurrent clients send R requests in all (chat and
completions, streamed or not; every 5th streamed one is dropped after its first piece), and every request must be
answered or refused cleanly (a 503 with Retry-After). The server's threads and memory are read before and after,
and it must still answer at the end.

    python tools/loadtest.py [--clients 8] [--requests 200] [--model SmolLM2-135M-Instruct] [--queue 6]

Exit status 0 when all went well; the figures are printed as a Markdown table (docs/serve.md keeps one run).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter

import aiohttp

PROMPTS = ["Name a fruit.", "Say hello.", "What is 2+2?", "Give me a word that rhymes with cat.",
           "Tell me a colour.", "Write one short sentence about the sea."]


def proc_figures(pid: int) -> tuple[int, int]:
    """(threads, resident MiB) of a process, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) // 1024


def start_server(model: str, queue: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "wren.engine.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                             "-m", model, "--queue", str(queue)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"wren serve did not start:\n{proc.stderr.read()}")
    return proc, line.split()[2]


async def one(session: aiohttp.ClientSession, url: str, i: int, rng: random.Random) -> str:
    """One request; its outcome: answered, dropped (we left mid-stream), refused (503) or error:<why>."""
    chat = i % 2 == 0
    stream = i % 3 != 0
    drop = stream and i % 5 == 0
    body = {"max_tokens": rng.randint(4, 16), "seed": i, "stream": stream}
    if chat:
        body["messages"] = [{"role": "user", "content": rng.choice(PROMPTS)}]
    else:
        body["prompt"] = rng.choice(PROMPTS)
    path = "/v1/chat/completions" if chat else "/v1/completions"
    async with session.post(url + path, json=body) as r:
        if r.status == 503:
            if "Retry-After" not in r.headers or (await r.json())["error"]["code"] != "queue_full":
                return "error:503 without Retry-After or error body"
            await asyncio.sleep(float(r.headers["Retry-After"]) * rng.uniform(0.5, 1.0))  # a polite client waits
            return "refused"
        if r.status != 200:
            return f"error:{r.status} {await r.text()}"
        if not stream:
            data = await r.json()
            return "answered" if data["usage"]["completion_tokens"] >= 0 and data["choices"] else "error:no choices"
        if drop:
            await r.content.readline()
            r.close()
            return "dropped"
        events = [e for e in (await r.text()).split("\n\n") if e]
        if events[-1] != "data: [DONE]":
            return "error:stream without [DONE]"
        for e in events[:-1]:
            if "error" in json.loads(e[len("data: "):]):
                return f"error:{e}"
        return "answered"


async def load(url: str, clients: int, requests: int) -> tuple[Counter, list[float]]:
    outcomes: Counter = Counter()
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(k: int) -> None:
        rng = random.Random(k)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            for i in counter:
                t = time.perf_counter()
                try:
                    outcome = await one(session, url, i, rng)
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    outcome = f"error:{type(e).__name__} {e}"
                if outcome == "answered":
                    latencies.append(time.perf_counter() - t)
                outcomes[outcome.split(":")[0] if not outcome.startswith("error") else outcome] += 1

    await asyncio.gather(*(client(k) for k in range(clients)))
    return outcomes, latencies


async def health(url: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/health") as r:
            return await r.json()


async def still_answers(url: str) -> bool:
    async with aiohttp.ClientSession() as s:
        async with s.post(url + "/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}) as r:
            return r.status == 200 and bool((await r.json())["choices"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--queue", type=int, default=6, help="the server's --queue (below clients - 1: some 503s)")
    ap.add_argument("--timeout", type=float, default=900, help="the whole run's limit in seconds")
    args = ap.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 5000:
        raise SystemExit("--clients 1..64 and --requests 1..5000")
    proc, url = start_server(args.model, args.queue)
    try:
        asyncio.run(still_answers(url))  # warm: the first answer allocates what later ones reuse
        threads0, rss0 = proc_figures(proc.pid)
        t = time.perf_counter()
        outcomes, latencies = asyncio.run(asyncio.wait_for(load(url, args.clients, args.requests), args.timeout))
        wall = time.perf_counter() - t
        h = asyncio.run(health(url))
        threads1, rss1 = proc_figures(proc.pid)
        alive = asyncio.run(still_answers(url))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    errors = {k: v for k, v in outcomes.items() if k.startswith("error")}
    latencies = sorted(latencies) or [0.0]
    rows = [("clients / requests", f"{args.clients} / {args.requests} (server --queue {args.queue})"),
            ("answered / dropped mid-stream / refused 503", f"{outcomes['answered']} / {outcomes['dropped']} / "
                                                              f"{outcomes['refused']}"),
            ("errors", str(sum(errors.values()))),
            ("server's own counts", json.dumps(h["requests"])),
            ("wall time", f"{wall:.1f} s"),
            ("latency of the answered, p50 / p95", f"{latencies[len(latencies) // 2]:.2f} s / "
                                  f"{latencies[int(len(latencies) * 0.95)]:.2f} s"),
            ("server threads before / after", f"{threads0} / {threads1}"),
            ("server RSS before / after", f"{rss0} MiB / {rss1} MiB"),
            ("answers afterwards", "yes" if alive else "NO"),
            ("traceback in the server's log", "yes" if "Traceback" in err else "no")]
    print("| | |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    for k, v in errors.items():
        print(f"{v} x {k}", file=sys.stderr)
    ok = not errors and alive and threads1 <= threads0 and "Traceback" not in err and not h["busy"]
    if "Traceback" in err:
        print(err[-3000:], file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
