"""Thread placement: settings and a topology in, pool settings out (no model, no threads started)."""
import pytest
from test_topology import make_tree, phone, rk3588

from wren.engine.runtime import placement
from wren.engine.runtime.native import PoolSettings
from wren.engine.runtime.topology import Cluster, Cpu, Topology, read_topology
from wren.engine.settings import Settings, SettingsError


def topo(*clusters: list[int], allowed: list[int] | None = None, offline: tuple[int, ...] = ()) -> Topology:
    """Clusters slowest first, each a list of CPU ids."""
    cpus, cls = [], []
    for index, ids in enumerate(clusters):
        cls.append(Cluster(index, sorted(ids), f"core{index}", 256 * (index + 1), None))
        cpus += [Cpu(i, i not in offline, f"core{index}", None, None, 256 * (index + 1), None, index) for i in ids]
    cpus.sort(key=lambda c: c.id)
    online = [c.id for c in cpus if c.online]
    return Topology(cpus, cls, online if allowed is None else allowed)


RK3588 = topo([0, 1, 2, 3], [4, 5, 6, 7])


def test_big_preset_pins_one_thread_per_fast_core():
    assert placement.place(Settings(), RK3588) == PoolSettings(4, (4, 5, 6, 7), strict=True)
    assert placement.place(Settings(threads=2), RK3588) == PoolSettings(2, (4, 5), strict=True)


def test_big_preset_with_more_threads_than_fast_cores_takes_the_next_ones():
    # 6 threads on an RK3588: the 4 big cores and 2 little ones, pinned (not 6 threads on 4 cores)
    assert placement.place(Settings(threads=6), RK3588) == PoolSettings(6, (4, 5, 6, 7, 0, 1), strict=True)
    assert placement.place(Settings(threads=8), RK3588) == PoolSettings(8, (4, 5, 6, 7, 0, 1, 2, 3), strict=True)


def test_all_system_and_custom_presets():
    assert placement.place(Settings(cores="all"), RK3588) == PoolSettings(8, tuple(range(8)), strict=True)
    assert placement.place(Settings(cores="system"), RK3588) == PoolSettings(8)
    assert placement.place(Settings(cores="system", threads=3), RK3588) == PoolSettings(3)
    assert placement.place(Settings(cores="custom", custom_cpus=(1, 0)), RK3588) == \
        PoolSettings(2, (1, 0), strict=True)


def test_threads_share_cores_when_not_pinned_or_too_many():
    assert placement.place(Settings(cores="custom", custom_cpus=(0, 1), threads=3), RK3588) == \
        PoolSettings(3, (0, 1))
    assert placement.place(Settings(threads=2, strict_pinning=False), RK3588) == PoolSettings(2, (4, 5, 6, 7))


def test_custom_cpus_outside_the_allowed_set_are_a_settings_error():
    with pytest.raises(SettingsError, match=r"CPU 9 is not available here \(available: 0-7\)"):
        placement.place(Settings(cores="custom", custom_cpus=(4, 9)), RK3588)
    with pytest.raises(SettingsError, match="CPU 4-5 are not available"):
        placement.place(Settings(cores="custom", custom_cpus=(0, 4, 5)), RK3588, allowed=[0, 1, 2, 3])


def test_affinity_mask_limits_every_preset():
    limited = topo([0, 1, 2, 3], [4, 5, 6, 7], allowed=[0, 1, 2, 3, 4, 5])
    assert placement.place(Settings(), limited) == PoolSettings(2, (4, 5), strict=True)
    assert placement.place(Settings(cores="all"), limited).cpus == (0, 1, 2, 3, 4, 5)
    assert placement.place(Settings(cores="system"), limited) == PoolSettings(6)
    # the fast cluster entirely outside the mask: the allowed CPUs
    assert placement.place(Settings(), RK3588, allowed=[1, 2]) == PoolSettings(2, (1, 2), strict=True)


def test_phone_lone_prime_core_joins_the_next_cluster():
    phone = topo([0, 1, 2, 3], [4, 5, 6], [7])
    assert placement.place(Settings(), phone) == PoolSettings(4, (4, 5, 6, 7), strict=True)


def test_one_cluster_machine():
    assert placement.place(Settings(), topo([0, 1])) == PoolSettings(2, (0, 1), strict=True)


