"""``replay calibrate --cpu``: how this host's CPU work stretches with busy processes per core.

Each cell runs k processes (forked, as DataLoader workers are) that repeat one unit of data-loading
work back to back (inflate a zlib-compressed image, crop and normalise it with numpy, a little
Python) for k from one process to four per core; a cell's CPU time per unit (its processes' thread
CPU time over the units they did) against the first cell's is the crowding curve the CPU profile
carries (``trainio.models.cpu``). The loads run in interleaved passes, up then down, so that every
load spans the same moments of a machine whose speed drifts.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from trainio.models.cpu import CpuCrowding, load_cpu_profile
from trainio.replay.calibration.measurement import MIN_CELL_S, Budget, CalibrationError, Progress, gather
from trainio.tracefile.hostcpu import CLOCK_TICK_S, host_ticks

LOADS_PER_CORE = (0.5, 1.0, 2.0, 4.0)
"""Busy processes per core of the cells, beside one process alone."""
MAX_PASSES = 4
START_TIMEOUT_S = 30.0
IMAGE = (240, 320, 3)
MEAN = np.array([123.7, 116.3, 103.5], np.float32)
STD = np.array([58.4, 57.1, 57.4], np.float32)
PROBE_UNIT = "inflate a zlib-compressed 320x240 RGB image, crop and normalise it (numpy), count labels (Python)"


def _payload() -> bytes:
    """A photo-like image (smooth plus noise), compressed: the same bytes in every process."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
    pixels = np.kron(coarse, np.ones((IMAGE[0] // 8, IMAGE[1] // 8, 1), np.float32))
    pixels += rng.normal(0, 12, IMAGE)
    return zlib.compress(pixels.clip(0, 255).astype(np.uint8).tobytes(), 6)


def probe_unit(payload: bytes) -> float:
    """One unit of the probe's work; returns a number so that nothing is optimised away."""
    pixels = np.frombuffer(zlib.decompress(payload), np.uint8).reshape(IMAGE)
    crop = pixels[8:232:2, 16:240:2].astype(np.float32)
    tensor = np.ascontiguousarray(((crop - MEAN) / STD).transpose(2, 0, 1))
    labels: dict[int, int] = {}
    for i in range(300):
        labels[i % 17] = labels.get(i % 17, 0) + i
    return float(tensor[0, 0, 0]) + len(labels)


def _probe_process(seconds: float, barrier, results) -> None:
    """One busy process of a cell: the units it did in ``seconds``, their thread CPU time, and the
    host's (busy, total) ticks at its start and end."""
    payload = _payload()
    probe_unit(payload)  # warm: imports, allocations
    try:
        barrier.wait(START_TIMEOUT_S)
    except threading.BrokenBarrierError:
        results.put(None)
        return
    units, ticks, cpu0, start = 0, host_ticks(), time.thread_time(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        probe_unit(payload)
        units += 1
    results.put((units, time.thread_time() - cpu0, time.perf_counter() - start, ticks, host_ticks()))


@dataclass(frozen=True)
class ProbeCell:
    """``processes`` busy processes for ``seconds``: the units they did, their CPU time, and the share
    of the host's cores that other processes used meanwhile."""

    processes: int
    per_core: float
    units: int
    cpu_s: float
    seconds: float
    others: float

    @property
    def cpu_per_unit_s(self) -> float:
        return self.cpu_s / self.units

    def plus(self, other: ProbeCell) -> ProbeCell:
        seconds = self.seconds + other.seconds
        others = (self.others * self.seconds + other.others * other.seconds) / seconds
        return ProbeCell(
            self.processes, self.per_core, self.units + other.units, self.cpu_s + other.cpu_s, seconds, others
        )


def probe_cell(processes: int, cores: int, seconds: float) -> ProbeCell:
    """One cell: ``processes`` forked processes repeating the probe's unit for ``seconds`` together."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [context.Process(target=_probe_process, args=(seconds, barrier, results)) for _ in range(processes)]
    try:
        outcomes = gather(children, results, seconds + START_TIMEOUT_S + 30)
    except queue.Empty as exc:
        raise CalibrationError(f"the CPU probe's {processes} processes gave no result within its time") from exc
    if None in outcomes:
        raise CalibrationError(f"the CPU probe's {processes} processes did not all start")
    units, cpu_s = sum(o[0] for o in outcomes), sum(o[1] for o in outcomes)
    if units == 0:
        raise CalibrationError(f"the CPU probe's {processes} processes did no unit of work in {seconds:.1f} s")
    wall = max(o[2] for o in outcomes)
    busy_s = (max(o[4][0] for o in outcomes) - min(o[3][0] for o in outcomes)) * CLOCK_TICK_S
    others = max(0.0, busy_s - cpu_s) / (cores * wall) if wall > 0 else 0.0
    return ProbeCell(processes, processes / cores, units, cpu_s, wall, min(others, 1.0))


def probe_loads(cores: int) -> list[int]:
    """Processes per cell: one, then ``LOADS_PER_CORE`` of this host's cores."""
    return sorted({1, *(max(1, round(load * cores)) for load in LOADS_PER_CORE)})


@dataclass(frozen=True)
class CpuCalibration:
    """What ``calibrate_cpu`` measured and the CPU profile it wrote."""

    cells: tuple[ProbeCell, ...]
    cores: int
    crowding: CpuCrowding
    profile_path: Path
    elapsed_s: float


def crowding_points(cells: tuple[ProbeCell, ...] | list[ProbeCell]) -> tuple[tuple[float, float], ...]:
    """(processes per core, CPU time per unit / the first cell's) of each cell."""
    base = cells[0].cpu_per_unit_s
    return tuple((cell.per_core, cell.cpu_per_unit_s / base) for cell in cells)


def calibrate_cpu(out: Path, *, budget_s: float = 20.0, progress: Progress | None = None) -> CpuCalibration:
    """Measure this host's CPU crowding within ``budget_s`` and write the CPU profile to ``out``."""
    say = progress or (lambda message: None)
    budget = Budget(budget_s)
    cores = len(os.sched_getaffinity(0))
    loads = probe_loads(cores)
    passes = max(1, min(MAX_PASSES, int(budget.left * 0.9 / (len(loads) * MIN_CELL_S * 2))))
    seconds = max(MIN_CELL_S, budget.left * 0.9 / (passes * len(loads)) - 0.05)
    merged: dict[int, ProbeCell] = {}
    for number in range(passes):
        order = loads if number % 2 == 0 else loads[::-1]
        say(f"CPU probe: {', '.join(map(str, order))} busy processes on {cores} cores, pass {number + 1} of {passes}")
        for processes in order:
            cell = probe_cell(processes, cores, seconds)
            merged[processes] = merged[processes].plus(cell) if processes in merged else cell
    cells = tuple(merged[processes] for processes in loads)
    elapsed = time.monotonic() - budget.start
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(cpu_profile_toml(out.stem, cells, cores, elapsed), encoding="utf-8")
    return CpuCalibration(cells, cores, load_cpu_profile(out), out, elapsed)


def cpu_profile_toml(name: str, cells: tuple[ProbeCell, ...], cores: int, elapsed_s: float) -> str:
    """The CPU profile: ``[meta]``, ``[cpu]`` with the crowding curve, the cells as ``[[cells]]``."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    host = os.uname().nodename
    points = crowding_points(cells)
    lines = [
        f"# Measured by `replay calibrate --cpu` on {host} ({cores} usable cores). The cells (busy processes, their",
        "# CPU time per unit of work, and the share of the cores others used meanwhile):",
        *(
            f"#   {c.processes:>4} processes {c.per_core:>6.3g} per core {c.units:>8} units "
            f"{1e3 * c.cpu_per_unit_s:>8.4f} ms/unit  others {100 * c.others:>3.0f}%"
            for c in cells
        ),
        "",
        "[meta]",
        f'name = "{name}"',
        f'description = "CPU crowding of {host} ({cores} cores)"',
        f'source = "measured by `replay calibrate --cpu` on {now} from {host}, '
        f'{len(cells)} cells in {elapsed_s:.0f} s"',
        "",
        "[cpu]",
        f"cores = {cores}",
        f'unit = "{PROBE_UNIT}"',
        "crowding = ["
        + ", ".join(f"[{p:.6g}, {f:.6g}]" for p, f in points)
        + "]  # measured: [busy processes per core, CPU time per unit / one process's]",
    ]
    for c in cells:
        lines += [
            "",
            "[[cells]]",
            f"processes = {c.processes}",
            f"per_core = {c.per_core!r}",
            f"units = {c.units}",
            f"cpu_s_per_unit = {c.cpu_per_unit_s!r}",
            f"seconds = {c.seconds!r}",
            f"others = {c.others!r}",
        ]
    return "\n".join(lines) + "\n"


def render_cpu_calibration(cal: CpuCalibration) -> str:
    """The cells and the curve as a short table."""
    lines = [
        f"CPU probe  {cal.cores} usable cores, {len(cal.cells)} cells in {cal.elapsed_s:.1f} s ({PROBE_UNIT})",
        f"  {'processes':>9} {'per core':>8} {'units':>8} {'ms/unit':>8} {'factor':>6} {'others':>6}",
    ]
    for cell, (_, factor) in zip(cal.cells, crowding_points(cal.cells), strict=True):
        lines.append(
            f"  {cell.processes:>9} {cell.per_core:>8.3g} {cell.units:>8,} {1e3 * cell.cpu_per_unit_s:>8.4f} "
            f"{factor:>6.3f} {100 * cell.others:>5.0f}%"
        )
    if any(cell.others > 0.1 for cell in cal.cells):
        lines.append("  note       other processes used over 10% of the cores during a cell: probe on a quiet machine")
    return "\n".join(lines)
