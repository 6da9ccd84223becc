"""Latency figures the tests check only by count: how long a cancel takes to end a generation, and how long the
window's event loop stalls while a model loads and while an answer streams. A benchmark: it prints, it asserts nothing.

    python tools/latency.py [--model NAME_OR_PATH] [--runs 5] [--no-window]

Cancel: the time from engine.cancel() to the Done event, cancelled after the fifth token (decode) and at the first
progress report of a long prompt (prefill). Window (offscreen Qt): the longest gap between the ticks of a 10 ms
timer on the window's event loop, while the model loads and while a chat answer streams.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time


def _summary(values: list[float]) -> str:
    ms = [1000 * v for v in values]
    return f"median {statistics.median(ms):7.1f} ms   max {max(ms):7.1f} ms   ({len(ms)} runs)"


async def _cancel_latency(engine, request, when) -> float:
    """Seconds from engine.cancel() (when `when(event)` first says so) to the Done event."""
    from wren.engine.engine import Done

    t_cancel = None
    async for ev in engine.generate(request):
        if t_cancel is None and when(ev):
            t_cancel = time.perf_counter()
            engine.cancel()
        if isinstance(ev, Done):
            return time.perf_counter() - (t_cancel if t_cancel is not None else time.perf_counter())
    raise AssertionError("no Done event")


async def cancel_figures(model, runs: int) -> None:
    from wren.engine.engine import Engine, Progress, Request, Token
    from wren.engine.settings import Settings

    engine = await Engine.open(model, Settings(context_length=2048, batch_size=256))
    try:
        decode, prefill = [], []
        for i in range(runs):
            tokens = []

            def fifth_token(ev):
                if isinstance(ev, Token):
                    tokens.append(ev)
                return len(tokens) >= 5
            decode.append(await _cancel_latency(engine, Request(text=f"Story {i}: once upon a time",
                                                                max_new_tokens=500), fifth_token))
            text = f"{i}. The quick brown fox jumps over the lazy dog. " * 120
            prefill.append(await _cancel_latency(engine, Request(text=text, max_new_tokens=20),
                                                 lambda ev: isinstance(ev, Progress)))
        print(f"cancel during decode:   {_summary(decode)}")
        print(f"cancel during prefill:  {_summary(prefill)}")
    finally:
        await engine.close()


class LatencyProbe:
    """A 10 ms timer on the Qt loop; the longest gap between its ticks is how long the window stalled."""

    def __init__(self):
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.worst, self.last = 0.0, None

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last)
        self.last = now

    def __enter__(self):
        self.worst, self.last = 0.0, None
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def window_figures(model, runs: int) -> None:
    import tempfile
    from dataclasses import replace

    import qasync
    from PySide6.QtWidgets import QApplication

    from wren.engine.settings import Settings
    from wren.engine.store import Store
    from wren.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "wren.sqlite3"))
        w = MainWindow(replace(Settings(context_length=2048), model=model or ""), store)
        w.show()
        loads, chats = [], []
        for _ in range(runs):
            with LatencyProbe() as probe:
                if not loop.run_until_complete(w.load_engine()):
                    raise SystemExit(f"latency: the model did not load: {w.banner.text()}")
            loads.append(probe.worst)
        for _ in range(runs):
            w.new_chat()
            with LatencyProbe() as probe:
                loop.run_until_complete(w._chat_turn("What is the capital of France? Answer in one sentence."))
            chats.append(probe.worst)
        print(f"window stall, loading:    {_summary(loads)}")
        print(f"window stall, answering:  {_summary(chats)}")
        loop.run_until_complete(w.shutdown())
        w.close()
        store.close()
    loop.close()  # joins the loop's worker threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model name or GGUF path (default: the default model)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-window", action="store_true", help="only the cancel figures")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    from wren.engine.runtime.generate import resolve_model_path

    model = str(resolve_model_path(args.model))
    print(f"model {os.path.basename(model)}, {os.cpu_count()} CPUs")
    asyncio.run(cancel_figures(model, args.runs))
    if not args.no_window:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        window_figures(model, args.runs)


if __name__ == "__main__":
    main()
