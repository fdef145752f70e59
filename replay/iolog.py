"""Replay a trace's file reads with fio: iolog version 3 files, a job file, and the data set laid out.

``write_iologs`` writes one ``fio version 3 iolog`` per traced process that read data (``io_class
== 'data'``, ``kind == 'file'``; object ops are not replayed here) and a job file, ``replay.fio``,
with one job per process. ``layout_dataset`` creates the files those iologs read: every traced
file under ``TARGET/<path relative to the data root>``, as large as the furthest byte read from it,
filled with seeded random bytes. Run ``fio --readonly --output-format=json --output=OUT.json replay.fio`` and
read the result with :func:`trainio.replay.fio.read_fio_json`.

What a replay preserves and what it cannot (the trace's limits and fio's):

* Order: each process's reads, opens and closes in ``start_ns`` order. A process's threads are
  serialised into one fio job (psync, queue depth 1), as were the reads of one DataLoader worker.
* Offsets: ``pread``/``preadv`` carry theirs. ``read``/``readv``/``fread`` have none: the offset
  is the sum of the bytes returned on that fd since its open (``lseek`` is not traced, so a
  program that seeks replays as if it had read sequentially). An fd whose open was not seen
  (``fdpath`` rows: inherited or dup'd fds) starts at offset 0.
* Lengths: ``bytes_returned`` -- what the file delivered -- so a short read at the end of a file
  replays as the short read it was. Reads that returned 0 bytes (end-of-file probes) or failed
  move no data and are left out: fio cannot issue a read of length 0.
* Opens and closes: only of files the process read through that open. A file open on several
  fds at once is opened once for fio (fio keeps one handle per file name) and closed when the
  last traced fd on it closes. ``mmap`` is not replayed (its page faults are not traced).
* Time: iolog timestamps are microseconds since the process's first replayed op, times
  ``time_scale``; each job starts ``startdelay`` after the earliest process, so processes
  overlap as they did. fio paces each op by the gap since the previous op's issue, so a slower
  target delays everything after it, as it would the training run. With ``no_stall``, fio
  ignores the timestamps and the start delays are left out: every process runs flat out.
* Names: fio's iolog parser reads a file name as one whitespace-free word of at most 256
  characters, so the target paths must be short enough and free of whitespace
  (:class:`IologError` otherwise).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow.compute as pc

from trainio.tracefile import Trace, open_trace

IOLOG_HEADER = "fio version 3 iolog"
JOB_FILE = "replay.fio"
# fio reads iolog file names with sscanf("%256s"): longer names are cut, whitespace splits them.
FIO_MAX_NAME = 256
# ... and lengths with "%u".
FIO_MAX_LENGTH = 2**32 - 1
SEQUENTIAL_READS = ("read", "readv", "fread")
POSITIONED_READS = ("pread", "preadv")
OPENS = ("open", "fopen")
CLOSES = ("close", "fclose")
LAYOUT_CHUNK = 16 * 2**20


class IologError(ValueError):
    """A trace that cannot be turned into fio iologs; the message carries the offending value."""


@dataclass(frozen=True)
class LayoutSummary:
    """What ``layout_dataset`` made: files and bytes under ``target`` for the traced ``data_root``."""

    target: Path
    data_root: str
    files: int
    bytes: int
    reused_files: int = 0
    """Files that already existed with the right size and were left as they were."""


@dataclass(frozen=True)
class _Op:
    ns: int
    action: str  # open, read or close
    path: str
    offset: int = 0
    length: int = 0


@dataclass
class _Session:
    """One traced open of a file on one fd: its reads and, once seen, its close."""

    path: str
    open_ns: int
    position: int = 0
    reads: list[_Op] = field(default_factory=list)
    close_ns: int | None = None


def _load(trace: Trace | str | os.PathLike) -> Trace:
    return trace if isinstance(trace, Trace) else open_trace(trace)


def _file_rows(trace: Trace) -> list[dict]:
    """Data operations on files, in time order (trace order breaks ties)."""
    io = trace.io
    mask = pc.and_(pc.equal(io["io_class"], "data"), pc.equal(io["kind"], "file"))
    table = io.filter(mask).select(["pid", "op", "fd", "path", "offset", "bytes_returned", "result", "start_ns"])
    rows = table.to_pylist()
    rows.sort(key=lambda r: (r["pid"], r["start_ns"]))
    return rows


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, path))


def _sessions(rows: list[dict], cwd: str) -> dict[int, list[_Session]]:
    """Per pid, every fd session that read at least one byte."""
    by_pid: dict[int, list[_Session]] = {}
    open_fds: dict[tuple[int, int], _Session] = {}
    for row in rows:
        pid, op, fd, ns = row["pid"], row["op"], row["fd"], row["start_ns"]
        path = _absolute(row["path"], cwd)
        if op in OPENS:
            if fd is not None and fd >= 0 and (row["result"] is None or row["result"] >= 0):
                open_fds[(pid, fd)] = session = _Session(path, ns)
                by_pid.setdefault(pid, []).append(session)
        elif op in CLOSES:
            session = open_fds.pop((pid, fd), None)
            if session is not None:
                session.close_ns = ns
        elif op in SEQUENTIAL_READS or op in POSITIONED_READS:
            nbytes = row["bytes_returned"]
            if not nbytes or nbytes <= 0 or (row["result"] is not None and row["result"] < 0):
                continue
            session = open_fds.get((pid, fd))
            if session is None or session.path != path:  # fd opened before tracing, or its open/close missed
                open_fds[(pid, fd)] = session = _Session(path, ns)
                by_pid.setdefault(pid, []).append(session)
            if nbytes > FIO_MAX_LENGTH:
                raise IologError(f"read of {nbytes} bytes on {path} exceeds fio's iolog length limit {FIO_MAX_LENGTH}")
            if op in POSITIONED_READS:
                if row["offset"] is None:
                    raise IologError(f"{op} at {ns} ns on {path} (pid {pid}) has no offset")
                offset = row["offset"]
            else:
                offset = session.position
                session.position += nbytes
            session.reads.append(_Op(ns, "read", path, offset, nbytes))
    return {pid: [s for s in sessions if s.reads] for pid, sessions in by_pid.items() if any(s.reads for s in sessions)}


def _ops(sessions: list[_Session]) -> list[_Op]:
    """One process's opens, reads and closes in time order, a file opened once while any fd holds it."""
    events: list[tuple[int, int, _Op]] = []
    for session in sessions:
        events.append((session.open_ns, 0, _Op(session.open_ns, "open", session.path)))
        events.extend((op.ns, 1, op) for op in session.reads)
        if session.close_ns is not None:
            events.append((session.close_ns, 2, _Op(session.close_ns, "close", session.path)))
    events.sort(key=lambda e: (e[0], e[1]))
    holders: dict[str, int] = {}
    ops = []
    for _, _, op in events:
        if op.action == "open":
            holders[op.path] = holders.get(op.path, 0) + 1
            if holders[op.path] > 1:
                continue
        elif op.action == "close":
            holders[op.path] -= 1
            if holders[op.path] > 0:
                continue
        ops.append(op)
    return ops


