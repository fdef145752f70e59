"""A sweep's rows as a report reads them: which storage each trains from, which parameters vary, how
they group into series over node counts, and the target each row meets or misses."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from trainio.replay.projection.grid import FLAGS, STAGE_IN_ONLY
from trainio.replay.projection.scenario import Scenario
from trainio.replay.projection.wording import duration, percent

MAX_SERIES = 12
"""Figures draw at most this many series (the fastest at the most nodes); the table has all."""
PARAMETERS = tuple(name for name in Scenario.__dataclass_fields__ if name not in FLAGS)


class ReportError(ValueError):
    """A report that cannot be made: a sweep without a single projected configuration, a bad target."""


@dataclass(frozen=True)
class Target:
    """A deadline for time to train, an accelerator-utilisation floor, or both."""

    deadline_s: float | None = None
    au: float | None = None

    def __post_init__(self) -> None:
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise ReportError(f"--deadline(={self.deadline_s}) must be > 0")
        if self.au is not None and not 0 < self.au <= 1:
            raise ReportError(f"--target-au(={self.au}) must be in (0, 1]")

    def met(self, row: dict) -> bool:
        return self.shortfall(row) <= 0

    def shortfall(self, row: dict) -> float:
        """How far a row misses, as a fraction of the target (<= 0: met); the worse of both. The
        deadline counts a stage-in's copy too: the time to value."""
        misses = []
        if self.deadline_s is not None:
            misses.append(value_s(row) / self.deadline_s - 1)
        if self.au is not None:
            misses.append((self.au - row["accelerator_utilization"]) / self.au)
        return max(misses)

    def text(self) -> str:
        parts = []
        if self.deadline_s is not None:
            parts.append(f"a {duration(self.deadline_s)} deadline")
        if self.au is not None:
            parts.append(f"{percent(self.au)} accelerator utilisation")
        return " and ".join(parts)

    def miss(self, row: dict) -> str:
        """What a row misses by, in words."""
        parts = []
        if self.deadline_s is not None and value_s(row) > self.deadline_s:
            parts.append(f"{duration(value_s(row) - self.deadline_s)} over the deadline")
        if self.au is not None and row["accelerator_utilization"] < self.au:
            parts.append(f"{percent(self.au - row['accelerator_utilization'])} short of {percent(self.au)} AU")
        return " and ".join(parts)


def source(row: dict) -> str:
    """A configuration's storage: the backend, or the profile file it came from."""
    return row["backend"] if not row.get("profile") else f"{row['backend']} ({Path(row['profile']).name})"


def storage(row: dict) -> str:
    """Where a configuration's training reads: its storage, or the disk it copied the data to first."""
    if not row.get("stage_in"):
        return source(row)
    return f"{row.get('staging.target') or row['stage_in']} (copied from {source(row)})"


def value_s(row: dict) -> float:
    """From the job's start to the trained model: the time to train, after a stage-in's copy."""
    value = row.get("time_to_value_s")
    return row["time_to_train_s"] if value is None else value


def value_order(value: object) -> tuple:
    """Numbers by value, then everything else by text; None (as captured) first."""
    return (
        value is not None,
        not isinstance(value, (int, float)),
        value if isinstance(value, (int, float)) else str(value),
    )


def value_text(value: object) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


@dataclass(frozen=True)
class Layout:
    """Which parameters vary in the sweep, and the order of storages and node counts."""

    varying: tuple[str, ...]
    """Besides nodes, backend/profile and format."""
    storages: tuple[str, ...]
    nodes: tuple[int, ...]

    @classmethod
    def of(cls, rows: list[dict]) -> Layout:
        varying = tuple(
            name
            for name in PARAMETERS
            if name not in ("nodes", "backend", "profile", "format", "stage_in")
            and len({value_text(row.get(name)) for row in rows}) > 1
        )
        return cls(
            varying,
            tuple(dict.fromkeys(storage(row) for row in rows)),
            tuple(sorted({row["nodes"] for row in rows})),
        )

    def details(self, row: dict) -> str:
        """The format and the other varying parameters: 'shards:256MiB, workers=4' (the copy's own
        only where there is a copy)."""
        names = [name for name in self.varying if row.get("stage_in") or name not in STAGE_IN_ONLY]
        return ", ".join([str(row["format"]), *(f"{name}={row.get(name)}" for name in names)])

    def label(self, row: dict) -> str:
        return f"{storage(row)}, {self.details(row)}"

    def series(self, rows: list[dict]) -> dict[str, list[dict]]:
        """Rows by series label, each sorted by nodes; storages in sweep order."""
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in sorted(rows, key=lambda r: (self.storages.index(storage(r)), self.label(r), r["nodes"])):
            groups[self.label(row)].append(row)
        return dict(groups)

    def drawn(self, rows: list[dict]) -> tuple[dict[str, list[dict]], str]:
        """The series the figures draw (the fastest at their largest node count) and a note."""
        series = self.series(rows)
        if len(series) <= MAX_SERIES:
            return series, ""
        best = sorted(series, key=lambda label: series[label][-1]["time_to_train_s"])[:MAX_SERIES]
        kept = {label: rows for label, rows in series.items() if label in best}
        return kept, f"The figures draw the {MAX_SERIES} fastest of {len(series)} series; the table has them all."


@dataclass(frozen=True)
class Context:
    """What every section of a report is built from."""

    rows: list[dict]
    """Projected configurations (no error)."""
    failed: list[dict]
    target: Target
    layout: Layout
    unstaged: list[dict] = field(default_factory=list)
    """Configurations whose data does not fit on the node-local disk they copy to."""
