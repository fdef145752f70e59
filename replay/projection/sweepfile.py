"""The sweep file: one Parquet row per configuration, saying in its metadata what it is.

Columns: ``key`` (the configuration's identity, see ``grid.key``), ``tool_version`` (the trainio
that computed the row), the ``Scenario`` fields, every ``what-if --json`` key (nested ones flattened
with dots: ``backend_capacity.aggregate_MBps``), ``wall_s`` (the projection's own wall time),
``error`` (null when the projection succeeded) and ``time_to_value_winner`` (``timetovalue.WINNER``).
Where a what-if key shares a parameter's name (nodes, gpus_per_node, backend, format) the column
holds the resolved value, e.g. the captured format instead of null. The schema metadata carries the
format name and version, the tool version and the trace's path and digest; a reader refuses another
format or a newer major version, naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import trainio

FORMAT_NAME = "trainio-sweep"
FORMAT_VERSION = "1.1"


class SweepFileError(Exception):
    """A sweep file that cannot be used; carries the path."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot read sweep {self.path}: {reason}")


class SweepVersionError(SweepFileError):
    """Written by an incompatible (newer major) version of the sweep format."""


@dataclass(frozen=True)
class SweepTable:
    rows: list[dict]
    meta: dict[str, str] = field(default_factory=dict)
    """``trace``, ``trace_digest``, ``tool_version``, ``format``, ``format_version``, ``warnings``."""

    @property
    def ok(self) -> list[dict]:
        return [row for row in self.rows if row.get("error") is None]


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested dicts become dotted keys; everything else stays."""
    flat: dict = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _table(rows: list[dict], meta: dict[str, str]) -> pa.Table:
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {name: pa.array([row.get(name) for row in rows]) for name in names}
    schema_meta = {
        "trainio.format": FORMAT_NAME,
        "trainio.format_version": FORMAT_VERSION,
        "trainio.tool_version": trainio.__version__,
        **{f"trainio.{k}": v for k, v in meta.items() if k not in ("format", "format_version", "tool_version")},
    }
    return pa.table(columns).replace_schema_metadata(schema_meta)


def write_sweep(path: str | Path, table: SweepTable) -> None:
    """Write atomically: the file is either the previous one or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(_table(table.rows, table.meta), scratch)
    os.replace(scratch, path)


def write_csv(path: str | Path, table: SweepTable) -> None:
    """The same rows as CSV; list columns (per-epoch times, notes) as JSON text."""
    rows = [{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in table.rows]
    path = Path(path)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pacsv.write_csv(_table(rows, table.meta), scratch)
    os.replace(scratch, path)


def read_sweep(path: str | Path) -> SweepTable:
    path = Path(path)
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise SweepFileError(path, "no such file (write one with `replay sweep --out`)") from None
    except IsADirectoryError:
        raise SweepFileError(path, "is a directory, not a sweep file") from None
    except (OSError, pa.ArrowException) as exc:
        raise SweepFileError(path, f"not a Parquet file ({exc})") from None
    raw = parquet.schema_arrow.metadata or {}
    meta = {k.decode().removeprefix("trainio."): v.decode() for k, v in raw.items() if k.startswith(b"trainio.")}
    if meta.get("format") != FORMAT_NAME:
        what = f"a {meta['format']} file" if "format" in meta else "a Parquet file without trainio-sweep metadata"
        raise SweepFileError(path, f"not a sweep file ({what})")
    version = meta.get("format_version", "")
    if version.split(".", 1)[0] != FORMAT_VERSION.split(".", 1)[0]:
        raise SweepVersionError(
            path,
            f"sweep format version {version}, this trainio reads {FORMAT_VERSION.split('.')[0]}.x: rerun the sweep",
        )
    try:
        rows = parquet.read().to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise SweepFileError(path, f"truncated or corrupt ({exc})") from None
    return SweepTable(rows, meta)
