"""What a simulation reports: where one node's loaders spent their time, and the run's times.

``Counters`` add up what the loader workers (or the preload) of one node did; the mode that ran
them fills them in. ``SimulationResult`` is what ``simulate`` returns to the projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class Counters:
    """What one node's loaders (or its preload) did, summed over workers; seconds and counts."""

    storage_bytes: float = 0.0
    data_requests: float = 0.0
    meta_ops: float = 0.0
    cpu_s: float = 0.0
    """Core time: the workload's decode and transform, and the storage requests' CPU."""
    storage_cpu_s: float = 0.0
    """The part of ``cpu_s`` that storage requests took (client and co-located server)."""
    cpu_wait_s: float = 0.0
    """Waiting for a free core."""
    meta_s: float = 0.0
    """Waiting on open/stat latency."""
    latency_s: float = 0.0
    """Waiting for first bytes of data requests."""
    queue_s: float = 0.0
    """Queued at the IOPS limit or for an outstanding-request slot."""
    transfer_s: float = 0.0

    def plus(self, other: Counters, weight: float = 1.0) -> Counters:
        return Counters(**{f.name: getattr(self, f.name) + weight * getattr(other, f.name) for f in fields(self)})

    def scaled(self, factor: float) -> Counters:
        return Counters().plus(self, factor)


@dataclass(frozen=True)
class SimulationResult:
    """Times are per rank (all ranks are step-synchronised); counters are per node."""

    mode: str
    preload_s: float
    epoch_s: tuple[float, ...]
    compute_s: float
    allreduce_s: float
    """Exposed (not overlapped) all-reduce time."""
    loader: Counters
    preload: Counters
    simulated_steps: int
    """Rank-steps actually simulated."""
    main: Counters = field(default_factory=Counters)
    """The training processes' own CPU in their steps (per node): the work and the wait for a core."""
    sim_wall_s: float = 0.0
    """Wall-clock seconds the simulation took (``simulate`` measures them)."""

    @property
    def time_to_train_s(self) -> float:
        return self.preload_s + sum(self.epoch_s)
