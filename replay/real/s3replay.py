"""``replay s3``: replay a trace's data reads as S3 GetObject calls (Ceph RGW, MinIO, AWS S3).

Debian's fio has no S3 engine, so the data set is laid out as objects and the GETs are issued here,
from ``replay fio``'s schedule (:mod:`trainio.replay.real.schedule`): the same processes, order, pacing
and N-node shares, so that the two replays of one trace compare. Each run of contiguous reads of a file
between its open and close is one GET, ranged unless it covers the whole object (:func:`runs_to_gets`);
docs/replay.md says what is kept and what an object store cannot replay.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from trainio.replay.real.result import ReplayResult, ReplayVerificationError
from trainio.replay.real.schedule import Op, Schedule, build_schedule
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import DATA_PREFIX, ensure_layout
from trainio.replay.storage.s3 import (
    DEFAULT_TIMEOUTS,
    UPLOAD_THREADS,
    S3RequestError,
    S3Store,
    S3UnreachableError,
    TimedGet,
    Timeouts,
    boto_version,
    s3_client,
    timed_get,
)
from trainio.tracefile import Trace

Progress = Callable[[str], None]

MAX_WORKERS = 512
"""Worker threads (nodes x traced processes) one replay may start: the load stays bounded."""
PROGRESS_EVERY_S = 2.0


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class GetOp:
    """One GET: ``length`` bytes of ``key`` from ``offset``; ``whole`` = the object, no Range."""

    stamp_us: int
    """When it is due: microseconds after its job's start (its run's first read; x time_scale)."""
    key: str
    offset: int
    length: int
    whole: bool

    @property
    def range_header(self) -> str | None:
        return None if self.whole else f"bytes={self.offset}-{self.offset + self.length - 1}"


@dataclass(frozen=True)
class GetJob:
    """What one worker thread replays: node ``node``'s share of one traced process."""

    name: str
    node: int
    delay_us: int
    """Start after the earliest job's start (x time_scale)."""
    gets: tuple[GetOp, ...]


@dataclass(frozen=True)
class S3Plan:
    """The GETs of each job of a schedule; the schedule's files are the objects."""

    jobs: tuple[GetJob, ...]
    schedule: Schedule

    @property
    def objects(self) -> dict[str, int]:
        """Key -> bytes."""
        return self.schedule.sizes

    @property
    def data_root(self) -> str:
        return self.schedule.data_root

    @property
    def ops(self) -> int:
        return sum(len(job.gets) for job in self.jobs)

    @property
    def bytes(self) -> int:
        return sum(get.length for job in self.jobs for get in job.gets)

    @property
    def ranged_ops(self) -> int:
        return sum(not get.whole for job in self.jobs for get in job.gets)


def runs_to_gets(ops: Sequence[Op], sizes: dict[str, int]) -> tuple[GetOp, ...]:
    """One job's GETs: its reads merged into runs (a run ends at a read that does not continue it
    and at an open or close of its file), in the order of their first reads."""
    runs: dict[str, list[int]] = {}  # path -> [stamp, offset, length] of the open run
    gets: list[GetOp] = []

    def flush(path: str) -> None:
        run = runs.pop(path, None)
        if run is not None:
            stamp, offset, length = run
            gets.append(GetOp(stamp, path, offset, length, offset == 0 and length == sizes[path]))

    for op in ops:
        run = runs.get(op.path)
        if op.action == "read" and run is not None and op.offset == run[1] + run[2]:
            run[2] += op.length
            continue
        flush(op.path)
        if op.action == "read":
            runs[op.path] = [op.stamp_us, op.offset, op.length]
    for path in list(runs):
        flush(path)
    gets.sort(key=lambda get: get.stamp_us)  # stable: runs of one stamp keep their order
    return tuple(gets)


def plan_gets(trace: Trace | str | os.PathLike, *, nodes: int = 1, time_scale: float = 1.0) -> S3Plan:
    """The objects and the GETs of each job (traced process x node); see the module docstring."""
    schedule = build_schedule(trace, nodes=nodes, time_scale=time_scale, command="replay s3")
    jobs = tuple(
        GetJob(job.name, job.node, job.delay_us, runs_to_gets(job.ops, schedule.sizes)) for job in schedule.jobs
    )
    s3 = S3Plan(jobs, schedule)
    if s3.bytes != schedule.expected_bytes:
        raise ReplayError(f"the GETs planned move {s3.bytes} bytes, the trace's reads {schedule.expected_bytes}")
    return s3


