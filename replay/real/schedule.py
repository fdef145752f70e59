"""The replay schedule: a trace's data reads from files as a storage-neutral list of operations per
process (and node), built once; fio iologs, the CephFS helper's plan and S3 GETs are rendered from it.

What a replay keeps of the trace (order, offsets, lengths, opens and closes, time) and how N nodes
share one process's reads are in docs/replay.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc

from trainio.replay.storage.errors import ReplayError
from trainio.tracefile import Trace, open_trace

READ_OPS = ("read", "pread", "readv", "preadv", "fread")
SEQUENTIAL_READS = ("read", "readv", "fread")
POSITIONED_READS = ("pread", "preadv")
OPENS = ("open", "fopen")
CLOSES = ("close", "fclose")
MAX_NODES = 1024
"""Nodes a replay on real storage runs at once, all on this host."""


@dataclass(frozen=True)
class Op:
    stamp_us: int
    """Microseconds since its job's start, x time_scale; a process's first op is at 1 (fio 3.33 takes
    a previous timestamp of 0 for "no previous op" and would drop the gap to the second)."""
    path: str
    """Relative to the traced data root."""
    action: str
    """``open``, ``read`` or ``close``."""
    offset: int = 0
    length: int = 0


@dataclass(frozen=True)
class Job:
    """One traced process, or its share on one node: what one fio job, helper thread or S3 worker replays."""

    name: str
    """``pid-PID``, or ``nodeN-pid-PID`` on several nodes."""
    node: int
    delay_us: int
    """When the job starts, after the earliest process's start (at the traced pace x time_scale)."""
    ops: tuple[Op, ...]

    @property
    def end_us(self) -> int:
        return self.delay_us + self.ops[-1].stamp_us - 1


@dataclass(frozen=True)
class Schedule:
    trace_path: Path
    """The trace it was built from."""
    jobs: tuple[Job, ...]
    sizes: dict[str, int]
    """Bytes each file (relative path) must hold: its furthest byte read."""
    data_root: str
    """The traced folder that a target stands for."""
    nodes: int
    time_scale: float
    expected_bytes: int
    expected_ops: int
    """The trace's data reads, counted from its rows apart from the schedule: what a replay must match."""
    traced_duration_s: float
    """The trace's span of those reads, first start to last end."""
    warnings: tuple[str, ...] = ()
    """What the trace reader said of the trace (a damaged per-process file, a busy host)."""
    notes: tuple[str, ...] = ()
    """What the schedule itself warns of (nodes left without reads)."""

    @property
    def planned_duration_s(self) -> float:
        """How long the schedule lasts at the traced pace x time_scale, start delays included."""
        return max(job.end_us for job in self.jobs) / 1e6


def _load(trace: Trace | str | os.PathLike) -> Trace:
    return trace if isinstance(trace, Trace) else open_trace(Path(trace))


def traced_reads(trace: Trace) -> tuple[int, int, float]:
    """Bytes, count and span (first start to last end, seconds) of the data reads a replay repeats:
    reads from files (``io_class`` data, ``kind`` file) that returned data."""
    io = trace.io
    mask = pc.and_(pc.equal(io["io_class"], "data"), pc.equal(io["kind"], "file"))
    mask = pc.and_(mask, pc.is_in(io["op"], value_set=pa.array(READ_OPS)))
    mask = pc.and_(mask, pc.greater(io["bytes_returned"], 0))
    mask = pc.and_(mask, pc.or_(pc.is_null(io["result"]), pc.greater_equal(io["result"], 0)))
    reads = io.filter(mask)
    if reads.num_rows == 0:
        return 0, 0, 0.0
    starts = reads["start_ns"]
    ends = pc.add(starts, pc.fill_null(reads["duration_ns"], 0))
    span = (pc.max(ends).as_py() - pc.min(starts).as_py()) / 1e9
    return pc.sum(reads["bytes_returned"]).as_py(), reads.num_rows, span


# ---------------------------------------------------------------------------- from the trace's rows


@dataclass(frozen=True)
class TracedOp:
    """One traced open, data read or close of a data file, as the replays and the emulation use it."""

    tid: int
    ns: int
    end_ns: int
    action: str
    """``open``, ``read`` or ``close``."""
    path: str
    """Absolute as traced, or (from :func:`traced_ops`) relative to the traced data root."""
    offset: int = 0
    length: int = 0


@dataclass
class _Session:
    """One traced open of a file on one fd: its reads and, once seen, its close."""

    path: str
    opened: TracedOp
    position: int = 0
    reads: list[TracedOp] = field(default_factory=list)
    closed: TracedOp | None = None


def _absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, path))


