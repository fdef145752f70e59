"""Read a capture's spool files back (at finalize): the C interposer's and the Python recorder's.

Both formats are versioned; a file of another version, or one that is not a spool, raises
``SpoolError`` naming it. Records whose writer died half-way are skipped and counted.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from trainio.tracefile.format import EVENTS_SPOOL_SCHEMA, IO_SPOOL_SCHEMA
from trainio.tracer import spool as sp
from trainio.tracer.interposer import KIND_NAMES, OP_NAMES

C_MAGIC = b"TRAINIOC"
C_VERSION = 2
C_HEADER = struct.Struct("<8sIIIIiiqQQIIII128s512s2048sQ")
SEGMENT = struct.Struct("<IIQQ")  # magic, type, size, cursor
SEGMENT_MAGIC = 0x31474553
SEG_RECS, SEG_PATHS = 1, 2
RECORD_DTYPE = np.dtype(
    [
        ("start_ns", "<i8"),
        ("dur_ns", "<i8"),
        ("offset", "<i8"),
        ("requested", "<i8"),
        ("returned", "<i8"),
        ("tid", "<i4"),
        ("fd", "<i4"),
        ("file_id", "<u4"),
        ("path_len", "<u2"),
        ("op", "u1"),
        ("kind", "u1"),
        ("path_off", "<u8"),
    ]
)
"""``struct trainio_rec`` in _interpose.c (64 bytes)."""
IS_READ = np.isin(np.arange(256), [2, 3, 4, 5, 6])  # by op code: read, pread, readv, preadv, fread
IS_OPEN = np.isin(np.arange(256), [1, 11])  # open, fopen
_OPS = pa.array(list(OP_NAMES), pa.string())
_KINDS = pa.array(list(KIND_NAMES), pa.string())
_EVENT_NAMES = {code: name for name, code in sp.EVENT_CODES.items()}
_OBJECT_NAMES = {code: name for name, code in sp.OBJECT_CODES.items()}


EMPTY = "empty: the process could not reserve spool space (disk full?) and recorded nothing"


class SpoolError(Exception):
    """A spool file that cannot be read at all (not a spool, another version, no header)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass
class CSpool:
    header: dict
    io: pa.Table
    lost: list[str] = field(default_factory=list)


@dataclass
class PySpool:
    header: dict
    facts: dict
    events: pa.Table
    objects: pa.Table
    lost: list[str] = field(default_factory=list)


def _load(path: Path) -> np.ndarray:
    """The file's bytes, mapped: only the pages that are looked at are read (segments are mostly unused)."""
    try:
        if path.stat().st_size == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as exc:
        raise SpoolError(path, f"cannot read: {exc.strerror or exc}") from exc


def read_c_spool(path: Path) -> CSpool:
    """The interposer's records of one process, as IO_SPOOL_SCHEMA rows (pid filled in)."""
    header, recs, data, lost = c_records(path)
    return CSpool(header, _records_table(recs, data, header["pid"]), lost)


