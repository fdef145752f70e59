"""Chrome trace-event JSON export (Perfetto, chrome://tracing): processes as tracks, I/O as slices."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from trainio.tracefile.format import OBJECT_READ_OPS, READ_OPS
from trainio.tracefile.reader import Trace
from trainio.tracefile.redact import Redactor

SLICE_EVENTS = ("batch", "step", "fetch", "sample")


def chrome_events(trace: Trace, data_only: bool = True, shown: Callable[[str], str] | None = None) -> list[dict]:
    """The trace as trace events; ``shown`` writes each path (default: secrets in it redacted)."""
    shown = shown or functools.lru_cache(maxsize=None)(Redactor().text)
    origin = trace.manifest.get("start_monotonic_ns", 0)
    events: list[dict] = []
    for proc in trace.processes:
        label = proc.get("role", "process")
        if proc.get("worker_id") is not None:
            label += f" {proc['worker_id']}"
        if proc.get("rank") is not None:
            label = f"rank {proc['rank']} {label}"
        events.append(
            {"ph": "M", "name": "process_name", "pid": proc["pid"], "args": {"name": f"{label} ({proc['pid']})"}}
        )
    io = trace.io.filter(
        pc.is_in(trace.io["op"], pc.cast(np.array(READ_OPS + OBJECT_READ_OPS + ("open", "stat")), "string"))
    )
    if data_only:
        io = io.filter(pc.equal(io["io_class"], "data"))
    for row in io.to_pylist():
        events.append(
            {
                "ph": "X",
                "cat": "io",
                "name": f"{row['op']} {shown(str(row['path']))}",
                "pid": row["pid"],
                "tid": row["tid"],
                "ts": (row["start_ns"] - origin) / 1e3,
                "dur": row["duration_ns"] / 1e3,
                "args": {"offset": row["offset"], "bytes": row["bytes_returned"]},
            }
        )
    for row in trace.events.to_pylist():
        name = row["event"]
        if name in SLICE_EVENTS:
            label = f"{name} {row['batch'] if row['batch'] is not None else row['sample'] or ''}".strip()
            events.append(
                {
                    "ph": "X",
                    "cat": "dataloader",
                    "name": label,
                    "pid": row["pid"],
                    "tid": row["tid"],
                    "ts": (row["start_ns"] - origin) / 1e3,
                    "dur": (row["end_ns"] - row["start_ns"]) / 1e3,
                    "args": {"epoch": row["epoch"], "worker_id": row["worker_id"], "io_ms": (row["io_ns"] or 0) / 1e6},
                }
            )
        else:
            events.append(
                {
                    "ph": "i",
                    "s": "p",
                    "cat": "dataloader",
                    "name": f"{name} {row['epoch']}",
                    "pid": row["pid"],
                    "tid": row["tid"],
                    "ts": (row["start_ns"] - origin) / 1e3,
                }
            )
    return events


def write_chrome_trace(
    trace: Trace, path: Path, data_only: bool = True, shown: Callable[[str], str] | None = None
) -> int:
    events = chrome_events(trace, data_only, shown)
    path.write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}), encoding="utf-8")
    return len(events)
