"""The Python recorder's spool: framed records written straight into a memory-mapped file.

Stdlib only: it runs in every traced process at start-up. The file is reserved on disk segment by
segment before it is mapped, so a full disk stops the recording instead of raising SIGBUS in the
training. A frame is ``[u32 size][u8 type][payload]``; ``size`` is written last, so a frame whose
writer died half-way reads as the end of the data. The layout and its version are in
docs/capture.md; ``trainio.tracer.spoolread`` reads it back at finalize.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import struct
import sys
import threading

from trainio.tracer import stdfds

MAGIC = b"TRAINIOP"
VERSION = 2
HEADER_SIZE = 4096
SEGMENT_SIZE = 256 << 10
FACTS_RESERVE = 8 << 10
"""Tail of each segment kept for process facts, so the exit record lands after recording stopped."""

HEADER = struct.Struct("<8sIIIiiq")  # magic, version, header size, segment size, pid, ppid, start_ns
STATE = struct.Struct("<QI128s")  # dropped frames, stopped, stop reason; at STATE_OFFSET
STATE_OFFSET = 64
FRAME = struct.Struct("<IB")  # size (header included; 0 = no frame here), type

FACTS, EVENT, FETCH, BATCH, OBJECT = b"F"[0], b"E"[0], b"S"[0], b"B"[0], b"O"[0]
EVENT_BODY = struct.Struct("<iBiiqiqqqqII")
"""tid, event code, loader_id, epoch, batch, worker_id, sample, start_ns, end_ns, cpu_ns, #indices, info bytes."""
USAGE = struct.Struct("<4q")
"""A thread's usage over an interval (``tracer/usage.py``): cpu_ns, minflt, majflt, read_bytes.
NULL64 = not measured."""
FETCH_BODY = struct.Struct("<iiIIBIqq")
"""A fetch and its samples, the hot path in one frame: tid, worker_id, n samples, n indices (NO_INDICES:
none, or the samples' own when the flag says so), whether the samples' indices are the fetch's,
batch size inside the dataset (0: none), fetch start_ns and end_ns (NULL64: more samples of the
fetch follow); then the fetch's USAGE; then n x SAMPLE; then the indices (int64)."""
SAMPLE = struct.Struct("@7q" if sys.byteorder == "little" else "<7q")
"""One dataset[i] or next(iterator) call: index (-1 unknown), start and end (ns from the fetch's
start_ns), then its USAGE (-1: not measured); the samples of a fetch are packed as they run (native
packing, little-endian; small numbers: CPython converts multi-digit integers the slow way)."""
SAMPLE_FIELDS = SAMPLE.size // 8
BATCH_BODY = struct.Struct("<iiiqqqqqq")
"""One batch of the training loop: tid, loader_id, epoch, batch, start_ns of the step before it
(NULL64: none), start_ns (next() called), end_ns (batch received), the step's cpu_ns, the wait's cpu_ns."""
OBJECT_BODY = struct.Struct("<iBqqqqqqHHH")
"""tid, op code, result, offset, requested, returned, start_ns, duration_ns, path/bucket/key lengths."""

EVENT_CODES = {"epoch_start": 1, "epoch_end": 2, "batch": 3, "step": 4, "fetch": 5}
OBJECT_CODES = {"get": 1, "head": 2, "list": 3, "put": 4}
NULL32 = -(2**31)
NULL64 = -(2**63)
NO_USAGE = (NULL64,) * 4
NO_INDICES = 0xFFFFFFFF
NO_TEXT = 0xFFFF
MAX_SAMPLES_PER_FRAME = 4096
MAX_INDICES = 8192


def _n32(value: int | None) -> int:
    return NULL32 if value is None else value


def _n64(value: int | None) -> int:
    return NULL64 if value is None else value


