"""The result of replaying a trace on real storage (``replay fio``, ``replay s3``): one schema.

``to_dict()`` keys are a stable contract: target, nodes, bytes, ops, duration_s,
traced_duration_s, fidelity, read_MBps, ops_per_s, lat_p50_ms, lat_p99_ms, errors (plus extras:
measured_fidelity, mode, expected_bytes, expected_ops, details).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from trainio.replay.storage.errors import ReplayError
from trainio.tracefile.redact import Redactor


class ReplayVerificationError(ReplayError):
    """The replay ran but moved other bytes or operations than the trace asks for."""


@dataclass(frozen=True)
class ReplayResult:
    target: str
    nodes: int
    bytes: int
    """Bytes read by the replay, all nodes together."""
    ops: int
    """Read operations (reads, GETs) issued, all nodes together."""
    duration_s: float
    """Wall time of the replay: its first read's issue to its last read's end, all nodes, as measured
    (fio: from its per-I/O log, not from planned start delays)."""
    traced_duration_s: float
    """Time the traced process(es) took for the same operations (first to last data op)."""
    lat_p50_ms: float
    lat_p99_ms: float
    errors: int
    mode: str = "as-traced"
    """``as-traced`` (timing kept) or ``no-stall`` (as fast as possible)."""
    measured_fidelity: float = math.nan
    """The part a replay measures: each job's reads, first issue to last issue, against the schedule's,
    summed over jobs (start delays left out: only the plan knows them); NaN as fast as possible."""
    expected_bytes: int = 0
    expected_ops: int = 0
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", Redactor().text(self.target))  # printed and written: no secrets

    @property
    def fidelity(self) -> float:
        """duration_s / traced_duration_s: 1.0 = the replay took as long as the traced run."""
        return self.duration_s / self.traced_duration_s if self.traced_duration_s > 0 else math.nan

    @property
    def read_MBps(self) -> float:  # noqa: N802 - the documented key
        return self.bytes / self.duration_s / 1e6 if self.duration_s > 0 else 0.0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict:
        """JSON-ready: a figure that cannot be had (NaN) is null."""
        data = asdict(self)
        data.update(fidelity=self.fidelity, read_MBps=self.read_MBps, ops_per_s=self.ops_per_s)
        return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in data.items()}
