"""gui.tasks.Task: work on a worker thread or on the qasync loop, partial results, cancel, one done or failed, every
signal on the GUI thread. Threads meet through events (handshakes), never through sleeps."""
import asyncio
import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
qasync = pytest.importorskip("qasync")

from PySide6.QtCore import QThread  # noqa: E402

from wren.gui.tasks import Cancelled, Task  # noqa: E402

pytestmark = pytest.mark.gui


class Seen:
    """What a task's signals said, and on which thread."""

    def __init__(self, task: Task):
        self.partial, self.done, self.failed, self.threads = [], [], [], set()
        task.progressed.connect(lambda p: self._add(self.partial, p))
        task.done.connect(lambda r: self._add(self.done, r))
        task.failed.connect(lambda e: self._add(self.failed, e))

    def _add(self, where: list, value) -> None:
        self.threads.add(QThread.currentThread())
        where.append(value)


def test_a_thread_task_reports_its_latest_partial_result_and_its_result(qtbot):
    task = Task("counting")
    seen = Seen(task)
    worker = []

    def work(report):
        worker.append(threading.current_thread())
        for i in range(1000):
            report(i)
        return "all counted"

    with qtbot.waitSignal(task.done):
        task.start(work)
    assert task.isFinished() and (task.result, task.error) == ("all counted", "")
    assert seen.done == ["all counted"] and seen.failed == []
    # partial results arrive in order, the last one always; a busy GUI thread sees fewer of them
    assert seen.partial and seen.partial[-1] == 999 and seen.partial == sorted(set(seen.partial))
    assert worker[0] is not threading.main_thread() and seen.threads == {QThread.currentThread()}


def test_a_failure_is_reported_once_with_its_reason(qtbot):
    expected = Task("reading", expected=(OSError,))
    seen = Seen(expected)
    with qtbot.waitSignal(expected.failed):
        expected.start(lambda report: open("/nonexistent/file"))
    assert seen.done == [] and len(seen.failed) == 1 and "No such file" in seen.failed[0]
    assert not seen.failed[0].startswith("FileNotFoundError")

    other = Task("dividing", expected=(OSError,))
    with qtbot.waitSignal(other.failed) as blocker:
        other.start(lambda report: 1 / 0)
    assert blocker.args == ["ZeroDivisionError: division by zero"] and other.error == blocker.args[0]
    assert other.isFinished() and other.result is None


def test_cancel_stops_the_work_at_its_next_report(qtbot):
    task = Task("waiting")
    seen = Seen(task)
    started, cancelled = threading.Event(), threading.Event()
    steps = []

    def work(report):
        report("first")
        started.set()
        cancelled.wait()
        steps.append("after cancel")
        report("second")  # raises Cancelled
        steps.append("never")

    task.start(work)
    assert started.wait(60)
    assert not task.cancelled
    task.cancel()
    assert task.cancelled
    with qtbot.waitSignal(task.failed) as blocker:
        cancelled.set()
    assert blocker.args == ["cancelled"] and steps == ["after cancel"] and seen.done == []
    assert "second" not in seen.partial


def test_work_that_ends_anyway_after_cancel_is_done_and_an_error_after_cancel_reads_cancelled(qtbot):
    for outcome, signal in (("finished", "done"), (OSError("connection reset"), "failed")):
        task = Task("racing")
        go = threading.Event()

        def work(report, outcome=outcome):
            go.wait()
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        task.start(work)
        task.cancel()
        with qtbot.waitSignal(getattr(task, signal)) as blocker:
            go.set()
        assert blocker.args == (["finished"] if signal == "done" else ["cancelled"])


def test_report_after_cancel_raises_cancelled(qtbot):
    task = Task("idle")
    task.cancel()
    with pytest.raises(Cancelled):
        task.report(1)


def test_an_async_task_runs_on_the_loop_and_can_be_cancelled(qtbot, loop):
    async def count(report):
        for i in range(3):
            report(i)
            await asyncio.sleep(0)
        return "three"

    async def forever(report):
        report("waiting")
        await asyncio.Event().wait()

    async def main():
        done = Task("async count")
        seen = Seen(done)
        done.start_async(count)
        stuck = Task("async wait")
        stuck_seen = Seen(stuck)
        stuck.start_async(forever)
        while not done.isFinished():
            await asyncio.sleep(0)
        stuck.cancel()
        while not stuck.isFinished():
            await asyncio.sleep(0)
        return seen, stuck_seen, done, stuck

    seen, stuck_seen, done, stuck = loop.run_until_complete(asyncio.wait_for(main(), 60))
    assert seen.done == ["three"] and seen.partial[-1] == 2 and done.result == "three"
    assert stuck_seen.failed == ["cancelled"] and stuck_seen.done == [] and stuck.error == "cancelled"
    assert seen.threads == stuck_seen.threads == {QThread.currentThread()}
