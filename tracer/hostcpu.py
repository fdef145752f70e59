"""How much CPU processes outside the traced command took on the host during a capture.

The ``tracer capture`` parent reads two counters just before it starts the command and just after it
has waited for it: the host's busy time from ``/proc/stat`` (user + nice + system + steal, summed over
the CPUs this process may run on) and its own ``RUSAGE_CHILDREN`` (the command and every descendant
that was waited for: DataLoader workers reaped by the training process, torchrun's ranks). What the
host was busy with beyond the command's tree was someone else's work.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

PROC_STAT = "/proc/stat"


@dataclass(frozen=True)
class CpuCounters:
    monotonic_ns: int
    cpus: int
    """CPUs whose /proc/stat lines were summed (the usable ones)."""
    busy_s: float
    """user + nice + system + steal of those CPUs, since boot."""
    children_s: float
    """user + system CPU of this process's waited-for descendants."""


def _busy_ticks(stat_text: str, usable: set[int]) -> tuple[int, int]:
    """(busy ticks, CPUs counted) from the per-CPU lines of /proc/stat for the usable CPUs.

    A container whose /proc/stat numbers CPUs differently from its affinity mask lists none of
    them: then every CPU line counts.
    """
    per_cpu: dict[int, int] = {}
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        fields = [int(x) for x in rest.split()] + [0] * 8  # steal is absent on very old kernels
        user, nice, system, steal = fields[0], fields[1], fields[2], fields[7]
        per_cpu[int(name[3:])] = user + nice + system + steal
    if not per_cpu:
        raise ValueError(f"{PROC_STAT} has no per-CPU lines")
    chosen = [ticks for cpu, ticks in per_cpu.items() if cpu in usable] or list(per_cpu.values())
    return sum(chosen), len(chosen)


def read_counters() -> CpuCounters:
    """The counters now; raises OSError or ValueError when /proc/stat cannot be read or parsed."""
    with open(PROC_STAT, encoding="ascii") as f:
        text = f.read()
    ticks, cpus = _busy_ticks(text, os.sched_getaffinity(0))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuCounters(
        monotonic_ns=time.monotonic_ns(),
        cpus=cpus,
        busy_s=ticks / os.sysconf("SC_CLK_TCK"),
        children_s=children.ru_utime + children.ru_stime,
    )


def host_cpu(before: CpuCounters, after: CpuCounters) -> dict:
    """The manifest's ``host_cpu`` object for the window between two readings."""
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
