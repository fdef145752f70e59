"""The capacity-planning report of a sweep: its answers in sentences, tables and figure data.

``build_report(table, target)`` reads only the sweep table (``sweeprows`` says how). Configurations
are grouped by storage (a backend, or a profile file) and drawn as series: one per combination of
the swept parameters other than the node count. The answers: the fewest nodes that meet the target
on each storage (or the closest miss), the most GPUs each keeps at least 90% busy, what packing
files into shards gains, the storage bandwidth and request rate the target needs, where the
network or the host CPU rather than storage limits, and whether copying the data to node-local
disks first delivers the model sooner than training from shared storage (``timetovalue``). Section
builders are listed in ``SECTIONS``; each returns a ``Section`` or None when the sweep holds
nothing for it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

from trainio.replay.projection.document import Report, Section, Table
from trainio.replay.projection.figures import (
    CellsFigure,
    DemandFigure,
    DemandPanel,
    LinesFigure,
    Series,
)
from trainio.replay.projection.sweepfile import SweepTable
from trainio.replay.projection.sweeprows import (
    PARAMETERS,
    Context,
    Layout,
    ReportError,
    Target,
    storage,
    value_order,
    value_s,
    value_text,
)
from trainio.replay.projection.timetovalue import stage_in_section
from trainio.replay.projection.wording import duration, joined, percent, plural, ranges, rate, time_unit

BUSY = 0.9
"""Accelerator utilisation counted as busy (MLPerf Storage's AU threshold)."""
MAX_TABLE_ROWS = 400
NOTICEABLE = 0.01
"""Changes in time to train smaller than this are reported as none."""
STORAGE_LIMITS = ("storage-bandwidth", "storage-iops")
OTHER_LIMITS = {
    "network": "the network (all-reduce)",
    "cpu-preprocessing": "the host CPU (decoding and transforms)",
    "storage-cpu": "the host CPU (storage requests' CPU)",
    "host-cpu": "the host CPU (the training processes' own work)",
}


def _choice(row: dict, layout: Layout) -> str:
    gpus = row["nodes"] * row["gpus_per_node"]
    return f"{plural(row['nodes'], 'node')} ({plural(gpus, 'GPU')}) with {layout.details(row)}"


def _outcome(row: dict) -> str:
    train = f"{duration(row['time_to_train_s'])} to train"
    if row.get("stage_in"):
        train = f"{duration(value_s(row))} to the model: a {duration(row['stage_in_s'])} copy, then {train}"
    return f"{train}, {percent(row['accelerator_utilization'])} AU"


# --- sections ---------------------------------------------------------------------------------


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


def time_section(ctx: Context) -> Section:
    series, note = ctx.layout.drawn(ctx.rows)
    scale, unit = time_unit(max(row["time_to_train_s"] for row in ctx.rows))
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
    "host-cpu",
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
        f"{name} " + ", ".join(value_text(v) for v in sorted({r.get(name) for r in rows}, key=value_order))
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
