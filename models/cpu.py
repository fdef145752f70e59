"""A node's CPU: how the same piece of work costs more CPU time when more processes crowd each core.

Runnable processes beyond the cores wait their turn (the model's shared cores do that); beyond the
wait, each piece of work itself takes longer on a crowded core: it is switched out more often and
finds its caches cold, and busy sibling cores share the caches, the memory bandwidth and the clock.
``CpuCrowding`` is that growth, measured on a host by ``replay calibrate --cpu`` (a CPU profile:
TOML with ``[meta]``, ``[cpu]`` and the measured ``[[cells]]``) as CPU time per unit of work at a
ladder of busy processes per core. docs/model.md, "CPU", has the equations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainio.models.profilefile import read_toml


class CpuProfileError(ValueError):
    """A CPU profile that is unreadable, incomplete or holds impossible numbers."""


def processes_per_core(ranks: int, workers: int, cores: float) -> float:
    """Loader processes per core of a node: each rank's DataLoader workers (the rank itself without
    workers), the processes that decode, transform and issue storage requests side by side."""
    return ranks * max(1, workers) / cores


@dataclass(frozen=True)
class CpuCrowding:
    """CPU time of a unit of work against busy processes per core, relative to the first point.

    ``points`` are (processes per core, relative CPU time), increasing in processes per core; between
    them the factor is interpolated linearly in log(processes per core), outside them it stays at the
    nearest point's (no extrapolation). No points: not measured, every factor is 1.
    """

    points: tuple[tuple[float, float], ...] = ()
    name: str = "not measured"

    def __post_init__(self) -> None:
        loads = [p for p, _ in self.points]
        if any(not (p > 0 and math.isfinite(p)) for p in loads) or loads != sorted(set(loads)):
            raise CpuProfileError(f"crowding loads {loads} must be > 0, finite and increasing")
        factors = [f for _, f in self.points]
        if any(not (f > 0 and math.isfinite(f)) for f in factors):
            raise CpuProfileError(f"crowding factors {factors} must be > 0 and finite")

    @property
    def measured(self) -> bool:
        return bool(self.points)

    def factor(self, per_core: float) -> float:
        """Relative CPU time of a unit of work at ``per_core`` busy processes per core."""
        if not self.points:
            return 1.0
        loads = np.log([p for p, _ in self.points])
        return float(np.interp(math.log(per_core), loads, [f for _, f in self.points]))

    def ratio(self, per_core: float, measured_at: float) -> float:
        """What CPU time measured at ``measured_at`` processes per core is multiplied by at ``per_core``."""
        return self.factor(per_core) / self.factor(measured_at)


def load_cpu_profile(path: str | Path) -> CpuCrowding:
    """Read a CPU profile (``replay calibrate --cpu``); every problem is a CpuProfileError naming the file."""
    path = Path(path)
    data = read_toml(path, "CPU profile", CpuProfileError)
    cpu = data.get("cpu")
    if not isinstance(cpu, dict) or "crowding" not in cpu:
        raise CpuProfileError(f"CPU profile {path}: needs a [cpu] table with crowding = [[per_core, factor], ...]")
    points = cpu["crowding"]
    if not isinstance(points, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p) for p in points
    ):
        raise CpuProfileError(f"CPU profile {path}: crowding(={points!r}) must be a list of [per_core, factor] pairs")
    name = (data.get("meta") or {}).get("name", path.stem)
    try:
        return CpuCrowding(tuple((float(p), float(f)) for p, f in points), str(name))
    except CpuProfileError as err:
        raise CpuProfileError(f"CPU profile {path}: {err}") from err
