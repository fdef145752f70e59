"""Compact a trace's spool (Arrow IPC streams) into per-process Parquet files and finish the manifest.

Run by ``tracer capture`` when the training ends, and by ``tracer finalize DIR`` for a trace whose
run was killed. Streams cut short by a kill keep every complete batch; what was lost is recorded.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainio import __version__
from trainio.tracefile.classify import classify_path
from trainio.tracefile.errors import TraceFormatError
from trainio.tracefile.format import (
    EVENTS_DIR,
    EVENTS_SCHEMA,
    EVENTS_SPOOL_SCHEMA,
    IO_DIR,
    IO_SCHEMA,
    IO_SPOOL_SCHEMA,
    OBJECT_READ_OPS,
    READ_OPS,
    SPOOL_DIR,
    file_metadata,
)
from trainio.tracefile.reader import open_trace, read_manifest, read_spool_stream
from trainio.tracefile.summary import coverage, summarize
from trainio.tracer.manifest import write_manifest


def _process_infos(spool: Path, lost: list[str]) -> dict[str, dict]:
    infos = {}
    for path in sorted(spool.glob("proc-*.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            infos[info["tag"]] = info
        except (OSError, ValueError, KeyError) as exc:
            lost.append(f"{path}: unreadable process record ({exc})")
    return infos


def _classes(io: pa.Table, trace_dir: str, prefixes: list[str]) -> pa.Array:
    """io_class per row: each distinct (kind, path) is classified once (paths repeat a lot)."""
    keys = pc.binary_join_element_wise(io["kind"], io["path"].fill_null("\x01"), "\x00").combine_chunks()
    encoded = keys.dictionary_encode()
    classes = []
    for key in encoded.dictionary.to_pylist():
        kind, _, path = key.partition("\x00")
        classes.append(classify_path(None if path == "\x01" else path, kind, trace_dir, prefixes))
    return pa.array(classes, pa.string()).take(encoded.indices)


def _file_paths(io: pa.Table) -> dict[int, str]:
    """file id -> path, from the records that named a path (open, fopen, fdpath)."""
    named = io.filter(pc.and_(pc.greater(io["file_id"], 0), pc.is_valid(io["path"])))
    return dict(zip(named["file_id"].to_pylist(), named["path"].to_pylist(), strict=True))


def _resolve_paths(io: pa.Table, maps: list[dict[int, str]]) -> pa.Table:
    """Fill the path of fd operations from their file id: this process's map first, then its
    ancestors' (a forked child reads fds it inherited, whose opens are in the parent's trace)."""
    missing = pc.and_(pc.greater(io["file_id"], 0), pc.is_null(io["path"])).to_numpy(zero_copy_only=False)
    if not missing.any():
        return io
    merged: dict[int, str] = {}
    for mapping in reversed(maps):  # nearer maps overwrite farther ones
        merged.update(mapping)
    ids = io["file_id"].to_numpy()
    wanted, inverse = np.unique(ids[missing], return_inverse=True)
    found = np.array([merged.get(int(i)) for i in wanted], dtype=object)
    paths = io["path"].to_numpy(zero_copy_only=False).copy()
    paths[missing] = found[inverse]
    return io.set_column(io.schema.get_field_index("path"), "path", pa.array(paths, pa.string()))


def _sample_io_ns(events: pa.Table, io: pa.Table) -> pa.Array:
    """Per sample/fetch event: time its thread spent inside read calls (the rest is CPU work)."""
    result = np.zeros(events.num_rows, dtype=np.int64)
    reads = io.filter(pc.is_in(io["op"], pa.array(READ_OPS + OBJECT_READ_OPS + ("open", "fopen", "stat", "fstat"))))
    if reads.num_rows == 0 or events.num_rows == 0:
        return pa.array(result)
    r_tid, r_start, r_dur = (reads[c].to_numpy() for c in ("tid", "start_ns", "duration_ns"))
    e_tid, e_start, e_end = (events[c].to_numpy() for c in ("tid", "start_ns", "end_ns"))
    kinds = events["event"].to_numpy(zero_copy_only=False)
    wanted = np.isin(kinds, ["sample", "fetch"])
    for tid in np.unique(e_tid[wanted]):
        sel = r_tid == tid
        order = np.argsort(r_start[sel])
        starts = r_start[sel][order]
        cum = np.concatenate([[0], np.cumsum(r_dur[sel][order])])
        rows = np.flatnonzero(wanted & (e_tid == tid))
        lo = np.searchsorted(starts, e_start[rows], "left")
        hi = np.searchsorted(starts, e_end[rows], "right")
        result[rows] = cum[hi] - cum[lo]
    return pa.array(result)


def _process_columns(n: int, info: dict) -> list[pa.Array]:
    return [
        pa.array([info.get("rank")] * n, pa.int32()),
        pa.array([info.get("worker_id")] * n, pa.int32()),
        pa.array([info.get("role")] * n, pa.string()),
    ]


def _write_parquet(table: pa.Table, path: Path, kind: str, info: dict) -> None:
    meta = file_metadata(kind, __version__, **{"trainio.pid": str(info.get("pid"))})
    tmp = path.with_suffix(".tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd")
    tmp.replace(path)


def finalize(
    trace_dir: str | Path,
    *,
    exit_code: int | None = None,
    end_monotonic_ns: int | None = None,
    end_time: float | None = None,
) -> dict:
    """Compact ``spool/`` into ``io/`` and ``events/`` Parquet files; return the finished manifest."""
    root = Path(trace_dir).resolve()
    manifest = read_manifest(root)
    spool = root / SPOOL_DIR
    if not spool.is_dir():
        raise TraceFormatError(root, "no spool/ folder: nothing to finalize (already finalized?)")
    lost: list[str] = list(manifest.get("lost", []))
    infos = _process_infos(spool, lost)
    prefixes = sorted({p for info in infos.values() for p in info.get("python_prefixes", [])})
    (root / IO_DIR).mkdir(exist_ok=True)
    (root / EVENTS_DIR).mkdir(exist_ok=True)
    maps: dict[str, dict[int, str]] = {}
    for tag, info in sorted(infos.items(), key=lambda item: item[1]["start_ns"]):
        io = _read_stream(spool / f"io-{tag}.arrows", IO_SPOOL_SCHEMA, lost)
        maps[tag] = _file_paths(io)
        io = _resolve_paths(io, [maps[tag], *_ancestor_maps(info, infos, maps)])
        events = _read_stream(spool / f"events-{tag}.arrows", EVENTS_SPOOL_SCHEMA, lost)
        if info.get("end_ns") is None:
            lost.append(
                f"process {info['pid']} ({info.get('role')}) did not exit normally: "
                "its last seconds of records and its /proc counters are missing"
            )
        dropped = info.get("interposer", {}).get("dropped_records", 0)
        if dropped:
            lost.append(f"process {info['pid']}: {dropped} I/O records dropped (buffer full)")
        lost.extend(f"process {info['pid']}: {err}" for err in info.get("errors", []))
        io = io.append_column("io_class", _classes(io, str(root), prefixes))
        for field, array in zip(IO_SCHEMA.names[-3:], _process_columns(io.num_rows, info), strict=True):
            io = io.append_column(field, array)
        _write_parquet(io.cast(IO_SCHEMA), root / IO_DIR / f"{tag}.parquet", "io", info)
        if events.num_rows:
            events = events.append_column("io_ns", _sample_io_ns(events, io))
            cols = _process_columns(events.num_rows, info)
            events = events.append_column("rank", cols[0]).append_column("role", cols[2])
            _write_parquet(events.cast(EVENTS_SCHEMA), root / EVENTS_DIR / f"{tag}.parquet", "events", info)
    manifest.update(
        status="complete" if exit_code is not None else "finalized-after-kill",
        exit_code=exit_code if exit_code is not None else manifest.get("exit_code"),
        processes=sorted(infos.values(), key=lambda p: p["start_ns"]),
        lost=lost,
        finalized_time=time.time(),
    )
    if end_monotonic_ns is None:
        ends = [p["end_ns"] or p["start_ns"] for p in infos.values()]
        end_monotonic_ns = max(ends) if ends else manifest["start_monotonic_ns"]
    manifest["end_monotonic_ns"] = end_monotonic_ns
    manifest["end_time"] = (
        end_time or manifest["start_time"] + (end_monotonic_ns - manifest["start_monotonic_ns"]) / 1e9
    )
    manifest["duration_s"] = round((end_monotonic_ns - manifest["start_monotonic_ns"]) / 1e9, 6)
    manifest["interposer"] = {
        "loaded_in_all": bool(infos) and all(p["interposer"]["loaded"] for p in infos.values()),
        "preloaded_in_all": bool(infos) and all(p["interposer"]["preloaded"] for p in infos.values()),
    }
    manifest["torch"] = next((p["torch"] for p in infos.values() if p.get("torch")), None)
    manifest["host"]["gpus"] = next((p["gpus"] for p in infos.values() if p.get("gpus")), [])
    write_manifest(root, manifest)
    trace = open_trace(root)
    digest = summarize(trace)
    manifest["coverage"] = coverage(trace)
    manifest["data_roots"] = digest["data_roots"]
    write_manifest(root, manifest)
    shutil.rmtree(spool)
    return manifest


def _ancestor_maps(info: dict, infos: dict[str, dict], maps: dict[str, dict[int, str]]) -> list[dict[int, str]]:
    """File-id maps of the processes this one was forked from, nearest first."""
    chain = []
    while info.get("forked"):
        parents = [p for p in infos.values() if p["pid"] == info["ppid"] and p["start_ns"] <= info["start_ns"]]
        if not parents:
            break
        info = max(parents, key=lambda p: p["start_ns"])
        chain.append(maps.get(info["tag"], {}))
    return chain


def _read_stream(path: Path, schema: pa.Schema, lost: list[str]) -> pa.Table:
    if not path.exists():
        return schema.empty_table()
    try:
        table, warning = read_spool_stream(path, schema)
    except TraceFormatError as exc:
        lost.append(str(exc))
        return schema.empty_table()
    if warning:
        lost.append(warning)
    return table