# ---------------------------------------------------------------------------- the replay


@dataclass
class _Tally:
    """What the workers measured; the lock guards every field."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    latencies: list[float] = field(default_factory=list)
    first_bytes: list[float] = field(default_factory=list)
    ops: int = 0
    bytes: int = 0
    errors: int = 0
    first_error: str = ""
    unreachable: S3UnreachableError | None = None
    node_ops: dict[int, int] = field(default_factory=dict)
    node_bytes: dict[int, int] = field(default_factory=dict)

    def record(self, node: int, got: TimedGet | None, error: str = "") -> None:
        with self.lock:
            self.ops += 1
            self.node_ops[node] = self.node_ops.get(node, 0) + 1
            if got is not None:
                self.bytes += got.bytes
                self.node_bytes[node] = self.node_bytes.get(node, 0) + got.bytes
                self.latencies.append(got.total_s)
                self.first_bytes.append(got.first_byte_s)
            if error:
                self.errors += 1
                self.first_error = self.first_error or error


def _worker(
    job: GetJob, client, bucket: str, prefix: str, t0: float, tally: _Tally, no_stall: bool
) -> tuple[float, float]:
    """Replay one job; returns its first GET's issue and its end (perf_counter seconds)."""
    due = t0 + (job.delay_us + job.gets[0].stamp_us) / 1e6
    first = None
    for k, get in enumerate(job.gets):
        if not no_stall:
            while (delay := due - time.perf_counter()) > 0 and not tally.stop.is_set():
                tally.stop.wait(delay)
        if tally.stop.is_set():
            break
        issued = time.perf_counter()
        first = first if first is not None else issued
        if k + 1 < len(job.gets):
            due = issued + (job.gets[k + 1].stamp_us - get.stamp_us) / 1e6
        try:
            got = timed_get(client, bucket, prefix + get.key, get.range_header)
        except S3UnreachableError as exc:
            with tally.lock:
                tally.unreachable = tally.unreachable or exc
            tally.stop.set()
            break
        except S3RequestError as exc:
            tally.record(job.node, None, str(exc))
            continue
        short = f"GET {get.key} returned {got.bytes} bytes, not {get.length}" if got.bytes != get.length else ""
        tally.record(job.node, got, short)
    end = time.perf_counter()
    return (first if first is not None else end), end


def _percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3) if values else 0.0


