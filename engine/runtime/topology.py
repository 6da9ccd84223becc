"""CPU topology: which cores exist, how fast each kind is, and which to run LLM decode on.

Reads Linux sysfs (``/sys/devices/system/cpu``) and ``/proc/cpuinfo``. Decode is memory-bound and runs one pinned
thread per core, so the useful answer is "the CPUs of the fastest cluster". Everything here is best effort: a
missing or garbage file gives ``None`` (never an exception), so odd boards and containers do not crash `wren info`,
and tests can point the reader at fake trees. Standard library only.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Cpu", "Cluster", "Topology", "read_topology", "parse_cpu_list", "format_cpu_list", "midr_core_name"]

LIVE_SYSFS = "/sys/devices/system/cpu"
_MAX_CPU_ID = 1 << 16  # far above any kernel's NR_CPUS; stops a garbage "0-4294967295" from eating memory
_CLOSE = 0.10  # relative tolerance for "same" capacity or max frequency when merging cpufreq policies

# MIDR part numbers of implementer 0x41 (Arm Ltd): name, and a rough single-thread rank that only breaks ties
# when capacity and max frequency are missing or equal.
_ARM_PARTS = {
    0xD03: ("Cortex-A53", 1), 0xD05: ("Cortex-A55", 2), 0xD46: ("Cortex-A510", 3),
    0xD07: ("Cortex-A57", 4), 0xD08: ("Cortex-A72", 5), 0xD09: ("Cortex-A73", 5),
    0xD0A: ("Cortex-A75", 6), 0xD0B: ("Cortex-A76", 7), 0xD0C: ("Neoverse-N1", 7),
    0xD0D: ("Cortex-A77", 8), 0xD41: ("Cortex-A78", 9), 0xD47: ("Cortex-A710", 9),
    0xD40: ("Neoverse-V1", 10), 0xD49: ("Neoverse-N2", 10), 0xD4D: ("Cortex-A715", 10),
    0xD44: ("Cortex-X1", 11), 0xD81: ("Cortex-A720", 11), 0xD48: ("Cortex-X2", 12),
    0xD4E: ("Cortex-X3", 13), 0xD4F: ("Neoverse-V2", 13), 0xD82: ("Cortex-X4", 14),
}
_RANK_BY_NAME = {name: rank for name, rank in _ARM_PARTS.values()}


@dataclass
class Cpu:
    id: int
    online: bool
    core_name: str | None  # "Cortex-A76", "AMD EPYC", ...
    implementer: int | None  # MIDR bits 31:24 (0x41 = Arm); None off Arm
    part: int | None  # MIDR bits 15:4
    capacity: int | None  # cpu_capacity, 1024 = fastest core in the system
    max_freq_khz: int | None
    cluster: int = -1  # index into Topology.clusters


@dataclass
class Cluster:
    index: int  # 0 = slowest
    cpus: list[int]
    core_name: str | None
    capacity: int | None
    max_freq_khz: int | None


@dataclass
class Topology:
    cpus: list[Cpu]
    clusters: list[Cluster]  # sorted slowest to fastest
    allowed: list[int]  # CPUs this process may run on (affinity mask); all online CPUs for fake trees

    @property
    def online(self) -> list[int]:
        return [c.id for c in self.cpus if c.online]

    @property
    def is_big_little(self) -> bool:
        return len(self.clusters) > 1

    @property
    def recommended(self) -> list[int]:
        """CPUs to run decode on, one thread each: the online CPUs of the fastest cluster.

        If that cluster has a single usable CPU (the 1 prime core of a 1+3+4 phone, or a big cluster with the
        rest offline), the next-fastest cluster is added: one thread cannot saturate memory bandwidth, and the
        pool hands out work in chunks, so slightly slower cores still help. CPUs outside the process affinity
        mask are skipped (pinning to them would fail), unless that leaves nothing.
        """
        online = set(self.online)
        usable = (online & set(self.allowed)) or online
        ranked = [ids for cl in reversed(self.clusters) if (ids := [i for i in cl.cpus if i in usable])]
        if not ranked:
            return []
        best = ranked[0] + (ranked[1] if len(ranked[0]) == 1 and len(ranked) > 1 else [])
        return sorted(best)

    @property
    def cpu_name(self) -> str | None:
        """The processor in words, for reports: its core names, slowest cluster first ("Cortex-A55 + Cortex-A76";
        on x86 the model name); None when no file names them."""
        return " + ".join(dict.fromkeys(cl.core_name for cl in self.clusters if cl.core_name)) or None

    def describe(self) -> list[str]:
        """One human-readable line per cluster, slowest first (for `wren info`)."""
        recommended, online = set(self.recommended), set(self.online)
        lines = []
        for cl in self.clusters:
            line = f"cluster {cl.index}: CPUs {format_cpu_list(cl.cpus)} {cl.core_name or 'unknown core'}"
            if cl.capacity is not None:
                line += f", capacity {cl.capacity}"
            if cl.max_freq_khz is not None:
                line += f", max {round(cl.max_freq_khz / 1000)} MHz"
            offline = [i for i in cl.cpus if i not in online]
            if offline:
                line += f", offline {format_cpu_list(offline)}"
            if recommended & set(cl.cpus):
                line += " (recommended)"
            lines.append(line)
        return lines


def parse_cpu_list(text: str) -> list[int]:
    """Parse a kernel CPU range list ("0-3,5") into sorted unique ids; an empty string means none.

    Strict (ValueError on anything malformed) so callers fall back to other sources instead of guessing.
    """
    text = text.strip()
    if not text:
        return []
    ids: set[int] = set()
    for item in text.split(","):
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", item)
        if not m:
            raise ValueError(f"malformed CPU list {text!r}")
        low, high = int(m.group(1)), int(m.group(2) or m.group(1))
        if high < low or high >= _MAX_CPU_ID:
            raise ValueError(f"bad CPU range {item!r} in {text!r}")
        ids.update(range(low, high + 1))
    return sorted(ids)


def format_cpu_list(ids) -> str:
    """Format CPU ids as a kernel range list: [0, 1, 2, 3, 5] -> "0-3,5"."""
    ids = sorted(set(ids))
    if ids and ids[0] < 0:
        raise ValueError(f"negative CPU id {ids[0]}")
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def midr_core_name(implementer: int, part: int) -> str:
    """Core name for a MIDR implementer/part pair; unknown parts keep their hex so they stay recognisable."""
    if implementer == 0x41:
        return _ARM_PARTS[part][0] if part in _ARM_PARTS else f"Arm part 0x{part:03x}"
    return f"implementer 0x{implementer:02x} part 0x{part:03x}"


def read_topology(sysfs_root: str = LIVE_SYSFS, cpuinfo_path: str = "/proc/cpuinfo") -> Topology:
    """Read the CPU topology from sysfs and cpuinfo; never raises on missing or garbage files."""
    cpuinfo = _parse_cpuinfo(_read(cpuinfo_path, limit=1 << 22) or "")
    online_list = _try_parse(_read(os.path.join(sysfs_root, "online")))
    # CPUs with a directory plus any listed online; without sysfs at all, whatever cpuinfo lists.
    ids = sorted(set(_cpu_dirs(sysfs_root)) | set(online_list or ())) or sorted(cpuinfo)
    cpus, related = [], {}
    for i in ids:
        base = os.path.join(sysfs_root, f"cpu{i}")
        if online_list:
            online = i in online_list
        else:  # per-CPU flag; cpu0 usually has none and cannot go offline
            flag = _read(os.path.join(base, "online"))
            online = flag is None or flag.strip() != "0"
        fields = cpuinfo.get(i, {})
        midr = _read_int(os.path.join(base, "regs", "identification", "midr_el1"), base=16)
        if midr is not None:
            implementer, part = (midr >> 24) & 0xFF, (midr >> 4) & 0xFFF
        else:  # regs/ is missing on older kernels and for offline CPUs
            implementer, part = _int_field(fields, "CPU implementer"), _int_field(fields, "CPU part")
            if implementer is None or part is None:
                implementer = part = None
        if implementer is not None:
            name = midr_core_name(implementer, part)
        else:  # x86 (and arm32 without CPU part): the marketing name
            name = " ".join(fields.get("model name", "").split()) or None
        cpus.append(Cpu(
            id=i, online=online, core_name=name, implementer=implementer, part=part,
            capacity=_read_int(os.path.join(base, "cpu_capacity")),
            max_freq_khz=_read_int(os.path.join(base, "cpufreq", "cpuinfo_max_freq")),
        ))
        related[i] = _parse_related(_read(os.path.join(base, "cpufreq", "related_cpus")))
    clusters = _build_clusters(cpus, related)
    online_ids = [c.id for c in cpus if c.online]
    return Topology(cpus=cpus, clusters=clusters, allowed=_allowed(sysfs_root, online_ids))


def _build_clusters(cpus: list[Cpu], related: dict[int, tuple[int, ...] | None]) -> list[Cluster]:
    """Group CPUs into clusters, sorted slowest to fastest, and set each Cpu.cluster.

    First by cpufreq policy (related_cpus), else by (core name, capacity, max frequency). Then groups with the
    same core name and capacity and max frequencies within 10% are merged: an RK3588 has two A76 policies
    (2352 and 2400 MHz) that are one "big" set for the user, and x86 often has one policy per CPU.
    """
    groups: dict[tuple, list[Cpu]] = {}
    for c in cpus:
        rel = related.get(c.id)
        key = ("policy", rel) if rel and c.id in rel else ("attrs", c.core_name, c.capacity, c.max_freq_khz)
        groups.setdefault(key, []).append(c)
    merged: list[list[Cpu]] = []
    for members in groups.values():
        name, capacity, freq = _summary(members)
        for target in merged:
            t_name, t_capacity, t_freq = _summary(target)
            if name == t_name and _close(capacity, t_capacity) and _close(freq, t_freq):
                target.extend(members)
                break
        else:
            merged.append(list(members))
    clusters = [Cluster(-1, sorted(c.id for c in m), *_summary(m)) for m in merged]
    clusters.sort(key=lambda cl: (cl.capacity or -1, cl.max_freq_khz or -1,
                                  _RANK_BY_NAME.get(cl.core_name, 0), -cl.cpus[0]))
    by_id = {c.id: c for c in cpus}
    for index, cl in enumerate(clusters):
        cl.index = index
        for i in cl.cpus:
            by_id[i].cluster = index
    return clusters


def _summary(members: list[Cpu]) -> tuple[str | None, int | None, int | None]:
    """Cluster-level (core name, capacity, max kHz): most common name, highest capacity and frequency."""
    names = Counter(c.core_name for c in members if c.core_name)
    capacities = [c.capacity for c in members if c.capacity is not None]
    freqs = [c.max_freq_khz for c in members if c.max_freq_khz is not None]
    return (names.most_common(1)[0][0] if names else None,
            max(capacities, default=None), max(freqs, default=None))


def _close(a: int | None, b: int | None) -> bool:
    return a is None or b is None or abs(a - b) <= _CLOSE * max(a, b)


def _allowed(sysfs_root: str, online: list[int]) -> list[int]:
    """Affinity mask of this process, but only when reading the live system (a fake tree is not this machine)."""
    if os.path.realpath(sysfs_root) == LIVE_SYSFS and hasattr(os, "sched_getaffinity"):
        try:
            return sorted(os.sched_getaffinity(0))
        except OSError:
            pass
    return list(online)


def _read(path: str, limit: int = 4096) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except (OSError, ValueError):
        return None


def _read_int(path: str, base: int = 10) -> int | None:
    """A positive integer from a one-line file, else None (0 means "unknown" in these files)."""
    try:
        value = int((_read(path) or "").strip(), base)
    except ValueError:
        return None
    return value if value > 0 else None


def _try_parse(text: str | None) -> list[int] | None:
    try:
        return parse_cpu_list(text) if text is not None else None
    except ValueError:
        return None


def _parse_related(text: str | None) -> tuple[int, ...] | None:
    """cpufreq's related_cpus is space-separated ("4 5"); range lists are accepted too."""
    if text is None:
        return None
    try:
        ids = {i for token in text.split() for i in parse_cpu_list(token)}
    except ValueError:
        return None
    return tuple(sorted(ids)) or None


def _cpu_dirs(sysfs_root: str) -> list[int]:
    try:
        names = os.listdir(sysfs_root)
    except OSError:
        return []
    ids = [int(m.group(1)) for n in names if (m := re.fullmatch(r"cpu([0-9]{1,5})", n))]
    return [i for i in ids if i < _MAX_CPU_ID and os.path.isdir(os.path.join(sysfs_root, f"cpu{i}"))]


def _parse_cpuinfo(text: str) -> dict[int, dict[str, str]]:
    """Per-processor "key: value" fields. Blocks without a processor number (old arm32 kernels put
    "CPU part" there) apply to every processor."""
    common: dict[str, str] = {}
    per_cpu: dict[int, dict[str, str]] = {}
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        try:
            per_cpu[int(fields.get("processor", ""))] = fields
        except ValueError:
            common.update(fields)
    return {i: {**common, **fields} for i, fields in per_cpu.items() if 0 <= i < _MAX_CPU_ID}


def _int_field(fields: dict[str, str], key: str) -> int | None:
    try:
        return int(fields[key], 0)  # "0x41", "0xd0b"
    except (KeyError, ValueError):
        return None


if __name__ == "__main__":
    print("\n".join(read_topology().describe()))
