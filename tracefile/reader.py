"""The one reader of trace directories (manifest, per-process Parquet files, spool streams)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from trainio.tracefile.busyhost import busy_host_warning
from trainio.tracefile.errors import TraceFormatError, TraceVersionError
from trainio.tracefile.format import (
    EVENTS_DIR,
    EVENTS_SCHEMA,
    FORMAT_NAME,
    FORMAT_VERSION,
    IO_DIR,
    IO_SCHEMA,
    MANIFEST,
    SPOOL_DIR,
    major,
)

REQUIRED_COLUMNS = ("pid", "tid", "start_ns")
COVERAGE_FLOOR = 0.98
"""Below this share of the kernel's count of bytes read, a trace warns that it misses reads."""


@dataclass
class Trace:
    """A finalized trace: the manifest and two tables (I/O operations, DataLoader events)."""

    path: Path
    manifest: dict
    io: pa.Table
    events: pa.Table
    warnings: list[str] = field(default_factory=list)

    @property
    def processes(self) -> list[dict]:
        return self.manifest.get("processes", [])


def trace_warnings(manifest: dict) -> list[str]:
    """What the manifest says a user of the trace must know: low coverage, a busy host."""
    return [w for w in (coverage_warning(manifest), busy_host_warning(manifest)) if w]


def coverage_warning(manifest: dict) -> str | None:
    """One line when the trace holds less than COVERAGE_FLOOR of what the kernel counted for the run.

    Only for traces whose coverage counts the whole process tree (format 1.2): before that the
    figure could not see a lost process, and saying nothing is more honest than a false alarm.
    """
    cov = manifest.get("coverage")
    if not isinstance(cov, dict) or cov.get("basis") != "process tree" or not isinstance(cov.get("ratio"), float | int):
        return None
    objects = cov.get("object_ratio")
    if isinstance(objects, float | int) and objects < COVERAGE_FLOOR:
        return (
            f"LOW COVERAGE: the trace holds {objects:.1%} of the object reads: the run loaded object-store clients"
            f" that trainio does not record ({', '.join(cov.get('unhooked_clients') or [])}), whose processes"
            f" received {int(cov.get('unhooked_network_bytes', 0)):,} bytes over the network; projections from this"
            " trace undercount its I/O"
        )
    storage = cov.get("read_bytes_ratio")
    if isinstance(storage, float | int) and storage < COVERAGE_FLOOR and cov["ratio"] >= COVERAGE_FLOOR:
        unseen = max(int(cov.get("fetch_read_bytes", 0)) - int(cov.get("fetch_read_bytes_explained", 0)), 0)
        return (
            f"LOW COVERAGE: the trace explains {storage:.1%} of the bytes the kernel read from storage for the"
            f" DataLoader's fetches ({unseen:,} bytes read from storage where the trace saw neither a read nor a"
            f" mapped data file, below {COVERAGE_FLOOR:.0%}): reads went where the tracer cannot see (memory-mapped"
            " files without the interposer, io_uring, raw system calls); projections from this trace undercount its I/O"
        )
    if cov["ratio"] >= COVERAGE_FLOOR:
        return None
    missing = max(int(cov.get("rchar_bytes", 0)) - int(cov.get("traced_bytes", 0)), 0)
    return (
        f"LOW COVERAGE: the trace holds {cov['ratio']:.1%} of the bytes the kernel counted for the run"
        f" ({missing:,} bytes read but not traced, below {COVERAGE_FLOOR:.0%}): records of a process are"
        " missing, or reads went where the tracer cannot see; projections from this trace undercount its I/O"
    )


def read_manifest(trace_dir: str | Path) -> dict:
    """Read and check ``manifest.json``; raise TraceFormatError / TraceVersionError naming the file."""
    path = Path(trace_dir) / MANIFEST
    try:
        is_dir, has_manifest = Path(trace_dir).is_dir(), path.exists()
    except OSError as exc:  # a name too long, a folder on the way not searchable
        raise TraceFormatError(trace_dir, exc.strerror or str(exc)) from exc
    if not is_dir:
        raise TraceFormatError(trace_dir, "not a directory (a trace is a directory made by `tracer capture`)")
    if not has_manifest:
        raise TraceFormatError(path, "no manifest.json: this is not a trainio trace directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TraceFormatError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise TraceFormatError(path, f"does not look like a manifest written by trainio (format != {FORMAT_NAME!r})")
    check_version(path, manifest.get("format_version"))
    return manifest


def check_version(path: str | Path, version: object) -> None:
    try:
        found = major(str(version))
    except ValueError as exc:
        raise TraceFormatError(path, f"unreadable format version {version!r}") from exc
    if found > major(FORMAT_VERSION):
        raise TraceVersionError(
            path,
            f"written by format version {version}, newer than this trainio reads ({FORMAT_VERSION}); upgrade trainio",
        )


def read_parquet_part(path: Path, schema: pa.Schema) -> pa.Table:
    """One per-process Parquet file, checked for our metadata and version."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise TraceFormatError(path, str(exc).splitlines()[0]) from exc
    meta = table.schema.metadata or {}
    if meta.get(b"trainio.format") != FORMAT_NAME.encode():
        raise TraceFormatError(path, "Parquet file without trainio metadata (not written by trainio)")
    check_version(path, meta.get(b"trainio.format_version", b"").decode())
    missing = [name for name in REQUIRED_COLUMNS if name not in table.schema.names]
    if missing:
        raise TraceFormatError(path, f"missing columns {missing}")
    # A column added by a later minor version is null in files written before it.
    for column in schema:
        if column.name not in table.schema.names:
            table = table.append_column(column, pa.nulls(table.num_rows, column.type))
    return table.select(schema.names).cast(schema)


def _read_parts(folder: Path, schema: pa.Schema, warnings: list[str]) -> pa.Table:
    tables, errors = [], []
    for part in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        try:
            tables.append(read_parquet_part(part, schema))
        except TraceFormatError as exc:
            errors.append(exc)
    if errors and not tables:
        raise errors[0]
    warnings.extend(f"skipped {exc}" for exc in errors)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def open_trace(trace_dir: str | Path) -> Trace:
    """Load a finalized trace. Unreadable per-process files are skipped with a warning; a capture
    made while other processes loaded the host adds one too."""
    root = Path(trace_dir)
    manifest = read_manifest(root)
    unfinished = manifest.get("status") == "running" and (root / SPOOL_DIR).is_dir()
    if unfinished or not (root / IO_DIR).is_dir():
        if (root / SPOOL_DIR).is_dir():
            raise TraceFormatError(root, f"not finalized (was the run killed?): run `tracer finalize {root}` first")
        raise TraceFormatError(root, "no io/ folder: the trace holds no I/O data")
    warnings: list[str] = []
    io = _read_parts(root / IO_DIR, IO_SCHEMA, warnings)
    events = _read_parts(root / EVENTS_DIR, EVENTS_SCHEMA, warnings)
    warnings.extend(trace_warnings(manifest))
    return Trace(root, manifest, io, events, warnings)
