"""Tests for wren.engine.runtime.topology on fake sysfs trees built in tmp_path, plus sanity checks on the live machine."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, strategies as st

from wren.engine.runtime.topology import (
    Topology, format_cpu_list, midr_core_name, parse_cpu_list, read_topology,
)

A55, A76, A510, A710, X2 = 0xD05, 0xD0B, 0xD46, 0xD47, 0xD48


def midr(part: int, implementer: int = 0x41) -> str:
    """A MIDR_EL1 value as the kernel prints it (variant 4, architecture 0xf, revision 0)."""
    return f"0x{(implementer << 24) | (0x4 << 20) | (0xF << 16) | (part << 4):016x}"


def arm_cpuinfo(parts: dict[int, int]) -> str:
    """/proc/cpuinfo of an arm64 kernel: one block per online processor."""
    return "\n".join(
        f"processor\t: {i}\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes crc32 asimddp\n"
        f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0x{p:03x}\n"
        f"CPU revision\t: 0\n"
        for i, p in parts.items()
    )


def x86_cpuinfo(n: int, model: str = "AMD EPYC") -> str:
    return "\n".join(
        f"processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        f"model name\t: {model}\nflags\t\t: fpu sse2 avx2 fma f16c\n"
        for i in range(n)
    )


def make_tree(tmp_path, cpus: dict[int, dict], online: str | None = "", cpuinfo: str = ""):
    """Build a fake /sys/devices/system/cpu and /proc/cpuinfo; returns (sysfs_root, cpuinfo_path).

    Per-CPU keys: midr (part number or raw text), capacity, max_freq, related, online (per-CPU flag file).
    online="" means "list every CPU"; None means no top-level online file.
    """
    root = tmp_path / "cpu"
    root.mkdir()
    files = {
        "midr": "regs/identification/midr_el1", "capacity": "cpu_capacity",
        "max_freq": "cpufreq/cpuinfo_max_freq", "related": "cpufreq/related_cpus", "online": "online",
    }
    for i, attrs in cpus.items():
        (root / f"cpu{i}").mkdir()
        for key, value in attrs.items():
            path = root / f"cpu{i}" / files[key]
            path.parent.mkdir(parents=True, exist_ok=True)
            if key == "midr" and isinstance(value, int):
                value = midr(value)
            path.write_text(f"{value}\n")
    if online is not None:
        (root / "online").write_text((online or format_cpu_list(cpus)) + "\n")
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo)
    return str(root), str(info)


def rk3588(**overrides) -> dict[int, dict]:
    """Rockchip RK3588: 4x A55 in one policy, 2x A76 + 2x A76 in two policies with slightly different clocks."""
    cpus = {i: dict(midr=A55, capacity=414, max_freq=1800000, related="0 1 2 3") for i in range(4)}
    cpus.update({i: dict(midr=A76, capacity=1024, max_freq=2352000, related="4 5") for i in (4, 5)})
    cpus.update({i: dict(midr=A76, capacity=1024, max_freq=2400000, related="6 7") for i in (6, 7)})
    for attrs in cpus.values():
        attrs.update(overrides)
    return cpus


def phone() -> dict[int, dict]:
    """Snapdragon 8 Gen 1 style 1+3+4: 4x A510, 3x A710, 1x X2 prime."""
    cpus = {i: dict(midr=A510, capacity=325, max_freq=1785600, related="0 1 2 3") for i in range(4)}
    cpus.update({i: dict(midr=A710, capacity=828, max_freq=2496000, related="4 5 6") for i in (4, 5, 6)})
    cpus[7] = dict(midr=X2, capacity=1024, max_freq=2995200, related="7")
    return cpus


def check_invariants(topo: Topology) -> None:
    """Every CPU is in exactly one cluster, indices agree, clusters go slowest to fastest."""
    listed = [i for cl in topo.clusters for i in cl.cpus]
    assert sorted(listed) == sorted(c.id for c in topo.cpus)
    for index, cl in enumerate(topo.clusters):
        assert cl.index == index
        assert all(c.cluster == index for c in topo.cpus if c.id in cl.cpus)
    assert set(topo.recommended) <= set(topo.online)
    assert len(topo.describe()) == len(topo.clusters)


def test_rk3588_two_a76_policies_form_one_big_cluster(tmp_path):
    topo = read_topology(*make_tree(tmp_path, rk3588()))
    check_invariants(topo)
    assert [(cl.cpus, cl.core_name, cl.capacity, cl.max_freq_khz) for cl in topo.clusters] == [
        ([0, 1, 2, 3], "Cortex-A55", 414, 1800000),
        ([4, 5, 6, 7], "Cortex-A76", 1024, 2400000),
    ]
    assert topo.recommended == [4, 5, 6, 7]
    assert topo.is_big_little
    assert topo.allowed == list(range(8))
    assert topo.describe() == [
        "cluster 0: CPUs 0-3 Cortex-A55, capacity 414, max 1800 MHz",
        "cluster 1: CPUs 4-7 Cortex-A76, capacity 1024, max 2400 MHz (recommended)",
    ]
    assert topo.cpu_name == "Cortex-A55 + Cortex-A76"
    cpu4 = topo.cpus[4]
    assert (cpu4.implementer, cpu4.part, cpu4.max_freq_khz, cpu4.cluster) == (0x41, A76, 2352000, 1)


def test_rk3588_without_cpufreq_or_capacity_groups_by_core_type(tmp_path):
    cpus = rk3588()
    for attrs in cpus.values():
        del attrs["related"], attrs["capacity"]
    topo = read_topology(*make_tree(tmp_path, cpus))
    check_invariants(topo)
    assert [cl.cpus for cl in topo.clusters] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert topo.recommended == [4, 5, 6, 7]


def test_same_core_with_very_different_clocks_stays_separate(tmp_path):
    """Same core and capacity but >10% apart in max frequency: not merged, faster one ranks higher."""
    cpus = {i: dict(midr=A76, max_freq=1400000, related="0 1") for i in (0, 1)}
    cpus.update({i: dict(midr=A76, max_freq=2400000, related="2 3") for i in (2, 3)})
    topo = read_topology(*make_tree(tmp_path, cpus))
    assert [cl.cpus for cl in topo.clusters] == [[0, 1], [2, 3]]
    assert topo.recommended == [2, 3]


def test_phone_single_prime_core_is_merged_with_next_cluster(tmp_path):
    topo = read_topology(*make_tree(tmp_path, phone()))
    check_invariants(topo)
    assert [(cl.cpus, cl.core_name) for cl in topo.clusters] == [
        ([0, 1, 2, 3], "Cortex-A510"), ([4, 5, 6], "Cortex-A710"), ([7], "Cortex-X2"),
    ]
    assert topo.recommended == [4, 5, 6, 7]
    assert topo.describe()[1].endswith("(recommended)") and topo.describe()[2].endswith("(recommended)")
    assert not topo.describe()[0].endswith("(recommended)")


def test_phone_with_prime_core_offline(tmp_path):
    """An offline CPU has no regs/ directory and no cpuinfo block; its cluster is kept but never recommended."""
    cpus = phone()
    del cpus[7]["midr"]
    topo = read_topology(*make_tree(tmp_path, cpus, online="0-6"))
    check_invariants(topo)
    assert topo.online == [0, 1, 2, 3, 4, 5, 6]
    assert topo.cpus[7].core_name is None and not topo.cpus[7].online
    assert topo.recommended == [4, 5, 6]
    assert topo.describe()[-1] == "cluster 2: CPUs 7 unknown core, capacity 1024, max 2995 MHz, offline 7"


def test_offline_big_cores_excluded_and_lone_survivor_merged(tmp_path):
    topo = read_topology(*make_tree(tmp_path, rk3588(), online="0-4"))
    check_invariants(topo)
    assert topo.recommended == [0, 1, 2, 3, 4]
    assert "offline 5-7" in topo.describe()[1]


def test_per_cpu_online_flag_when_top_level_list_missing(tmp_path):
    cpus = rk3588()
    cpus[6]["online"] = "0"
    cpus[7]["online"] = "0"
    cpus[5]["online"] = "1"
    topo = read_topology(*make_tree(tmp_path, cpus, online=None))
    assert topo.online == [0, 1, 2, 3, 4, 5]
    assert topo.recommended == [4, 5]


def test_x86_vm_is_one_cluster(tmp_path):
    topo = read_topology(*make_tree(tmp_path, {0: {}, 1: {}}, cpuinfo=x86_cpuinfo(2, "AMD   EPYC")))
    check_invariants(topo)
    assert len(topo.clusters) == 1 and not topo.is_big_little
    cpu = topo.cpus[0]
    assert (cpu.core_name, cpu.implementer, cpu.part, cpu.capacity, cpu.max_freq_khz) == (
        "AMD EPYC", None, None, None, None)
    assert topo.recommended == [0, 1]
    assert topo.describe() == ["cluster 0: CPUs 0-1 AMD EPYC (recommended)"]
    assert topo.cpu_name == "AMD EPYC"


def test_x86_one_policy_per_cpu_is_still_one_cluster(tmp_path):
    """acpi-cpufreq/intel_pstate give each CPU its own policy; favoured cores clock a little higher."""
    cpus = {i: dict(max_freq=4800000 + 100000 * (i % 2), related=str(i)) for i in range(4)}
    topo = read_topology(*make_tree(tmp_path, cpus, cpuinfo=x86_cpuinfo(4, "Intel(R) Core(TM) i7")))
    assert [cl.cpus for cl in topo.clusters] == [[0, 1, 2, 3]]


def test_cpuinfo_fallback_without_midr_files(tmp_path):
    cpus = rk3588()
    for attrs in cpus.values():
        del attrs["midr"]
    topo = read_topology(*make_tree(tmp_path, cpus, cpuinfo=arm_cpuinfo({i: A55 if i < 4 else A76 for i in range(8)})))
    check_invariants(topo)
    assert [c.core_name for c in topo.cpus] == ["Cortex-A55"] * 4 + ["Cortex-A76"] * 4
    assert (topo.cpus[0].implementer, topo.cpus[0].part) == (0x41, A55)
    assert topo.recommended == [4, 5, 6, 7]


def test_midr_file_wins_over_cpuinfo(tmp_path):
    root, info = make_tree(tmp_path, {0: dict(midr=X2)}, cpuinfo=arm_cpuinfo({0: A55}))
    assert read_topology(root, info).cpus[0].core_name == "Cortex-X2"


def test_old_arm32_cpuinfo_with_shared_cpu_part(tmp_path):
    """Old arm32 kernels print "CPU part" once after all processor blocks."""
    text = ("Processor\t: ARMv7 Processor rev 3 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 108.00\n\n"
            "processor\t: 1\nBogoMIPS\t: 108.00\n\n"
            "Features\t: half thumb vfp neon\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\nHardware\t: BCM2711\n")
    topo = read_topology(*make_tree(tmp_path, {0: {}, 1: {}}, cpuinfo=text))
    assert [c.core_name for c in topo.cpus] == ["Cortex-A72", "Cortex-A72"]


def test_garbage_files_fall_back_to_none(tmp_path):
    cpus = {
        0: dict(midr="0xZZZ", capacity="lots", max_freq="", related="4-x"),
        1: dict(midr="", capacity="-5", max_freq="0", related="1-0"),
        2: dict(capacity="\x00\x01", max_freq="12abc"),
    }
    root, info = make_tree(tmp_path, cpus, online="0-two")
    (tmp_path / "cpu" / "cpu2" / "cpufreq" / "related_cpus").mkdir()  # a directory where a file should be
    (tmp_path / "cpuinfo").write_bytes(b"\xff\xfe processor : x\n\x00 CPU part : banana\n:::\n")
    topo = read_topology(root, info)
    check_invariants(topo)
    assert topo.online == [0, 1, 2]  # unparsable online list: every cpuN directory counts
    for cpu in topo.cpus:
        assert (cpu.core_name, cpu.implementer, cpu.part, cpu.capacity, cpu.max_freq_khz) == (
            None, None, None, None, None)
    assert len(topo.clusters) == 1 and topo.recommended == [0, 1, 2]
    assert topo.describe() == ["cluster 0: CPUs 0-2 unknown core (recommended)"]
    assert topo.cpu_name is None


def test_missing_sysfs_uses_cpuinfo_and_missing_everything_is_empty(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(x86_cpuinfo(3))
    topo = read_topology(str(tmp_path / "no-sysfs"), str(info))
    assert topo.online == [0, 1, 2] and topo.recommended == [0, 1, 2]
    empty = read_topology(str(tmp_path / "no-sysfs"), str(tmp_path / "no-cpuinfo"))
    assert (empty.cpus, empty.clusters, empty.recommended, empty.describe()) == ([], [], [], [])


def test_huge_garbage_range_is_rejected_not_allocated(tmp_path):
    topo = read_topology(*make_tree(tmp_path, {0: {}, 1: {}}, online="0-4294967295"))
    assert topo.online == [0, 1]


@pytest.mark.parametrize("part, name", [
    (A55, "Cortex-A55"), (A76, "Cortex-A76"), (0xD41, "Cortex-A78"), (X2, "Cortex-X2"),
    (0xD82, "Cortex-X4"), (0xD0C, "Neoverse-N1"), (0xD4F, "Neoverse-V2"), (0xFFF, "Arm part 0xfff"),
])
def test_midr_core_names(part, name):
    assert midr_core_name(0x41, part) == name


def test_non_arm_implementer_keeps_hex():
    assert midr_core_name(0x51, 0x802) == "implementer 0x51 part 0x802"


@pytest.mark.parametrize("text, ids", [
    ("", []), ("\n", []), ("0", [0]), ("0-3,5", [0, 1, 2, 3, 5]), ("4-5\n", [4, 5]), ("3,1,1-2", [1, 2, 3]),
])
def test_parse_cpu_list(text, ids):
    assert parse_cpu_list(text) == ids


@pytest.mark.parametrize("text", ["a", "1-", "-1", "3-1", "1,,2", "1 2", "0x1", "1-2-3", ",", "0-65536", "٣"])
def test_parse_cpu_list_rejects_malformed(text):
    with pytest.raises(ValueError):
        parse_cpu_list(text)


@pytest.mark.parametrize("ids, text", [
    ([], ""), ([5], "5"), ([0, 1, 2, 3, 5], "0-3,5"), ([4, 5], "4-5"), ([3, 1, 2, 2], "1-3"), ([0, 2, 4], "0,2,4"),
])
def test_format_cpu_list(ids, text):
    assert format_cpu_list(ids) == text


def test_format_cpu_list_rejects_negative():
    with pytest.raises(ValueError):
        format_cpu_list([-1, 0])


@given(st.lists(st.integers(min_value=0, max_value=300)))
def test_cpu_list_round_trip(ids):
    text = format_cpu_list(ids)
    assert parse_cpu_list(text) == sorted(set(ids))
    assert format_cpu_list(parse_cpu_list(text)) == text


@given(st.text(alphabet="0123456789-, \nx", max_size=20))
def test_parse_cpu_list_only_raises_value_error(text):
    try:
        ids = parse_cpu_list(text)
    except ValueError:
        return
    assert ids == sorted(set(ids))


@pytest.mark.skipif(not os.path.isdir("/sys/devices/system/cpu"), reason="needs Linux sysfs")
def test_live_system_invariants():
    topo = read_topology()
    check_invariants(topo)
    with open("/sys/devices/system/cpu/online") as f:
        online = parse_cpu_list(f.read())
    assert set(online) <= {c.id for c in topo.cpus if c.online}
    assert topo.recommended and set(topo.recommended) <= set(topo.online)
    assert topo.allowed == sorted(os.sched_getaffinity(0))