def _replayed(trace: Trace) -> tuple[dict[int, list[_Session]], set[str], str]:
    """The sessions to replay per pid, the files they read and the data root those lie under."""
    cwd = trace.manifest.get("cwd") or "/"
    sessions = _sessions(_file_rows(trace), cwd)
    paths = {s.path for per_pid in sessions.values() for s in per_pid}
    return sessions, paths, _root(paths, trace.manifest.get("data_roots") or [], cwd)


def dataset_root(trace: Trace | str | os.PathLike) -> str:
    """The traced folder that the target stands for: the common folder of the data roots that
    were read from (``manifest.data_roots``) and of any read file outside them."""
    return _replayed(_load(trace))[2]


def _root(paths: set[str], data_roots: list[str], cwd: str) -> str:
    if not paths:
        raise IologError("the trace has no data reads from files (io_class 'data', kind 'file') to replay")
    roots = [_absolute(r, cwd) for r in data_roots]
    inside = [r for r in roots if any(_under(p, r) for p in paths)]
    outside = [os.path.dirname(p) for p in paths if not any(_under(p, r) for r in roots)]
    return os.path.commonpath(inside + outside)


def _under(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(root) and path != root


def _target_name(path: str, root: str, target: Path) -> str:
    name = str(target / PurePosixPath(path).relative_to(root))
    if any(ch.isspace() for ch in name):
        raise IologError(f"fio's iolog cannot name {name!r}: it contains whitespace")
    if len(name) > FIO_MAX_NAME:
        raise IologError(
            f"fio's iolog cannot name {name!r}: {len(name)} characters > {FIO_MAX_NAME}; choose a shorter target"
        )
    return name


def _stamp_us(ns: int, origin_ns: int, time_scale: float) -> int:
    # +1: fio 3.33 takes a previous timestamp of 0 for "no previous op" and drops the gap
    # between the first op and the second; starting at 1 keeps that gap.
    return 1 + int((ns - origin_ns) * time_scale / 1000)


def write_iologs(
    trace: Trace | str | os.PathLike,
    out_dir: str | os.PathLike,
    target: str | os.PathLike,
    *,
    no_stall: bool = False,
    time_scale: float = 1.0,
) -> list[Path]:
    """Write ``pid-PID.iolog`` per process that read data, then the job file ``replay.fio``.

    ``target`` is where ``layout_dataset`` puts (or put) the data set; the iologs name files
    there. ``time_scale`` multiplies the traced times (2.0 replays at half speed, 0.5 at double);
    ``no_stall`` replays as fast as possible, in order. Returns the iologs in pid order, then the
    job file (always last).
    """
    if not time_scale > 0:
        raise ValueError(f"time_scale(={time_scale}) must be > 0")
    trace = _load(trace)
    out = Path(out_dir).absolute()
    target = Path(target).absolute()
    sessions, paths, root = _replayed(trace)
    names = {path: _target_name(path, root, target) for path in sorted(paths)}
    per_pid = {pid: _ops(sessions[pid]) for pid in sorted(sessions)}
    first_ns = min(ops[0].ns for ops in per_pid.values())

    out.mkdir(parents=True, exist_ok=True)
    written = []
    jobs = []
    for pid, ops in per_pid.items():
        origin = ops[0].ns
        lines = [IOLOG_HEADER]
        added = dict.fromkeys(names[op.path] for op in ops)
        lines.extend(f"1 {name} add" for name in added)
        for op in ops:
            line = f"{_stamp_us(op.ns, origin, time_scale)} {names[op.path]} {op.action}"
            lines.append(f"{line} {op.offset} {op.length}" if op.action == "read" else line)
        path = out / f"pid-{pid}.iolog"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
        job = [f"[pid-{pid}]", f"read_iolog={path}"]
        delay_us = int((origin - first_ns) * time_scale / 1000)
        if not no_stall and delay_us > 0:
            job.append(f"startdelay={delay_us}us")
        jobs.append("\n".join(job))

    pace = "as fast as possible" if no_stall else f"at the traced pace x {time_scale:g}"
    header = [
        f"; fio job file written by trainio replay/iolog.py from {Path(trace.path).absolute()}",
        f"; replays the file reads of {len(per_pid)} processes against {target} (traced data root {root}),",
        f"; {pace}; lay the data set out first.",
        f"; run: fio --readonly --output-format=json --output=result.json {out / JOB_FILE}",
        "[global]",
        "ioengine=psync",
        "iodepth=1",
    ]
    if no_stall:
        header.append("replay_no_stall=1")
    job_file = out / JOB_FILE
    job_file.write_text("\n".join(header) + "\n\n" + "\n\n".join(jobs) + "\n", encoding="utf-8")
    written.append(job_file)
    return written


def layout_dataset(trace: Trace | str | os.PathLike, target: str | os.PathLike, *, seed: int = 0) -> LayoutSummary:
    """Create every file the trace read under ``target``, sized to the furthest byte read.

    Files are filled with random bytes drawn from ``seed`` and the file's path (incompressible,
    reproducible). A file that already exists with the right size is kept, so laying out again
    is cheap.
    """
    target = Path(target).absolute()
    sessions, _, root = _replayed(_load(trace))
    sizes: dict[str, int] = {}
    for per_pid in sessions.values():
        for session in per_pid:
            for op in session.reads:
                sizes[op.path] = max(sizes.get(op.path, 0), op.offset + op.length)
    total = reused = 0
    for path in sorted(sizes):
        size = sizes[path]
        dest = target / PurePosixPath(path).relative_to(root)
        total += size
        if dest.is_file() and dest.stat().st_size == size:
            reused += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Each file's bytes depend on the seed and its path only, not on which files were kept.
        rng = np.random.default_rng([seed, zlib.crc32(path.encode())])
        with open(dest, "wb") as f:
            for start in range(0, size, LAYOUT_CHUNK):
                f.write(rng.bytes(min(LAYOUT_CHUNK, size - start)))
    return LayoutSummary(target, root, len(sizes), total, reused)