def _sessions(trace: Trace, cwd: str) -> dict[int, list[_Session]]:
    """Per pid, every fd session that read at least one byte."""
    io = trace.io
    mask = pc.and_(pc.equal(io["io_class"], "data"), pc.equal(io["kind"], "file"))
    columns = ["pid", "tid", "op", "fd", "path", "offset", "bytes_returned", "result", "start_ns", "duration_ns"]
    rows = sorted(io.filter(mask).select(columns).to_pylist(), key=lambda r: (r["pid"], r["start_ns"]))  # stable
    by_pid: dict[int, list[_Session]] = {}
    open_fds: dict[tuple[int, int], _Session] = {}
    for row in rows:
        pid, op, fd, ns = row["pid"], row["op"], row["fd"], row["start_ns"]
        path = _absolute(row["path"], cwd)
        tid, end = row["tid"], ns + (row["duration_ns"] or 0)
        if op in OPENS:
            if fd is not None and fd >= 0 and (row["result"] is None or row["result"] >= 0):
                open_fds[(pid, fd)] = session = _Session(path, TracedOp(tid, ns, end, "open", path))
                by_pid.setdefault(pid, []).append(session)
        elif op in CLOSES:
            closed = open_fds.pop((pid, fd), None)
            if closed is not None:
                closed.closed = TracedOp(tid, ns, end, "close", path)
        elif op in READ_OPS:
            nbytes = row["bytes_returned"]
            if not nbytes or nbytes <= 0 or (row["result"] is not None and row["result"] < 0):
                continue
            found = open_fds.get((pid, fd))
            if found is None or found.path != path:  # fd opened before tracing, or its open/close missed
                open_fds[(pid, fd)] = found = _Session(path, TracedOp(tid, ns, ns, "open", path))
                by_pid.setdefault(pid, []).append(found)
            if op in POSITIONED_READS:
                if row["offset"] is None:
                    raise ReplayError(f"{op} at {ns} ns on {path} (pid {pid}) in {trace.path} has no offset")
                offset = row["offset"]
            else:
                offset = found.position
                found.position += nbytes
            found.reads.append(TracedOp(tid, ns, end, "read", path, offset, nbytes))
    return {pid: [s for s in sessions if s.reads] for pid, sessions in by_pid.items() if any(s.reads for s in sessions)}


def _process_ops(sessions: list[_Session]) -> list[TracedOp]:
    """One process's opens, reads and closes in time order, a file opened once while any fd holds it."""
    events: list[tuple[int, int, TracedOp]] = []
    for session in sessions:
        events.append((session.opened.ns, 0, session.opened))
        events.extend((op.ns, 1, op) for op in session.reads)
        if session.closed is not None:
            events.append((session.closed.ns, 2, session.closed))
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


def _under(path: str, root: str) -> bool:
    return PurePosixPath(path).is_relative_to(root) and path != root


def _data_root(paths: set[str], data_roots: list[str], cwd: str) -> str:
    """The common folder of the data roots that were read from and of any read file outside them."""
    roots = [_absolute(r, cwd) for r in data_roots]
    inside = [r for r in roots if any(_under(p, r) for p in paths)]
    outside = [os.path.dirname(p) for p in paths if not any(_under(p, r) for r in roots)]
    return os.path.commonpath(inside + outside)


def traced_file_ops(trace: Trace, command: str = "this replay") -> tuple[str, dict[int, list[TracedOp]]]:
    """The traced data root and, per pid that read data from files, its opens, reads and closes in time
    order, paths relative to that root. Raises :class:`ReplayError` (naming ``command``) for a trace
    without data reads from files."""
    cwd = trace.manifest.get("cwd") or "/"
    sessions = _sessions(trace, cwd)
    if not sessions or traced_reads(trace)[1] == 0:
        raise _no_file_reads(trace, command)
    paths = {s.path for per_pid in sessions.values() for s in per_pid}
    root = _data_root(paths, trace.manifest.get("data_roots") or [], cwd)
    return root, {
        pid: [replace(op, path=str(PurePosixPath(op.path).relative_to(root))) for op in _process_ops(sessions[pid])]
        for pid in sorted(sessions)
    }


# ---------------------------------------------------------------------------- nodes


