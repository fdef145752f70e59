"""One cell of a calibration's matrix (:class:`Measurement`), the matrix's sizes and the time budget
the cells share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

from trainio.models.units import format_size
from trainio.replay.storage.errors import ReplayError
from trainio.tracefile.hostcpu import CLOCK_TICK_S

Progress = Callable[[str], None]

KiB, MiB = 2**10, 2**20
SIZES = (4 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB)
"""Request sizes of the single-stream measurements the latency / bandwidth fit uses."""
SMALL, LARGE = 4 * KiB, 4 * MiB
DATA_PATTERNS = ("get", "randread", "read")
"""Measurement patterns that read data (the rest open files or stat them)."""
MIN_BUDGET_S = 5.0
MAX_BUDGET_S = 24 * 3600.0
MIN_CELL_S = 0.3
"""Shortest time one measurement runs, whatever the budget."""
MIN_OPS = 3
SAMPLE_FILES = 256
SAMPLE_BYTES = 16 * KiB
"""The small files of the file-per-sample cells (directories, CephFS)."""


class CalibrationError(ReplayError):
    """A measurement that failed or cannot be trusted (fio errors, objects missing, no tool)."""


def gather(children: list, results: Any, timeout_s: float) -> list:
    """Start ``children`` (processes that each put one result on the queue ``results``) and collect a
    result from each; whatever happens they are joined, and terminated if they linger. Raises
    queue.Empty when one gives none within ``timeout_s``."""
    for child in children:
        child.start()
    try:
        return [results.get(timeout=timeout_s) for _ in children]
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.terminate()
                child.join()


@dataclass(frozen=True)
class Measurement:
    """One cell of the matrix: ``ops`` requests of ``size`` bytes from ``threads`` x ``depth``."""

    name: str
    pattern: str
    """``get``, ``read`` (sequential), ``randread``, ``open-read-close`` or ``stat``."""
    size: int
    threads: int
    depth: int
    ops: int
    bytes: int
    seconds: float
    """Wall time of the measurement."""
    latency_s: float
    """Mean time per request, to its last byte."""
    first_byte_s: float | None = None
    """GET: mean time to the response headers; open-read-close: mean time of the open(2)."""
    cpu_s: float | None = None
    """CPU seconds per request of the client that made the requests (all its processes and threads)."""
    host_cpu_s: float | None = None
    """Busy CPU seconds per request of the whole host (every process, the client's included)."""
    busy: float | None = None
    """Fraction of the host's cores busy during the measurement."""
    pause_s: float = 0.0
    """Idle time each stream left after each request (not timed)."""

    @property
    def server_cpu_s(self) -> float | None:
        """The host's CPU per request less the client's: the storage daemons' when they run here."""
        if self.cpu_s is None or self.host_cpu_s is None:
            return None
        return max(0.0, self.host_cpu_s - self.cpu_s)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def single_stream(self) -> bool:
        return self.threads == 1 and self.depth == 1


def ms_text(seconds: float | None) -> str:
    """Seconds as milliseconds to three decimals, for a table column (``-``: not measured)."""
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def cell_name(pattern: str, size: int, threads: int, depth: int) -> str:
    """``randread 4KiB qd1``, ``get 4KiB t16``, ``randread 4KiB 4x32``."""
    concurrency = f"{threads}x{depth}" if threads > 1 and depth > 1 else f"t{threads}" if threads > 1 else f"qd{depth}"
    return f"{pattern} {format_size(size)} {concurrency}"


@dataclass(frozen=True)
class Cell:
    """What one measurement runs: ``threads`` x ``depth`` streams of ``pattern`` requests of ``size``."""

    pattern: str
    size: int
    threads: int
    depth: int
    pause_s: float = 0.0
    """Idle time after each request (fio's thinktime)."""

    @property
    def name(self) -> str:
        return cell_name(self.pattern, self.size, self.threads, self.depth)


def single_stream_cells(pattern: str, pause_s: float) -> list[Cell]:
    """The fit's cells: every size of ``SIZES``, one request at a time, ``pause_s`` idle after each (as a
    loader decodes between its requests)."""
    return [Cell(pattern, size, 1, 1, pause_s) for size in SIZES]


def merge_measurements(parts: list[Measurement]) -> Measurement:
    """One cell measured in several parts (interleaved passes) as one: counts and times summed,
    per-request means weighted by each part's requests, ``busy`` by its seconds."""
    first, ops, seconds = parts[0], sum(m.ops for m in parts), sum(m.seconds for m in parts)

    def per_request(name: str) -> float | None:
        values = [getattr(m, name) for m in parts]
        if any(v is None for v in values):
            return None
        return sum(v * m.ops for v, m in zip(values, parts, strict=True)) / ops

    busy = [m.busy for m in parts]
    latency_s = per_request("latency_s")
    assert latency_s is not None  # every measurement has one
    return replace(
        first,
        ops=ops,
        bytes=sum(m.bytes for m in parts),
        seconds=seconds,
        latency_s=latency_s,
        first_byte_s=per_request("first_byte_s"),
        cpu_s=per_request("cpu_s"),
        host_cpu_s=per_request("host_cpu_s"),
        busy=None if None in busy else sum((b or 0.0) * m.seconds for b, m in zip(busy, parts, strict=True)) / seconds,
    )


class CpuFields(TypedDict):
    """A measurement's CPU figures (see :class:`Measurement`)."""

    cpu_s: float | None
    host_cpu_s: float | None
    busy: float | None


def cpu_fields(
    ops: int, client_cpu_s: float, start: tuple[int, int], end: tuple[int, int], tool_cpu_s: float = 0.0
) -> CpuFields:
    """A measurement's ``cpu_s``, ``host_cpu_s`` and ``busy`` from the client's CPU seconds over its
    timed phase and the host's (busy, total) ticks at its start and end
    (:func:`trainio.tracefile.hostcpu.cpu_ticks`). ``tool_cpu_s`` (the measuring tool's own
    bookkeeping, e.g. fio's main process) is neither the client's nor the servers'."""
    busy_ticks, total_ticks = end[0] - start[0], end[1] - start[1]
    return CpuFields(
        cpu_s=client_cpu_s / ops,
        host_cpu_s=max(0.0, busy_ticks * CLOCK_TICK_S - tool_cpu_s) / ops,
        busy=busy_ticks / total_ticks if total_ticks > 0 else None,
    )


@dataclass
class Budget:
    """The seconds a calibration may take, set-up included, shared out over its cells."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    @property
    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def per_cell(self, cells: float, overhead_s: float = 0.0) -> float:
        """Seconds each of ``cells`` measurements may run, ``overhead_s`` of tool time each set aside."""
        return max(MIN_CELL_S, self.left * 0.9 / cells - overhead_s)


@dataclass(frozen=True)
class Cells:
    """What one kind of target's calibration measured."""

    measurements: list[Measurement]
    tool: str
    """``fio-3.33``, ``boto3 1.x`` or ``libcephfs 16.2.15``."""
    notes: list[str] = field(default_factory=list)
    fstype: str = ""
    """A directory's file system type (``ext4``, ``nfs4``, ...)."""
