"""The host's CPU from ``/proc/stat``: the one reader, with one definition of busy.

Busy is user + nice + system + steal: time the cores spent running processes, a guest's stolen time
included; interrupt time is charged to no process and left out. A capture reads it to say how much of
the host others used (``host_cpu``), a calibration to charge the storage daemons' CPU per request, the
accuracy benchmark to see its neighbours. Programs that cannot import trainio (the libcephfs helper
under the system Python, fio's ``exec_prerun`` shell script) report a ``cpu`` line's raw numbers and
:func:`cpu_ticks` reads them.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

PROC_STAT = "/proc/stat"
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
"""Seconds per clock tick, the unit of /proc/stat."""
STAT_FIELDS = 8
"""user nice system idle iowait irq softirq steal: what a ``cpu`` line's total counts."""


def cpu_ticks(fields: Sequence[str | int]) -> tuple[int, int]:
    """(busy, total) clock ticks from the numbers of one /proc/stat ``cpu`` line (the name left out):
    busy is user + nice + system + steal, total all eight fields (a missing steal counts 0)."""
    numbers = [int(v) for v in fields[:STAT_FIELDS]]
    if len(numbers) < 4:
        raise ValueError(f"a /proc/stat cpu line has at least 4 numbers, not {len(numbers)}: {list(fields)!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = numbers + [0] * (STAT_FIELDS - len(numbers))
    return user + nice + system + steal, user + nice + system + idle + iowait + irq + softirq + steal


def host_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all the host's cores since boot (the aggregate ``cpu`` line)."""
    with open(PROC_STAT, encoding="ascii") as f:
        return cpu_ticks(f.readline().split()[1:])


def usable_busy_ticks(stat_text: str, usable: set[int]) -> tuple[int, int]:
    """(busy ticks, CPUs counted) from the per-CPU lines of /proc/stat for the usable CPUs.

    A container whose /proc/stat numbers CPUs differently from its affinity mask lists none of
    them: then every CPU line counts.
    """
    per_cpu: dict[int, int] = {}
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            per_cpu[int(name[3:])] = cpu_ticks(rest.split())[0]
    if not per_cpu:
        raise ValueError(f"{PROC_STAT} has no per-CPU lines")
    chosen = [ticks for cpu, ticks in per_cpu.items() if cpu in usable] or list(per_cpu.values())
    return sum(chosen), len(chosen)


@dataclass(frozen=True)
class CpuCounters:
    monotonic_ns: int
    cpus: int
    """CPUs whose /proc/stat lines were summed (the usable ones)."""
    busy_s: float
    """Busy time of those CPUs, since boot."""
    children_s: float
    """user + system CPU of this process's waited-for descendants."""


def read_counters() -> CpuCounters:
    """The counters a capture reads just before it starts the command and just after it has waited
    for it (``RUSAGE_CHILDREN``: the command and every descendant that was waited for); raises
    OSError or ValueError when /proc/stat cannot be read or parsed."""
    with open(PROC_STAT, encoding="ascii") as f:
        text = f.read()
    ticks, cpus = usable_busy_ticks(text, os.sched_getaffinity(0))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuCounters(
        monotonic_ns=time.monotonic_ns(),
        cpus=cpus,
        busy_s=ticks * CLOCK_TICK_S,
        children_s=children.ru_utime + children.ru_stime,
    )


def host_cpu(before: CpuCounters, after: CpuCounters) -> dict:
    """The manifest's ``host_cpu`` object for the window between two readings: what the host was
    busy with beyond the command's tree was someone else's work."""
    window_s = (after.monotonic_ns - before.monotonic_ns) / 1e9
    busy_s = after.busy_s - before.busy_s
    traced_s = after.children_s - before.children_s
    other_s = max(0.0, busy_s - traced_s)
    capacity = after.cpus * window_s
    return {
        "window_s": round(window_s, 3),
        "cpus": after.cpus,
        "busy_s": round(busy_s, 3),
        "traced_cpu_s": round(traced_s, 3),
        "other_cpu_s": round(other_s, 3),
        "other_fraction": round(min(other_s / capacity, 1.0), 4) if capacity > 0 else 0.0,
    }
