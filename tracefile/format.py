"""Trace format v1: Arrow schemas and the metadata every file carries (names and version: ``layout``).

A trace is a directory::

    manifest.json            run-level facts (format, version, command, host, processes, coverage)
    spool/io-PID-T.spool     per-process memory-mapped spools written during the run (removed by
    spool/py-PID-T.spool     finalize): the C interposer's records; Python events and process facts
    io/PID-T.parquet         one Parquet file per process after finalize: every I/O operation
    events/PID-T.parquet     DataLoader events (batches, steps, fetches, samples, epochs)

``docs/trace-format.md`` documents every column. A reader accepts any minor version of its major
version and refuses a newer major version.
"""

from __future__ import annotations

import pyarrow as pa

from trainio.tracefile.layout import (  # noqa: F401 - the format's names, re-exported
    EVENTS_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    IO_DIR,
    MANIFEST,
    OBJECT_READ_OPS,
    READ_OPS,
    SPOOL_DIR,
    major,
)

# Columns written while the run goes (spool) -- the Parquet files add rank, worker_id, role, io_class.
IO_SPOOL_SCHEMA = pa.schema(
    [
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("op", pa.string()),
        ("fd", pa.int32()),
        ("file_id", pa.int64()),
        ("path", pa.string()),
        ("kind", pa.string()),
        ("offset", pa.int64()),
        ("bytes_requested", pa.int64()),
        ("bytes_returned", pa.int64()),
        ("result", pa.int64()),
        ("start_ns", pa.int64()),
        ("duration_ns", pa.int64()),
        ("bucket", pa.string()),
        ("key", pa.string()),
    ]
)

EVENTS_SPOOL_SCHEMA = pa.schema(
    [
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("event", pa.string()),
        ("loader_id", pa.int32()),
        ("epoch", pa.int32()),
        ("batch", pa.int64()),
        ("worker_id", pa.int32()),
        ("sample", pa.int64()),
        ("indices", pa.list_(pa.int64())),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("info", pa.string()),
        ("cpu_ns", pa.int64()),
        ("majflt", pa.int64()),
        ("minflt", pa.int64()),
        ("read_bytes", pa.int64()),
    ]
)

PROCESS_COLUMNS = [("rank", pa.int32()), ("worker_id", pa.int32()), ("role", pa.string())]
IO_SCHEMA = IO_SPOOL_SCHEMA.append(pa.field("io_class", pa.string()))
for _name, _type in PROCESS_COLUMNS:
    IO_SCHEMA = IO_SCHEMA.append(pa.field(_name, _type))
EVENTS_SCHEMA = EVENTS_SPOOL_SCHEMA.append(pa.field("io_ns", pa.int64()))
for _name, _type in PROCESS_COLUMNS:
    if _name != "worker_id":
        EVENTS_SCHEMA = EVENTS_SCHEMA.append(pa.field(_name, _type))


def file_metadata(kind: str, tool_version: str, **extra: str) -> dict[bytes, bytes]:
    """Schema metadata that makes every file say what it is."""
    meta = {
        "trainio.format": FORMAT_NAME,
        "trainio.format_version": FORMAT_VERSION,
        "trainio.table": kind,
        "trainio.tool_version": tool_version,
        **extra,
    }
    return {k.encode(): str(v).encode() for k, v in meta.items()}
