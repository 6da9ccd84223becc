"""Thread placement: which threads run where, from the CPU topology and the settings. Pure functions, no I/O.

By default one thread per core of the recommended (fastest) cluster, each pinned alone to its core:

    pool = place(settings, topology.read_topology())   # a native.PoolSettings
    describe(pool)                                      # "4 threads on CPUs 4-7, pinned"

More threads than the CPUs this process may use would only wait for each other (99 threads on one CPU gave no token
for minutes): they are clamped to those CPUs, and the pool's note says so (the command line prints it, the window
shows it in its status bar and the Settings dialog under the threads).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from wren.engine.runtime.native import PoolSettings
from wren.engine.runtime.topology import Topology, format_cpu_list
from wren.engine.settings import Settings, SettingsError


def place(settings: Settings, topo: Topology, allowed: Sequence[int] | None = None) -> PoolSettings:
    """The thread pool's settings for `settings` on `topo`; `allowed`: the CPUs this process may use (by default
    the topology's). Raises SettingsError for chosen CPUs that do not exist or that the process may not use. More
    threads than the CPUs it may use are clamped to that count, with a note saying so."""
    allowed = sorted(topo.allowed if allowed is None else allowed)
    note = clamp_note(settings.threads, len(allowed))
    if note:
        settings = replace(settings, threads=len(allowed))
    return replace(_place(settings, topo, allowed), note=note)


def clamp_note(threads: int, n_allowed: int) -> str:
    """What to tell the user when `threads` is more than the n_allowed CPUs this process may use ("" otherwise)."""
    if threads <= n_allowed:
        return ""
    cpus = f"{n_allowed} CPU{'s' if n_allowed != 1 else ''}"
    return f"threads = {threads} is more than the {cpus} this process may use: using {n_allowed}"


def _place(settings: Settings, topo: Topology, allowed: list[int]) -> PoolSettings:
    if settings.cores == "system":
        return PoolSettings(settings.threads or len(allowed))
    if settings.cores == "custom":
        missing = [c for c in settings.custom_cpus if c not in allowed]
        if missing:
            raise SettingsError(f"setting custom_cpus: CPU {format_cpu_list(missing)} "
                                f"{'is' if len(missing) == 1 else 'are'} not available here (available: "
                                f"{format_cpu_list(allowed)})")
        cpus = list(settings.custom_cpus)
    elif settings.cores == "all":
        cpus = allowed
    else:
        cpus = [c for c in topo.recommended if c in allowed] or allowed
        n = settings.threads or len(cpus)
        if n > len(cpus):
            # the big preset with more threads than the fast cluster has cores: the next cores take the
            # rest (on an RK3588, 6 threads run on the 4 big cores and 2 little ones, not 6 on 4 cores)
            cpus = cpus + [c for c in allowed if c not in cpus]
    n = settings.threads or len(cpus)
    if settings.strict_pinning and n <= len(cpus):
        return PoolSettings(n, tuple(cpus[:n]), strict=True)
    # more threads than the chosen cores, or no strict pinning: the threads share the chosen cores
    return PoolSettings(n, tuple(cpus))


def can_pin(settings: Settings, topo: Topology, allowed: Sequence[int] | None = None) -> bool:
    """Whether each thread can be pinned alone to a core: not when the system places the threads, nor with more
    threads than the chosen cores, nor when the settings cannot be placed at all."""
    try:
        return place(replace(settings, strict_pinning=True), topo, allowed).strict
    except SettingsError:
        return False


def context_threads(pool: PoolSettings, allowed: Sequence[int]) -> int:
    """Threads a context keeps scratch for: as many as this process may use, so that a later change of threads
    keeps the KV cache."""
    return max(pool.threads, len(allowed))


def describe(pool: PoolSettings) -> str:
    """One line saying what will run: "4 threads on CPUs 4-7, pinned", and the pool's note where it has one."""
    threads = f"{pool.threads} thread{'s' if pool.threads != 1 else ''}"
    word = "CPU" if pool.cpus is not None and len(pool.cpus) == 1 else "CPUs"
    if pool.cpus is None:
        where = f"{threads}, placed by the system"
    elif pool.strict:
        where = f"{threads} on {word} {format_cpu_list(pool.cpus)}, pinned"
    else:
        where = f"{threads} sharing {word} {format_cpu_list(pool.cpus)}, not pinned"
    return f"{where} ({pool.note})" if pool.note else where
