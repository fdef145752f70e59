"""Time to value over a sweep: copying the data to node-local disks and then training, against
training straight from shared storage.

A row's *choice* is where its training reads: ``none`` (the backend itself) or the stage-in target
it copied to first. Rows that differ in nothing else but the copy's own parameters are one
configuration; its winner is the choice that delivers the trained model first (the least
``time_to_value_s``); a copy that does not fit on the local disk never wins.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from trainio.replay.projection.grid import STAGE_IN_ONLY
from trainio.replay.projection.scenario import Scenario

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
