"""One way to run long work away from the Qt thread: a Task runs a callable on a worker thread, or a coroutine on the
qasync loop, and tells the GUI thread how it goes.

    task = Task("Fetching Tiny").start(lambda report: catalog.fetch(name, progress=lambda *p: report(p)))
    task.progressed.connect(show)   # partial results, latest first: a slow GUI sees fewer, never an old one last
    task.done.connect(finished)     # the callable's return value
    task.failed.connect(report)     # the reason; "cancelled" after cancel()

Every signal is emitted on the GUI thread, and `done` or `failed` exactly once. cancel() makes the next report()
raise inside the work (a callable stops between two of its steps) and cancels a coroutine at its next await; work
that had already finished still reports `done`. A Task keeps itself alive until it has finished, so a dialog may close
while its task runs.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

__all__ = ["Task", "Cancelled"]

Report = Callable[[Any], None]


class Cancelled(Exception):
    """Raised by report() once the task is cancelled: the work stops there."""


_running: set["Task"] = set()  # tasks whose work has not finished yet (nothing else may hold them)


class Task(QObject):
    """Long work with partial results, a cancel flag and one outcome. `expected` names the exception types whose
    message alone explains a failure (a missing file, a bad download); others are reported with their type."""

    progressed = Signal(object)
    done = Signal(object)
    failed = Signal(str)
    _wake = Signal()  # from the worker thread: a partial result or the outcome is waiting

    def __init__(self, what: str, expected: tuple[type[BaseException], ...] = ()):
        super().__init__()
        self.what = what
        self.result: Any = None
        self.error = ""
        self._expected = expected
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._latest: tuple[Any] | None = None  # the partial result not yet shown
        self._outcome: tuple[Any, str] | None = None  # (result, error) once the work has ended
        self._finished = False
        self._future: asyncio.Future | None = None
        self._wake.connect(self._deliver, Qt.QueuedConnection)

    # ---- starting ----------------------------------------------------------------------------------------------

    def start(self, fn: Callable[[Report], Any]) -> "Task":
        """Run fn(report) on a worker thread."""
        _running.add(self)
        threading.Thread(target=self._run_thread, args=(fn,), name=self.what, daemon=True).start()
        return self

    def start_async(self, fn: Callable[[Report], Awaitable[Any]]) -> "Task":
        """Run the coroutine fn(report) on the running asyncio (qasync) loop."""
        _running.add(self)
        self._future = asyncio.ensure_future(self._run_async(fn))
        return self

    # ---- the work's side ---------------------------------------------------------------------------------------

    def report(self, partial: Any) -> None:
        """Hand a partial result (progress) to the GUI thread; raises Cancelled once the task is cancelled."""
        if self._cancel.is_set():
            raise Cancelled()
        with self._lock:
            waiting = self._latest is not None
            self._latest = (partial,)
        if not waiting:
            self._emit_wake()

    def _run_thread(self, fn: Callable[[Report], Any]) -> None:
        try:
            outcome = (fn(self.report), "")
        except Exception as e:  # noqa: BLE001 (a worker thread must report, never die silently)
            outcome = self._failure(e)
        with self._lock:
            self._outcome = outcome
        self._emit_wake()

    def _emit_wake(self) -> None:
        try:
            self._wake.emit()
        except RuntimeError:  # the window closed while the thread worked: its result has no one to go to
            pass

    async def _run_async(self, fn: Callable[[Report], Awaitable[Any]]) -> None:
        try:
            outcome = (await fn(self.report), "")
        except asyncio.CancelledError:
            outcome = (None, "cancelled")
        except Exception as e:  # noqa: BLE001 (reported through `failed`)
            outcome = self._failure(e)
        with self._lock:
            self._outcome = outcome
        self._deliver()

    def _failure(self, e: Exception) -> tuple[None, str]:
        if isinstance(e, Cancelled) or self.cancelled:  # whatever the work raised once told to stop
            return None, "cancelled"
        if isinstance(e, self._expected):
            return None, str(e) or type(e).__name__
        return None, f"{type(e).__name__}: {e}"

    # ---- the GUI thread's side ---------------------------------------------------------------------------------

    @Slot()
    def _deliver(self) -> None:
        with self._lock:
            latest, self._latest = self._latest, None
            outcome = self._outcome
        if self._finished:
            return
        if latest is not None:
            self.progressed.emit(latest[0])
        if outcome is None:
            return
        self.result, self.error = outcome
        self._finished = True
        _running.discard(self)
        if self.error:
            self.failed.emit(self.error)
        else:
            self.done.emit(self.result)

    def cancel(self) -> None:
        """Ask the work to stop (see the module's note); `failed("cancelled")` follows unless it had finished."""
        self._cancel.set()
        if self._future is not None:
            self._future.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def isFinished(self) -> bool:  # noqa: N802 (named as QThread's)
        """True from the moment `done` or `failed` is emitted."""
        return self._finished
