"""Turn a trace's spool into per-process Parquet files and finish the manifest.

Run by ``tracer capture`` when the training ends, and by ``tracer finalize DIR`` for a trace whose
capture was killed. Every readable record is kept: a damaged or missing file of one process costs
that file, not the process's other records. Nothing is deleted while a traced process still writes,
and the spool goes only after the Parquet files that replace it are written and checked.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainio import __version__
from trainio.tracefile.classify import Classifier
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
from trainio.tracefile.reader import Trace, read_manifest, trace_warnings
from trainio.tracefile.redact import Redactor
from trainio.tracefile.summary import summarize
from trainio.tracer.errors import FinalizeError, LiveProcessesError
from trainio.tracer.manifest import write_manifest
from trainio.tracer.spool import live_processes
from trainio.tracer.spoolread import EMPTY, CSpool, PySpool, SpoolError, read_c_spool, read_py_spool

STAGING = ".finalize"
COMPRESSION = "snappy"
"""Half zstd's time to write and to read, for about 1.5 times the size; every Parquet reader has it."""
NO_EXIT_RECORD = "killed without an exit record (SIGKILL, an OOM kill, a signal handled in C, a crash)"


@dataclass
class Finalized:
    manifest: dict
    summary: dict
    """``tracer summary --json`` of the finished trace."""


def _spools(spool: Path, lost: list[str]) -> dict[str, tuple[CSpool | None, PySpool | None]]:
    """Per process tag: its interposer spool and its Python spool, each read on its own.

    Spools that ran out of disk space make one line in ``lost``, however many there are.
    """
    found: dict[str, dict[str, CSpool | PySpool]] = {}
    full: list[str] = []
    dropped = 0
    for path in sorted(spool.glob("*.spool")):
        kind, _, tag = path.stem.partition("-")
        try:
            part = read_c_spool(path) if kind == "io" else read_py_spool(path)
        except SpoolError as exc:
            (full if exc.reason == EMPTY else lost).append(str(exc))
            continue
        found.setdefault(tag, {})[kind] = part
        if part.header["stopped"]:
            full.append(f"{path.name}: {part.header['stop_reason']}")
            dropped += part.header["dropped"]
    if full:
        lost.append(
            f"disk full: {len(full)} spool files of {len(list(spool.glob('*.spool')))} stopped recording when they"
            f" could not grow, {dropped} records dropped at that moment (first: {full[0]});"
            " the trace holds what was recorded before"
        )
    return {tag: (parts.get("io"), parts.get("py")) for tag, parts in found.items()}  # type: ignore[misc]


def _process(tag: str, c: CSpool | None, py: PySpool | None, capture_pid: int | None) -> dict:
    facts = py.facts if py is not None else {}
    head = c.header if c is not None else {}
    pid = facts.get("pid") or head.get("pid") or int(tag.split("-")[0])
    ppid = facts.get("ppid", head.get("ppid"))
    if py is None:
        ended = "unknown (not a Python process)"
    else:
        ended = facts.get("exit_via") or NO_EXIT_RECORD
    interposer = dict(facts.get("interposer") or {"loaded": c is not None, "preloaded": c is not None, "error": None})
    interposer["dropped_records"] = head.get("dropped", 0)
    if "time_stamps" in head:
        interposer["time_stamps"] = head["time_stamps"]
    info = {
        "pid": pid,
        "ppid": ppid,
        "tag": tag,
        "argv": facts.get("argv") or head.get("argv", []),
        "executable": facts.get("executable") or head.get("exe"),
        "role": facts.get("role") or ("main" if capture_pid is not None and ppid == capture_pid else "child"),
        "forked": bool(facts.get("forked", head.get("forked", False))),
        "rank": facts.get("rank"),
        "worker_id": facts.get("worker_id"),
        "start_ns": head.get("start_ns", facts.get("start_ns")),
        "end_ns": facts.get("end_ns"),
        "exit_via": facts.get("exit_via"),
        "ended": ended,
        "python": facts.get("python"),
        "python_prefixes": facts.get("python_prefixes", []),
        "interposer": interposer,
        "rchar_before_start": head.get("untraced_rchar", 0),
        "socket_recv_bytes": head.get("socket_bytes"),
        "errors": facts.get("errors", []),
    }
    for key in ("rchar", "read_bytes", "syscr", "torch", "gpus", "torch_error", "utime_s", "stime_s"):
        if key in facts:
            info[key] = facts[key]
    clients = {c["client"]: c["hooked"] for c in facts.get("object_clients", [])}
    if clients:
        info["object_clients"] = [{"client": name, "hooked": hooked} for name, hooked in clients.items()]
    threads = facts.get("threads", []) + facts.get("ended_threads", [])
    if threads:
        info["threads"] = threads
    info["cpu_from"] = "exit record" if "utime_s" in facts else None
    return info


