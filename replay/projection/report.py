"""The capacity-planning report of a sweep: its answers in sentences, tables and figure data.

``build_report(table, target)`` reads only the sweep table. Configurations are grouped by storage
(a backend, or a profile file) and drawn as series: one per combination of the swept parameters
other than the node count. The answers: the fewest nodes that meet the target on each storage (or
the closest miss), the most GPUs each keeps at least 90% busy, what packing files into shards
gains, the storage bandwidth and request rate the target needs, where the network or the host
CPU rather than storage limits, and whether copying the data to node-local disks before training
delivers the model sooner than training from shared storage. Section builders are listed in ``SECTIONS``; each returns a
``Section`` or None when the sweep holds nothing for it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from trainio.models.units import bytes_text
from trainio.replay.projection.figures import (
    CellsFigure,
    DemandFigure,
    DemandPanel,
    Figure,
    LinesFigure,
    Series,
)
from trainio.replay.projection.grid import FLAGS, STAGE_IN_ONLY
from trainio.replay.projection.scenario import Scenario
from trainio.replay.projection.sweepfile import SweepTable
from trainio.replay.projection.timetovalue import Pairing, pairings

BUSY = 0.9
"""Accelerator utilisation counted as busy (MLPerf Storage's AU threshold)."""
MAX_SERIES = 12
"""Figures draw at most this many series (the fastest at the most nodes); the table has all."""
MAX_TABLE_ROWS = 400
NOTICEABLE = 0.01
"""Changes in time to train smaller than this are reported as none."""
PARAMETERS = tuple(name for name in Scenario.__dataclass_fields__ if name not in FLAGS)
STORAGE_LIMITS = ("storage-bandwidth", "storage-iops")
OTHER_LIMITS = {
    "network": "the network (all-reduce)",
    "cpu-preprocessing": "the host CPU (decoding and transforms)",
    "storage-cpu": "the host CPU (storage requests' CPU)",
}


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


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    sentences: tuple[str, ...] = ()
    figure: Figure | None = None
    table: Table | None = None


@dataclass(frozen=True)
class Report:
    title: str
    intro: tuple[str, ...]
    sections: tuple[Section, ...]

    @property
    def figures(self) -> tuple[Figure, ...]:
        return tuple(s.figure for s in self.sections if s.figure is not None)


# --- wording ----------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def rate(value: float | None, unit: str = "") -> str:
    if value is None or math.isinf(value):
        return f"unlimited {unit}".strip()
    return (f"{value:,.0f} {unit}" if value >= 10 else f"{value:,.2f} {unit}").strip()


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def joined(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def ranges(numbers: Iterable[int], swept: list[int]) -> str:
    """Node counts as runs of the swept values: '1–4, 16'."""
    chosen = sorted(set(numbers))
    runs: list[list[int]] = []
    for n in chosen:
        if runs and swept.index(n) == swept.index(runs[-1][-1]) + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


# --- the table's structure --------------------------------------------------------------------


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


def _order(value: object) -> tuple:
    """Numbers by value, then everything else by text; None (as captured) first."""
    return (
        value is not None,
        not isinstance(value, (int, float)),
        value if isinstance(value, (int, float)) else str(value),
    )


def _value(value: object) -> str:
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
            and len({_value(row.get(name)) for row in rows}) > 1
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


def _choice(row: dict, layout: Layout) -> str:
    gpus = row["nodes"] * row["gpus_per_node"]
    return f"{plural(row['nodes'], 'node')} ({plural(gpus, 'GPU')}) with {layout.details(row)}"


def _outcome(row: dict) -> str:
    train = f"{duration(row['time_to_train_s'])} to train"
    if row.get("stage_in"):
        train = f"{duration(value_s(row))} to the model: a {duration(row['stage_in_s'])} copy, then {train}"
    return f"{train}, {percent(row['accelerator_utilization'])} AU"


# --- sections ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    rows: list[dict]
    """Projected configurations (no error)."""
    failed: list[dict]
    target: Target
    layout: Layout
    unstaged: list[dict] = field(default_factory=list)
    """Configurations whose data does not fit on the node-local disk they copy to."""


def fewest_nodes(rows: list[dict], target: Target) -> dict[str, tuple[dict, bool]]:
    """Per storage: the configuration with the fewest nodes meeting ``target`` (then the fastest),
    or, when none does, the one that misses it least; and whether it meets it."""
    answers: dict[str, tuple[dict, bool]] = {}
    for name in dict.fromkeys(storage(row) for row in rows):
        mine = [row for row in rows if storage(row) == name]
        meeting = [row for row in mine if target.met(row)]
        if meeting:
            answers[name] = (min(meeting, key=lambda r: (r["nodes"], r["time_to_train_s"])), True)
        else:
            answers[name] = (min(mine, key=lambda r: (target.shortfall(r), r["nodes"])), False)
    return answers


def answers_section(ctx: Context) -> Section:
    target, layout = ctx.target, ctx.layout
    chosen = fewest_nodes(ctx.rows, target)
    meeting = [row for row, met in chosen.values() if met]
    sentences = []
    if meeting:
        fewest = min(row["nodes"] for row in meeting)
        names = [name for name, (row, met) in chosen.items() if met and row["nodes"] == fewest]
        sentences.append(f"The fewest nodes that meet {target.text()}: {plural(fewest, 'node')}, on {joined(names)}.")
    else:
        closest = min(ctx.rows, key=lambda r: (target.shortfall(r), r["nodes"]))
        sentences.append(
            f"No configuration meets {target.text()}. The closest: {storage(closest)} with "
            f"{_choice(closest, layout)}: {_outcome(closest)}, {target.miss(closest)}."
        )
    for name, (row, met) in chosen.items():
        if met:
            sentences.append(f"{name}: {_choice(row, layout)} is enough ({_outcome(row)}).")
        else:
            sentences.append(
                f"{name}: no configuration meets it; the closest is {_choice(row, layout)} "
                f"({_outcome(row)}, {target.miss(row)})."
            )
    sentences += busy_sentences(ctx)
    sentences += shard_sentences(ctx)
    sentences += demand_sentences(ctx, chosen)
    sentences += limit_sentences(ctx)
    table = Table(
        ("storage", "meets target", "nodes", "GPUs", "configuration", "time to train", "AU", "read MB/s", "requests/s"),
        tuple(
            (
                name,
                "yes" if met else "no (closest)",
                str(row["nodes"]),
                str(row["nodes"] * row["gpus_per_node"]),
                layout.details(row),
                duration(row["time_to_train_s"]),
                percent(row["accelerator_utilization"]),
                rate(row["read_MBps"]),
                rate(row["read_ops_per_s"]),
            )
            for name, (row, met) in chosen.items()
        ),
    )
    return Section("Answers", tuple(sentences), table=table)


def busy_sentences(ctx: Context) -> list[str]:
    """The most GPUs each storage keeps at least ``BUSY`` busy."""
    sentences = []
    largest = max(ctx.layout.nodes)
    for name in ctx.layout.storages:
        mine = [row for row in ctx.rows if storage(row) == name]
        busy = [row for row in mine if row["accelerator_utilization"] >= BUSY]
        if not busy:
            best = max(mine, key=lambda r: r["accelerator_utilization"])
            sentences.append(
                f"{name} keeps no configuration {percent(BUSY)} busy (best: {percent(best['accelerator_utilization'])}"
                f" with {_choice(best, ctx.layout)})."
            )
            continue
        row = max(busy, key=lambda r: (r["nodes"] * r["gpus_per_node"], -r["time_to_train_s"]))
        more = " (the most swept: more may hold)" if row["nodes"] == largest else ""
        sentences.append(
            f"{name} keeps at most {plural(row['nodes'] * row['gpus_per_node'], 'GPU')} at least "
            f"{percent(BUSY)} busy{more}: {_choice(row, ctx.layout)}, {percent(row['accelerator_utilization'])} AU."
        )
    return sentences


def shard_pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(files row, shards row) pairs that differ in their format alone."""
    others = [name for name in PARAMETERS if name != "format"]
    by_rest: dict[str, dict[str, dict]] = defaultdict(dict)
    for row in rows:
        by_rest[json.dumps([row.get(name) for name in others])][str(row["format"])] = row
    pairs = []
    for formats in by_rest.values():
        if "files" in formats:
            pairs += [(formats["files"], row) for fmt, row in formats.items() if fmt.startswith("shards")]
    return pairs


def shard_sentences(ctx: Context) -> list[str]:
    pairs = shard_pairs(ctx.rows)
    if not pairs:
        return ["The sweep has no files/shards pair to compare (sweep --format files,shards:256MiB for one)."]
    sentences = []
    groups: dict[tuple[str, str], list[tuple[dict, dict]]] = defaultdict(list)
    for files, shards in pairs:
        groups[(storage(files), str(shards["format"]))].append((files, shards))
    for (name, fmt), group in groups.items():
        changes = [s["time_to_train_s"] / f["time_to_train_s"] - 1 for f, s in group]
        files, shards = group[min(range(len(group)), key=changes.__getitem__)]
        gain = min(changes)
        span = (
            f"; over {plural(len(group), 'pair')}: {_change(max(changes))} to {_change(gain)}" if len(group) > 1 else ""
        )
        if gain <= -NOTICEABLE:
            sentences.append(
                f"On {name}, packing files into {fmt} cuts time to train by {percent(-gain)} at "
                f"{plural(files['nodes'], 'node')} ({duration(files['time_to_train_s'])} → "
                f"{duration(shards['time_to_train_s'])}){span}."
            )
        elif max(changes) < NOTICEABLE:
            sentences.append(
                f"On {name}, packing files into {fmt} changes time to train by less than {percent(NOTICEABLE)}"
                f" ({plural(len(group), 'configuration')} compared)."
            )
        else:
            longer = _change(max(changes))
            sentences.append(f"On {name}, packing files into {fmt} gains nothing; it takes up to {longer} longer.")
    return sentences


def _change(fraction: float) -> str:
    return f"{'+' if fraction >= 0 else '−'}{100 * abs(fraction):.0f}%"


def demand_sentences(ctx: Context, chosen: dict[str, tuple[dict, bool]]) -> list[str]:
    """The bandwidth and request rate the target needs from each storage."""
    sentences = []
    for name, (row, met) in chosen.items():
        capacity = (row.get("backend_capacity.aggregate_MBps"), row.get("backend_capacity.iops"))
        what = "meeting the target" if met else "its closest configuration"
        sentences.append(
            f"On {name}, {what} ({plural(row['nodes'], 'node')}) reads {rate(row['read_MBps'], 'MB/s')} and "
            f"{rate(row['read_ops_per_s'], 'requests/s')} from storage, which offers "
            f"{rate(capacity[0], 'MB/s')} and {rate(capacity[1], 'IOPS')} to that many nodes."
        )
    return sentences


def limit_sentences(ctx: Context) -> list[str]:
    """Where the network or the host CPU, not storage, limits."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in ctx.rows:
        if row["bottleneck"] in OTHER_LIMITS:
            groups[(row["bottleneck"], ctx.layout.label(row))].append(row["nodes"])
    if not groups:
        return ["Neither the network nor the host CPU limits any configuration: storage or compute does."]
    swept = list(ctx.layout.nodes)
    together: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (limit, label), nodes in sorted(groups.items()):
        together[(limit, ranges(nodes, swept))].append(label)
    sentences = []
    for (limit, where), labels in together.items():
        what = OTHER_LIMITS[limit]
        count = "node" if where == "1" else "nodes"
        sentences.append(f"{what[0].upper()}{what[1:]}, not storage, limits {'; '.join(labels)} at {where} {count}.")
    return sentences


def _time_unit(longest_s: float) -> tuple[float, str]:
    return (3600.0, "hours") if longest_s >= 3 * 3600 else (60.0, "minutes") if longest_s >= 180 else (1.0, "s")


def time_section(ctx: Context) -> Section:
    series, note = ctx.layout.drawn(ctx.rows)
    scale, unit = _time_unit(max(row["time_to_train_s"] for row in ctx.rows))
    lines = tuple(
        Series(
            label, storage(rows[0]), tuple(r["nodes"] for r in rows), tuple(r["time_to_train_s"] / scale for r in rows)
        )
        for label, rows in series.items()
    )
    start = min(ctx.rows, key=lambda r: (r["nodes"], r["time_to_train_s"]))
    ideal = Series(
        f"ideal linear speedup from {storage(start)}, {ctx.layout.details(start)} at {plural(start['nodes'], 'node')}",
        "",
        ctx.layout.nodes,
        tuple(start["time_to_train_s"] * start["nodes"] / n / scale for n in ctx.layout.nodes),
    )
    deadline = ctx.target.deadline_s
    figure = LinesFigure(
        "time_to_train",
        "Time to train vs nodes",
        "nodes",
        f"time to train ({unit})",
        lines,
        (ideal,),
        (deadline / scale, f"deadline {duration(deadline)}") if deadline else None,
    )
    sentences = ("One line per configuration; the grey dashed line halves the time with every doubling of nodes.",)
    return Section("Time to train", sentences + ((note,) if note else ()), figure=figure)


def _cells(ctx: Context, value: Callable[[dict], object]) -> tuple[tuple[str, ...], tuple[tuple, ...], str]:
    series, note = ctx.layout.drawn(ctx.rows)
    labels = tuple(series)
    cells = tuple(
        tuple(next((value(r) for r in rows if r["nodes"] == n), None) for n in ctx.layout.nodes)
        for rows in series.values()
    )
    return labels, cells, note


def utilisation_section(ctx: Context) -> Section:
    labels, cells, note = _cells(ctx, lambda r: r["accelerator_utilization"])
    figure = CellsFigure(
        "utilisation",
        f"Accelerator utilisation (compute time / wall time); outlined: AU ≥ {percent(BUSY)}",
        "nodes",
        tuple(str(n) for n in ctx.layout.nodes),
        labels,
        values=cells,
        threshold=BUSY,
    )
    busy = sum(row["accelerator_utilization"] >= BUSY for row in ctx.rows)
    sentences = (
        f"{busy} of {plural(len(ctx.rows), 'configuration')} keep the accelerators at least {percent(BUSY)} busy.",
    )
    return Section("Accelerator utilisation", sentences + ((note,) if note else ()), figure=figure)


def demand_section(ctx: Context) -> Section:
    series, note = ctx.layout.drawn(ctx.rows)
    panels = []
    for key, capacity_key, unit in (
        ("read_MBps", "backend_capacity.aggregate_MBps", "storage read (MB/s)"),
        ("read_ops_per_s", "backend_capacity.iops", "storage requests (per s)"),
    ):
        demand = tuple(
            Series(label, storage(rows[0]), tuple(r["nodes"] for r in rows), tuple(r[key] for r in rows))
            for label, rows in series.items()
        )
        capacity = []
        for name in ctx.layout.storages:
            mine = sorted((r for r in ctx.rows if storage(r) == name), key=lambda r: r["nodes"])
            points = [(r["nodes"], r.get(capacity_key)) for r in mine if r.get(capacity_key) is not None]
            if points:
                xs, ys = zip(*dict(points).items(), strict=True)
                capacity.append(Series(f"{name} capacity", name, tuple(xs), tuple(ys)))
        saturated = tuple(
            (r["nodes"], r[key]) for rows in series.values() for r in rows if r["bottleneck"] in STORAGE_LIMITS
        )
        panels.append(DemandPanel(unit, demand, tuple(capacity), saturated))
    figure = DemandFigure("demand", "Storage demand next to each storage's capacity", "nodes", tuple(panels))
    sentences = [
        "Solid lines: what the training reads; dashed: what the storage offers that many nodes (none drawn: unlimited)."
    ]
    first: dict[str, tuple[int, str]] = {}
    for label, rows in ctx.layout.series(ctx.rows).items():
        hit = next((r for r in rows if r["bottleneck"] in STORAGE_LIMITS), None)
        if hit is not None:
            first[label] = (hit["nodes"], hit["bottleneck"].removeprefix("storage-"))
    if first:
        sentences += [
            f"{label} saturates the storage's {'request rate' if what == 'iops' else what} from "
            f"{plural(nodes, 'node')} on (marked ×)."
            for label, (nodes, what) in first.items()
        ]
    else:
        sentences.append("No configuration saturates its storage's bandwidth or request rate.")
    return Section("Storage demand and capacity", tuple(sentences) + ((note,) if note else ()), figure=figure)


def bottleneck_section(ctx: Context) -> Section:
    labels, cells, note = _cells(ctx, lambda r: r["bottleneck"])
    present = [name for name in _BOTTLENECK_ORDER if any(name in row for row in cells)]
    figure = CellsFigure(
        "bottlenecks",
        "Bottleneck of each configuration",
        "nodes",
        tuple(str(n) for n in ctx.layout.nodes),
        labels,
        categories=cells,
        legend=tuple(present),
    )
    counts: dict[str, int] = defaultdict(int)
    for row in ctx.rows:
        counts[row["bottleneck"]] += 1
    spread = ", ".join(f"{name} {counts[name]}" for name in present)
    return Section(
        "Bottlenecks", (f"Configurations by bottleneck: {spread}.",) + ((note,) if note else ()), figure=figure
    )


def table_section(ctx: Context) -> Section:
    rows = sorted(ctx.rows, key=lambda r: (ctx.layout.label(r), r["nodes"]))
    body = tuple(
        (
            storage(r),
            ctx.layout.details(r),
            str(r["nodes"]),
            str(r["nodes"] * r["gpus_per_node"]),
            duration(r["time_to_train_s"]),
            percent(r["accelerator_utilization"]),
            rate(r["read_MBps"]),
            rate(r["read_ops_per_s"]),
            r["bottleneck"],
        )
        for r in rows[:MAX_TABLE_ROWS]
    )
    note = (
        f"The first {MAX_TABLE_ROWS} of {len(rows)}; the sweep file has them all." if len(rows) > MAX_TABLE_ROWS else ""
    )
    header = (
        "storage",
        "configuration",
        "nodes",
        "GPUs",
        "time to train",
        "AU",
        "read MB/s",
        "requests/s",
        "bottleneck",
    )
    return Section("All configurations", table=Table(header, body, note))


def stage_in_section(ctx: Context) -> Section | None:
    """Copy then train vs train from shared storage: time to value per node count and storage, the
    crossover in words, and the local disk a copy strands."""
    staged = [row for row in ctx.rows + ctx.unstaged if row.get("stage_in")]
    if not staged:
        return None
    title = "Copy then train vs train from shared storage"
    found = pairings(ctx.rows + ctx.unstaged)
    if not found:
        return Section(title, ("No configuration was swept both ways (sweep --stage-in none,local-nvme for one).",))
    sentences = [_copied_what(found[0])]
    several = len({_names(pairing, ctx.layout)[2] for pairing in found}) > 1
    for pairing in found:
        sentences += _crossover_sentences(pairing, ctx.layout, several)
    sentences += _stranded_sentences(found)
    drawn = found[: MAX_SERIES // 3]
    if len(drawn) < len(found):
        sentences.append(
            f"The figure draws the first {len(drawn)} of {len(found)} comparisons; the table has them all."
        )
    figure = _time_to_value_figure(drawn, ctx, several)
    return Section(title, tuple(sentences), figure=figure, table=_stage_in_table(found, ctx))


def _names(pairing: Pairing, layout: Layout) -> tuple[str, str, str]:
    """The storage trained from, the disk copied to, and what else sets the configuration apart."""
    shared, copied = next(iter(pairing.shared.values())), next(iter(pairing.copied.values()))
    target = copied.get("staging.target") or copied["stage_in"]
    return source(shared), target, layout.details(copied)


def _copied_what(pairing: Pairing) -> str:
    copied = next(iter(pairing.copied.values()))
    if copied.get("staging.whole_dataset"):
        return (
            f"Every node copies the whole data set ({bytes_text(copied['local_reserved_bytes'])}) before training: "
            "DistributedSampler reshuffles it across all ranks every epoch, so each node reads all of it."
        )
    return "Each node copies only its own shard of the data set: the sampler never crosses shards."


def _crossover_sentences(pairing: Pairing, layout: Layout, several: bool) -> list[str]:
    """Which way delivers the model sooner at each node count, in words; ``several``: the sweep
    compares more than one configuration of a storage, so say which."""
    shared_name, target, details = _names(pairing, layout)
    where = f" ({details})" if several else ""
    nodes = pairing.nodes
    swept = sorted(set(pairing.shared) | set(pairing.copied))
    copy = [n for n in nodes if pairing.copy_wins(n)]
    straight = [n for n in nodes if not pairing.copy_wins(n)]
    train, copying = f"training straight from {shared_name}", f"copying to {target} first"
    if not copy:
        sentence = (
            f"At every node count swept ({ranges(nodes, swept)}), {train} delivers the model sooner than {copying}"
        )
    elif not straight:
        sentence = (
            f"At every node count swept ({ranges(nodes, swept)}), {copying} delivers the model sooner than {train}"
        )
    elif max(copy) < min(straight):
        sentence = (
            f"Beyond {plural(max(copy), 'node')}, {train} delivers the model sooner than {copying}; "
            f"up to {max(copy)}, copying first wins{_margin(pairing, max(copy), min(straight))}"
        )
    elif max(straight) < min(copy):
        sentence = (
            f"Beyond {plural(max(straight), 'node')}, {copying} delivers the model sooner than {train}; "
            f"up to {max(straight)}, training straight from it wins{_margin(pairing, max(straight), min(copy))}"
        )
    else:
        sentence = (
            f"{copying[0].upper()}{copying[1:]} wins at {ranges(copy, swept)} nodes, "
            f"{train} at {ranges(straight, swept)}"
        )
    sentences = [f"{sentence}{where}."]
    unstaged = [n for n in nodes if pairing.copied[n]["time_to_value_s"] is None]
    if unstaged:
        row = pairing.copied[unstaged[0]]
        sentences.append(
            f"At {ranges(unstaged, swept)} nodes the {bytes_text(row['local_reserved_bytes'])} each node would copy "
            f"do not fit in {target}'s {bytes_text(row['staging.local_capacity_bytes'])}: only training from "
            f"{shared_name} can run there{where}."
        )
    return sentences


def _margin(pairing: Pairing, before: int, after: int) -> str:
    """The time to value both ways on each side of a crossover."""
    parts = []
    for n in (before, after):
        copied = pairing.copied[n]["time_to_value_s"]
        copy_text = "cannot stage" if copied is None else duration(copied)
        parts.append(
            f"{plural(n, 'node')}: {duration(pairing.shared[n]['time_to_value_s'])} straight, {copy_text} copying"
        )
    return f" ({'; '.join(parts)})"


def _stranded_sentences(found: list[Pairing]) -> list[str]:
    sentences = []
    for target, rows in _by_target(found).items():
        row = max(rows, key=lambda r: r["nodes"])
        reserved = row["local_reserved_bytes"]
        eligible = row["eligible_node_fraction"]
        can_run = (
            "every GPU node with that much free can take the job"
            if row.get("nodes_with_space") is None and row.get("time_to_value_s") is not None
            else f"{percent(eligible)} of the GPU nodes can take the job"
        )
        sentences.append(
            f"Stranded capacity: copying to {target} reserves {bytes_text(reserved)} of local disk on each node "
            f"({bytes_text(reserved * row['nodes'])} across {plural(row['nodes'], 'node')}); {can_run}. "
            "Training from shared storage reserves none, and every GPU node qualifies."
        )
    return sentences


def _by_target(found: list[Pairing]) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = defaultdict(list)
    for pairing in found:
        for row in pairing.copied.values():
            rows[row.get("staging.target") or row["stage_in"]].append(row)
    return rows


def _time_to_value_figure(found: list[Pairing], ctx: Context, several: bool) -> LinesFigure:
    longest = max(r["time_to_value_s"] or 0.0 for p in found for r in [*p.shared.values(), *p.copied.values()])
    scale, unit = _time_unit(longest)
    series = []
    for pairing in found:
        shared_name, target, details = _names(pairing, ctx.layout)
        where = f" ({details})" if several else ""
        staged = [pairing.copied[n] for n in sorted(pairing.copied) if pairing.copied[n]["time_to_value_s"] is not None]
        lines = (
            (f"train straight from {shared_name}{where}", list(pairing.shared.values()), "time_to_value_s"),
            (f"copy {shared_name} → {target}, then train{where}", staged, "time_to_value_s"),
            (f"the copy {shared_name} → {target} alone{where}", staged, "stage_in_s"),
        )
        for label, rows, key in lines:
            rows = sorted(rows, key=lambda r: r["nodes"])
            if rows:
                xs = tuple(r["nodes"] for r in rows)
                series.append(Series(label, shared_name, xs, tuple(r[key] / scale for r in rows)))
    deadline = ctx.target.deadline_s
    return LinesFigure(
        "time_to_value",
        "Time to value: copy to node-local disk, then train, vs train from shared storage",
        "nodes",
        f"time to the trained model ({unit})",
        tuple(series),
        level=(deadline / scale, f"deadline {duration(deadline)}") if deadline else None,
    )


def _stage_in_table(found: list[Pairing], ctx: Context) -> Table:
    body = []
    for pairing in found:
        shared_name, target, details = _names(pairing, ctx.layout)
        for n in pairing.nodes:
            shared, copied = pairing.shared[n], pairing.copied[n]
            fits = copied["time_to_value_s"] is not None
            body.append(
                (
                    shared_name,
                    target,
                    details,
                    str(n),
                    duration(shared["time_to_value_s"]),
                    duration(copied["stage_in_s"]) if fits else "cannot stage",
                    duration(copied["time_to_train_s"]) if fits else "-",
                    duration(copied["time_to_value_s"]) if fits else "-",
                    "copy first" if pairing.copy_wins(n) else "train straight",
                    bytes_text(copied["local_reserved_bytes"]),
                    str(copied.get("staging.bound")),
                )
            )
    header = (
        "storage",
        "copied to",
        "configuration",
        "nodes",
        "time to value, straight",
        "copy",
        "train after the copy",
        "time to value, copying",
        "sooner",
        "local disk per node",
        "copy limited by",
    )
    return Table(header, tuple(body))


def failed_section(ctx: Context) -> Section | None:
    if not ctx.failed:
        return None
    body = tuple(
        (storage(r), str(r.get("format") or "captured"), str(r["nodes"]), str(r["error"])) for r in ctx.failed[:50]
    )
    return Section(
        "Configurations that failed",
        (f"{plural(len(ctx.failed), 'configuration')} could not be projected; the error column says why.",),
        table=Table(("storage", "format", "nodes", "error"), body),
    )


_BOTTLENECK_ORDER = (
    "compute",
    "network",
    "cpu-preprocessing",
    "storage-cpu",
    "storage-latency",
    "storage-bandwidth",
    "storage-iops",
    "preload",
)

SECTIONS: tuple[Callable[[Context], Section | None], ...] = (
    answers_section,
    stage_in_section,
    time_section,
    utilisation_section,
    demand_section,
    bottleneck_section,
    table_section,
    failed_section,
)


def build_report(table: SweepTable, target: Target) -> Report:
    projected = [row for row in table.ok if row.get("time_to_train_s") is not None]
    unstaged = [row for row in projected if row.get("stage_in") and row.get("time_to_value_s") is None]
    rows = [row for row in projected if not (row.get("stage_in") and row.get("time_to_value_s") is None)]
    failed = [row for row in table.rows if row.get("error") is not None]
    if not rows:
        reason = f"all {plural(len(failed), 'configuration')} failed" if failed else "it holds no configuration"
        raise ReportError(f"nothing to report: {reason} (see the sweep's error column)")
    layout = Layout.of(rows)
    ctx = Context(rows, failed, target, layout, unstaged)
    varying = "; ".join(
        f"{name} " + ", ".join(_value(v) for v in sorted({r.get(name) for r in rows}, key=_order))
        for name in ("nodes", "format", *layout.varying)
    )
    intro = (
        f"Trace {table.meta.get('trace', '?')}: {plural(len(rows), 'configuration')} projected"
        + (f", {len(failed)} failed" if failed else "")
        + f" (trainio {table.meta.get('tool_version', '?')}).",
        f"Storage: {', '.join(layout.storages)}. Swept: {varying}.",
        f"Target: {target.text()}. AU is the accelerators' compute time over the wall time (MLPerf Storage).",
    )
    sections = tuple(section for build in SECTIONS if (section := build(ctx)) is not None)
    return Report("Capacity plan", intro, sections)
