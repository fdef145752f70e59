"""What one thread used over an interval: its CPU time, page faults and bytes read from storage.

``getrusage(RUSAGE_THREAD)`` gives all of it in one system call: user + system CPU, minor and major
page faults, and ``ru_inblock``, the 512-byte blocks the kernel read from storage for the thread
(``/proc/thread-self/io`` ``read_bytes`` / 512: cache misses, readahead and faults on mapped files).
Some kernels bring a running thread's CPU time up to date only at scheduler ticks; on those the CPU
time comes from ``CLOCK_THREAD_CPUTIME_ID`` instead (one more call). ``tracer capture`` tells which
(``ENV_EXACT``) after one check. A reading costs about a microsecond, so samples are measured only
as often as keeps that under 0.5% of the loader's time (:class:`SampleGate`). Stdlib only.
"""

from __future__ import annotations

import functools
import os
import resource
import threading
import time

ENV_EXACT = "TRAINIO_RUSAGE_CPU_EXACT"
"""``1`` when this kernel's getrusage(RUSAGE_THREAD) CPU time is exact (set by ``tracer capture``)."""
ENV_SAMPLE_SHARE = "TRAINIO_SAMPLE_SHARE"
"""A fixed share (0 to 1) of samples to measure instead of the gate's choice: the overhead benchmark
sets it to count instructions under valgrind (which slows Python, not system calls) as natively."""
BLOCK = 512
NULL64 = -(2**63)
COST_SHARE = 0.005
"""Largest share of a loader thread's time that per-sample readings may cost."""

_getrusage = resource.getrusage
_THREAD = resource.RUSAGE_THREAD
_thread_time_ns = time.thread_time_ns


def _exact_rusage() -> tuple[int, int, int, int]:
    r = _getrusage(_THREAD)
    return round((r.ru_utime + r.ru_stime) * 1e9), r.ru_minflt, r.ru_majflt, r.ru_inblock * BLOCK


def _clock_and_rusage() -> tuple[int, int, int, int]:
    r = _getrusage(_THREAD)
    return _thread_time_ns(), r.ru_minflt, r.ru_majflt, r.ru_inblock * BLOCK


EXACT = os.environ.get(ENV_EXACT) == "1"
try:  # the same reading in C (tracer/_samplehook.c), a third of the cost
    from trainio.tracer._samplehook import thread_usage as _c_usage

    thread_usage = functools.partial(_c_usage, EXACT)
except ImportError:  # not built, or built for another Python
    thread_usage = _exact_rusage if EXACT else _clock_and_rusage  # type: ignore[assignment]
"""(cpu_ns, minflt, majflt, read_bytes) of the calling thread so far."""
thread_cpu_ns = (lambda: thread_usage()[0]) if EXACT else _thread_time_ns
"""The calling thread's CPU time so far, by the cheaper exact means."""


def delta(before: tuple, after: tuple) -> tuple[int, int, int, int]:
    return after[0] - before[0], after[1] - before[1], after[2] - before[2], after[3] - before[3]


def rusage_cpu_is_exact(spin_ns: int = 300_000) -> bool:
    """Whether getrusage(RUSAGE_THREAD) keeps a running thread's CPU time exact on this kernel.

    Spins twice for ``spin_ns`` of thread CPU: a tick-granular kernel reports 0 or a tick's worth
    for such a span, an exact one the span itself (to the microsecond).
    """
    for _ in range(2):
        r0, c0 = _getrusage(_THREAD), _thread_time_ns()
        while _thread_time_ns() - c0 < spin_ns:
            pass
        r1, c1 = _getrusage(_THREAD), _thread_time_ns()
        by_rusage = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e9
        if abs(by_rusage - (c1 - c0)) > 0.1 * spin_ns:
            return False
    return True


GATE_MASK = 1023
"""A sample is measured when its start time's low bits (``start_ns & GATE_MASK``) fall below the
gate's threshold: a random choice, independent of the sample's place in its batch, for one AND."""


class SampleGate:
    """Decides which samples of a process are measured: all of them while samples are long enough
    (two readings cost at most COST_SHARE of a sample's CPU time), otherwise a random share that
    keeps the readings' cost at COST_SHARE of the loader's CPU time. The share follows the last
    fetch's CPU time per sample (its wall time would grow with a busy host's waits, and the share
    with it)."""

    __slots__ = ("gap_ns", "threshold", "fixed")

    def __init__(self) -> None:
        costs = []
        for _ in range(5):  # the cheapest of a few: a preempted one says nothing about the cost
            t0 = time.perf_counter_ns()
            thread_usage()
            costs.append(time.perf_counter_ns() - t0)
        self.gap_ns = max(int(2 * min(costs) / COST_SHARE), 1)
        self.threshold = GATE_MASK + 1  # everything, until a fetch tells how long samples take
        share = os.environ.get(ENV_SAMPLE_SHARE)
        self.fixed = share is not None
        if share is not None:
            self.threshold = round(float(share) * (GATE_MASK + 1))

    def after_fetch(self, cpu_ns: int, samples: int) -> None:
        if samples and not self.fixed:
            self.threshold = min(GATE_MASK + 1, int((GATE_MASK + 1) * cpu_ns / (samples * self.gap_ns)) + 1)


CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def stat_cpu(path: str) -> tuple[str, float, float]:
    """(comm, utime_s, stime_s) from a ``/proc/PID/stat`` or ``/proc/PID/task/TID/stat`` file; a
    zombie's still holds what the process used (its threads' included), until it is reaped."""
    with open(path, encoding="ascii", errors="replace") as f:
        text = f.read()
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    return head.partition("(")[2], int(fields[11]) * CLOCK_TICK_S, int(fields[12]) * CLOCK_TICK_S


def threads_cpu(pid: int, names: dict[int, str] | None = None) -> list[dict]:
    """Each live thread of ``pid``: its kernel name (``comm``), the Python name where ``names`` has
    one, and its CPU time (clock ticks)."""
    threads = []
    for tid in sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")):
        try:
            comm, utime, stime = stat_cpu(f"/proc/{pid}/task/{tid}/stat")
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        entry = {"tid": tid, "name": comm, "utime_s": round(utime, 3), "stime_s": round(stime, 3)}
        if names and tid in names:
            entry["python_name"] = names[tid]
        threads.append(entry)
    return threads


def this_thread_cpu(name: str) -> dict:
    """The calling thread's CPU time so far, as a ``threads`` entry (for a thread about to end)."""
    r = _getrusage(_THREAD)
    return {
        "tid": threading.get_native_id(),
        "name": name,
        "utime_s": round(r.ru_utime, 6),
        "stime_s": round(r.ru_stime, 6),
    }
