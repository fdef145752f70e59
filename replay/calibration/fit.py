"""The fit: a calibration's measurements to the profile's numbers (latency, bandwidths, request rate,
CPU per request, CPU crowding). What each number is fitted from and why: docs/calibration.md."""

from __future__ import annotations

import math
import os
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


def fit_request_costs(sizes, seconds, min_latency_s: float = 0.0) -> Fit:
    """Least-squares fit of per-request time against size, minimising relative errors.

    Both results stay physical: a fit whose latency comes out below ``min_latency_s`` (0, or the
    client's CPU per request, which every request's time holds) is redone with the latency held
    there, the slope refitted; one whose per-byte cost is not positive gives an unlimited bandwidth
    and the (relative-error) mean time as latency, again no less than ``min_latency_s``.
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
    if min_latency_s < 0 or not math.isfinite(min_latency_s):
        raise ValueError(f"min_latency_s must be finite and >= 0 (got {min_latency_s})")
    # Minimise sum(((a + c*s - t) / t)^2): ordinary least squares on rows divided by t.
    design = np.column_stack([1 / t, s / t])
    (latency, per_byte), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    if per_byte <= 0:
        latency, per_byte = max(min_latency_s, float(np.sum(1 / t) / np.sum(1 / t**2))), 0.0
    elif latency < min_latency_s:
        # sum(((m + p*s - t) / t)^2) is least at p = sum(s/t * (1 - m/t)) / sum((s/t)^2)
        latency = min_latency_s
        per_byte = max(0.0, float(np.sum(s / t * (1 - latency / t)) / np.sum((s / t) ** 2)))
    residuals = (latency + per_byte * s - t) / t
    bandwidth = 1 / per_byte if per_byte > 0 else math.inf
    return Fit(float(latency), float(bandwidth), tuple(float(r) for r in residuals))


@dataclass(frozen=True)
class Crowding:
    """``cpu_crowding_curve``: the CPU per request (the client's, plus the servers' when co-located)
    of the smallest requests, one at a time per client process, at each count of client processes
    (the single stream first, then the multi-process cells, all paced alike), as (processes per core,
    its CPU per request / the single stream's): what the model multiplies ``request_cpu`` (and
    ``colocated_cpu``), the single stream's, by at that load, so that at each of these cells' own load
    the profile charges what the cell measured."""

    cells: tuple[Measurement, ...]
    cpu_s: tuple[float, ...]
    cores: int

    @property
    def points(self) -> tuple[tuple[float, float], ...]:
        return tuple(
            (m.threads / self.cores, cpu / self.cpu_s[0]) for m, cpu in zip(self.cells, self.cpu_s, strict=True)
        )


def single_streams(data: list[Measurement]) -> list[Measurement]:
    """The single-stream data cells the latency and the CPU per request are fitted from: random reads
    or GETs (sequential reads only where there are no others)."""
    return [m for m in data if m.single_stream and m.pattern != "read"] or [m for m in data if m.single_stream]


def fit_crowding(
    measurements: list[Measurement] | tuple[Measurement, ...], *, colocated: bool, cores: int
) -> Crowding | None:
    """The crowding curve from the single stream's smallest requests and the cells of the same size,
    one request at a time per process, paced as it was; None without such a multi-process cell."""
    data = [m for m in measurements if m.pattern in DATA_PATTERNS]

    def cpu(m: Measurement) -> float:
        return (m.host_cpu_s if colocated else m.cpu_s) or 0.0

    stream = single_streams(data)
    if not stream or cpu(base := min(stream, key=lambda m: m.size)) <= 0:
        return None
    crowd = [
        m
        for m in data
        if (m.size, m.depth, m.pause_s, m.pattern) == (base.size, 1, base.pause_s, base.pattern)
        and m.threads > 1
        and cpu(m) > 0
    ]
    if not crowd:
        return None
    cells = [base, *sorted({m.threads: m for m in crowd}.values(), key=lambda m: m.threads)]
    return Crowding(tuple(cells), tuple(cpu(m) for m in cells), cores)


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
    """Client CPU per request of the smallest single-stream requests, where CPU per byte is nil (None:
    not measured)."""
    colocated_cpu_s: float | None = None
    """The host's CPU less the client's per request, of the same cell (None: not co-located)."""
    iops_busy: float | None = None
    """Fraction of the host's cores busy while the best request rate was measured."""
    open_cpu_s: float | None = None
    """Client CPU per file of the open-read-close cell less ``request_cpu_s``: its open and close."""
    colocated_open_cpu_s: float | None = None
    """The servers' CPU per file of that cell less ``colocated_cpu_s`` (None: not co-located)."""
    crowding: Crowding | None = None
    """How the CPU per request grew with client processes (None: no two loads to compare)."""

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


def fit_measurements(
    measurements: list[Measurement] | tuple[Measurement, ...], *, colocated: bool = False, cores: int | None = None
) -> Fitted:
    """Fit the profile numbers: latency, stream bandwidth and CPU per request from the single-stream
    data requests, aggregate bandwidth and request rate from the best cells, open / stat from their
    cells, the CPU crowding from the small-request cells on this host's ``cores`` (default: the usable
    ones). ``colocated``: also the servers' CPU per request (see :attr:`Measurement.server_cpu_s`)."""
    data = [m for m in measurements if m.pattern in DATA_PATTERNS]
    stream = single_streams(data)
    if not stream:
        raise CalibrationError("no single-stream measurements to fit latency and bandwidth from")
    smallest = min(stream, key=lambda m: m.size)
    request_cpu = smallest.cpu_s
    # Every request's time holds the client's CPU: a free intercept below it (a noisy line) would
    # floor the profile's latency at 0 and charge small requests more than the line.
    fit = fit_request_costs([m.size for m in stream], [m.latency_s for m in stream], request_cpu or 0.0)
    best_bw = max(data, key=lambda m: m.bytes_per_s)
    small = [m for m in data if m.size <= min(x.size for x in data)]
    best_rate = max(small, key=lambda m: m.ops_per_s)
    opens = [m for m in measurements if m.pattern == "open-read-close"]
    stats = [m for m in measurements if m.pattern == "stat"]
    colocated_cpu = smallest.server_cpu_s if colocated else None
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
        crowding=fit_crowding(measurements, colocated=colocated, cores=cores or len(os.sched_getaffinity(0))),
    )
