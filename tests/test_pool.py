"""The thread pool: pinning really holds, settings can change at run time, bad settings are refused."""
import os
import time

import numpy as np
import pytest

from wren.engine.runtime import native
from wren.engine.runtime.native import Activations, Format, PackedWeights, Pool
from wren.engine.runtime.topology import format_cpu_list, parse_cpu_list

ALLOWED = sorted(os.sched_getaffinity(0))


def allowed_list(tid: int) -> list[int]:
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return parse_cpu_list(line.split(":", 1)[1].strip())
    raise AssertionError("no Cpus_allowed_list")


def live_tasks() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def tasks_after_exit(gone: set[int], deadline_s: float = 10.0) -> set[int]:
    """The process's tasks once `gone` have left /proc. pthread_join returns when the kernel clears the thread's id,
    which it does before the task is reaped, so a joined thread can still be listed for a moment; one that was never
    told to stop stays listed and is returned after the deadline."""
    end = time.monotonic() + deadline_s
    while (tasks := live_tasks()) & gone and time.monotonic() < end:
        time.sleep(0.01)
    return tasks


@pytest.mark.parametrize("cpu", ALLOWED[:2])
def test_worker_pinned_to_a_cpu_runs_there(cpu):
    with Pool(1, cpus=[cpu], strict=True) as pool:
        (tid,) = pool.thread_ids()
        assert allowed_list(tid) == [cpu]
        for _ in range(20):
            assert pool.probe_cpus() == [cpu]


def test_strict_pins_each_worker_alone():
    cpus = ALLOWED[:2]
    with Pool(len(cpus), cpus=cpus, strict=True) as pool:
        assert [allowed_list(t) for t in pool.thread_ids()] == [[c] for c in cpus]
        assert pool.probe_cpus() == cpus


def test_loose_affinity_shares_the_set_and_system_leaves_it_alone():
    with Pool(3, cpus=ALLOWED[-1:], strict=False) as pool:
        assert all(allowed_list(t) == ALLOWED[-1:] for t in pool.thread_ids())
        assert set(pool.probe_cpus()) == set(ALLOWED[-1:])
    with Pool(2) as pool:
        assert all(allowed_list(t) == ALLOWED for t in pool.thread_ids())


def test_recreating_the_pool_with_other_settings_works():
    rng = np.random.default_rng(0)
    w = PackedWeights.from_floats(Format.Q4_0, rng.standard_normal((96, 128)).astype(np.float32))
    a = Activations(rng.standard_normal((3, 128)).astype(np.float32))
    expected = native.matmul(w, a)
    before = live_tasks()
    settings = [dict(threads=1, cpus=[ALLOWED[0]], strict=True), dict(threads=3),
                dict(threads=len(ALLOWED), cpus=ALLOWED, strict=True), dict(threads=2, cpus=ALLOWED[-1:])]
    for s in settings * 3:
        pool = Pool(**s)
        tids = pool.thread_ids()
        assert len(tids) == s["threads"] and set(tids) <= live_tasks()
        assert np.array_equal(native.matmul(w, a, pool), expected)
        if s.get("strict"):
            assert pool.probe_cpus() == s["cpus"][: s["threads"]]
        pool.close()
        assert not (set(tids) & tasks_after_exit(set(tids))), "closed pool left threads behind"
        with pytest.raises(ValueError, match="closed"):
            native.matmul(w, a, pool)
    assert tasks_after_exit(live_tasks() - before) == before


def test_chunks_all_taken_once():
    with Pool(3) as pool:
        counts = pool.chunk_counts(200, 1000)
        assert sum(counts) == 200 and len(counts) == 3


def test_a_slower_core_takes_fewer_chunks():
    """Chunks go to whichever worker asks first. Worker i repeats each chunk's work costs[i] times, as a core that
    many times slower would take; the work is a count of instructions, not a time, so a busy machine changes the
    result only if it gives the fast worker less than a twentieth of the slow one's CPU time for a third of a second
    or so (the slow worker's share of 200 chunks)."""
    with Pool(2, spin_us=0) as pool:
        for costs in ([1, 20], [20, 1]):
            counts = pool.chunk_counts(400, 20_000, costs)
            fast, slow = counts if costs[0] == 1 else counts[::-1]
            assert sum(counts) == 400 and slow < fast, (costs, counts)
        with pytest.raises(native.InvalidArgumentError):
            pool.chunk_counts(10, 100, [0, 1])
        with pytest.raises(ValueError, match="2 workers"):
            pool.chunk_counts(10, 100, [1, 2, 3])


def test_bad_settings_raise_clear_errors():
    with pytest.raises(native.ThreadSettingsError, match="thread count out of range"):
        Pool(native.MAX_THREADS + 1)
    with pytest.raises(native.ThreadSettingsError, match="thread count out of range"):
        Pool(0)
    with pytest.raises(native.ThreadSettingsError, match="CPU id does not exist"):
        Pool(1, cpus=[4095], strict=True)
    with pytest.raises(native.ThreadSettingsError, match="CPU id does not exist"):
        Pool(1, cpus=[-1])
    with pytest.raises(native.ThreadSettingsError, match="CPU id"):
        Pool(2, cpus=[ALLOWED[0], ALLOWED[0]], strict=True)
    with pytest.raises(native.ThreadSettingsError, match="thread count"):
        Pool(len(ALLOWED) + 1, cpus=ALLOWED, strict=True)
    with pytest.raises(native.ThreadSettingsError, match="empty"):
        Pool(1, cpus=[])
    # the error names the settings it was given
    with pytest.raises(native.ThreadSettingsError, match=format_cpu_list([4095])):
        Pool(1, cpus=[4095])


def test_more_threads_than_cores_still_correct():
    rng = np.random.default_rng(5)
    w = PackedWeights.from_floats(Format.Q8_0, rng.standard_normal((77, 96)).astype(np.float32))
    a = Activations(rng.standard_normal((4, 96)).astype(np.float32))
    with Pool(7, cpus=ALLOWED[:1]) as pool:
        assert np.array_equal(native.matmul(w, a, pool), native.matmul(w, a))


@pytest.mark.parametrize("threads", [2, 5])
def test_barrier_waiters_go_to_sleep_on_one_cpu(threads):
    # worker 0 enters the barrier only once every other worker sleeps in it: waiters that spun (or yielded) without
    # bound, as against a worker another program keeps off its core, would never let it in and this would hang
    with Pool(threads, cpus=ALLOWED[:1]) as pool:
        assert pool.barrier_sleepers() == threads - 1
        assert pool.barrier_sleepers() == threads - 1  # and the barrier works again after the sleepers woke
        assert sum(pool.chunk_counts(200, 10)) == 200
