"""Replay a trace's data reads as S3 GetObject calls (Ceph RGW, MinIO, AWS S3), with boto3.

Debian's fio has no S3 engine, so this module lays the data set out as objects and issues the
GETs itself. :func:`replay_s3` is the entry point; :func:`plan_gets` says what it would do. The
schedule is ``replay fio``'s (:func:`trainio.replay.fioreplay.build_plan`): the same processes, order,
pacing and N-node shares, so that the two replays of one trace can be compared.

The mapping from traced file reads to GETs:

* Objects: every traced data file is one object, key = its path relative to the trace's data
  root (:func:`trainio.replay.iolog.dataset_root`), as large as the furthest byte read from it (the size
  ``layout_dataset`` gives the same file), filled with seeded random bytes. Objects already in
  the bucket with that size are kept, so uploading again is cheap.
* One GET per *read run*: between an open of a file and its close, reads of that file that
  follow each other byte for byte form a run (offsets of plain reads counted as ``replay fio``
  counts them). A run that covers the whole object -- the ``open, read, read, ..., close`` of a
  file per sample, however many ``read`` calls the decoder made -- is one plain GET of the
  object. Any other run -- a ``pread`` at an offset, a shard read in pieces with seeks between
  them, a file read only in part -- is one ranged GET, ``Range: bytes=a-b`` (b inclusive). Reads
  that returned no data (end-of-file probes) move nothing and are left out; opens, stats and
  closes have no S3 counterpart (an object store has no open), so their cost is not replayed.
* Concurrency and order: one worker thread per traced process that read data, issuing its GETs
  one at a time in traced order, each when the run's first read was issued (a process's threads
  are serialised, as in ``replay fio``).
* Time: each worker starts as long after the first as its process did and waits before each GET
  for the traced gap since its previous GET's issue (x ``time_scale``); a GET that takes longer
  than the gap delays everything after it, as it would the training run (fio's iolog pacing).
  ``no_stall`` drops every wait and every start delay.
* Nodes: ``nodes=N`` runs N copies at once, each node with its own connection pool, each reading
  its DistributedSampler share: unit ``k`` of a process (its ``k``-th file open with the reads
  of it) goes to node ``k mod N`` at the time of the process's unit ``k // N``
  (:func:`trainio.replay.fioreplay.split_shares`), so 1/N of the GETs per node, interleaved, each node at
  the traced per-sample pace: N nodes put N times the request rate on the endpoint and finish in
  about 1/N of the traced time. ``traced_duration_s`` is the trace's own span of the reads
  (first start to last end), ``details["planned_duration_s"]`` the N-node schedule's.

Latency is measured per GET from the call to the end of the body read; the time to the response
headers (first byte) is in ``details``. The bytes moved must equal the bytes the trace read, or
:class:`~trainio.replay.result.ReplayVerificationError` names both. Credentials come from the arguments
or ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` and never reach a result or a message.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

from trainio.replay.fioreplay import PlanOp, build_plan
from trainio.replay.result import ReplayError, ReplayResult, ReplayVerificationError
from trainio.tracefile import Trace

Progress = Callable[[str], None]

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 2
"""botocore attempts per request (the first and one retry): an unreachable endpoint fails fast."""
UPLOAD_THREADS = 8
SINGLE_PUT_MAX = 64 * 2**20
PART_SIZE = 16 * 2**20
MAX_PARTS = 10_000
BODY_CHUNK = 2**20
MAX_WORKERS = 512
"""Worker threads (nodes x traced processes) one replay may start: the load stays bounded."""
PROGRESS_EVERY_S = 2.0


class S3CredentialsError(ReplayError):
    """No S3 credentials in the arguments or the environment."""


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
    jobs: tuple[GetJob, ...]
    objects: dict[str, int]
    """Key -> bytes."""
    data_root: str
    nodes: int
    traced_duration_s: float
    """The trace's span of the reads, first start to last end."""
    planned_duration_s: float
    """How long the schedule lasts at the traced pace x time_scale."""

    @property
    def ops(self) -> int:
        return sum(len(job.gets) for job in self.jobs)

    @property
    def bytes(self) -> int:
        return sum(get.length for job in self.jobs for get in job.gets)

    @property
    def ranged_ops(self) -> int:
        return sum(not get.whole for job in self.jobs for get in job.gets)


def runs_to_gets(ops: Sequence[PlanOp], sizes: dict[str, int]) -> tuple[GetOp, ...]:
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
    with tempfile.TemporaryDirectory(prefix="trainio-s3-plan-") as workdir:
        plan = build_plan(trace, workdir, nodes=nodes, time_scale=time_scale)
    jobs = tuple(GetJob(job.name, job.node, job.delay_us, runs_to_gets(job.ops, plan.sizes)) for job in plan.jobs)
    s3 = S3Plan(jobs, plan.sizes, plan.data_root, nodes, plan.traced_duration_s, plan.planned_duration_s)
    if s3.bytes != plan.expected_bytes:
        raise ReplayError(f"the GETs planned move {s3.bytes} bytes, the trace's reads {plan.expected_bytes}")
    return s3