def _reaped_cpu(infos: dict[str, dict], spools: dict, manifest: dict) -> None:
    """CPU time of processes that ended without an exit record, as their reaper saw it: a traced
    parent reaping through os.waitpid (what the reap added to its children's CPU) or the capture
    itself (the zombie's /proc/PID/stat)."""
    parents = [
        (py.facts.get("pid"), child, "reaped by its traced parent")
        for _, py in spools.values()
        if py is not None
        for child in py.facts.get("reaped", [])
    ]
    capture = [(manifest.get("capture_pid"), c, "zombie, read by tracer capture") for c in manifest.get("reaped") or []]
    by_pid: dict[int, list[dict]] = {}
    for info in infos.values():
        by_pid.setdefault(info["pid"], []).append(info)
    for parent, child, source in parents + capture:
        candidates = [i for i in by_pid.get(child["pid"], []) if i.get("cpu_from") is None]
        match = [i for i in candidates if i.get("ppid") == parent] or candidates
        if match:
            info = max(match, key=lambda i: i["start_ns"] or 0)  # the latest image of that pid
            info.update(utime_s=child["utime_s"], stime_s=child["stime_s"], cpu_from=source)


def _classes(io: pa.Table, classify: Classifier, known: dict[tuple[str | None, str], str]) -> pa.Array:
    """io_class per row: each distinct (path, kind) is classified once per trace (``known``)."""
    paths = io["path"].combine_chunks().dictionary_encode()
    kinds = io["kind"].combine_chunks().dictionary_encode()
    path_index = paths.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    key = (path_index + 1) * len(kinds.dictionary) + kinds.indices.to_numpy(zero_copy_only=False)
    # Keys are small (paths x kinds): a table over them finds the distinct ones without sorting.
    present = np.zeros(int(key.max(initial=0)) + 1, dtype=bool)
    present[key] = True
    unique = np.flatnonzero(present)
    inverse = (np.cumsum(present) - 1)[key]
    names, kind_names = paths.dictionary.to_pylist(), kinds.dictionary.to_pylist()
    width = len(kind_names)
    classes = []
    for k in unique.tolist():
        pair = (names[k // width - 1] if k >= width else None, kind_names[k % width])
        if pair not in known:
            known[pair] = classify(*pair)
        classes.append(known[pair])
    return pa.array(classes, pa.string()).take(pa.array(inverse.ravel()))


FileMap = tuple[np.ndarray, pa.Array]
"""File ids and the paths they were opened under, in one process."""


def _file_paths(io: pa.Table) -> FileMap:
    """file id -> path, from the records that named a path (open, fopen, fdpath)."""
    named = io.filter(pc.and_(pc.greater(io["file_id"], 0), pc.is_valid(io["path"])))
    return named["file_id"].to_numpy(), named["path"].combine_chunks()


def _resolve_paths(io: pa.Table, maps: list[FileMap]) -> pa.Table:
    """Fill the path of fd operations from their file id: this process's map first, then its
    ancestors' (a forked child reads fds it inherited, whose opens are in the parent's trace)."""
    ids = np.concatenate([m[0] for m in maps]) if maps else np.zeros(0, np.int64)
    if not ids.size:
        return io
    ids, first = np.unique(ids, return_index=True)  # the nearest map's path of each id
    paths = pa.concat_arrays([m[1] for m in maps]).take(pa.array(first))
    found = paths.take(pc.index_in(io["file_id"], value_set=pa.array(ids)))
    keep = pc.or_kleene(pc.is_valid(io["path"]), pc.less_equal(io["file_id"], 0))
    return io.set_column(io.schema.get_field_index("path"), "path", pc.if_else(keep, io["path"], found))


def _sample_io_ns(events: pa.Table, io: pa.Table) -> pa.Array:
    """Per sample/fetch event: time its thread spent inside read calls (the rest is CPU work)."""
    result = np.zeros(events.num_rows, dtype=np.int64)
    # A mask over the three numeric columns, not io.filter: that would copy every path string too.
    mask = pc.is_in(io["op"], pa.array(READ_OPS + OBJECT_READ_OPS + ("open", "fopen", "stat", "fstat")))
    mask = mask.to_numpy(zero_copy_only=False).astype(bool)
    if not mask.any() or events.num_rows == 0:
        return pa.array(result)
    r_tid, r_start, r_dur = (io[c].to_numpy()[mask] for c in ("tid", "start_ns", "duration_ns"))
    e_tid, e_start, e_end = (events[c].to_numpy() for c in ("tid", "start_ns", "end_ns"))
    wanted = pc.is_in(events["event"], pa.array(["sample", "fetch"])).to_numpy(zero_copy_only=False)
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
        pa.repeat(pa.scalar(info.get("rank"), pa.int32()), n),
        pa.repeat(pa.scalar(info.get("worker_id"), pa.int32()), n),
        pa.repeat(pa.scalar(info.get("role"), pa.string()), n),
    ]


def _write_parquet(table: pa.Table, path: Path, kind: str, info: dict) -> None:
    meta = file_metadata(kind, __version__, **{"trainio.pid": str(info.get("pid"))})
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    # Dictionary pages only for the text columns, whose values repeat (paths, ops): on times and
    # sizes they cost most of the writing time and save nothing. No column statistics: a row group
    # holds up to a million rows, too many for min/max to skip any, and they cost 0.03 s a million.
    pq.write_table(
        table.replace_schema_metadata(meta),
        path,
        compression=COMPRESSION,
        use_dictionary=strings,
        write_statistics=False,
    )
    if pq.ParquetFile(path).metadata.num_rows != table.num_rows:
        raise OSError(f"{path} holds fewer rows than were written")


def _ancestor_maps(info: dict, infos: dict[str, dict], maps: dict[str, FileMap]) -> list[FileMap]:
    """File-id maps of the processes this one was forked from, nearest first."""
    chain = []
    while info.get("forked"):
        parents = [p for p in infos.values() if p["pid"] == info["ppid"] and p["start_ns"] <= info["start_ns"]]
        if not parents:
            break
        info = max(parents, key=lambda p: p["start_ns"])
        if info["tag"] in maps:
            chain.append(maps[info["tag"]])
    return chain


def _stage(
    root: Path, spools: dict, infos: dict[str, dict], prefixes: list[str], home: str | None
) -> tuple[Path, pa.Table, pa.Table]:
    """Write every process's Parquet files into a staging folder; return it and what it holds."""
    staging = root / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    (staging / IO_DIR).mkdir(parents=True)
    (staging / EVENTS_DIR).mkdir()
    maps: dict[str, FileMap] = {}
    classify = Classifier(str(root), prefixes, home)
    known: dict[tuple[str | None, str], str] = {}
    ios, all_events = [IO_SCHEMA.empty_table()], [EVENTS_SCHEMA.empty_table()]
    for tag, info in sorted(infos.items(), key=lambda item: item[1]["start_ns"] or 0):
        c, py = spools[tag]
        parts = [t for t in (c.io if c else None, py.objects if py else None) if t is not None and t.num_rows]
        io = pa.concat_tables(parts) if parts else IO_SPOOL_SCHEMA.empty_table()
        maps[tag] = _file_paths(io)
        io = _resolve_paths(io, [maps[tag], *_ancestor_maps(info, infos, maps)])
        io = io.append_column("io_class", _classes(io, classify, known))
        for name, array in zip(IO_SCHEMA.names[-3:], _process_columns(io.num_rows, info), strict=True):
            io = io.append_column(name, array)
        io = io.cast(IO_SCHEMA)
        _write_parquet(io, staging / IO_DIR / f"{tag}.parquet", "io", info)
        ios.append(io)
        events = py.events if py is not None else EVENTS_SPOOL_SCHEMA.empty_table()
        if events.num_rows:
            events = events.append_column("io_ns", _sample_io_ns(events, io))
            cols = _process_columns(events.num_rows, info)
            events = events.append_column("rank", cols[0]).append_column("role", cols[2])
            events = events.cast(EVENTS_SCHEMA)
            _write_parquet(events, staging / EVENTS_DIR / f"{tag}.parquet", "events", info)
            all_events.append(events)
    return staging, pa.concat_tables(ios), pa.concat_tables(all_events)


def finalize(
    trace_dir: str | Path,
    *,
    exit_code: int | None = None,
    end_monotonic_ns: int | None = None,
    end_time: float | None = None,
) -> Finalized:
    """Compact ``spool/`` into ``io/`` and ``events/`` Parquet files; return the finished manifest.

    Raises LiveProcessesError while traced processes still write, FinalizeError when the result
    cannot be written (a full disk): the spool is then kept as it was.
    """
    started, started_cpu = time.perf_counter(), time.process_time()
    # pyarrow's default pool (mimalloc) gave back and re-faulted its pages here: 0.1 to 0.6 s of
    # system time per million events, varying run to run; the C allocator's cost is steady (0.14 s).
    # Arrays made here keep their pool, so the caller's default comes back unharmed afterwards.
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        return _finalize(trace_dir, exit_code, end_monotonic_ns, end_time, started, started_cpu)
    finally:
        pa.set_memory_pool(previous)


def _finalize(
    trace_dir: str | Path,
    exit_code: int | None,
    end_monotonic_ns: int | None,
    end_time: float | None,
    started: float,
    started_cpu: float,
) -> Finalized:
    root = Path(trace_dir).resolve()
    manifest = read_manifest(root)
    spool = root / SPOOL_DIR
    if not spool.is_dir():
        raise TraceFormatError(root, "no spool/ folder: nothing to finalize (already finalized?)")
    live = live_processes(spool)
    if live:
        raise LiveProcessesError(
            f"{len(live)} traced processes of {root} are still running ({', '.join(live[:3])}"
            f"{', ...' if len(live) > 3 else ''}): wait for them to end, then run `tracer finalize {root}`"
        )
    lost: list[str] = list(manifest.get("lost", []))
    spools = _spools(spool, lost)
    capture_pid = manifest.get("capture_pid")
    infos = {tag: _process(tag, c, py, capture_pid) for tag, (c, py) in spools.items()}
    redactor = Redactor(manifest.get("redact", []), os.environ)  # the run's environment, or the same user's
    for info in infos.values():
        info["argv"] = redactor.argv(info["argv"])
    _reaped_cpu(infos, spools, manifest)
    for tag, (c, py) in spools.items():
        lost.extend((c.lost if c else []) + (py.lost if py else []))
        lost.extend(f"process {infos[tag]['pid']}: {err}" for err in infos[tag]["errors"])
        lost.extend(
            f"process {infos[tag]['pid']} loaded {c['client']}, an object-store client whose reads trainio does not"
            " record: its network bytes count as untraced in the coverage"
            for c in infos[tag].get("object_clients", [])
            if not c["hooked"]
        )
    prefixes = sorted({p for info in infos.values() for p in info.get("python_prefixes", [])})
    home = (manifest.get("env") or {}).get("HOME")
    try:
        staging, io, events = _stage(root, spools, infos, prefixes, home)
        for name in (IO_DIR, EVENTS_DIR):
            shutil.rmtree(root / name, ignore_errors=True)  # left by a finalize that was cut short
            (staging / name).rename(root / name)
        summary = _finish_manifest(root, manifest, infos, lost, io, events, (exit_code, end_monotonic_ns, end_time))
    except OSError as exc:
        shutil.rmtree(root / STAGING, ignore_errors=True)
        raise FinalizeError(
            f"cannot write the finalized trace into {root}: {exc.strerror or exc}; the spool is kept:"
            f" free space and run `tracer finalize {root}`"
        ) from exc
    shutil.rmtree(root / STAGING, ignore_errors=True)
    shutil.rmtree(spool)
    manifest["finalize"] = {
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_s": round(time.process_time() - started_cpu, 3),
        "rows": io.num_rows + events.num_rows,
    }
    write_manifest(root, manifest)
    return Finalized(manifest, summary)


def _finish_manifest(
    root: Path,
    manifest: dict,
    infos: dict[str, dict],
    lost: list[str],
    io: pa.Table,
    events: pa.Table,
    end: tuple[int | None, int | None, float | None],
) -> dict:
    """Complete the manifest from what was staged; return the trace's summary."""
    exit_code, end_monotonic_ns, end_time = end
    manifest.update(
        status="complete" if exit_code is not None else "finalized-after-kill",
        exit_code=exit_code if exit_code is not None else manifest.get("exit_code"),
        processes=sorted(infos.values(), key=lambda p: p["start_ns"] or 0),
        lost=lost,
        finalized_time=time.time(),
    )
    if end_monotonic_ns is None:
        ends = [p["end_ns"] or p["start_ns"] or 0 for p in infos.values()]
        end_monotonic_ns = max(ends) if ends else manifest["start_monotonic_ns"]
    manifest["end_monotonic_ns"] = end_monotonic_ns
    manifest["end_time"] = (
        end_time or manifest["start_time"] + (end_monotonic_ns - manifest["start_monotonic_ns"]) / 1e9
    )
    manifest["duration_s"] = round((end_monotonic_ns - manifest["start_monotonic_ns"]) / 1e9, 6)
    python = [p for p in infos.values() if p["python"]]
    manifest["interposer"] = {
        "loaded_in_all": bool(python) and all(p["interposer"]["loaded"] for p in python),
        "preloaded_in_all": bool(python) and all(p["interposer"]["preloaded"] for p in python),
    }
    manifest["torch"] = next((p["torch"] for p in infos.values() if p.get("torch")), None)
    manifest["host"]["gpus"] = next((p["gpus"] for p in infos.values() if p.get("gpus")), [])
    summary = summarize(Trace(root, manifest, io, events))
    manifest["coverage"] = summary["coverage"]
    manifest["data_roots"] = summary["data_roots"]
    summary["warnings"] = trace_warnings(manifest) + summary["warnings"]
    write_manifest(root, manifest)
    return summary
