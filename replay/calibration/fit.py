"""The fit: a calibration's measurements to the profile's numbers (latency, bandwidths, request rate,
CPU per request, CPU crowding). What each number is fitted from and why: docs/calibration.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainio.replay.calibration.measurement import DATA_PATTERNS, CalibrationError, Measurement

CPU_BOUND_BUSY = 0.9
"""A request rate measured with at least this fraction of the host's cores busy was CPU-bound."""


@dataclass(frozen=True)
class Fit:
    """``seconds = latency_s + size / bandwidth``; ``residuals`` = (fit - measured) / measured."""

    latency_s: float
    bandwidth: float
    residuals: tuple[float, ...]

    def seconds(self, size: float) -> float:
        return self.latency_s + size / self.bandwidth


def fit_request_costs(sizes, seconds) -> Fit:
    """Least-squares fit of per-request time against size, minimising relative errors.

    Both results stay physical: a fit whose latency comes out negative is redone through the
    origin (all transfer time), one whose per-byte cost is not positive gives an unlimited
    bandwidth and the (relative-error) mean time as latency.
    """
    s = np.asarray(sizes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if s.shape != t.shape or s.ndim != 1:
        raise ValueError(f"sizes and seconds must be two lists of one length (got {s.shape} and {t.shape})")
    if s.size < 2 or np.ptp(s) == 0:
        raise ValueError(f"fitting latency and bandwidth needs at least two request sizes (got {sorted(set(s))})")
    if not (np.all(t > 0) and np.all(np.isfinite(t))):
        raise ValueError(f"seconds must be finite and > 0 (got {t.min()})")
    if np.any(s < 0):
        raise ValueError(f"sizes must be >= 0 (got {s.min()})")
    # Minimise sum(((a + c*s - t) / t)^2): ordinary least squares on rows divided by t.
    design = np.column_stack([1 / t, s / t])
    (latency, per_byte), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    if per_byte <= 0:
        latency, per_byte = float(np.sum(1 / t) / np.sum(1 / t**2)), 0.0
    elif latency < 0:
        latency, per_byte = 0.0, float(np.sum(s / t) / np.sum((s / t) ** 2))
    residuals = (latency + per_byte * s - t) / t
    bandwidth = 1 / per_byte if per_byte > 0 else math.inf
    return Fit(float(latency), float(bandwidth), tuple(float(r) for r in residuals))


@dataclass(frozen=True)
class Crowding:
    """``cpu_crowding``: the CPU per request (the client's, plus the servers' when co-located) of
    small requests from ``low`` and from ``high`` concurrent client processes, and the exponent
    ``ratio = (high / low) ** exponent`` of their ratio (``measured``; ``exponent`` is floored at 0)."""

    low: Measurement
    high: Measurement
    low_cpu_s: float
    high_cpu_s: float
    measured: float

    @property
    def exponent(self) -> float:
        return max(0.0, self.measured)


def fit_crowding(measurements: list[Measurement] | tuple[Measurement, ...], *, colocated: bool) -> Crowding | None:
    """The crowding exponent from the small (the smallest size) data-request cells of one request
    at a time from several processes: the fewest and the most processes; None without two such
    cells with a CPU per request."""
    data = [m for m in measurements if m.pattern in DATA_PATTERNS]
    if not data:
        return None

    def cpu(m: Measurement) -> float:
        return (m.host_cpu_s if colocated else m.cpu_s) or 0.0

    small = min(m.size for m in data)
    cells = [m for m in data if m.size == small and m.depth == 1 and m.threads > 1 and cpu(m) > 0]
    if len({m.threads for m in cells}) < 2:
        return None
    low, high = min(cells, key=lambda m: m.threads), max(cells, key=lambda m: m.threads)
    exponent = math.log(cpu(high) / cpu(low)) / math.log(high.threads / low.threads)
    return Crowding(low, high, cpu(low), cpu(high), exponent)


@dataclass(frozen=True)
class Fitted:
    """The profile numbers a calibration derives from its measurements."""

    latency_s: float
    stream_bandwidth: float
    aggregate_bandwidth: float
    iops: float
    residuals: dict[str, float]
    """Measurement name -> relative error of the latency / bandwidth fit."""
    aggregate_from: str
    iops_from: str
    open_latency_s: float | None = None
    stat_latency_s: float | None = None
    request_cpu_s: float | None = None
    """Client CPU per request: the intercept of CPU per request against size (None: not measured)."""
    colocated_cpu_s: float | None = None
    """The host's CPU less the client's per request, intercept as above (None: not co-located)."""
    iops_busy: float | None = None
    """Fraction of the host's cores busy while the best request rate was measured."""
    open_cpu_s: float | None = None
    """Client CPU per file of the open-read-close cell less ``request_cpu_s``: its open and close."""
    colocated_open_cpu_s: float | None = None
    """The servers' CPU per file of that cell less ``colocated_cpu_s`` (None: not co-located)."""
    crowding: Crowding | None = None
    """How the CPU per request grew with client processes (None: no two cells to compare)."""

    @property
    def open_wait_s(self) -> float | None:
        """The mean open time less the open's CPU (charged on the node's cores), floored at 0."""
        if self.open_latency_s is None:
            return None
        return max(0.0, self.open_latency_s - (self.open_cpu_s or 0.0))

    @property
    def wait_latency_s(self) -> float:
        """The fitted latency less the client's CPU (charged in the request's own time), floored at 0."""
        return max(0.0, self.latency_s - (self.request_cpu_s or 0.0))

    @property
    def cpu_bound(self) -> bool:
        """Whether the best request rate was measured with this host's cores (nearly) all busy."""
        return self.iops_busy is not None and self.iops_busy >= CPU_BOUND_BUSY


def fit_intercept(sizes, values) -> float | None:
    """The per-request part of a per-request cost (CPU seconds) that grows with size: the intercept
    of :func:`fit_request_costs` over the points with a positive value, their mean when fewer than
    two sizes have one; None when none has."""
    points = [(s, v) for s, v in zip(sizes, values, strict=True) if v is not None and v > 0 and math.isfinite(v)]
    if not points:
        return None
    if len({s for s, _ in points}) < 2:
        return float(np.mean([v for _, v in points]))
    return fit_request_costs([s for s, _ in points], [v for _, v in points]).latency_s


def fit_measurements(measurements: list[Measurement] | tuple[Measurement, ...], *, colocated: bool = False) -> Fitted:
    """Fit the profile numbers: latency, stream bandwidth and CPU per request from the single-stream
    data requests, aggregate bandwidth and request rate from the best cells, open / stat from their
    cells. ``colocated``: also the servers' CPU per request (see :attr:`Measurement.server_cpu_s`)."""
    data = [m for m in measurements if m.pattern in DATA_PATTERNS]
    stream = [m for m in data if m.single_stream and m.pattern != "read"] or [m for m in data if m.single_stream]
    if not stream:
        raise CalibrationError("no single-stream measurements to fit latency and bandwidth from")
    fit = fit_request_costs([m.size for m in stream], [m.latency_s for m in stream])
    best_bw = max(data, key=lambda m: m.bytes_per_s)
    small = [m for m in data if m.size <= min(x.size for x in data)]
    best_rate = max(small, key=lambda m: m.ops_per_s)
    opens = [m for m in measurements if m.pattern == "open-read-close"]
    stats = [m for m in measurements if m.pattern == "stat"]
    sizes = [m.size for m in stream]
    colocated_cpu = fit_intercept(sizes, [m.server_cpu_s for m in stream]) if colocated else None
    if colocated and colocated_cpu is None and all(m.server_cpu_s is not None for m in stream):
        colocated_cpu = 0.0  # measured, and nothing above the client's own
    request_cpu = fit_intercept(sizes, [m.cpu_s for m in stream])
    open_cpu = colocated_open = None
    if opens and opens[0].cpu_s is not None and request_cpu is not None:
        open_cpu = max(0.0, opens[0].cpu_s - request_cpu)
    if colocated and opens and opens[0].server_cpu_s is not None:
        colocated_open = max(0.0, opens[0].server_cpu_s - (colocated_cpu or 0.0))
    return Fitted(
        latency_s=fit.latency_s,
        stream_bandwidth=fit.bandwidth,
        aggregate_bandwidth=best_bw.bytes_per_s,
        iops=best_rate.ops_per_s,
        residuals={m.name: r for m, r in zip(stream, fit.residuals, strict=True)},
        aggregate_from=best_bw.name,
        iops_from=best_rate.name,
        open_latency_s=opens[0].first_byte_s if opens else None,
        stat_latency_s=stats[0].latency_s if stats else None,
        request_cpu_s=request_cpu,
        colocated_cpu_s=colocated_cpu,
        iops_busy=best_rate.busy,
        open_cpu_s=open_cpu,
        colocated_open_cpu_s=colocated_open,
        crowding=fit_crowding(measurements, colocated=colocated),
    )