# ---------------------------------------------------------------------------- S3 plumbing


def _boto():
    """boto3 and botocore, imported on use (they are an optional dependency of trainio)."""
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError as exc:
        raise ReplayError(f"S3 replay needs boto3, which is not installed ({exc}): pip install boto3") from exc
    return boto3, botocore


def credentials(access_key: str | None = None, secret_key: str | None = None) -> tuple[str, str]:
    """The keys given, else ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``."""
    access = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        raise S3CredentialsError(
            "no S3 credentials: pass access_key/secret_key or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return access, secret


def s3_client(
    endpoint: str, access_key: str | None = None, secret_key: str | None = None, *, pool: int = 10, session=None
):
    """A boto3 S3 client for ``endpoint`` (path-style addressing, short connect timeout, one retry).

    ``session``: a ``boto3.session.Session`` to make it from (its loaded service models make a
    second client cheap; a session is not thread-safe); a new one by default."""
    boto3, botocore = _boto()
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"endpoint(={endpoint!r}) must be an http:// or https:// URL")
    access, secret = credentials(access_key, secret_key)
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=max(pool, 1),
    )
    return (session or boto3.session.Session()).client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=config,
    )


def _unreachable(endpoint: str, exc: BaseException) -> ReplayError:
    return ReplayError(f"cannot reach S3 endpoint {endpoint}: {exc}")


def _client_error(endpoint: str, bucket: str, what: str, exc: BaseException) -> ReplayError:
    error = getattr(exc, "response", {}).get("Error", {})
    code = error.get("Code") or type(exc).__name__
    return ReplayError(f"S3 endpoint {endpoint} refused to {what} bucket {bucket!r}: {code} {error.get('Message', '')}")


