"""Small synthetic traces written with the real format, for reader and summary tests."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from trainio.tracefile.format import EVENTS_SCHEMA, FORMAT_NAME, FORMAT_VERSION, IO_SCHEMA, file_metadata


def io_row(pid: int, path: str, nbytes: int, start_ns: int, op: str = "read", io_class: str = "data") -> dict:
    return {
        "pid": pid,
        "tid": pid,
        "op": op,
        "fd": 3,
        "path": path,
        "kind": "file",
        "offset": None,
        "bytes_requested": nbytes,
        "bytes_returned": nbytes,
        "result": nbytes,
        "start_ns": start_ns,
        "duration_ns": 1000,
        "io_class": io_class,
        "role": "main",
    }


def event_row(pid: int, event: str, start_ns: int, end_ns: int, batch: int | None = None, epoch: int = 0) -> dict:
    return {
        "pid": pid,
        "tid": pid,
        "event": event,
        "loader_id": 0,
        "epoch": epoch,
        "batch": batch,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "io_ns": 0,
        "role": "main",
    }


def write_part(folder: Path, name: str, rows: list[dict], schema: pa.Schema, kind: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema.with_metadata(file_metadata(kind, "test")))
    pq.write_table(table, folder / f"{name}.parquet")


def make_trace(
    root: Path,
    reads: list[tuple[int, int]],
    events: list[dict] | None = None,
    io_rows: list[dict] | None = None,
    duration_s: float = 10.0,
) -> Path:
    """A finalized trace: one io part per pid in ``reads`` ((pid, bytes) -> one data read each)."""
    root.mkdir(parents=True)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "status": "complete",
        "exit_code": 0,
        "start_monotonic_ns": 0,
        "end_monotonic_ns": int(duration_s * 1e9),
        "duration_s": duration_s,
        "processes": [{"pid": pid, "ppid": 0, "role": "main", "rchar": nbytes, "end_ns": 1} for pid, nbytes in reads],
        "lost": [],
        "interposer": {"loaded_in_all": True},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    rows = io_rows if io_rows is not None else [io_row(pid, f"/data/set/f{pid}.bin", n, pid) for pid, n in reads]
    pids = sorted({r["pid"] for r in rows}) or [0]
    for pid in pids:
        write_part(root / "io", f"{pid}-0", [r for r in rows if r["pid"] == pid], IO_SCHEMA, "io")
    if events:
        write_part(root / "events", "1-0", events, EVENTS_SCHEMA, "events")
    return root