@pytest.mark.parametrize("layout, expected", [(rk3588, (4, 5, 6, 7)), (phone, None)])
def test_topologies_read_from_sysfs_trees(tmp_path, layout, expected):
    t = read_topology(*make_tree(tmp_path, layout()))
    pool = placement.place(Settings(), t)
    assert pool.strict and pool.cpus == tuple(t.recommended) and pool.threads == len(pool.cpus)
    assert expected is None or pool.cpus == expected


def test_context_threads_cover_every_allowed_cpu():
    assert placement.context_threads(PoolSettings(2, (4, 5), strict=True), range(8)) == 8
    assert placement.context_threads(PoolSettings(10), range(8)) == 10


@pytest.mark.parametrize("pool, text", [
    (PoolSettings(4, (4, 5, 6, 7), strict=True), "4 threads on CPUs 4-7, pinned"),
    (PoolSettings(1, (3,), strict=True), "1 thread on CPU 3, pinned"),
    (PoolSettings(3, (0, 1)), "3 threads sharing CPUs 0-1, not pinned"),
    (PoolSettings(8), "8 threads, placed by the system"),
])
def test_describe(pool, text):
    assert placement.describe(pool) == text


@pytest.mark.parametrize("cores", ["big", "all", "system", "custom"])
def test_more_threads_than_the_cpus_allowed_are_clamped_with_a_note(cores):
    one = topo([0], allowed=[0])
    custom = (0,) if cores == "custom" else ()
    pool = placement.place(Settings(threads=99, cores=cores, custom_cpus=custom), one)
    assert pool.threads == 1 and pool == placement.place(Settings(threads=1, cores=cores, custom_cpus=custom), one)
    assert pool.note == "threads = 99 is more than the 1 CPU this process may use: using 1"
    assert placement.describe(pool).endswith(f"({pool.note})")
    pool = placement.place(Settings(threads=9, cores=cores, custom_cpus=(0,) if cores == "custom" else ()), RK3588)
    assert pool.threads == 8 and pool.note.endswith("the 8 CPUs this process may use: using 8")
    assert placement.place(Settings(threads=8, cores=cores, custom_cpus=custom), RK3588).note == ""


def test_a_pool_started_from_clamped_settings_keeps_the_note_and_runs_that_many_threads():
    import os

    allowed = sorted(os.sched_getaffinity(0))
    pool_args = placement.place(Settings(threads=len(allowed) + 30, cores="system"), read_topology(), allowed)
    with pool_args.start() as pool:
        assert pool.threads == len(allowed) and pool.settings.note == pool_args.note != ""
        assert len(pool.thread_ids()) == len(allowed)


def test_pinning_is_possible_only_with_a_core_for_each_thread():
    assert placement.can_pin(Settings(), RK3588)
    assert placement.can_pin(Settings(threads=6), RK3588)  # the big cores and two little ones
    assert not placement.can_pin(Settings(cores="system"), RK3588)
    assert not placement.can_pin(Settings(cores="custom", custom_cpus=(0, 1), threads=3), RK3588)
    assert placement.can_pin(Settings(cores="custom", custom_cpus=(0, 1), threads=2, strict_pinning=False), RK3588)
    assert placement.can_pin(Settings(threads=99), RK3588)  # clamped to the 8 CPUs allowed, one thread each


def test_the_command_line_says_it_clamps_too_many_threads_before_loading_a_model(monkeypatch, tmp_path, capsys):
    from wren.engine import cli
    from wren.engine.runtime import loader, topology

    opened = []

    def no_model(model, settings, *args, **kwargs):
        opened.append(placement.place(settings, topology.read_topology()))
        raise FileNotFoundError("no model here")

    monkeypatch.setattr(topology, "read_topology", lambda *a, **k: topo([0], allowed=[0]))
    monkeypatch.setattr(loader, "open_generator", no_model)
    text = tmp_path / "prompt.txt"
    text.write_text("Once upon a time")
    assert cli.main(["run", "--raw", "-t", "99", str(text)]) == 1
    err = capsys.readouterr().err
    assert "wren: threads = 99 is more than the 1 CPU this process may use: using 1" in err
    assert [p.threads for p in opened] == [1]  # the load went ahead with the clamped count