def _seeded_bytes(key: str, start: int, length: int, seed: int) -> bytes:
    """Random bytes of object ``key`` from ``start`` (each 16 MiB part drawn on its own, so that
    parts can be made independently)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode()), start // PART_SIZE])
    return rng.bytes(length)


def _put(client, bucket: str, key: str, size: int, seed: int) -> None:
    if size <= SINGLE_PUT_MAX:
        body = b"".join(
            _seeded_bytes(key, start, min(PART_SIZE, size - start), seed) for start in range(0, size, PART_SIZE)
        )
        client.put_object(Bucket=bucket, Key=key, Body=body)
        return
    if -(-size // PART_SIZE) > MAX_PARTS:
        raise ReplayError(f"object {key!r} of {size} bytes needs more than {MAX_PARTS} parts of {PART_SIZE} bytes")
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    try:
        for number, start in enumerate(range(0, size, PART_SIZE), 1):
            body = _seeded_bytes(key, start, min(PART_SIZE, size - start), seed)
            etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise


def _listing_prefix(keys: Iterable[str]) -> str:
    prefix = os.path.commonprefix(list(keys))
    return prefix[: prefix.rfind("/") + 1]


@dataclass(frozen=True)
class UploadSummary:
    objects: int
    bytes: int
    uploaded: int
    uploaded_bytes: int


def ensure_objects(
    client,
    endpoint: str,
    bucket: str,
    sizes: dict[str, int],
    *,
    upload: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> UploadSummary:
    """Make ``bucket`` hold every object of ``sizes`` (key -> bytes), creating the bucket if need
    be; objects present with the right size are kept. With ``upload=False`` a missing object is
    an error. Unreachable endpoints and refusals raise :class:`ReplayError` naming the endpoint."""
    _, botocore = _boto()
    errors = botocore.exceptions
    try:
        try:
            client.head_bucket(Bucket=bucket)
        except errors.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404 or not upload:
                raise _client_error(endpoint, bucket, "open", exc) from None
            client.create_bucket(Bucket=bucket)
        present: dict[str, int] = {}
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=_listing_prefix(sizes))
        for page in pages:
            present.update((item["Key"], item["Size"]) for item in page.get("Contents", []))
        missing = sorted(key for key, size in sizes.items() if present.get(key) != size)
        if missing and not upload:
            raise ReplayError(
                f"bucket {bucket!r} at {endpoint} lacks {len(missing)} of the {len(sizes)} objects to read "
                f"(first: {missing[0]!r}); upload them first"
            )
        total = sum(sizes[key] for key in missing)
        if missing and progress:
            progress(f"uploading {len(missing)} objects ({total / 1e6:,.1f} MB) to {bucket}")
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            for future in [pool.submit(_put, client, bucket, key, sizes[key], seed) for key in missing]:
                future.result()
    except errors.ConnectionError as exc:
        raise _unreachable(endpoint, exc) from exc
    except errors.ClientError as exc:
        raise _client_error(endpoint, bucket, "write to", exc) from exc
    except errors.BotoCoreError as exc:
        raise ReplayError(f"S3 endpoint {endpoint}, bucket {bucket!r}: {exc}") from exc
    return UploadSummary(len(sizes), sum(sizes.values()), len(missing), total)


@dataclass(frozen=True)
class TimedGet:
    first_byte_s: float
    total_s: float
    """From the call to the end of the body."""
    bytes: int


def timed_get(client, bucket: str, key: str, range_header: str | None = None) -> TimedGet:
    """One GET, its body read to the end and dropped."""
    kwargs = {"Bucket": bucket, "Key": key}
    if range_header:
        kwargs["Range"] = range_header
    start = time.perf_counter()
    response = client.get_object(**kwargs)
    first = time.perf_counter()
    nbytes = 0
    body = response["Body"]
    try:
        for chunk in body.iter_chunks(BODY_CHUNK):
            nbytes += len(chunk)
    finally:
        body.close()
    return TimedGet(first - start, time.perf_counter() - start, nbytes)


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
    unreachable: BaseException | None = None
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


def _worker(job: GetJob, client, bucket: str, t0: float, tally: _Tally, no_stall: bool) -> tuple[float, float]:
    """Replay one job; returns its first GET's issue and its end (perf_counter seconds)."""
    _, botocore = _boto()
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
            got = timed_get(client, bucket, get.key, get.range_header)
        except botocore.exceptions.ConnectionError as exc:
            with tally.lock:
                tally.unreachable = tally.unreachable or exc
            tally.stop.set()
            break
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            tally.record(job.node, None, f"GET {get.key} {get.range_header or '(whole)'}: {exc}")
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
    upload: bool = True,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay the trace's data reads as GETs against ``endpoint``/``bucket`` (see the module docstring).

    Uploads the data set layout first (unless ``upload`` is false: then the objects must be
    there). Raises :class:`ReplayError` when the trace has no file reads to replay or the
    endpoint cannot be reached or stops answering, and :class:`ReplayVerificationError` when the
    GETs move other bytes than the trace read.
    """
    if nodes < 1:
        raise ValueError(f"nodes(={nodes}) must be >= 1")
    if not time_scale > 0:
        raise ValueError(f"time_scale(={time_scale}) must be > 0")
    say = progress or (lambda message: None)
    plan = plan_gets(trace, nodes=nodes, time_scale=time_scale)
    if len(plan.jobs) > MAX_WORKERS:
        raise ValueError(f"nodes(={nodes}) needs {len(plan.jobs)} worker threads, more than {MAX_WORKERS}")
    processes = len({job.name for job in plan.jobs if job.node == 0})
    say(
        f"plan: {plan.ops:,} GETs ({plan.ranged_ops:,} ranged) of {len(plan.objects):,} objects, "
        f"{plan.bytes / 1e6:,.1f} MB; {processes} traced process(es) x {nodes} node(s)"
    )
    uploader = s3_client(endpoint, access_key, secret_key, pool=UPLOAD_THREADS)
    layout = ensure_objects(uploader, endpoint, bucket, plan.objects, upload=upload, progress=say)
    # One client (connection pool) per node, made here: making clients is not thread-safe.
    clients = [s3_client(endpoint, access_key, secret_key, pool=processes + 1) for _ in range(nodes)]

    tally = _Tally()
    mode = "no-stall" if no_stall else "as-traced"
    say(f"replaying {plan.ops:,} GETs with {len(plan.jobs)} worker thread(s), {mode}")
    t0 = time.perf_counter() + 0.05  # every worker is up before the first GET is due
    with ThreadPoolExecutor(len(plan.jobs)) as pool:
        futures = [pool.submit(_worker, job, clients[job.node], bucket, t0, tally, no_stall) for job in plan.jobs]
        while wait(futures, timeout=PROGRESS_EVERY_S).not_done:
            with tally.lock:
                say(f"{tally.ops:,}/{plan.ops:,} GETs, {tally.bytes / 1e6:,.1f} MB, {tally.errors} error(s)")
        spans = [future.result() for future in futures]
    if tally.unreachable is not None:
        raise ReplayError(
            f"S3 endpoint {endpoint} stopped answering after {tally.ops:,} of {plan.ops:,} GETs: {tally.unreachable}"
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
        traced_duration_s=plan.traced_duration_s,
        lat_p50_ms=_percentile_ms(tally.latencies, 50),
        lat_p99_ms=_percentile_ms(tally.latencies, 99),
        errors=tally.errors,
        mode=mode,
        expected_bytes=plan.bytes,
        expected_ops=plan.ops,
        details={
            "engine": f"boto3 {_boto()[0].__version__}",
            "time_scale": time_scale,
            "planned_duration_s": plan.planned_duration_s,
            "first_byte_p50_ms": _percentile_ms(tally.first_bytes, 50),
            "first_byte_p99_ms": _percentile_ms(tally.first_bytes, 99),
            "ranged_gets": plan.ranged_ops,
            "whole_object_gets": plan.ops - plan.ranged_ops,
            "objects": layout.objects,
            "objects_uploaded": layout.uploaded,
            "uploaded_bytes": layout.uploaded_bytes,
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