def is_live(path: str | os.PathLike) -> bool:
    """Whether the process writing a spool file still runs (it holds the file's lock until it ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def live_processes(spool_dir: str | os.PathLike) -> list[str]:
    """Names of the spool files in ``spool_dir`` whose process still runs."""
    names = sorted(n for n in os.listdir(spool_dir) if n.endswith(".spool"))
    return [n for n in names if is_live(os.path.join(spool_dir, n))]


class SpoolFullError(OSError):
    """The spool could not reserve disk space for its next segment."""


class PySpool:
    """One process's Python-level spool. Thread-safe; after a fork the child makes its own."""

    def __init__(self, path: str, pid: int, ppid: int, start_ns: int) -> None:
        self.path = path
        self.dropped = 0
        self.stopped: str | None = None
        self._lock = threading.Lock()
        with stdfds.kept_free():  # a closed stderr must not become this file
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # held while the process lives: finalize waits for it
            self._maps: list[mmap.mmap] = []
            self._reserve(0, HEADER_SIZE)
            self._header = mmap.mmap(self._fd, HEADER_SIZE)
        self._header[8 : HEADER.size] = HEADER.pack(MAGIC, VERSION, HEADER_SIZE, SEGMENT_SIZE, pid, ppid, start_ns)[8:]
        self._header[:8] = MAGIC  # last: a header without it is incomplete
        self._map: mmap.mmap | None = None
        self._pos = self._limit = 0
        self._next_segment()

    def _reserve(self, offset: int, length: int) -> None:
        try:
            os.posix_fallocate(self._fd, offset, length)
        except OSError as exc:
            raise SpoolFullError(exc.errno, f"cannot reserve spool space in {self.path}: {exc.strerror}") from exc

    def _next_segment(self) -> bool:
        offset = HEADER_SIZE + len(self._maps) * SEGMENT_SIZE
        try:
            self._reserve(offset, SEGMENT_SIZE)
        except SpoolFullError as exc:
            self._stop(exc.strerror or str(exc))
            return False
        with stdfds.kept_free():  # mmap duplicates the descriptor: not into a closed stdout
            self._map = mmap.mmap(self._fd, SEGMENT_SIZE, offset=offset)
        self._maps.append(self._map)
        self._pos, self._limit = 0, SEGMENT_SIZE - FACTS_RESERVE
        return True

    def _stop(self, reason: str) -> None:
        self.stopped = reason
        STATE.pack_into(self._header, STATE_OFFSET, self.dropped, 1, reason.encode()[:128])

    def write(self, kind: int, body: bytes) -> bool:
        """Append one frame; False when it was dropped (no room: recording has stopped)."""
        size = FRAME.size + len(body)
        with self._lock:
            limit = SEGMENT_SIZE if kind == FACTS else self._limit
            fits = self._map is not None and self._pos + size <= limit
            if not fits and (self.stopped or size > self._limit or not self._next_segment()):
                self.dropped += 1
                STATE.pack_into(self._header, STATE_OFFSET, self.dropped, 1, (self.stopped or "").encode()[:128])
                return False
            m, pos = self._map, self._pos
            assert m is not None
            m[pos + FRAME.size : pos + size] = body
            FRAME.pack_into(m, pos, size, kind)  # size last: commits the frame
            self._pos = pos + size
            return True

    def facts(self, **facts: object) -> None:
        self.write(FACTS, json.dumps(facts, default=str).encode())

    def event(
        self,
        tid: int,
        code: int,
        loader_id,
        epoch,
        batch,
        worker_id,
        sample,
        start_ns,
        end_ns,
        indices,
        info,
        cpu_ns=None,
    ):
        if indices is not None and len(indices) > MAX_INDICES:
            indices = None  # a frame must fit a segment; the samples still say which indices ran
        tail = b"" if indices is None else struct.pack(f"<{len(indices)}q", *indices)
        text = b"" if info is None else info.encode()
        body = EVENT_BODY.pack(
            tid,
            code,
            _n32(loader_id),
            _n32(epoch),
            _n64(batch),
            _n32(worker_id),
            _n64(sample),
            start_ns,
            end_ns,
            _n64(cpu_ns),
            NO_INDICES if indices is None else len(indices),
            len(text),
        )
        self.write(EVENT, body + tail + text)

    def fetch(
        self,
        tid: int,
        worker_id: int | None,
        start_ns: int,
        end_ns: int,
        usage: tuple,
        samples: bytes,
        indices: list[int] | None,
        indices_are_samples: bool,
        batched: int = 0,
    ) -> None:
        """A fetch, its USAGE, and its samples (packed SAMPLEs of its ``dataset[i]`` or ``next()``
        calls); ``indices``: the fetch's own when its samples do not carry them."""
        if indices is not None and len(indices) > MAX_INDICES:
            indices = None
        n = len(samples) // SAMPLE.size
        first = 0
        while True:
            count = min(n - first, MAX_SAMPLES_PER_FRAME)
            chunk = samples[first * SAMPLE.size : (first + count) * SAMPLE.size]
            first += count
            last = first >= n
            listed = NO_INDICES if not last or indices is None else len(indices)
            head = FETCH_BODY.pack(
                tid, _n32(worker_id), count, listed, indices_are_samples, batched, start_ns, end_ns if last else NULL64
            )
            tail = struct.pack(f"<{len(indices)}q", *indices) if last and indices else b""
            self.write(FETCH, b"".join((head, USAGE.pack(*(usage if last else NO_USAGE)), chunk, tail)))
            if last:
                return

    def batch(self, tid: int, loader_id: int, epoch: int, batch: int, step_start_ns, start_ns, end_ns, step_cpu, cpu):
        self.write(
            BATCH,
            BATCH_BODY.pack(
                tid, loader_id, epoch, batch, _n64(step_start_ns), start_ns, end_ns, _n64(step_cpu), _n64(cpu)
            ),
        )

    def object_op(self, tid: int, op: str, path: str, bucket, key, offset, requested, returned, result, start, dur):
        texts = [s.encode()[:65535] if s is not None else b"" for s in (path, bucket, key)]
        body = OBJECT_BODY.pack(
            tid,
            OBJECT_CODES[op],
            result,
            _n64(offset),
            _n64(requested),
            _n64(returned),
            start,
            dur,
            *(len(t) if s is not None else NO_TEXT for t, s in zip(texts, (path, bucket, key), strict=True)),
        )
        self.write(OBJECT, body + b"".join(texts))

    def abandon(self) -> None:
        """In a forked child: drop the parent's mappings and fd (and with it the child's share of the lock)."""
        for m in [self._header, *self._maps]:
            m.close()
        os.close(self._fd)
        self._lock = threading.Lock()