def c_records(path: Path) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    """(header, committed records as RECORD_DTYPE in reservation order, the file's bytes, what was lost)."""
    data = _load(path)
    raw = data.data  # a memoryview of the same bytes
    if data.size == 0:
        raise SpoolError(path, EMPTY)
    if data.size < C_HEADER.size or bytes(data[:8]) != C_MAGIC:
        raise SpoolError(path, "not an interposer spool (no TRAINIOC header)")
    fields = C_HEADER.unpack_from(raw, 0)
    version, hdr_size, rec_size = fields[1], fields[2], fields[3]
    if version != C_VERSION or rec_size != RECORD_DTYPE.itemsize:
        raise SpoolError(path, f"interposer spool version {version} ({rec_size} B records); trainio reads {C_VERSION}")
    header = {
        "pid": fields[5],
        "ppid": fields[6],
        "start_ns": fields[7],
        "untraced_rchar": fields[8],
        "dropped": fields[9],
        "stopped": bool(fields[10]),
        "forked": bool(fields[11]),
        "time_stamps": "tsc" if fields[13] else "clock_gettime",
        "stop_reason": _cstr(fields[14]),
        "exe": _cstr(fields[15]),
        "argv": [a.decode(errors="replace") for a in bytes(fields[16][: fields[12]]).split(b"\0") if a],
        "socket_bytes": fields[17],
    }
    lost = []
    chunks = []
    offset = hdr_size
    while offset + SEGMENT.size <= data.size:
        magic, kind, size, cursor = SEGMENT.unpack_from(raw, offset)
        if magic != SEGMENT_MAGIC or size == 0:
            break
        if kind == SEG_RECS:
            cap = (size - 64) // rec_size
            count = min(cursor, cap, (data.size - offset - 64) // rec_size)
            recs = data[offset + 64 : offset + 64 + count * rec_size].view(RECORD_DTYPE)
            committed = recs["op"] != 0
            if committed.all():
                chunks.append(recs)
            else:
                lost.append(f"{path}: {int((~committed).sum())} records half-written when the process ended")
                chunks.append(recs[committed])
        offset += size
    if header["dropped"] and not header["stopped"]:
        lost.append(f"process {header['pid']}: {header['dropped']} I/O records dropped (no room in the spool)")
    recs = np.concatenate(chunks) if chunks else np.zeros(0, RECORD_DTYPE)
    return header, recs, data, lost


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _paths(recs: np.ndarray, data: np.ndarray) -> pa.Array:
    """Each record's path (null without one), sliced out of the spool without a Python loop."""
    n = len(recs)
    has = np.flatnonzero(recs["path_len"] > 0)
    if has.size == 0:
        return pa.nulls(n, pa.string())
    order = has[np.argsort(recs["path_off"][has], kind="stable")]
    starts = recs["path_off"][order].astype(np.int64)
    ends = starts + recs["path_len"][order]
    # Consecutive (start, end) pairs as offsets: even values are the paths, odd ones the gaps.
    offsets = np.empty(2 * len(order), dtype=np.int64)
    offsets[0::2], offsets[1::2] = starts, ends
    spans = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    values = spans.take(pa.array(np.arange(0, len(offsets), 2)))
    try:
        values.validate(full=True)
    except pa.ArrowInvalid:  # a non-UTF-8 file name
        values = pa.array([v.decode(errors="replace") for v in values.cast(pa.large_binary()).to_pylist()])
    slot = np.full(n, -1, dtype=np.int64)
    slot[order] = np.arange(len(order))
    return values.cast(pa.string()).take(pa.array(slot, mask=slot < 0))


def _records_table(recs: np.ndarray, data: np.ndarray, pid: int) -> pa.Table:
    n = len(recs)
    op = recs["op"]
    is_read = IS_READ[op]
    is_open = IS_OPEN[op]
    returned = recs["returned"]
    fd = np.where(is_open, np.where(returned >= 0, returned, -1), recs["fd"]).astype(np.int32)
    arrays = [
        pa.array(np.full(n, pid, dtype=np.int32)),
        pa.array(recs["tid"]),
        _OPS.take(pa.array(op.astype(np.int32))),
        pa.array(fd),
        pa.array(recs["file_id"].astype(np.int64)),
        _paths(recs, data),
        _KINDS.take(pa.array(recs["kind"].astype(np.int32))),
        pa.array(recs["offset"], mask=recs["offset"] < 0),
        pa.array(recs["requested"], mask=~(is_read | (op == 10) | (op == 14))),  # mmap, munmap: the length
        pa.array(returned, mask=~is_read | (returned < 0)),
        pa.array(returned),
        pa.array(recs["start_ns"]),
        pa.array(recs["dur_ns"]),
        pa.nulls(n, pa.string()),
        pa.nulls(n, pa.string()),
    ]
    return pa.Table.from_arrays(arrays, schema=IO_SPOOL_SCHEMA)


def read_py_spool(path: Path) -> PySpool:
    """The Python recorder's facts, DataLoader events and object operations of one process."""
    data = _load(path).tobytes()
    if not data:
        raise SpoolError(path, EMPTY)
    if len(data) < sp.HEADER.size or data[:8] != sp.MAGIC:
        raise SpoolError(path, "not a Python recorder spool (no TRAINIOP header)")
    _, version, hdr_size, seg_size, pid, ppid, start_ns = sp.HEADER.unpack_from(data, 0)
    if version != sp.VERSION:
        raise SpoolError(path, f"Python spool version {version}; this trainio reads {sp.VERSION}")
    dropped, stopped, reason = sp.STATE.unpack_from(data, sp.STATE_OFFSET)
    header = {
        "pid": pid,
        "ppid": ppid,
        "start_ns": start_ns,
        "dropped": dropped,
        "stopped": bool(stopped),
        "stop_reason": _cstr(reason),
    }
    facts: dict = {}
    events: list[tuple] = []
    samples: list[tuple[int, int | None, int, np.ndarray]] = []
    objects: list[tuple] = []
    split: set[int] = set()  # threads whose current fetch spans frames
    lost = []
    for seg in range(hdr_size, len(data), seg_size):
        pos, seg_end = seg, min(seg + seg_size, len(data))
        while pos + sp.FRAME.size <= seg_end:
            size, kind = sp.FRAME.unpack_from(data, pos)
            if size == 0:
                break
            if size < sp.FRAME.size or pos + size > seg_end:
                lost.append(f"{path}: corrupt frame at byte {pos}; the rest of its segment is skipped")
                break
            body = pos + sp.FRAME.size
            try:
                if kind == sp.FACTS:
                    _merge_facts(facts, json.loads(data[body : pos + size]))
                elif kind == sp.EVENT:
                    events.append(_event(data, body))
                elif kind == sp.FETCH:
                    fetch = _fetch(data, body, samples, split)
                    if fetch is not None:
                        events.append(fetch)
                elif kind == sp.BATCH:
                    tid, loader, epoch, batch, step_start, start, end, step_cpu, cpu = sp.BATCH_BODY.unpack_from(
                        data, body
                    )
                    if step_start != sp.NULL64:
                        step = (tid, "step", loader, epoch, batch - 1, None, None, None, step_start, start, None)
                        events.append((*step, _null(step_cpu, sp.NULL64)))
                    events.append((tid, "batch", loader, epoch, batch, None, None, None, start, end, None, cpu))
                elif kind == sp.OBJECT:
                    objects.append(_object(data, body))
            except (struct.error, ValueError) as exc:  # json and numpy errors are ValueErrors too
                lost.append(f"{path}: unreadable frame at byte {pos} skipped ({exc})")
            pos += size
    if dropped and not stopped:
        lost.append(f"process {pid}: {dropped} DataLoader/object events too large for the spool, dropped")
    return PySpool(header, facts, _events_table(pid, events, samples), _objects_table(pid, objects), lost)


LISTED_FACTS = ("errors", "reaped", "ended_threads", "object_clients")
"""Facts that accumulate over a process's life; the others are replaced by their latest value."""


def _merge_facts(facts: dict, new: dict) -> None:
    lists = {key: facts.get(key, []) + new.pop(key, []) for key in LISTED_FACTS}
    facts.update(new)
    facts.update({key: value for key, value in lists.items() if value})


def _null(value: int, null: int) -> int | None:
    return None if value == null else value


def _fetch(data: bytes, body: int, samples: list, split: set[int]) -> tuple | None:
    """A fetch frame: its samples go to ``samples``; the fetch event (None until its last frame)."""
    tid, worker, n, n_indices, listed, batched, start, end = sp.FETCH_BODY.unpack_from(data, body)
    pos = body + sp.FETCH_BODY.size
    used = [_null(v, sp.NULL64) for v in sp.USAGE.unpack_from(data, pos)]
    pos += sp.USAGE.size
    times = np.frombuffer(data, dtype="<i8", count=sp.SAMPLE_FIELDS * n, offset=pos).reshape(n, sp.SAMPLE_FIELDS)
    times = times.copy()
    times[:, 1:3] += start  # the samples' times count from the fetch's start
    pos += sp.SAMPLE.size * n
    worker = _null(worker, sp.NULL32)
    if n:
        samples.append((tid, worker, batched, times))
    if end == sp.NULL64:  # more samples of this fetch follow
        split.add(tid)
        return None
    indices = None
    if n_indices != sp.NO_INDICES:
        indices = list(struct.unpack_from(f"<{n_indices}q", data, pos))
    elif listed and tid not in split and (times[:, 0] >= 0).all():
        indices = times[:, 0].tolist()
    split.discard(tid)
    cpu, majflt_minflt = used[0], (used[2], used[1])
    return (tid, "fetch", None, None, None, worker, None, indices, start, end, None, cpu, *majflt_minflt, used[3])


def _event(data: bytes, body: int) -> tuple:
    tid, code, loader, epoch, batch, worker, sample, start, end, cpu, n, info_len = sp.EVENT_BODY.unpack_from(
        data, body
    )
    pos = body + sp.EVENT_BODY.size
    indices = None
    if n != sp.NO_INDICES:
        indices = list(struct.unpack_from(f"<{n}q", data, pos))
        pos += 8 * n
    info = data[pos : pos + info_len].decode(errors="replace") if info_len else None
    return (
        tid,
        _EVENT_NAMES.get(code, "?"),
        _null(loader, sp.NULL32),
        _null(epoch, sp.NULL32),
        _null(batch, sp.NULL64),
        _null(worker, sp.NULL32),
        _null(sample, sp.NULL64),
        indices,
        start,
        end,
        info,
        _null(cpu, sp.NULL64),
    )


def _object(data: bytes, body: int) -> tuple:
    tid, code, result, offset, requested, returned, start, dur, *lengths = sp.OBJECT_BODY.unpack_from(data, body)
    pos = body + sp.OBJECT_BODY.size
    texts: list[str | None] = []
    for n in lengths:
        texts.append(None if n == sp.NO_TEXT else data[pos : pos + n].decode(errors="replace"))
        pos += 0 if n == sp.NO_TEXT else n
    path, bucket, key = texts
    return (
        tid,
        _OBJECT_NAMES.get(code, "?"),
        path,
        bucket,
        key,
        _null(offset, sp.NULL64),
        _null(requested, sp.NULL64),
        _null(returned, sp.NULL64),
        result,
        start,
        dur,
    )


def _events_table(pid: int, events: list[tuple], samples: list[tuple[int, int | None, int, np.ndarray]]) -> pa.Table:
    tables = []
    fields = list(EVENTS_SPOOL_SCHEMA)[1:]
    if events:
        width = len(fields)
        columns = list(zip(*(e + (None,) * (width - len(e)) for e in events), strict=True))
        arrays = [pa.array([pid] * len(events), pa.int32())]
        arrays += [pa.array(col, f.type) for col, f in zip(columns, fields, strict=True)]
        tables.append(pa.Table.from_arrays(arrays, schema=EVENTS_SPOOL_SCHEMA))
    if samples:
        sizes = np.array([len(t) for *_, t in samples])
        times = np.concatenate([t for *_, t in samples])
        n = len(times)
        worker = np.repeat(np.array([-1 if w is None else w for _, w, _, _ in samples], dtype=np.int32), sizes)
        batched = np.repeat(np.array([b for _, _, b, _ in samples], dtype=np.int64), sizes)
        infos = pa.array([None] + [f'{{"batched": {b}}}' for b in range(1, int(batched.max()) + 1)], pa.string())
        index = times[:, 0]

        def measured(column: int) -> pa.Array:
            values = times[:, column]
            return pa.array(values, mask=values < 0)  # -1: not measured

        arrays = [
            pa.array(np.full(n, pid, dtype=np.int32)),
            pa.array(np.repeat(np.array([tid for tid, *_ in samples], dtype=np.int32), sizes)),
            pa.array(["sample"]).take(np.zeros(n, dtype=np.int64)),
            pa.nulls(n, pa.int32()),
            pa.nulls(n, pa.int32()),
            pa.nulls(n, pa.int64()),
            pa.array(worker, mask=worker < 0),
            pa.array(index, mask=index < 0),
            pa.nulls(n, pa.list_(pa.int64())),
            pa.array(times[:, 1]),
            pa.array(times[:, 2]),
            infos.take(pa.array(batched)),
            measured(3),
            measured(5),  # majflt
            measured(4),  # minflt
            measured(6),
        ]
        tables.append(pa.Table.from_arrays(arrays, schema=EVENTS_SPOOL_SCHEMA))
    return pa.concat_tables(tables) if tables else EVENTS_SPOOL_SCHEMA.empty_table()


def _objects_table(pid: int, objects: list[tuple]) -> pa.Table:
    if not objects:
        return IO_SPOOL_SCHEMA.empty_table()
    tid, op, path, bucket, key, offset, requested, returned, result, start, dur = zip(*objects, strict=True)
    n = len(objects)
    arrays = [
        pa.array([pid] * n, pa.int32()),
        pa.array(tid, pa.int32()),
        pa.array(op, pa.string()),
        pa.array([-1] * n, pa.int32()),
        pa.array([0] * n, pa.int64()),
        pa.array(path, pa.string()),
        pa.array(["object"] * n, pa.string()),
        pa.array(offset, pa.int64()),
        pa.array(requested, pa.int64()),
        pa.array(returned, pa.int64()),
        pa.array(result, pa.int64()),
        pa.array(start, pa.int64()),
        pa.array(dur, pa.int64()),
        pa.array(bucket, pa.string()),
        pa.array(key, pa.string()),
    ]
    return pa.Table.from_arrays(arrays, schema=IO_SPOOL_SCHEMA)
