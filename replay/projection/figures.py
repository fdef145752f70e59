"""What each figure of a report shows, as plain data: ``plots`` draws them, nothing here draws.

Every figure has a ``name`` (its file stem), a title and axis labels with units; series carry a
``group`` (the storage) so that one colour stands for one storage across figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trainio.models.timeline import Binned
from trainio.replay.projection.whatif import WhatIfResult


@dataclass(frozen=True)
class Series:
    label: str
    group: str
    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class LinesFigure:
    """Lines over node counts on log-log axes, with reference lines."""

    name: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    references: tuple[Series, ...] = ()
    """Drawn grey and dashed (the ideal linear speedup)."""
    level: tuple[float, str] | None = None
    """A horizontal line (the deadline) and its label."""


@dataclass(frozen=True)
class CellsFigure:
    """A grid of cells: rows are configurations, columns node counts. ``values`` are numbers
    coloured on a scale (0..1) and outlined where >= ``threshold``; ``categories`` name each
    cell's class instead (one colour per class)."""

    name: str
    title: str
    xlabel: str
    columns: tuple[str, ...]
    rows: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...] = ()
    threshold: float | None = None
    categories: tuple[tuple[str | None, ...], ...] = ()
    legend: tuple[str, ...] = ()
    """The classes, in legend order."""


@dataclass(frozen=True)
class DemandPanel:
    ylabel: str
    demand: tuple[Series, ...]
    capacity: tuple[Series, ...]
    """One per storage, drawn dashed in its colour."""
    saturated: tuple[tuple[float, float], ...] = ()
    """(nodes, demand) where storage is the bottleneck, marked."""


@dataclass(frozen=True)
class DemandFigure:
    name: str
    title: str
    xlabel: str
    panels: tuple[DemandPanel, ...]


@dataclass(frozen=True)
class TimelineFigure:
    """One rank's accelerator time and its node's storage reads over a run."""

    name: str
    title: str
    edges_s: tuple[float, ...]
    compute: tuple[float, ...]
    sync: tuple[float, ...]
    stall: tuple[float, ...]
    read_MBps: tuple[float, ...]  # noqa: N815 - MB/s
    capacity_MBps: float | None  # noqa: N815
    """What one node can read (None: unlimited)."""
    preload_s: float
    epoch_ends_s: tuple[float, ...]
    extrapolated: tuple[tuple[float, float], ...] = field(default_factory=tuple)


Figure = LinesFigure | CellsFigure | DemandFigure | TimelineFigure


def timeline_figure(name: str, title: str, binned: Binned, result: WhatIfResult) -> TimelineFigure:
    """The timeline of one what-if projection from what its recorder collected."""
    ends = tuple(float(e) for e in result.preload_s + np.cumsum(result.per_epoch_s))
    capacity = result.backend_capacity.get("per_node_MBps")
    return TimelineFigure(
        name,
        title,
        tuple(binned.edges_s.tolist()),
        tuple(binned.compute.tolist()),
        tuple(binned.sync.tolist()),
        tuple(binned.stall.tolist()),
        tuple(binned.read_MBps.tolist()),
        capacity if capacity is not None and math.isfinite(capacity) else None,
        result.preload_s,
        ends,
        binned.extrapolated,
    )
