"""A sweep: every configuration of a grid projected from one trace, kept in a sweep file.

``run_sweep`` reads the trace once, skips the configurations the file already holds (same key),
runs the others on an engine and writes the file as results arrive (the first one at once, then at
most ``CHECKPOINT_S`` apart, and once more at the end, also after a Ctrl-C or an engine failure),
so an interrupted sweep keeps what finished and the same command picks up the rest. Rows of other
configurations of the same trace stay in the file: extending a grid adds to it. A configuration
that failed before is run again. Rows another trainio version computed are dropped: another model
made them, and one report must not mix two. A file holding another trace's sweep is refused
rather than overwritten.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trainio
from trainio.replay.projection.engines import Engine
from trainio.replay.projection.grid import Grid, key, storage_digests, trace_digest
from trainio.replay.projection.scenario import load_trace
from trainio.replay.projection.sweepfile import SweepTable, read_sweep, write_csv, write_sweep
from trainio.replay.projection.timetovalue import with_winners

CHECKPOINT_S = 5.0
RESOLVED = ("nodes", "gpus_per_node", "backend", "format")
"""Parameters that the what-if result resolves (``None`` = captured becomes the captured value)."""


class SweepError(ValueError):
    """A sweep that cannot start: its output belongs to another trace."""


@dataclass(frozen=True)
class SweepSummary:
    path: Path
    configurations: int
    reused: int
    ran: int
    failed: int
    """Configurations of this grid whose row has an error."""
    complete: bool
    """False when interrupted before every configuration ran."""
    stale: int = 0
    """Rows of another trainio version dropped from the file."""


def row(config: dict, config_key: str, fields: dict) -> dict:
    """The sweep file's row: key, parameters, then the projection's fields (resolved ones win), and
    the trainio version that computed it."""
    values = {"key": config_key, "tool_version": trainio.__version__, **config}
    for name, value in fields.items():
        if name not in RESOLVED or value is not None:
            values[name] = value
    return values


def run_sweep(
    trace_dir: str | Path,
    grid: Grid,
    out: str | Path,
    engine: Engine,
    *,
    csv: bool = False,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SweepSummary:
    """Run ``grid`` on ``engine`` into ``out``; ``progress(done, to_run)`` after each configuration."""
    out = Path(out)
    configs = grid.configurations()
    loaded = load_trace(trace_dir)
    digest = trace_digest(trace_dir)
    profiles = storage_digests(configs)
    keys = [key(config, digest, profiles) for config in configs]
    meta = {"trace": str(trace_dir), "trace_digest": digest, "warnings": "\n".join(loaded.warnings)}
    rows: dict[str, dict] = {}
    stale = 0
    if out.exists():
        previous = read_sweep(out)
        if previous.meta.get("trace_digest") != digest:
            raise SweepError(
                f"--out {out} holds a sweep of another trace ({previous.meta.get('trace', '?')}); choose another --out"
            )
        rows = {r["key"]: r for r in previous.rows if r.get("tool_version") == trainio.__version__}
        stale = len(previous.rows) - len(rows)
    todo = [i for i, k in enumerate(keys) if k not in rows or rows[k].get("error") is not None]
    reused = len(configs) - len(todo)
    done = 0
    written = clock() - CHECKPOINT_S  # the first result is saved at once

    def save() -> None:
        table = SweepTable(with_winners(list(rows.values())), meta)
        write_sweep(out, table)
        if csv:
            write_csv(out.with_suffix(".csv"), table)

    if progress:
        progress(0, len(todo))
    try:
        for position, fields in engine.run(loaded, [configs[i] for i in todo]):
            index = todo[position]
            rows[keys[index]] = row(configs[index], keys[index], fields)
            done += 1
            if progress:
                progress(done, len(todo))
            if clock() - written >= CHECKPOINT_S:
                save()
                written = clock() - CHECKPOINT_S  # the first result is saved at once
    except KeyboardInterrupt:
        pass  # Ctrl-C: keep what finished; the summary says the sweep is incomplete
    finally:
        save()
    failed = sum(k in rows and rows[k].get("error") is not None for k in keys)
    return SweepSummary(out, len(configs), reused, done, failed, complete=done == len(todo), stale=stale)
