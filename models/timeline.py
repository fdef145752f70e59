"""One rank's timeline in a simulation: when it computed, waited, and what its node read.

A ``Recorder`` handed to ``simulate`` collects, for the first rank of the first node, each step's
compute start, compute end and step end (the end of its barrier and exposed all-reduce), and
every storage transfer of that node (start, end, bytes). Fast mode simulates only a head and a
tail of a long epoch and extrapolates the middle; such stretches are recorded as ``Steady`` spans
carrying their totals. ``binned`` turns all of it into evenly spaced rates, ready to plot. Times
are seconds from the start of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Steady:
    """An extrapolated stretch: its compute and sync seconds and its node's bytes read."""

    start_s: float
    end_s: float
    compute_s: float
    sync_s: float
    storage_bytes: float


@dataclass(frozen=True)
class Binned:
    """Rates per bin of ``edges_s``: fractions of the rank's time and the node's read rate."""

    edges_s: np.ndarray
    compute: np.ndarray
    """Fraction of the bin the accelerator computed."""
    sync: np.ndarray
    """Fraction spent at the step barrier and in the exposed all-reduce."""
    read_MBps: np.ndarray  # noqa: N815 - MB/s, as the what-if keys spell it
    """The node's storage reads (MB = 1e6 bytes)."""
    extrapolated: tuple[tuple[float, float], ...]
    """(start, end) of the stretches fast mode extrapolated instead of simulating."""

    @property
    def stall(self) -> np.ndarray:
        """Fraction waiting for data (preload, loader, epoch gaps): the rest."""
        return np.clip(1.0 - self.compute - self.sync, 0.0, 1.0)


@dataclass
class Recorder:
    offset_s: float = 0.0
    """Added to the times the running simulation reports (fast mode simulates epochs apart)."""
    steps: list[tuple[float, float, float]] = field(default_factory=list)
    """(compute start, compute end, step end) of each simulated step."""
    reads: list[tuple[float, float, float]] = field(default_factory=list)
    """(start, end, bytes) of each storage transfer of the node."""
    steady: list[Steady] = field(default_factory=list)

    def step(self, compute_start: float, compute_end: float, step_end: float) -> None:
        at = self.offset_s
        self.steps.append((at + compute_start, at + compute_end, at + step_end))

    def read(self, start: float, end: float, nbytes: float) -> None:
        if nbytes > 0:
            self.reads.append((self.offset_s + start, self.offset_s + end, nbytes))

    def extrapolate(self, at: float, span: Steady) -> None:
        """Insert ``span`` at simulation time ``at``: what was recorded from there on moves later."""
        cut, shift = self.offset_s + at, span.end_s - span.start_s
        self.steps = [tuple(t + shift if t >= cut else t for t in s) for s in self.steps]  # type: ignore[misc]
        self.reads = [(a + shift, b + shift, n) if a >= cut else (a, b, n) for a, b, n in self.reads]
        self.steady.append(Steady(cut, cut + shift, span.compute_s, span.sync_s, span.storage_bytes))

    def binned(self, end_s: float, bins: int = 400) -> Binned:
        edges = np.linspace(0.0, end_s, bins + 1)
        width = np.diff(edges)
        steps = np.asarray(self.steps, dtype=float).reshape(-1, 3)
        reads = np.asarray(self.reads, dtype=float).reshape(-1, 3)
        spans = self.steady
        compute = _spread(edges, steps[:, 0], steps[:, 1], steps[:, 1] - steps[:, 0])
        sync = _spread(edges, steps[:, 1], steps[:, 2], steps[:, 2] - steps[:, 1])
        nbytes = _spread(edges, reads[:, 0], reads[:, 1], reads[:, 2])
        if spans:
            starts = np.array([s.start_s for s in spans])
            ends = np.array([s.end_s for s in spans])
            compute += _spread(edges, starts, ends, np.array([s.compute_s for s in spans]))
            sync += _spread(edges, starts, ends, np.array([s.sync_s for s in spans]))
            nbytes += _spread(edges, starts, ends, np.array([s.storage_bytes for s in spans]))
        return Binned(
            edges_s=edges,
            compute=np.clip(compute / width, 0.0, 1.0),
            sync=np.clip(sync / width, 0.0, 1.0),
            read_MBps=nbytes / width / 1e6,
            extrapolated=tuple((s.start_s, s.end_s) for s in spans),
        )


def _spread(edges: np.ndarray, starts: np.ndarray, ends: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Each amount spread evenly over its [start, end), summed per bin (instant ones land whole)."""
    totals = np.zeros(edges.size - 1)
    if starts.size == 0:
        return totals
    length = ends - starts
    instant = length <= 0
    if instant.any():
        totals += np.histogram(starts[instant], bins=edges, weights=amounts[instant])[0]
    if instant.all():
        return totals
    rate = amounts[~instant] / length[~instant]
    times = np.concatenate([starts[~instant], ends[~instant]])
    deltas = np.concatenate([rate, -rate])
    order = np.argsort(times, kind="stable")
    times, deltas = times[order], deltas[order]
    level = np.cumsum(deltas)
    # The integral of the piecewise-constant rate at each event time, then at the bin edges.
    integral = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))])
    at_edges = np.interp(edges, times, integral, left=0.0, right=integral[-1])
    return totals + np.diff(at_edges)