def replay_s3(
    trace: Trace | str | os.PathLike,
    endpoint: str,
    bucket: str,
    *,
    nodes: int = 1,
    no_stall: bool = False,
    time_scale: float = 1.0,
    access_key: str | None = None,
    secret_key: str | None = None,
    prefix: str = DATA_PREFIX,
    overwrite: bool = False,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay the trace's data reads as GETs against ``endpoint``/``bucket`` (see the module docstring).

    Lays the data set out first under the key ``prefix``, a layout root of trainio's own
    (:mod:`trainio.replay.storage.layout`; ``overwrite`` lets trainio write where other objects are).
    Every request waits at most ``timeouts`` and is retried once. Raises :class:`ReplayError` when the
    trace has no file reads to replay or the endpoint cannot be reached or stops answering,
    :class:`~trainio.replay.storage.layout.ForeignDataError` when the prefix holds objects trainio did
    not write, and :class:`ReplayVerificationError` when the GETs move other bytes than the trace read.
    """
    if nodes < 1:
        raise ValueError(f"nodes(={nodes}) must be >= 1")
    if not time_scale > 0:
        raise ValueError(f"time_scale(={time_scale}) must be > 0")
    say = progress or (lambda message: None)
    plan = plan_gets(trace, nodes=nodes, time_scale=time_scale)
    for note in plan.schedule.notes:
        say(f"warning: {note}")
    if len(plan.jobs) > MAX_WORKERS:
        raise ValueError(f"nodes(={nodes}) needs {len(plan.jobs)} worker threads, more than {MAX_WORKERS}")
    processes = len({job.name for job in plan.jobs if job.node == 0})
    say(
        f"plan: {plan.ops:,} GETs ({plan.ranged_ops:,} ranged) of {len(plan.objects):,} objects, "
        f"{plan.bytes / 1e6:,.1f} MB; {processes} traced process(es) x {nodes} node(s)"
    )
    uploader = s3_client(endpoint, access_key, secret_key, pool=UPLOAD_THREADS, timeouts=timeouts)
    store = S3Store(uploader, endpoint, bucket, prefix)
    layout = ensure_layout(store, plan.objects, purpose="replay", overwrite=overwrite, say=say)
    # One client (connection pool) per node, made here: making clients is not thread-safe.
    clients = [s3_client(endpoint, access_key, secret_key, pool=processes + 1, timeouts=timeouts) for _ in range(nodes)]

    tally = _Tally()
    mode = "no-stall" if no_stall else "as-traced"
    say(f"replaying {plan.ops:,} GETs with {len(plan.jobs)} worker thread(s), {mode}")
    t0 = time.perf_counter() + 0.05  # every worker is up before the first GET is due
    with ThreadPoolExecutor(len(plan.jobs)) as pool:
        futures = [
            pool.submit(_worker, job, clients[job.node], bucket, prefix, t0, tally, no_stall) for job in plan.jobs
        ]
        while wait(futures, timeout=PROGRESS_EVERY_S).not_done:
            with tally.lock:
                say(f"{tally.ops:,}/{plan.ops:,} GETs, {tally.bytes / 1e6:,.1f} MB, {tally.errors} error(s)")
        spans = [future.result() for future in futures]
    if tally.unreachable is not None:
        raise ReplayError(
            f"S3 endpoint {endpoint} stopped answering after {tally.ops:,} of {plan.ops:,} GETs: "
            f"{tally.unreachable.reason}"
        )

    node_spans: dict[int, tuple[float, float]] = {}
    for job, (start, end) in zip(plan.jobs, spans, strict=True):
        low, high = node_spans.get(job.node, (start, end))
        node_spans[job.node] = (min(low, start), max(high, end))
    result = ReplayResult(
        target=f"s3:{endpoint}/{bucket}",
        nodes=nodes,
        bytes=tally.bytes,
        ops=tally.ops,
        duration_s=max(end for _, end in spans) - min(start for start, _ in spans),
        traced_duration_s=plan.schedule.traced_duration_s,
        lat_p50_ms=_percentile_ms(tally.latencies, 50),
        lat_p99_ms=_percentile_ms(tally.latencies, 99),
        errors=tally.errors,
        mode=mode,
        expected_bytes=plan.bytes,
        expected_ops=plan.ops,
        details={
            "engine": boto_version(),
            "time_scale": time_scale,
            "planned_duration_s": plan.schedule.planned_duration_s,
            "first_byte_p50_ms": _percentile_ms(tally.first_bytes, 50),
            "first_byte_p99_ms": _percentile_ms(tally.first_bytes, 99),
            "ranged_gets": plan.ranged_ops,
            "whole_object_gets": plan.ops - plan.ranged_ops,
            "objects": layout.files,
            "objects_uploaded": layout.written,
            "uploaded_bytes": layout.bytes_written,
            "layout": layout.to_dict(),
            "warnings": [*plan.schedule.warnings, *plan.schedule.notes],
            "workers": len(plan.jobs),
            "data_root": plan.data_root,
            "per_node": [
                {
                    "node": node,
                    "ops": tally.node_ops.get(node, 0),
                    "bytes": tally.node_bytes.get(node, 0),
                    "duration_s": node_spans[node][1] - node_spans[node][0],
                }
                for node in sorted(node_spans)
            ],
        },
    )
    if tally.errors or tally.bytes != plan.bytes or tally.ops != plan.ops:
        raise ReplayVerificationError(
            f"the replay against {result.target} moved {tally.bytes:,} bytes in {tally.ops:,} GETs; the trace "
            f"implies {plan.bytes:,} bytes in {plan.ops:,} GETs "
            f"({tally.errors} failed; first: {tally.first_error or '-'})"
        )
    return result