def split_shares(ops: Sequence[Op], nodes: int) -> list[list[Op]]:
    """One process's ops cut into ``nodes`` DistributedSampler shares: unit ``k`` (the ``k``-th file
    open with its reads and close) goes to share ``k mod nodes`` and moves to the time of unit
    ``k // nodes`` (docs/replay.md)."""
    if nodes < 1:
        raise ValueError(f"nodes(={nodes}) must be >= 1")
    if nodes == 1:
        return [list(ops)]
    opens: list[int] = []
    current: dict[str, int] = {}
    units = []
    for op in ops:
        if op.action == "open" or op.path not in current:
            current[op.path] = len(opens)
            opens.append(op.stamp_us)
        units.append(current[op.path])
        if op.action == "close":
            del current[op.path]
    shares: list[list[Op]] = [[] for _ in range(nodes)]
    for op, unit in zip(ops, units, strict=True):
        shift = opens[unit // nodes] - opens[unit]
        shares[unit % nodes].append(replace(op, stamp_us=op.stamp_us + shift))
    for share in shares:
        share.sort(key=lambda op: op.stamp_us)  # stable: a unit's ops keep their order
    return shares


def node_start_delays(processes: dict[str, tuple[int, int, int]]) -> dict[str, int]:
    """When each process starts on N nodes: ``processes`` maps a name to (traced start delay, last
    op's stamp as traced, last op's stamp in its longest share), all in microseconds.

    A process that the trace started after others had ended (the next epoch's DataLoader workers)
    starts earlier by as much as the latest of those ended earlier on N nodes; gaps between
    processes (start-up, spawning workers) stay. With one node nothing moves.
    """
    ended: list[tuple[int, int]] = []  # (traced end, how much earlier it ends on N nodes)
    starts = {}
    for name, (delay, traced_last, share_last) in sorted(processes.items(), key=lambda item: item[1][0]):
        starts[name] = delay - max((saved for end, saved in ended if end <= delay), default=0)
        ended.append((delay + traced_last, delay + traced_last - (starts[name] + share_last)))
    return starts


# ---------------------------------------------------------------------------- the schedule


def _no_file_reads(trace: Trace, command: str) -> ReplayError:
    io = trace.io
    gets = io.filter(pc.and_(pc.equal(io["io_class"], "data"), pc.equal(io["kind"], "object"))).num_rows
    what = (
        f"its {gets:,} data operations are object GETs, which {command} does not replay (replay what-if projects them)"
        if gets
        else "it read no data"
    )
    return ReplayError(
        f"trace {trace.path} has no data reads from files to replay (io_class 'data', kind 'file', "
        f"returning bytes): {what}"
    )


def build_schedule(
    trace: Trace | str | os.PathLike, *, nodes: int = 1, time_scale: float = 1.0, command: str = "this replay"
) -> Schedule:
    """The jobs to replay: one per traced process that read data and node, at the traced pace x
    ``time_scale``. Raises :class:`ReplayError` for a trace without data reads from files (``command``
    names the replay in that message)."""
    if not 1 <= nodes <= MAX_NODES:
        raise ValueError(f"nodes(={nodes}) must be 1 to {MAX_NODES}")
    if not 0 < time_scale < math.inf:
        raise ValueError(f"time_scale(={time_scale}) must be > 0")
    trace = _load(trace)
    expected_bytes, expected_ops, traced = traced_reads(trace)
    root, traced_ops = traced_file_ops(trace, command)
    first_ns = min(ops[0].ns for ops in traced_ops.values())
    processes: dict[str, list[Op]] = {}
    delays: dict[str, int] = {}
    for pid, ops in traced_ops.items():
        origin = ops[0].ns
        name = f"pid-{pid}"
        delays[name] = int((origin - first_ns) * time_scale / 1000)
        processes[name] = [
            Op(1 + int((op.ns - origin) * time_scale / 1000), op.path, op.action, op.offset, op.length) for op in ops
        ]
    shares = {name: split_shares(ops, nodes) for name, ops in processes.items()}
    starts = node_start_delays(
        {
            name: (delays[name], ops[-1].stamp_us, max(s[-1].stamp_us for s in shares[name] if s))
            for name, ops in processes.items()
        }
    )
    jobs = [
        Job(name if nodes == 1 else f"node{node}-{name}", node, starts[name], tuple(share))
        for name in processes
        for node, share in enumerate(shares[name])
        if share
    ]
    notes = []
    busy = len({job.node for job in jobs})
    if busy < nodes:
        opens = sum(op.action == "open" for ops in traced_ops.values() for op in ops)
        notes.append(f"{nodes:,} nodes, but the trace's {opens:,} file opens give {busy:,} of them anything to read")
    sizes: dict[str, int] = {}
    for process in processes.values():
        for op in process:
            if op.action == "read":
                sizes[op.path] = max(sizes.get(op.path, 0), op.offset + op.length)
    return Schedule(
        trace_path=Path(trace.path),
        jobs=tuple(jobs),
        sizes=dict(sorted(sizes.items())),
        data_root=root,
        nodes=nodes,
        time_scale=time_scale,
        expected_bytes=expected_bytes,
        expected_ops=expected_ops,
        traced_duration_s=traced,
        warnings=tuple(trace.warnings),
        notes=tuple(notes),
    )
