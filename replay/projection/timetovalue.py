"""Time to value over a sweep: copying the data to node-local disks and then training, against
training straight from shared storage, and the report's section that compares them.

A row's *choice* is where its training reads: ``none`` (the backend itself) or the stage-in target
it copied to first. Rows that differ in nothing else but the copy's own parameters are one
configuration; its winner is the choice that delivers the trained model first (the least
``time_to_value_s``); a copy that does not fit on the local disk never wins. The section says, per
storage, from which node count on each way wins (the crossover) and the local disk a copy strands.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from trainio.models.units import bytes_text
from trainio.replay.projection.document import Section, Table
from trainio.replay.projection.figures import LinesFigure, Series
from trainio.replay.projection.grid import STAGE_IN_ONLY
from trainio.replay.projection.scenario import Scenario
from trainio.replay.projection.sweeprows import MAX_SERIES, Context, Layout, source
from trainio.replay.projection.wording import duration, percent, plural, ranges, time_unit

SHARED = "none"
"""The choice of training straight from the backend."""
WINNER = "time_to_value_winner"
"""The sweep file's column: the winning choice at the row's configuration (None: nothing to compare)."""
COPY_PARAMETERS = ("stage_in", *STAGE_IN_ONLY)
_CONFIGURATION = tuple(name for name in Scenario.__dataclass_fields__ if name not in COPY_PARAMETERS)


def choice(row: dict) -> str:
    return row.get("stage_in") or SHARED


def _identity(row: dict, names: tuple[str, ...]) -> str:
    return json.dumps([row.get(name) for name in names])


def with_winners(rows: list[dict]) -> list[dict]:
    """The rows, each with its configuration's winner (``WINNER``) where it has several choices."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("error") is None:
            groups[_identity(row, _CONFIGURATION)].append(row)
    winners: dict[str, str | None] = {}
    for name, group in groups.items():
        delivered = [row for row in group if row.get("time_to_value_s") is not None]
        several = len({choice(row) for row in group}) > 1
        best = min(delivered, key=lambda row: row["time_to_value_s"]) if delivered and several else None
        winners[name] = None if best is None else choice(best)
    return [{**row, WINNER: winners.get(_identity(row, _CONFIGURATION))} for row in rows]


@dataclass(frozen=True)
class Pairing:
    """One configuration over node counts: training from its storage against one way of copying
    first (a target and the copy's parameters). Rows by node count."""

    shared: dict[int, dict]
    copied: dict[int, dict]

    @property
    def nodes(self) -> list[int]:
        """Node counts with both choices projected."""
        return sorted(set(self.shared) & set(self.copied))

    def copy_wins(self, nodes: int) -> bool:
        copied, shared = self.copied[nodes]["time_to_value_s"], self.shared[nodes]["time_to_value_s"]
        return copied is not None and copied < shared


def pairings(rows: list[dict]) -> list[Pairing]:
    """Every configuration swept both ways, once per way of copying, in the rows' order."""
    lines = tuple(name for name in _CONFIGURATION if name != "nodes")
    shared: dict[str, dict[int, dict]] = defaultdict(dict)
    copied: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for row in rows:
        line = _identity(row, lines)
        if choice(row) == SHARED:
            shared[line][row["nodes"]] = row
        else:
            copied[(line, _identity(row, COPY_PARAMETERS))][row["nodes"]] = row
    found = [Pairing(shared[line], by_nodes) for (line, _), by_nodes in copied.items() if line in shared]
    return [pairing for pairing in found if pairing.nodes]


# --- the report's section ------------------------------------------------------------------


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
    sentences = [_copied_what(found)]
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


def _copied_what(found: list[Pairing]) -> str:
    copies = [row for pairing in found for row in pairing.copied.values()]
    if not all(row.get("staging.whole_dataset") for row in copies):
        return "Each node copies only its own shard of the data set: the sampler never crosses shards."
    sizes = {row["local_reserved_bytes"] for row in copies}
    size = f" ({bytes_text(sizes.pop())})" if len(sizes) == 1 else ""
    return (
        f"Every node copies the whole data set{size} before training: DistributedSampler reshuffles it across "
        "all ranks every epoch, so each node reads all of it."
    )


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
    """By how much each way wins on either side of a crossover."""
    parts = []
    for n in (before, after):
        straight, copied = pairing.shared[n]["time_to_value_s"], pairing.copied[n]["time_to_value_s"]
        if copied is None:
            parts.append(f"at {plural(n, 'node')} the copy does not fit")
            continue
        way = "copying" if copied < straight else "training straight"
        parts.append(
            f"at {plural(n, 'node')} {way} is {duration(abs(straight - copied))} sooner, "
            f"{duration(straight)} straight against {duration(copied)} copying"
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
            f"Stranded capacity: at {plural(row['nodes'], 'node')}, copying to {target} reserves "
            f"{bytes_text(reserved)} of local disk on each node ({bytes_text(reserved * row['nodes'])} across the "
            f"job); {can_run}. "
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
    scale, unit = time_unit(longest)
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
