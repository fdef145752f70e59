"""The machine's CPU during the benchmark: this benchmark's, its Ceph daemons' and everyone else's; the
wait for a quiet machine and the repeat of a disturbed measurement."""

from __future__ import annotations

import math
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.ceph_dev import daemon_pids
from trainio.tracefile.hostcpu import CLOCK_TICK_S, host_ticks

from .conditions import say

QUIET_FRACTION = 0.05
"""A measurement starts once others use at most this share of the machine's CPU (a half second)."""
DISTURBED_FRACTION = 0.05
"""A run during which others used more than this share of the machine's CPU is run again."""
GATE_WAIT_S = 60.0
"""Longest wait for a quiet machine before a measurement starts anyway."""
SMOKE_GATE_WAIT_S = 5.0
ATTEMPTS = 3
"""Tries per wanted quiet run (or calibration, or baseline capture); the smoke run tries once."""


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (trainio.tracefile.hostcpu's one definition: interrupt
    time is left out, and the loopback traffic to our own Ceph makes much of it)."""
    return host_ticks()[0] * CLOCK_TICK_S


def own_cpu_s() -> float:
    """CPU of this process and of its children that have been waited for (and theirs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_probe_ms() -> float:
    """Milliseconds of one core for a fixed piece of Python work (best of 5). A virtual machine's
    cores run faster or slower with its neighbours' load, which /proc/stat cannot show: the same
    request or decode then costs more CPU time. Probing before every calibration and run shows
    whether the runs met the same machine the profiles were measured on."""
    best = math.inf
    for _ in range(5):
        start = time.thread_time()
        total = 0
        for i in range(200_000):
            total += i * i % 7
        best = min(best, time.thread_time() - start)
    return 1e3 * best


@dataclass(frozen=True)
class CpuSample:
    t: float
    busy: float
    ceph: dict[str, float]
    own: float
    live: float
    """CPU so far of live processes of ours (not yet waited for)."""


@dataclass(frozen=True)
class Usage:
    """Where the machine's CPU went during a window."""

    window_s: float
    own_cpu_s: float
    """This benchmark and what it started (the workload, its DataLoader workers, fio, ...)."""
    ceph_cpu_s: dict[str, float]
    other_cpu_s: float
    """Everything else: other users of the machine."""
    cpus: int

    @property
    def other_fraction(self) -> float:
        return self.other_cpu_s / (self.cpus * self.window_s) if self.window_s > 0 else 0.0

    @property
    def quiet(self) -> bool:
        return self.other_fraction <= DISTURBED_FRACTION

    def to_dict(self) -> dict:
        return {
            "window_s": round(self.window_s, 3),
            "own_cpu_s": round(self.own_cpu_s, 3),
            "ceph_cpu_s": {name: round(v, 3) for name, v in self.ceph_cpu_s.items() if v >= 0.005},
            "other_cpu_s": round(self.other_cpu_s, 3),
            "other_fraction": round(self.other_fraction, 4),
            "quiet": self.quiet,
        }


class CpuMeter:
    """Splits the CPU the machine spends into this benchmark's, its Ceph daemons' and the rest's.

    Other users of a shared machine slow a run down in a way no projection can know (and a
    baseline captured under their load carries it into every projection), so the benchmark waits
    for a quiet machine before each measurement and repeats the ones that were disturbed."""

    def __init__(self, ceph: Path) -> None:
        self.ceph = ceph
        self.cpus = len(os.sched_getaffinity(0))

    def sample(self, pids: tuple[int, ...] = ()) -> CpuSample:
        daemons = daemon_pids(self.ceph)
        return CpuSample(
            t=time.monotonic(),
            busy=machine_busy_s(),
            ceph={name: process_cpu_s(pid) for name, pid in daemons.items()},
            own=own_cpu_s(),
            live=sum(process_cpu_s(pid) for pid in pids),
        )

    def usage(self, a: CpuSample, b: CpuSample) -> Usage:
        ceph = {name: b.ceph[name] - a.ceph.get(name, b.ceph[name]) for name in b.ceph}
        own = (b.own + b.live) - (a.own + a.live)
        other = max(0.0, b.busy - a.busy - own - sum(ceph.values()))
        return Usage(b.t - a.t, own, ceph, other, self.cpus)

    def wait_for_quiet(self, limit_s: float, pids: tuple[int, ...] = ()) -> float:
        """Wait (at most ``limit_s``) for a half second in which others used under QUIET_FRACTION
        of the machine; the seconds waited."""
        start = time.monotonic()
        while True:
            a = self.sample(pids)
            time.sleep(0.5)
            if self.usage(a, self.sample(pids)).other_fraction <= QUIET_FRACTION:
                return time.monotonic() - start
            if time.monotonic() - start >= limit_s:
                return time.monotonic() - start


@dataclass(frozen=True)
class Patience:
    """How long a measurement waits for a quiet machine and how often a disturbed one is repeated;
    past ``deadline`` (monotonic seconds) it neither waits nor repeats."""

    gate_s: float
    attempts: int
    deadline: float

    def wait_s(self) -> float:
        return min(self.gate_s, max(0.0, self.deadline - time.monotonic()))

    def again(self, attempt: int) -> bool:
        """Whether a disturbed ``attempt`` (0-based) may be repeated."""
        return attempt + 1 < self.attempts and time.monotonic() < self.deadline


def quietly(
    meter: CpuMeter,
    what: str,
    patience: Patience,
    work: Callable[[], object],
    consistent: Callable[[object], bool] = lambda value: True,
) -> tuple[object, Usage]:
    """Run ``work()`` after waiting for a quiet machine, again while others used more than
    DISTURBED_FRACTION of the machine meanwhile or the result is not ``consistent`` (as ``patience``
    allows); the best result (consistent first, then the least disturbed) and its usage."""
    best = None
    for attempt in range(patience.attempts):
        meter.wait_for_quiet(patience.wait_s())
        before = meter.sample()
        value = work()
        usage = meter.usage(before, meter.sample())
        good = consistent(value)
        if best is None or (not good, usage.other_fraction) < (not best[2], best[1].other_fraction):
            best = (value, usage, good)
        if (usage.quiet and good) or not patience.again(attempt):
            break
        why = f"others used {100 * usage.other_fraction:.0f}% of the machine meanwhile"
        if not good:
            why = f"what it measured is not consistent ({why})"
        say(f"{what}: {why}; again ({attempt + 2})")
    assert best is not None
    return best[0], best[1]


def machine() -> str:
    cpus = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {cpus} cpus, {memory:.0f} GiB, {platform.platform()}"
