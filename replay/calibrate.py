"""Measure a real storage target and write the profile ``replay what-if --profile`` loads.

Targets (``parse_target``):

* ``rgw:http://HOST:PORT/BUCKET`` (or ``s3:`` in the same form): an S3 endpoint, measured with
  boto3 GETs (keys ``trainio-calibrate/SIZE/N`` are uploaded once and kept for the next run).
  Credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
* ``rados:POOL``: a Ceph pool, measured with fio's rados engine through ``CEPH_CONF``. fio 3.33's
  rados engine needs ``conf=`` (it crashes without it) and never checks an I/O's result: reads of
  objects that are not there "succeed" at 30-60 GB/s. The objects are therefore written first and
  checked with ``rados -p POOL stat`` before and after the reads; a missing or short object fails
  the calibration.
* ``cephfs:/PATH``: a folder inside a CephFS file system, measured through libcephfs (no kernel
  mount) by ``replay/cephfs_helper.py`` under Debian's ``/usr/bin/python3``, through ``CEPH_CONF``:
  random reads of a 64 MiB file with libcephfs's object cache off, and open + read + close and stat
  of 256 small files, each once on a fresh mount (cold: an MDS round trip each). The files are
  written once and kept under PATH for the next run, as the rados objects are.
* a local directory: a file system, measured with fio (``O_DIRECT`` where the file system allows
  it, so that the device and not the page cache is measured) and, for the file-per-sample cost,
  with timed ``open``/``read``/``close`` and ``stat`` calls from Python. Its files are removed
  afterwards.

The matrix is small and bounded by ``budget_s``: single-stream requests of 4 KiB - 4 MiB (random
reads or GETs, one at a time, each followed by a ``PAUSE_S`` pause as a loader's decoding
follows it; against RGW in interleaved passes over the sizes, see ``_rgw_single_stream``), small
(4 KiB) requests from 1 and several threads or queue depths,
large (4 MiB) ones from several, sequential next to random reads for files, and open / stat for
directories. From it:

* request latency (first byte) and per-stream bandwidth: a least-squares fit of the single-stream
  time per request against its size, ``time = latency + size / bandwidth`` (:func:`fit_request_costs`,
  minimising *relative* errors: an unweighted fit such as ``trainio.models.captured.fit_latency_bandwidth``
  lets the 4 MiB points decide and loses the 4 KiB latency in their noise);
* aggregate bandwidth: the best throughput of any measurement (the multi-thread large requests);
* request-rate limit: the best ops/s of the small-request measurements;
* open and stat latency (directories: data and metadata warm; CephFS: cold): the mean of the
  timed calls;
* CPU per request on this machine. Every cell records the client's CPU (the boto3 processes, fio's
  job processes with all their threads, the libcephfs helper) and the whole host's busy CPU
  (/proc/stat: user + nice + system + steal) over its timed phase. ``request_cpu`` is the intercept
  of the client's CPU per request against size over the single-stream cells (fitted as the
  latency is; CPU per byte stays inside the stream bandwidth). With ``colocated`` (the storage
  daemons run on this machine and share its cores with training: hyperconverged, or a dev
  cluster), ``colocated_cpu`` is the intercept of the host's busy CPU less the client's, per
  request. The profile's latency excludes the client's CPU (the model charges it on the node's
  cores, in the request's own time): fitted latency - request_cpu, floored at 0. The servers' CPU
  stays inside it (the servers work while the client waits; the model charges their CPU on the
  node's cores beside it);
* ``cpu_crowding`` (``fit_crowding``): how the CPU per request (the host's with ``colocated``,
  else the client's) grows from the fewest to the most client processes of the small-request
  cells of one request at a time each (RGW: 4 and 16, in alternating passes), as an exponent of
  their ratio; ``cpu_crowding_base`` is where ``request_cpu`` was measured, one stream on this
  host's cores. File systems and RADOS have no such pair of cells: 0, not measured;
* a request rate measured with this host's cores at least 90% busy (``CPU_BOUND_BUSY``) was this
  host's CPU limit, which the CPU keys already charge: the profile's ``iops`` is then unlimited.

fio's own ``usr_cpu`` / ``sys_cpu`` are of no use for the CPU per request: fio 3.33 reads them with
``getrusage(RUSAGE_THREAD)`` (lib/getrusage.c), forked jobs or not, so they hold the job's own
thread only, not librados' messenger threads: measured here, a quarter of the rados client's CPU
for 4 KiB reads, a fortieth for 4 MiB ones (the messengers receive the data). The job processes'
CPU, all threads, is read from ``/proc/PID/stat`` by a small script that fio runs as
``exec_prerun`` and ``exec_postrun`` (just after the engine's set-up, just before its tear-down),
together with /proc/stat. Directory jobs run as processes (fio's default, as DataLoader workers
do); the rados engine forces all jobs into one process (``td->o.use_thread = 1`` in its set-up),
whose CPU over the cell is then the client's.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import posixpath
import queue
import random
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from trainio.models.backend import BackendProfile, builtin_profile, load_profile
from trainio.models.units import format_size
from trainio.replay.fio import FioJob, FioOutputError, read_fio_json
from trainio.replay.fioreplay import _run_helper
from trainio.replay.result import ReplayError
from trainio.replay.s3replay import READ_TIMEOUT_S, TimedGet, _boto, ensure_objects, s3_client, timed_get

Progress = Callable[[str], None]

KiB, MiB = 2**10, 2**20
SIZES = (4 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB)
"""Request sizes of the single-stream measurements the latency / bandwidth fit uses."""
SMALL, LARGE = 4 * KiB, 4 * MiB
PAUSE_S = 2e-3
"""Pause after each request of the single-stream measurements. A loader issues a request, then
decodes for milliseconds while its connection and the servers' threads go idle; back to back,
client and servers stay hot and each request costs markedly less CPU than it does in a loader
(boto3 + RGW here: 2.1-3.2 ms of CPU per GET back to back, 2.8-4.0 ms with a 2 ms pause, in the
same minutes; a DataLoader worker's GET in bench/accuracy.py: 3.0-3.4 ms). The pause is not
timed: latencies stay per request."""
DATA_PATTERNS = ("get", "randread", "read")
"""Measurement patterns that read data (the rest open files or stat them)."""
MIN_BUDGET_S = 5.0
MIN_CELL_S = 0.3
"""Shortest time one measurement runs, whatever the budget."""
MIN_OPS = 3
RGW_COPIES = 4
"""Objects per size for RGW (spread over placement groups)."""
RGW_PREFIX = "trainio-calibrate/"
RGW_PER_CELL_S = 0.04
"""Start-up of one RGW measurement per client stream: a forked process, its client and connection."""
CROWDING_STREAMS = (4, 16)
"""Concurrent client processes of the two small-GET cells that ``cpu_crowding`` is fitted from."""
CROWDING_CHUNK_S = 0.5
"""Shortest timed part of a crowding cell worth a pass of its own."""
CROWDING_MAX_PASSES = 4
STREAM_START_TIMEOUT_S = 30.0
RADOS_OBJECTS = 8
RADOS_BYTES = 64 * MiB
"""Total size of the calibration objects in a pool: 8 objects of 8 MiB (under the OSD's object limit)."""
RADOS_PREFIX = "trainio-calibrate-"
DIR_FILE_BYTES = 128 * MiB
DIR_SAMPLES = 256
DIR_SAMPLE_BYTES = 16 * KiB
WORK_DIR = ".trainio-calibrate"
CLIENT_CPU = {
    "rgw": "the boto3 client processes (time.process_time over the GETs)",
    "rados": "fio's job processes, all threads (librados' included; /proc/PID/stat at exec_prerun/postrun)",
    "directory": "fio's job processes (/proc/PID/stat at exec_prerun/postrun)",
    "cephfs": "the libcephfs client process, all threads (time.process_time over the timed phase)",
}
"""What a calibration's client CPU is, by target kind (the profile's comment)."""
FIO_PER_CELL_S = {"rados": 0.4, "directory": 0.15}
"""fio's own time per measurement (a rados job connects to the cluster)."""
CEPHFS_DATA = "data.bin"
CEPHFS_PER_CELL_S = 0.15
"""The helper's time per measurement besides the timed phase (a metadata cell mounts afresh)."""
CPU_BOUND_BUSY = 0.9
"""A request rate measured with at least this fraction of the host's cores busy was CPU-bound."""
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
# File system types whose files every node shares: a directory on one of them gives a shared profile.
NETWORK_FILE_SYSTEMS = {
    "nfs",
    "nfs4",
    "ceph",
    "fuse.ceph-fuse",
    "cifs",
    "smb3",
    "lustre",
    "glusterfs",
    "beegfs",
    "gpfs",
}


class CalibrationError(ReplayError):
    """A measurement that failed or cannot be trusted (fio errors, objects missing, no tool)."""


class TargetError(ValueError):
    """A target that is not ``rgw:URL/BUCKET``, ``s3:URL/BUCKET``, ``rados:POOL``, ``cephfs:/PATH`` or a
    directory."""


# ---------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    kind: str
    """``rgw``, ``rados``, ``cephfs`` or ``directory``."""
    text: str
    endpoint: str = ""
    bucket: str = ""
    pool: str = ""
    path: Path | None = None
    fs_path: str = ""
    """``cephfs``: the folder inside the file system."""


def parse_target(text: str) -> Target:
    """``rgw:http://HOST:PORT/BUCKET``, ``s3:...`` (the same), ``rados:POOL``, ``cephfs:/PATH`` or a
    directory path."""
    scheme, _, rest = text.partition(":")
    if scheme in ("rgw", "s3") and rest:
        url = urlsplit(rest)
        bucket = url.path.strip("/")
        if url.scheme not in ("http", "https") or not url.netloc or not bucket or "/" in bucket:
            raise TargetError(f"target(={text!r}): expected {scheme}:http://HOST:PORT/BUCKET")
        return Target("rgw", text, endpoint=f"{url.scheme}://{url.netloc}", bucket=bucket)
    if scheme == "rados":
        if not rest or "/" in rest:
            raise TargetError(f"target(={text!r}): expected rados:POOL")
        return Target("rados", text, pool=rest)
    if scheme == "cephfs":
        folder = posixpath.normpath(rest) if rest else ""
        if not folder.startswith("/") or folder == "/" or folder.startswith("//"):
            raise TargetError(f"target(={text!r}): expected cephfs:/PATH (a folder inside the file system, not /)")
        return Target("cephfs", text, fs_path=folder)
    path = Path(text).expanduser()
    if not path.is_dir():
        raise TargetError(
            f"target(={text!r}) is not a directory, nor rgw:http://HOST:PORT/BUCKET, s3:..., rados:POOL, cephfs:/PATH"
        )
    return Target("directory", text, path=path.absolute())


# ---------------------------------------------------------------------------- measurements and the fit


@dataclass(frozen=True)
class Measurement:
    """One cell of the matrix: ``ops`` requests of ``size`` bytes from ``threads`` x ``depth``."""

    name: str
    pattern: str
    """``get``, ``read`` (sequential), ``randread``, ``open-read-close`` or ``stat``."""
    size: int
    threads: int
    depth: int
    ops: int
    bytes: int
    seconds: float
    """Wall time of the measurement."""
    latency_s: float
    """Mean time per request, to its last byte."""
    first_byte_s: float | None = None
    """GET: mean time to the response headers; open-read-close: mean time of the open(2)."""
    cpu_s: float | None = None
    """CPU seconds per request of the client that made the requests (all its processes and threads)."""
    host_cpu_s: float | None = None
    """Busy CPU seconds per request of the whole host (every process, the client's included)."""
    busy: float | None = None
    """Fraction of the host's cores busy during the measurement."""

    @property
    def server_cpu_s(self) -> float | None:
        """The host's CPU per request less the client's: the storage daemons' when they run here."""
        if self.cpu_s is None or self.host_cpu_s is None:
            return None
        return max(0.0, self.host_cpu_s - self.cpu_s)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0

    @property
    def single_stream(self) -> bool:
        return self.threads == 1 and self.depth == 1


def merge_measurements(parts: list[Measurement]) -> Measurement:
    """One cell measured in several parts (interleaved passes) as one: counts and times summed,
    per-request means weighted by each part's requests, ``busy`` by its seconds."""
    first, ops, seconds = parts[0], sum(m.ops for m in parts), sum(m.seconds for m in parts)

    def per_request(name: str) -> float | None:
        values = [getattr(m, name) for m in parts]
        if any(v is None for v in values):
            return None
        return sum(v * m.ops for v, m in zip(values, parts, strict=True)) / ops

    busy = [m.busy for m in parts]
    return replace(
        first,
        ops=ops,
        bytes=sum(m.bytes for m in parts),
        seconds=seconds,
        latency_s=per_request("latency_s"),
        first_byte_s=per_request("first_byte_s"),
        cpu_s=per_request("cpu_s"),
        host_cpu_s=per_request("host_cpu_s"),
        busy=None if None in busy else sum(b * m.seconds for b, m in zip(busy, parts, strict=True)) / seconds,
    )


def stat_ticks(fields: list[str]) -> tuple[int, int]:
    """(busy, total) clock ticks from the first eight numbers of a /proc/stat ``cpu`` line: busy is
    user + nice + system + steal (interrupt time is charged to no process), total all eight."""
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + steal, user + nice + system + idle + iowait + irq + softirq + steal


def host_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all the host's cores so far (:func:`stat_ticks`)."""
    with open("/proc/stat", encoding="ascii") as f:
        return stat_ticks(f.readline().split()[1:9])


def cpu_fields(
    ops: int, client_cpu_s: float, start: tuple[int, int], end: tuple[int, int], tool_cpu_s: float = 0.0
) -> dict[str, float | None]:
    """A measurement's ``cpu_s``, ``host_cpu_s`` and ``busy`` from the client's CPU seconds over its
    timed phase and the host's ticks at its start and end. ``tool_cpu_s`` (the measuring tool's own
    bookkeeping, e.g. fio's main process) is neither the client's nor the servers'."""
    busy_ticks, total_ticks = end[0] - start[0], end[1] - start[1]
    return {
        "cpu_s": client_cpu_s / ops,
        "host_cpu_s": max(0.0, busy_ticks * CLOCK_TICK_S - tool_cpu_s) / ops,
        "busy": busy_ticks / total_ticks if total_ticks > 0 else None,
    }


@dataclass(frozen=True)
class Fit:
    """``seconds = latency_s + size / bandwidth``; ``residuals`` = (fit - measured) / measured."""

    latency_s: float
    bandwidth: float
    residuals: tuple[float, ...]

    def seconds(self, size: float) -> float:
        return self.latency_s + size / self.bandwidth


def fit_request_costs(sizes, seconds) -> Fit:
    """Least-squares fit of per-request time against size, minimising relative errors.

    Both results stay physical: a fit whose latency comes out negative is redone through the
    origin (all transfer time), one whose per-byte cost is not positive gives an unlimited
    bandwidth and the (relative-error) mean time as latency.
    """
    s = np.asarray(sizes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if s.shape != t.shape or s.ndim != 1:
        raise ValueError(f"sizes and seconds must be two lists of one length (got {s.shape} and {t.shape})")
    if s.size < 2 or np.ptp(s) == 0:
        raise ValueError(f"fitting latency and bandwidth needs at least two request sizes (got {sorted(set(s))})")
    if not (np.all(t > 0) and np.all(np.isfinite(t))):
        raise ValueError(f"seconds must be finite and > 0 (got {t.min()})")
    if np.any(s < 0):
        raise ValueError(f"sizes must be >= 0 (got {s.min()})")
    # Minimise sum(((a + c*s - t) / t)^2): ordinary least squares on rows divided by t.
    design = np.column_stack([1 / t, s / t])
    (latency, per_byte), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    if per_byte <= 0:
        latency, per_byte = float(np.sum(1 / t) / np.sum(1 / t**2)), 0.0
    elif latency < 0:
        latency, per_byte = 0.0, float(np.sum(s / t) / np.sum((s / t) ** 2))
    residuals = (latency + per_byte * s - t) / t
    bandwidth = 1 / per_byte if per_byte > 0 else math.inf
    return Fit(float(latency), float(bandwidth), tuple(float(r) for r in residuals))


@dataclass(frozen=True)
class Crowding:
    """``cpu_crowding``: the CPU per request (the client's, plus the servers' when co-located) of
    small requests from ``low`` and from ``high`` concurrent client processes, and the exponent
    ``ratio = (high / low) ** exponent`` of their ratio (``measured``; ``exponent`` is floored at 0)."""

    low: Measurement
    high: Measurement
    low_cpu_s: float
    high_cpu_s: float
    measured: float

    @property
    def exponent(self) -> float:
        return max(0.0, self.measured)


def fit_crowding(measurements: list[Measurement] | tuple[Measurement, ...], *, colocated: bool) -> Crowding | None:
    """The crowding exponent from the small (the smallest size) data-request cells of one request
    at a time from several processes: the fewest and the most processes; None without two such
    cells with a CPU per request."""
    data = [m for m in measurements if m.pattern in DATA_PATTERNS]
    if not data:
        return None

    def cpu(m: Measurement) -> float:
        return (m.host_cpu_s if colocated else m.cpu_s) or 0.0

    small = min(m.size for m in data)
    cells = [m for m in data if m.size == small and m.depth == 1 and m.threads > 1 and cpu(m) > 0]
    if len({m.threads for m in cells}) < 2:
        return None
    low, high = min(cells, key=lambda m: m.threads), max(cells, key=lambda m: m.threads)
    exponent = math.log(cpu(high) / cpu(low)) / math.log(high.threads / low.threads)
    return Crowding(low, high, cpu(low), cpu(high), exponent)


@dataclass(frozen=True)
class Fitted:
    """The profile numbers a calibration derives from its measurements."""

    latency_s: float
    stream_bandwidth: float
    aggregate_bandwidth: float
    iops: float
    residuals: dict[str, float]
    """Measurement name -> relative error of the latency / bandwidth fit."""
    aggregate_from: str
    iops_from: str
    open_latency_s: float | None = None
    stat_latency_s: float | None = None
    request_cpu_s: float | None = None
    """Client CPU per request: the intercept of CPU per request against size (None: not measured)."""
    colocated_cpu_s: float | None = None
    """The host's CPU less the client's per request, intercept as above (None: not co-located)."""
    iops_busy: float | None = None
    """Fraction of the host's cores busy while the best request rate was measured."""
    open_cpu_s: float | None = None
    """Client CPU per file of the open-read-close cell less ``request_cpu_s``: its open and close."""
    colocated_open_cpu_s: float | None = None
    """The servers' CPU per file of that cell less ``colocated_cpu_s`` (None: not co-located)."""
    crowding: Crowding | None = None
    """How the CPU per request grew with client processes (None: no two cells to compare)."""

    @property
    def open_wait_s(self) -> float | None:
        """The mean open time less the open's CPU (charged on the node's cores), floored at 0."""
        if self.open_latency_s is None:
            return None
        return max(0.0, self.open_latency_s - (self.open_cpu_s or 0.0))

    @property
    def wait_latency_s(self) -> float:
        """The fitted latency less the client's CPU (charged in the request's own time), floored at 0."""
        return max(0.0, self.latency_s - (self.request_cpu_s or 0.0))

    @property
    def cpu_bound(self) -> bool:
        """Whether the best request rate was measured with this host's cores (nearly) all busy."""
        return self.iops_busy is not None and self.iops_busy >= CPU_BOUND_BUSY


def fit_intercept(sizes, values) -> float | None:
    """The per-request part of a per-request cost (CPU seconds) that grows with size: the intercept
    of :func:`fit_request_costs` over the points with a positive value, their mean when fewer than
    two sizes have one; None when none has."""
    points = [(s, v) for s, v in zip(sizes, values, strict=True) if v is not None and v > 0 and math.isfinite(v)]
    if not points:
        return None
    if len({s for s, _ in points}) < 2:
        return float(np.mean([v for _, v in points]))
    return fit_request_costs([s for s, _ in points], [v for _, v in points]).latency_s


def fit_measurements(measurements: list[Measurement] | tuple[Measurement, ...], *, colocated: bool = False) -> Fitted:
    """Fit the profile numbers: latency, stream bandwidth and CPU per request from the single-stream
    data requests, aggregate bandwidth and request rate from the best cells, open / stat from their
    cells. ``colocated``: also the servers' CPU per request (see :attr:`Measurement.server_cpu_s`)."""
    data = [m for m in measurements if m.pattern in DATA_PATTERNS]
    stream = [m for m in data if m.single_stream and m.pattern != "read"] or [m for m in data if m.single_stream]
    if not stream:
        raise CalibrationError("no single-stream measurements to fit latency and bandwidth from")
    fit = fit_request_costs([m.size for m in stream], [m.latency_s for m in stream])
    best_bw = max(data, key=lambda m: m.bytes_per_s)
    small = [m for m in data if m.size <= min(x.size for x in data)]
    best_rate = max(small, key=lambda m: m.ops_per_s)
    opens = [m for m in measurements if m.pattern == "open-read-close"]
    stats = [m for m in measurements if m.pattern == "stat"]
    sizes = [m.size for m in stream]
    colocated_cpu = fit_intercept(sizes, [m.server_cpu_s for m in stream]) if colocated else None
    if colocated and colocated_cpu is None and all(m.server_cpu_s is not None for m in stream):
        colocated_cpu = 0.0  # measured, and nothing above the client's own
    request_cpu = fit_intercept(sizes, [m.cpu_s for m in stream])
    open_cpu = colocated_open = None
    if opens and opens[0].cpu_s is not None and request_cpu is not None:
        open_cpu = max(0.0, opens[0].cpu_s - request_cpu)
    if colocated and opens and opens[0].server_cpu_s is not None:
        colocated_open = max(0.0, opens[0].server_cpu_s - (colocated_cpu or 0.0))
    return Fitted(
        latency_s=fit.latency_s,
        stream_bandwidth=fit.bandwidth,
        aggregate_bandwidth=best_bw.bytes_per_s,
        iops=best_rate.ops_per_s,
        residuals={m.name: r for m, r in zip(stream, fit.residuals, strict=True)},
        aggregate_from=best_bw.name,
        iops_from=best_rate.name,
        open_latency_s=opens[0].first_byte_s if opens else None,
        stat_latency_s=stats[0].latency_s if stats else None,
        request_cpu_s=request_cpu,
        colocated_cpu_s=colocated_cpu,
        iops_busy=best_rate.busy,
        open_cpu_s=open_cpu,
        colocated_open_cpu_s=colocated_open,
        crowding=fit_crowding(measurements, colocated=colocated),
    )


@dataclass(frozen=True)
class Calibration:
    """What ``calibrate`` measured, what it fitted and the profile it wrote."""

    target: str
    kind: str
    measurements: tuple[Measurement, ...]
    fitted: Fitted
    profile_path: Path
    profile: BackendProfile
    elapsed_s: float
    tool: str
    """``fio-3.33``, ``boto3 1.x`` or ``libcephfs 16.2.15``."""
    notes: tuple[str, ...] = ()
    colocated: bool = False
    """Whether the storage daemons were taken to share this machine's cores (``colocated_cpu``)."""

    @property
    def residuals(self) -> dict[str, float]:
        return self.fitted.residuals


# ---------------------------------------------------------------------------- the budget


@dataclass
class _Budget:
    seconds: float
    start: float = field(default_factory=time.monotonic)

    @property
    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def per_cell(self, cells: int, overhead_s: float = 0.0) -> float:
        """Seconds each of ``cells`` measurements may run, ``overhead_s`` of tool time each set aside."""
        return max(MIN_CELL_S, self.left * 0.9 / cells - overhead_s)


def _name(pattern: str, size: int, threads: int, depth: int) -> str:
    concurrency = f"{threads}x{depth}" if threads > 1 and depth > 1 else f"t{threads}" if threads > 1 else f"qd{depth}"
    return f"{pattern} {format_size(size)} {concurrency}"


# ---------------------------------------------------------------------------- RGW


def _rgw_keys(size: int) -> list[str]:
    return [f"{RGW_PREFIX}{format_size(size)}/{i}" for i in range(RGW_COPIES)]


def _checked_get(client, target: Target, key: str, size: int) -> TimedGet:
    _, botocore = _boto()
    try:
        got = timed_get(client, target.bucket, key)
    except botocore.exceptions.ConnectionError as exc:
        raise ReplayError(f"cannot reach S3 endpoint {target.endpoint}: {exc}") from exc
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise CalibrationError(f"GET {key} from {target.text} failed: {exc}") from exc
    if got.bytes != size:
        raise CalibrationError(f"GET {key} from {target.text} returned {got.bytes} bytes, not {size}")
    return got


@dataclass(frozen=True)
class _Stream:
    """One client stream's timed phase: its GETs, wall and CPU seconds, the host's ticks around it."""

    wall_s: float
    gets: list[TimedGet]
    cpu_s: float
    host_start: tuple[int, int]
    host_end: tuple[int, int]
    error: str = ""


def _timed_gets(
    client, target: Target, size: int, seconds: float, rng: random.Random, *, min_ops: int, pause_s: float = 0.0
) -> _Stream:
    """GETs of random calibration objects of ``size`` for ``seconds`` (at least ``min_ops``),
    ``pause_s`` idle after each."""
    keys = _rgw_keys(size)
    gets = []
    host_start, cpu = host_ticks(), time.process_time()
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds or len(gets) < min_ops:
        gets.append(_checked_get(client, target, rng.choice(keys), size))
        if pause_s > 0:
            time.sleep(pause_s)
    wall = time.perf_counter() - begin
    return _Stream(wall, gets, time.process_time() - cpu, host_start, host_ticks())


def _rgw_stream(target: Target, size: int, seconds: float, seed: int, session, barrier) -> _Stream:
    """One of several concurrent client streams, back to back, after one untimed GET that opens
    its connection and a wait at ``barrier`` for the others."""
    client = s3_client(target.endpoint, pool=1, session=session)
    rng = random.Random(seed)
    _checked_get(client, target, rng.choice(_rgw_keys(size)), size)
    barrier.wait(STREAM_START_TIMEOUT_S)
    return _timed_gets(client, target, size, seconds, rng, min_ops=MIN_OPS)


def _rgw_stream_process(target: Target, size: int, seconds: float, seed: int, session, barrier, results) -> None:
    """``_rgw_stream`` in a child process: its result, or the error's message, goes on ``results``."""
    try:
        results.put(_rgw_stream(target, size, seconds, seed, session, barrier))
    except (ReplayError, threading.BrokenBarrierError) as exc:
        results.put(_Stream(0.0, [], 0.0, (0, 0), (0, 0), str(exc) or type(exc).__name__))


def _get_measurement(size: int, streams: int, outcomes: list[_Stream]) -> Measurement:
    """A GET cell from its streams' outcomes; the host's ticks run from the first start to the last end."""
    gets = [got for outcome in outcomes for got in outcome.gets]
    return Measurement(
        name=_name("get", size, streams, 1),
        pattern="get",
        size=size,
        threads=streams,
        depth=1,
        ops=len(gets),
        bytes=sum(got.bytes for got in gets),
        seconds=max(outcome.wall_s for outcome in outcomes),
        latency_s=float(np.mean([got.total_s for got in gets])),
        first_byte_s=float(np.mean([got.first_byte_s for got in gets])),
        **cpu_fields(
            len(gets),
            sum(outcome.cpu_s for outcome in outcomes),
            min((outcome.host_start for outcome in outcomes), key=lambda ticks: ticks[1]),
            max((outcome.host_end for outcome in outcomes), key=lambda ticks: ticks[1]),
        ),
    )


def _rgw_single_stream(target: Target, seconds: float, session, say: Progress) -> list[Measurement]:
    """The latency and CPU fit's cells: GETs of every size in ``SIZES`` from one client, paced
    as a loader issues them (``PAUSE_S``), in interleaved passes of about ``MIN_CELL_S`` per
    size (small to large, then large to small) rather than one block per size. This machine's
    speed drifts over seconds: one client's CPU per 4 KiB GET, second by second, ran 1.8-4.5 ms
    here in one 10 s stretch. One block per size hands each size its own moment, which the fit
    reads as slope or intercept; interleaved, every size spans the same moments."""
    client = s3_client(target.endpoint, pool=1, session=session)
    rng = random.Random(0)
    for size in SIZES:  # opens the connection, outside the timed phases
        _checked_get(client, target, rng.choice(_rgw_keys(size)), size)
    passes = max(1, int(seconds / (len(SIZES) * MIN_CELL_S)))
    chunk_s = seconds / (passes * len(SIZES))
    parts: dict[int, list[Measurement]] = {size: [] for size in SIZES}
    for number in range(passes):
        say(f"GET {format_size(SIZES[0])}-{format_size(SIZES[-1])}, one client stream: pass {number + 1} of {passes}")
        for size in SIZES if number % 2 == 0 else SIZES[::-1]:
            stream = _timed_gets(client, target, size, chunk_s, rng, min_ops=-(-MIN_OPS // passes), pause_s=PAUSE_S)
            parts[size].append(_get_measurement(size, 1, [stream]))
    return [merge_measurements(parts[size]) for size in SIZES]


def _rgw_cell(target: Target, size: int, streams: int, seconds: float, session) -> Measurement:
    """GETs of ``size`` from ``streams`` concurrent clients, back to back. They run in forked
    processes, as DataLoader workers do: threads of one Python process would share its GIL and
    measure the client, not the endpoint. The children inherit ``session`` with its service
    models loaded, so that making their clients costs little. The client's CPU is that of the
    stream processes over their timed phases."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(streams)
    results = context.Queue()
    processes = [
        context.Process(
            target=_rgw_stream_process, args=(target, size, seconds, i, session, barrier, results), daemon=True
        )
        for i in range(streams)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=seconds + STREAM_START_TIMEOUT_S + READ_TIMEOUT_S) for _ in processes]
    except queue.Empty as exc:
        codes = [process.exitcode for process in processes]
        raise CalibrationError(f"a GET process against {target.text} gave no result (exit codes {codes})") from exc
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join()
    errors = [outcome.error for outcome in outcomes if outcome.error]
    if errors:
        raise CalibrationError(f"{len(errors)} of {streams} GET streams failed; first: {errors[0]}")
    return _get_measurement(size, streams, outcomes)


def _rgw_crowding(target: Target, seconds: float, session, say: Progress) -> list[Measurement]:
    """4 KiB GETs from each of ``CROWDING_STREAMS`` concurrent client processes, back to back, in
    alternating passes (so that both counts span the same moments, as ``_rgw_single_stream``'s
    sizes do): how the CPU per request grows with processes per core (``cpu_crowding``) and the
    best small-request rate."""
    per_pass = sum(RGW_PER_CELL_S * streams + CROWDING_CHUNK_S for streams in CROWDING_STREAMS)
    passes = max(1, min(CROWDING_MAX_PASSES, int(seconds / per_pass)))
    parts: dict[int, list[Measurement]] = {streams: [] for streams in CROWDING_STREAMS}
    for number in range(passes):
        for streams in CROWDING_STREAMS if number % 2 == 0 else CROWDING_STREAMS[::-1]:
            chunk_s = max(MIN_CELL_S, seconds / passes / len(CROWDING_STREAMS) - RGW_PER_CELL_S * streams)
            say(
                f"GET {format_size(SMALL)} from {streams} client streams for {chunk_s:.1f} s, "
                f"pass {number + 1} of {passes}"
            )
            parts[streams].append(_rgw_cell(target, SMALL, streams, chunk_s, session))
    return [merge_measurements(parts[streams]) for streams in CROWDING_STREAMS]


def _calibrate_rgw(target: Target, budget: _Budget, say: Progress) -> tuple[list[Measurement], str, list[str]]:
    boto3, _ = _boto()
    concurrent = [(LARGE, 4), (LARGE, 8)]
    session = boto3.session.Session()
    client = s3_client(target.endpoint, pool=8, session=session)
    sizes = {key: size for size in SIZES for key in _rgw_keys(size)}
    ensure_objects(client, target.endpoint, target.bucket, sizes, progress=say)
    cells = len(SIZES) + len(CROWDING_STREAMS) + len(concurrent)
    measurements = _rgw_single_stream(target, budget.per_cell(cells, RGW_PER_CELL_S) * len(SIZES), session, say)
    crowding_s = budget.per_cell(len(CROWDING_STREAMS) + len(concurrent)) * len(CROWDING_STREAMS)
    measurements += _rgw_crowding(target, crowding_s, session, say)
    for i, (size, streams) in enumerate(concurrent):
        seconds = budget.per_cell(len(concurrent) - i, RGW_PER_CELL_S * streams)
        say(f"GET {format_size(size)} from {streams} client streams for {seconds:.1f} s")
        measurements.append(_rgw_cell(target, size, streams, seconds, session))
    notes = [
        f"measured with boto3 on this machine ({os.cpu_count()} CPUs), one process per stream: "
        "client CPU bounds the GET rate it can see"
    ]
    return measurements, f"boto3 {boto3.__version__}", notes


# ---------------------------------------------------------------------------- fio (rados, directories)


def _fio() -> tuple[str, str]:
    fio = shutil.which("fio")
    if fio is None:
        raise CalibrationError("fio is not installed: run scripts/install-system-deps.sh")
    version = subprocess.run([fio, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return fio, version or "fio (unknown version)"


@dataclass(frozen=True)
class _Cell:
    pattern: str
    size: int
    threads: int
    depth: int
    pause_s: float = 0.0
    """Idle time after each request (fio's thinktime)."""

    @property
    def name(self) -> str:
        return _name(self.pattern, self.size, self.threads, self.depth)


SNAPSHOT_SCRIPT = """#!/bin/sh
# replay calibrate: run by fio as exec_prerun / exec_postrun. Appends to $2 one line
#   EVENT JOB_PID JOB_UTIME JOB_STIME MAIN_UTIME MAIN_STIME cpu USER NICE SYSTEM IDLE ...
# (clock ticks) for the fio job process that runs this -- the nearest ancestor named fio, all of
# its threads -- and its parent (fio's main process when jobs are forked), with the host's
# /proc/stat cpu line.
set -f
event=$1 out=$2 p=$PPID
while :; do
    read -r line < "/proc/$p/stat" || exit 1
    set -- $line
    [ "$2" = "(fio)" ] && break
    [ "$4" -gt 1 ] || exit 1
    p=$4
done
job="$p ${14} ${15}" main=$4
read -r line < "/proc/$main/stat" || exit 1
set -- $line
read -r host < /proc/stat
echo "$event $job ${14} ${15} $host" >> "$out"
"""


EXEC_NOTICE = re.compile(r"^\S+ : Saving output of (prerun|postrun) in \S+\.txt$")


def _snapshot_lines(scratch: Path, index: int) -> list[str]:
    """The exec_prerun / exec_postrun lines of cell ``index``'s jobs."""
    script, out = shlex.quote(str(scratch / "snapshot.sh")), shlex.quote(str(scratch / f"c{index}.cpu"))
    return [f"exec_prerun={script} pre {out}", f"exec_postrun={script} post {out}"]


def _job_file(
    global_lines: list[str], cells: list[_Cell], seconds: float, engine: Callable[[_Cell], str], scratch: Path
) -> str:
    """Each cell a stonewalled job of ``threads`` processes (fio's default; the rados engine makes them
    threads), with the CPU snapshots of ``_snapshot_lines``."""
    (scratch / "snapshot.sh").write_text(SNAPSHOT_SCRIPT, encoding="utf-8")
    (scratch / "snapshot.sh").chmod(0o755)
    lines = ["[global]", *global_lines, "time_based=1", f"runtime={max(1, round(seconds * 1000))}ms"]
    for i, cell in enumerate(cells):
        lines += [
            "",
            f"[c{i}]",
            "stonewall",
            f"rw={cell.pattern}",
            f"bs={cell.size}",
            f"numjobs={cell.threads}",
            f"iodepth={cell.depth}",
            f"ioengine={engine(cell)}",
            *([f"thinktime={round(cell.pause_s * 1e6)}"] if cell.pause_s > 0 else []),
            *_snapshot_lines(scratch, i),
        ]
    return "\n".join(lines) + "\n"


def _run_fio(fio: str, job_text: str, work: Path, timeout_s: float, what: str, *, readonly: bool) -> list[FioJob]:
    """Run fio in ``work`` (its job file, output and exec_prerun files go there)."""
    job = work / "calibrate.fio"
    out = work / "calibrate.json"
    job.write_text(job_text, encoding="utf-8")
    try:
        proc = subprocess.run(
            [fio, *(["--readonly"] if readonly else []), "--output-format=json", f"--output={out}", str(job)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=work,
        )
    except subprocess.TimeoutExpired as exc:
        raise CalibrationError(f"fio against {what} did not finish within {timeout_s:.0f} s") from exc
    tail = (proc.stderr.strip().splitlines() or [""])[-1]
    if proc.returncode != 0:
        reason = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        raise CalibrationError(f"fio against {what} failed ({reason}): {tail or 'no message'}")
    try:
        _drop_exec_notices(out)
        result = read_fio_json(out)
    except FioOutputError as exc:
        raise CalibrationError(f"fio against {what}: {exc}") from exc
    failed = [j for j in result.jobs if j.error]
    if failed:
        message = "; ".join(result.messages) or tail
        raise CalibrationError(
            f"fio job {failed[0].jobname} against {what} failed with errno {failed[0].error}: {message}"
        )
    return list(result.jobs)


def _snapshot_cpu(scratch: Path, index: int, cell: _Cell, ops: int, what: str) -> dict[str, float | None]:
    """``cpu_fields`` of cell ``index`` from its jobs' exec_prerun / exec_postrun snapshots. Each
    job process counts from its first start snapshot to its last end snapshot. Forked jobs have one
    each, and their parent's CPU (fio's main process: bookkeeping) is the tool's. Jobs run as
    threads of one process (the rados engine forces that) share it: its CPU over the cell, fio's
    bookkeeping included, is the client's."""
    path = scratch / f"c{index}.cpu"
    snaps: dict[str, list[tuple[int, ...]]] = {"pre": [], "post": []}
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            event, pid, *numbers = line.split()
            busy, total = stat_ticks(numbers[5:13])
            snaps[event].append(
                (int(pid), int(numbers[0]) + int(numbers[1]), int(numbers[2]) + int(numbers[3]), busy, total)
            )
    except (OSError, KeyError, ValueError) as exc:
        raise CalibrationError(
            f"fio against {what}: cannot read the CPU snapshots of {cell.name} ({path}): {exc}"
        ) from exc
    pre, post = snaps["pre"], snaps["post"]
    if len(pre) != cell.threads or len(post) != cell.threads or {s[0] for s in pre} != {s[0] for s in post}:
        raise CalibrationError(
            f"fio against {what}: {len(pre)} start and {len(post)} end CPU snapshots of {cell.name}'s "
            f"{cell.threads} job(s) ({path})"
        )
    client = 0
    for pid in {snap[0] for snap in pre}:
        client += max(s[1] for s in post if s[0] == pid) - min(s[1] for s in pre if s[0] == pid)
    first = min(pre, key=lambda snap: snap[4])
    last = max(post, key=lambda snap: snap[4])
    tool = last[2] - first[2] if len({snap[0] for snap in pre}) > 1 else 0
    return cpu_fields(ops, client * CLOCK_TICK_S, first[3:5], last[3:5], tool * CLOCK_TICK_S)


def _drop_exec_notices(out: Path) -> None:
    """Remove the lines fio writes into its JSON output for exec_prerun / exec_postrun ("c0 : Saving
    output of prerun in c0.prerun.txt")."""
    try:
        text = out.read_text(encoding="utf-8")
    except OSError:
        return  # read_fio_json says why
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not EXEC_NOTICE.match(line)]
    if len(kept) != len(lines):
        out.write_text("".join(kept), encoding="utf-8")


def _fio_measurements(jobs: list[FioJob], cells: list[_Cell], what: str, scratch: Path) -> list[Measurement]:
    measurements = []
    for i, cell in enumerate(cells):
        mine = [job for job in jobs if job.jobname == f"c{i}"]
        ops = sum(job.read.total_ios for job in mine)
        if len(mine) != cell.threads or ops == 0:
            raise CalibrationError(f"fio against {what} reported {len(mine)} job(s) and {ops} reads for {cell.name}")
        latency_ns = sum(job.read.lat_ns.mean * job.read.total_ios for job in mine) / ops
        measurements.append(
            Measurement(
                name=cell.name,
                pattern=cell.pattern,
                size=cell.size,
                threads=cell.threads,
                depth=cell.depth,
                ops=ops,
                bytes=sum(job.read.io_bytes for job in mine),
                seconds=max(job.job_runtime_ms for job in mine) / 1e3,
                latency_s=latency_ns / 1e9,
                **_snapshot_cpu(scratch, i, cell, ops, what),
            )
        )
    return measurements


def _single_stream_cells(pattern: str) -> list[_Cell]:
    return [_Cell(pattern, size, 1, 1, PAUSE_S) for size in SIZES]


# ---------------------------------------------------------------------------- rados


def _rados_objects() -> list[str]:
    return [f"{RADOS_PREFIX}{i}" for i in range(RADOS_OBJECTS)]


def _rados_sizes(pool: str, conf: str) -> dict[str, int | None]:
    """Object -> size as ``rados -p POOL stat`` reports it (None: the object is not there)."""
    rados = shutil.which("rados")
    if rados is None:
        raise CalibrationError("the rados command is not installed (it checks what fio's rados engine cannot)")
    sizes: dict[str, int | None] = {}
    for name in _rados_objects():
        try:
            proc = subprocess.run(
                [rados, "-c", conf, "-p", pool, "stat", name], capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired as exc:
            raise CalibrationError(f"`rados -p {pool} stat {name}` did not answer within 30 s") from exc
        if "error opening pool" in proc.stderr:
            raise CalibrationError(f"cannot open pool {pool!r}: {proc.stderr.strip()}")
        if proc.returncode == 0 and " size " in proc.stdout:
            sizes[name] = int(proc.stdout.rsplit(" size ", 1)[1].split()[0])
        elif "error stat-ing" in proc.stderr and "No such file or directory" in proc.stderr:
            sizes[name] = None
        else:
            raise CalibrationError(
                f"`rados -p {pool} stat {name}` failed: {proc.stderr.strip() or proc.stdout.strip()}"
            )
    return sizes


def _check_rados_objects(pool: str, conf: str, when: str) -> None:
    want = RADOS_BYTES // RADOS_OBJECTS
    sizes = _rados_sizes(pool, conf)
    wrong = {name: size for name, size in sizes.items() if size != want}
    if wrong:
        name, size = next(iter(wrong.items()))
        found = "missing" if size is None else f"{size} bytes"
        raise CalibrationError(
            f"{when}, `rados -p {pool} stat` finds {len(wrong)} of the {len(sizes)} calibration objects wrong "
            f"({name}: {found}, want {want}); fio's rados engine does not check its I/O, so its figures "
            "cannot be trusted"
        )


def _ceph_conf(why: str) -> str:
    conf = os.environ.get("CEPH_CONF")
    if not conf or not Path(conf).is_file():
        raise CalibrationError(f"CEPH_CONF(={conf!r}) must name the cluster's ceph.conf: {why}")
    return conf


def _calibrate_rados(target: Target, budget: _Budget, say: Progress, work: Path) -> tuple[list[Measurement], str]:
    conf = _ceph_conf("fio's rados engine crashes without it")
    fio, version = _fio()
    what = target.text
    # ioengine first: fio knows the engine's options (pool=, conf=, ...) only once the engine is set.
    common = [
        "ioengine=rados",
        f"pool={target.pool}",
        "clientname=admin",
        f"conf={conf}",
        "filename=" + ":".join(_rados_objects()),
    ]
    want = RADOS_BYTES // RADOS_OBJECTS
    if any(size != want for size in _rados_sizes(target.pool, conf).values()):
        say(f"writing {RADOS_OBJECTS} objects of {format_size(want)} to pool {target.pool}")
        writer = ["[global]", *common, f"size={RADOS_BYTES}", "", "[write]", "rw=write", "bs=4m"]
        _run_fio(fio, "\n".join(writer) + "\n", work, 120, what, readonly=False)
    _check_rados_objects(target.pool, conf, "after writing")

    cells = [
        *_single_stream_cells("randread"),
        _Cell("randread", SMALL, 1, 16),
        _Cell("randread", SMALL, 4, 16),
        _Cell("randread", LARGE, 1, 4),
        _Cell("randread", LARGE, 4, 4),
    ]
    seconds = budget.per_cell(len(cells), FIO_PER_CELL_S["rados"])
    say(f"fio rados: {len(cells)} measurements of {seconds:.1f} s on pool {target.pool}")
    job = _job_file([*common, f"size={RADOS_BYTES}", "touch_objects=0"], cells, seconds, lambda cell: "rados", work)
    jobs = _run_fio(fio, job, work, len(cells) * (seconds + 15) + 30, what, readonly=True)
    _check_rados_objects(target.pool, conf, "after the reads")
    return _fio_measurements(jobs, cells, what, work), version


# ---------------------------------------------------------------------------- CephFS


def _cephfs_files() -> tuple[dict[str, int], list[str]]:
    samples = [f"samples/{i:05d}.bin" for i in range(DIR_SAMPLES)]
    return {CEPHFS_DATA: RADOS_BYTES, **{rel: DIR_SAMPLE_BYTES for rel in samples}}, samples


def _calibrate_cephfs(
    target: Target, budget: _Budget, say: Progress, work: Path
) -> tuple[list[Measurement], str, list[str]]:
    conf = _ceph_conf("libcephfs mounts the file system through it")
    files, samples = _cephfs_files()
    plan = {"conf": conf, "root": target.fs_path, "seed": 0, "files": files, "data": CEPHFS_DATA, "samples": samples}
    say(
        f"checking (or writing) {format_size(RADOS_BYTES)} and {DIR_SAMPLES} files of "
        f"{format_size(DIR_SAMPLE_BYTES)} under {target.text}"
    )
    _run_helper("calibrate", {**plan, "cells": []}, work, conf, 180)
    cells = [
        *_single_stream_cells("randread"),
        _Cell("randread", SMALL, 8, 1),
        _Cell("randread", LARGE, 4, 1),
        _Cell("open-read-close", DIR_SAMPLE_BYTES, 1, 1),
        _Cell("stat", 0, 1, 1),
    ]
    seconds = budget.per_cell(len(cells), CEPHFS_PER_CELL_S)
    say(f"libcephfs: {len(cells)} measurements of up to {seconds:.1f} s under {target.text}")
    helper_cells = [
        {
            "name": "stat t1" if cell.pattern == "stat" else cell.name,
            "op": cell.pattern,
            "size": cell.size,
            "threads": cell.threads,
            "seconds": seconds,
            "min_ops": MIN_OPS,
            "pause_s": cell.pause_s,
        }
        for cell in cells
    ]
    result = _run_helper("calibrate", {**plan, "cells": helper_cells}, work, conf, len(cells) * (seconds + 15) + 60)
    measurements = []
    for cell, got in zip(cells, result["cells"], strict=True):
        (start, end), ops = got["host_jiffies"], got["ops"]
        measurements.append(
            Measurement(
                name=got["name"],
                pattern=cell.pattern,
                size=cell.size,
                threads=cell.threads,
                depth=1,
                ops=ops,
                bytes=got["bytes"],
                seconds=got["seconds"],
                latency_s=got["latency_s"],
                first_byte_s=got["first_byte_s"],
                **cpu_fields(ops, got["cpu_s"], tuple(start), tuple(end)),
            )
        )
    notes = [
        "measured through libcephfs (no kernel mount) with its object cache (client_oc) off: every read "
        "reaches the OSDs",
        f"open and stat cold: each of {DIR_SAMPLES} files once, on a fresh mount (an MDS round trip each)",
        f"the calibration files stay under {target.text} ({format_size(RADOS_BYTES)} and {DIR_SAMPLES} files "
        f"of {format_size(DIR_SAMPLE_BYTES)}) for the next run",
        f"measured from one Python process ({os.cpu_count()} CPUs): client CPU bounds the rate it can see",
    ]
    return measurements, f"libcephfs {result.get('version', '')}".strip(), notes


# ---------------------------------------------------------------------------- directories


def _fs_type(path: Path) -> str:
    """The file system type of the mount holding ``path`` (from /proc/self/mountinfo; '' if unknown)."""
    best, fstype = "", ""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].replace("\\040", " ")
        if (str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, fstype = mount, right.split()[0]
    return fstype


def _direct_io_works(path: Path) -> bool:
    """Whether ``path`` can be read with O_DIRECT (tmpfs and some FUSE file systems refuse)."""
    import mmap

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return False
    try:
        buffer = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
        return os.readv(fd, [buffer]) == 4096
    except OSError:
        return False
    finally:
        os.close(fd)


def _write_random(path: Path, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, size, 16 * MiB):
            f.write(rng.bytes(min(16 * MiB, size - start)))
        f.flush()
        os.fsync(f.fileno())


def _sample_cells(folder: Path, seconds: float) -> list[Measurement]:
    """File-per-sample cost: open + read + close of small files, and stat, timed from Python."""
    files = sorted(folder.iterdir())
    opens, totals, stats = [], [], []
    nbytes = 0
    read_host, read_cpu = host_ticks(), time.process_time()
    begin = time.perf_counter()
    i = 0
    while time.perf_counter() - begin < seconds or len(totals) < MIN_OPS:
        path = files[i % len(files)]
        i += 1
        t0 = time.perf_counter()
        fd = os.open(path, os.O_RDONLY)
        t1 = time.perf_counter()
        try:
            while chunk := os.read(fd, DIR_SAMPLE_BYTES):
                nbytes += len(chunk)
        finally:
            os.close(fd)
        opens.append(t1 - t0)
        totals.append(time.perf_counter() - t0)
    read_wall = time.perf_counter() - begin
    read_cpu, read_end = time.process_time() - read_cpu, host_ticks()
    stat_host, stat_cpu = host_ticks(), time.process_time()
    begin = time.perf_counter()
    i = 0
    while time.perf_counter() - begin < seconds / 2 or len(stats) < MIN_OPS:
        t0 = time.perf_counter()
        os.stat(files[i % len(files)])
        stats.append(time.perf_counter() - t0)
        i += 1
    stat_wall = time.perf_counter() - begin
    stat_cpu, stat_end = time.process_time() - stat_cpu, host_ticks()
    return [
        Measurement(
            name=f"open-read-close {format_size(DIR_SAMPLE_BYTES)} t1",
            pattern="open-read-close",
            size=DIR_SAMPLE_BYTES,
            threads=1,
            depth=1,
            ops=len(totals),
            bytes=nbytes,
            seconds=read_wall,
            latency_s=float(np.mean(totals)),
            first_byte_s=float(np.mean(opens)),
            **cpu_fields(len(totals), read_cpu, read_host, read_end),
        ),
        Measurement(
            "stat t1",
            "stat",
            0,
            1,
            1,
            len(stats),
            0,
            stat_wall,
            float(np.mean(stats)),
            **cpu_fields(len(stats), stat_cpu, stat_host, stat_end),
        ),
    ]


def _calibrate_directory(
    target: Target, budget: _Budget, say: Progress, scratch: Path
) -> tuple[list[Measurement], str, list[str], str]:
    assert target.path is not None
    fio, version = _fio()
    work = target.path / WORK_DIR
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        free = shutil.disk_usage(target.path).free
        if free < 2 * DIR_FILE_BYTES:
            raise CalibrationError(
                f"{target.path} has {free / 1e6:,.0f} MB free; calibration needs {2 * DIR_FILE_BYTES / 1e6:,.0f} MB"
            )
        data = work / "data.bin"
        say(f"writing {format_size(DIR_FILE_BYTES)}, {DIR_SAMPLES} files of {format_size(DIR_SAMPLE_BYTES)} in {work}")
        _write_random(data, DIR_FILE_BYTES, 0)
        samples = work / "samples"
        samples.mkdir()
        for i in range(DIR_SAMPLES):
            _write_random(samples / f"{i:05d}.bin", DIR_SAMPLE_BYTES, i + 1)
        fstype = _fs_type(target.path)
        direct = _direct_io_works(data)
        notes = [f"file system {fstype or 'unknown'}"]
        if not direct:
            notes.append(f"O_DIRECT is refused on {target.path}: reads were measured through the page cache")
        notes.append("open/stat measured with the files' metadata and data warm in the page cache")
        async_engine = "libaio" if direct else "psync"
        cells = [
            *_single_stream_cells("randread"),
            _Cell("read", SMALL, 1, 1),
            _Cell("read", 1 * MiB, 1, 1),
            _Cell("randread", SMALL, 1, 32) if direct else _Cell("randread", SMALL, 8, 1),
            _Cell("randread", SMALL, 4, 32) if direct else _Cell("randread", SMALL, 16, 1),
            _Cell("randread", LARGE, 4, 4) if direct else _Cell("randread", LARGE, 4, 1),
        ]
        seconds = budget.per_cell(len(cells) + 1.5, FIO_PER_CELL_S["directory"])
        say(f"fio: {len(cells)} measurements of {seconds:.1f} s in {work}")
        job = _job_file(
            [f"filename={data}", f"size={DIR_FILE_BYTES}", f"direct={int(direct)}"],
            cells,
            seconds,
            lambda cell: async_engine if cell.depth > 1 else "psync",
            scratch,
        )
        jobs = _run_fio(fio, job, scratch, len(cells) * (seconds + 15) + 30, str(target.path), readonly=True)
        measurements = _fio_measurements(jobs, cells, str(target.path), scratch)
        say(f"open + read + close and stat of {DIR_SAMPLES} files for {seconds:.1f} s")
        measurements += _sample_cells(samples, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return measurements, version, notes, fstype


# ---------------------------------------------------------------------------- the profile


def _number(value: float) -> str:
    text = f"{value:.4g}"
    return f"{value:.0f}" if "e" in text else text


def duration_text(seconds: float) -> str:
    """A duration as a unit string ``trainio.models.units.parse_duration`` reads (``"0.237 ms"``)."""
    if seconds < 1e-3:
        return f"{_number(seconds * 1e6)} us"
    if seconds < 1:
        return f"{_number(seconds * 1e3)} ms"
    return f"{_number(seconds)} s"


def bandwidth_text(bytes_per_s: float) -> str:
    """A bandwidth as a unit string (``"512.3 MiB/s"``, ``"2.4 GiB/s"``; ``"unlimited"``)."""
    if math.isinf(bytes_per_s):
        return "unlimited"
    if bytes_per_s >= 1024 * MiB:
        return f"{_number(bytes_per_s / 2**30)} GiB/s"
    if bytes_per_s >= MiB:
        return f"{_number(bytes_per_s / MiB)} MiB/s"
    return f"{_number(bytes_per_s / KiB)} KiB/s"


def rate_text(ops_per_s: float) -> str:
    return "unlimited" if math.isinf(ops_per_s) else f"{max(1, round(ops_per_s))} IOPS"


def _count_text(count: float) -> str:
    return "unlimited" if math.isinf(count) else str(round(count))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def _cpu_columns(m: Measurement) -> str:
    if m.cpu_s is None:
        return ""
    busy = "-" if m.busy is None else f"{100 * m.busy:.0f}%"
    return f" cpu {_ms(m.cpu_s):>7} ms host {_ms(m.host_cpu_s):>7} ms busy {busy:>4}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile_toml(
    name: str,
    target: Target,
    fitted: Fitted,
    measurements: list[Measurement] | tuple[Measurement, ...],
    *,
    source: str,
    fstype: str = "",
    cores: int | None = None,
) -> str:
    """The profile file: ``[meta]`` and ``[backend]`` with unit strings, a comment on each value."""
    worst = max((abs(r) for r in fitted.residuals.values()), default=0.0)
    fit_note = (
        f"fitted: time = latency + size / bandwidth over {len(fitted.residuals)} single-stream sizes "
        f"{format_size(min(m.size for m in measurements if m.name in fitted.residuals))}-"
        f"{format_size(max(m.size for m in measurements if m.name in fitted.residuals))}, worst residual "
        f"{100 * worst:.1f}%"
    )
    if fitted.request_cpu_s is None and fitted.colocated_cpu_s is None:
        latency = (duration_text(fitted.latency_s), f"{fit_note} (intercept)")
    else:
        floored = ", floored at 0" if fitted.wait_latency_s == 0 else ""
        latency = (
            duration_text(fitted.wait_latency_s),
            f"{fit_note}: intercept {duration_text(fitted.latency_s)} less request_cpu "
            f"(the model charges it on the node's cores){floored}",
        )
    stream = (bandwidth_text(fitted.stream_bandwidth), f"{fit_note} (1 / slope)")
    aggregate = (bandwidth_text(fitted.aggregate_bandwidth), f"measured: best throughput, {fitted.aggregate_from}")
    busy = "" if fitted.iops_busy is None else f", this host's cores {100 * fitted.iops_busy:.0f}% busy"
    if fitted.cpu_bound:
        iops = (
            "unlimited",
            f"measured {rate_text(fitted.iops)} ({fitted.iops_from}){busy}: the rate was this host's CPU limit, "
            "which request_cpu and colocated_cpu charge",
        )
    else:
        iops = (rate_text(fitted.iops), f"measured: best request rate, {fitted.iops_from}{busy}")
    intercept = "fitted: intercept of CPU per request against size over the single-stream sizes"
    if fitted.request_cpu_s is None:
        request_cpu = ("0 s", "not measured")
    else:
        request_cpu = (
            duration_text(fitted.request_cpu_s),
            f"measured: CPU of {CLIENT_CPU[target.kind]} per request; {intercept} (CPU per byte stays in "
            "stream_bandwidth)",
        )
    if fitted.colocated_cpu_s is None:
        colocated_cpu = ("0 s", "not co-located (no --colocated): the storage servers' CPU is inside the latency")
    else:
        colocated_cpu = (
            duration_text(fitted.colocated_cpu_s),
            "measured (--colocated: the storage daemons share this machine's cores): the host's busy CPU "
            f"(/proc/stat user+nice+system+steal) less the client's, per request; {intercept}",
        )
    per_file = "the open-read-close cell's CPU per file less the read's"
    if fitted.open_cpu_s is None:
        open_cpu = ("0 s", "not measured")
    else:
        open_cpu = (duration_text(fitted.open_cpu_s), f"measured: client CPU of each open and close: {per_file}")
    if fitted.colocated_open_cpu_s is None:
        colocated_open_cpu = ("0 s", "not measured or not co-located: inside the open latency")
    else:
        colocated_open_cpu = (
            duration_text(fitted.colocated_open_cpu_s),
            f"measured (--colocated): the servers' CPU of each open and close: {per_file}",
        )
    cores = cores or os.cpu_count() or 1
    crowding = fitted.crowding
    if crowding is None:
        cpu_crowding = ("0", "not measured: no two small-request cells from different numbers of client processes")
    else:
        whose = "the host's" if fitted.colocated_cpu_s is not None else "the client's"
        floored = "" if crowding.measured >= 0 else f" (measured {crowding.measured:.3f}, read as noise: floored)"
        cpu_crowding = (
            f"{crowding.exponent:.3f}",
            f"measured: {whose} CPU per request {_ms(crowding.low_cpu_s)} ms ({crowding.low.name}), "
            f"{_ms(crowding.high_cpu_s)} ms ({crowding.high.name}); the model multiplies request_cpu and "
            f"colocated_cpu by (client processes per core / cpu_crowding_base) ** this{floored}",
        )
    crowding_base = (
        f"{1 / cores:.4g}",
        f"client processes per core where request_cpu was measured: one stream on this host's {cores} cores",
    )
    less_open_cpu = "" if fitted.open_cpu_s is None else " less open_cpu"
    na = ("n/a", "does not apply")
    unlimited_nic = ("unlimited", "not measured: the aggregate figure was measured through this client's link")
    if target.kind == "rgw":
        flags = {"access": "object", "shared": True, "page_cache": False}
        rows = {
            "open_latency": na,
            "stat_latency": na,
            "read_latency": na,
            "get_latency": latency,
            "client_nic_bandwidth": unlimited_nic,
            "max_outstanding": ("unlimited", "each loader process has its own HTTP connection pool"),
        }
        comments = {"access": "every sample file is one GET", "page_cache": "S3 clients do not read through it"}
    elif target.kind == "rados":
        rbd = builtin_profile("rbd")
        flags = {"access": "block", "shared": True, "page_cache": True}
        rows = {
            "open_latency": (duration_text(rbd.open_latency_s), "not measured: as the built-in rbd profile"),
            "stat_latency": (duration_text(rbd.stat_latency_s), "not measured: as the built-in rbd profile"),
            "read_latency": latency,
            "get_latency": na,
            "client_nic_bandwidth": unlimited_nic,
            "max_outstanding": (_count_text(rbd.max_outstanding), "not measured: as the built-in rbd profile"),
        }
        comments = {
            "access": "a local file system on an RBD image over this pool (RADOS reads measured)",
            "page_cache": "a file system on a mapped image reads through it",
        }
    elif target.kind == "cephfs":
        flags = {"access": "posix", "shared": True, "page_cache": True}
        cold = f"each of up to {DIR_SAMPLES} files once, on a fresh libcephfs mount (an MDS round trip)"
        rows = {
            "open_latency": (duration_text(fitted.open_wait_s or 0.0), f"measured: mean open{less_open_cpu}, {cold}"),
            "stat_latency": (duration_text(fitted.stat_latency_s or 0.0), f"measured: mean stat, {cold}"),
            "read_latency": latency,
            "get_latency": na,
            "client_nic_bandwidth": ("unlimited", "not measured: measured through this client's link (loopback)"),
            "max_outstanding": ("unlimited", "not measured"),
        }
        comments = {
            "access": "CephFS, measured through libcephfs",
            "page_cache": "the kernel client reads through it (libcephfs has its own object cache, client_oc; "
            "it was off for the measurement)",
        }
    else:
        shared = fstype in NETWORK_FILE_SYSTEMS
        flags = {"access": "posix", "shared": shared, "page_cache": True}
        rows = {
            "open_latency": (
                duration_text(fitted.open_wait_s or 0.0),
                f"measured: mean open(2){less_open_cpu}, metadata warm",
            ),
            "stat_latency": (duration_text(fitted.stat_latency_s or 0.0), "measured: mean stat(2), metadata warm"),
            "read_latency": latency,
            "get_latency": na,
            "client_nic_bandwidth": unlimited_nic if shared else na,
            "max_outstanding": ("unlimited", "not measured"),
        }
        comments = {
            "access": f"file system {fstype or 'unknown'}",
            "shared": "a network file system" if shared else "node-local: every node has its own",
            "page_cache": "buffered reads go through the Linux page cache",
        }
    backend = {**rows}
    backend["stream_bandwidth"] = stream
    backend["aggregate_bandwidth"] = aggregate
    backend["iops"] = iops
    backend["request_cpu"] = request_cpu
    backend["colocated_cpu"] = colocated_cpu
    backend["cpu_crowding"] = cpu_crowding
    backend["cpu_crowding_base"] = crowding_base
    if target.kind != "rgw":
        backend["open_cpu"] = open_cpu
        backend["colocated_open_cpu"] = colocated_open_cpu
    order = [
        "open_latency",
        "stat_latency",
        "read_latency",
        "get_latency",
        "stream_bandwidth",
        "aggregate_bandwidth",
        "iops",
        "client_nic_bandwidth",
        "max_outstanding",
        "request_cpu",
        "colocated_cpu",
        "cpu_crowding",
        "cpu_crowding_base",
        "open_cpu",
        "colocated_open_cpu",
    ]
    lines = [
        f"# Measured by `replay calibrate` against {target.text}. The measurements (mean time, client CPU and",
        "# host CPU per request; the host's cores busy):",
        *(
            f"#   {m.name:<26} {m.ops:>8} ops {m.bytes_per_s / 1e6:>9.1f} MB/s {m.ops_per_s:>9.0f} ops/s "
            f"{m.latency_s * 1e3:>8.3f} ms{_cpu_columns(m)}"
            for m in measurements
        ),
        "",
        "[meta]",
        f"name = {_quote(name)}",
        f"description = {_quote(f'calibrated {target.kind}: {target.text}')}",
        f"source = {_quote(source)}",
        "",
        "[backend]",
    ]
    for key, value in flags.items():
        text = ("true" if value else "false") if isinstance(value, bool) else _quote(value)
        lines.append(f"{key} = {text}" + (f"  # {comments[key]}" if key in comments else ""))
    for key in (key for key in order if key in backend):
        value, comment = backend[key]
        text = value if re.fullmatch(r"\d+(\.\d+)?(e-?\d+)?", value) else _quote(value)
        lines.append(f"{key} = {text}  # {comment}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- calibrate


def calibrate(
    target: str,
    out: Path,
    *,
    budget_s: float = 60,
    colocated: bool = False,
    progress: Progress | None = None,
) -> Calibration:
    """Measure ``target``, fit the profile numbers and write the profile to ``out`` (TOML).

    ``budget_s`` bounds the measurements (set-up included; a measurement runs at least
    ``MIN_CELL_S``). ``colocated``: the storage daemons run on this machine and share its cores with
    training (hyperconverged, or a dev cluster): their CPU per request, the host's busy CPU less the
    client's, is written as ``colocated_cpu`` (else "0 s", and their time stays inside the latency).
    Raises :class:`TargetError` for a target it cannot parse, :class:`ReplayError`
    (:class:`CalibrationError`) when a measurement fails or cannot be trusted.
    """
    if not budget_s >= MIN_BUDGET_S:
        raise ValueError(f"budget_s(={budget_s}) must be >= {MIN_BUDGET_S}")
    say = progress or (lambda message: None)
    parsed = parse_target(target)
    out = Path(out)
    budget = _Budget(budget_s)
    notes: list[str] = []
    fstype = ""
    with tempfile.TemporaryDirectory(prefix="trainio-calibrate-") as scratch:
        if parsed.kind == "rgw":
            measurements, tool, notes = _calibrate_rgw(parsed, budget, say)
        elif parsed.kind == "rados":
            measurements, tool = _calibrate_rados(parsed, budget, say, Path(scratch))
        elif parsed.kind == "cephfs":
            measurements, tool, notes = _calibrate_cephfs(parsed, budget, say, Path(scratch))
        else:
            measurements, tool, notes, fstype = _calibrate_directory(parsed, budget, say, Path(scratch))
    fitted = fit_measurements(measurements, colocated=colocated)
    notes += _cpu_notes(fitted, colocated)
    elapsed = time.monotonic() - budget.start
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = (
        f"measured by `replay calibrate` against {parsed.text} on {now} from {os.uname().nodename}, "
        f"{tool}, {len(measurements)} measurements in {elapsed:.0f} s"
    )
    text = profile_toml(out.stem, parsed, fitted, measurements, source=source, fstype=fstype)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    profile = load_profile(out)
    return Calibration(
        target=parsed.text,
        kind=parsed.kind,
        measurements=tuple(measurements),
        fitted=fitted,
        profile_path=out,
        profile=profile,
        elapsed_s=elapsed,
        tool=tool,
        notes=tuple(notes),
        colocated=colocated,
    )


def _cpu_notes(fitted: Fitted, colocated: bool) -> list[str]:
    notes = []
    if fitted.cpu_bound:
        assert fitted.iops_busy is not None
        notes.append(
            f"the best request rate, {rate_text(fitted.iops)} ({fitted.iops_from}), was measured with this host's "
            f"cores {100 * fitted.iops_busy:.0f}% busy: it was this host's CPU limit; the profile's iops is "
            "unlimited and the model charges request_cpu"
            + (" and colocated_cpu" if colocated else " (calibrate with --colocated if the storage daemons run here)")
        )
    if fitted.wait_latency_s == 0 and fitted.latency_s > 0:
        notes.append(
            f"the fitted latency, {duration_text(fitted.latency_s)}, is all CPU on this machine: the profile's "
            "latency is 0"
        )
    if colocated:
        notes.append("colocated_cpu counts every process on this machine but the client: calibrate on a quiet machine")
    return notes


def render_calibration(cal: Calibration) -> str:
    """The measurements (with the client's CPU per request, the servers' when co-located, and how busy
    the host's cores were), the fit and its residuals as a short table."""
    f = cal.fitted
    server = f"{'srv ms':>7} " if cal.colocated else ""
    header = (
        f"  {'measurement':<26} {'ops':>8} {'MB/s':>9} {'ops/s':>9} {'mean ms':>9} {'fit ms':>8} {'resid.':>7} "
        f"{'cpu ms':>7} {server}{'busy':>5}"
    )
    lines = [
        f"calibration  {cal.target} ({cal.tool}), {len(cal.measurements)} measurements in {cal.elapsed_s:.1f} s",
        header,
        "  " + "-" * (len(header) - 2),
    ]
    for m in cal.measurements:
        fit = resid = ""
        if m.name in f.residuals:
            fit = f"{(f.latency_s + m.size / f.stream_bandwidth) * 1e3:.3f}"
            resid = f"{100 * f.residuals[m.name]:+.1f}%"
        busy = "" if m.busy is None else f"{100 * m.busy:.0f}%"
        srv = f"{_ms(m.server_cpu_s):>7} " if cal.colocated else ""
        lines.append(
            f"  {m.name:<26} {m.ops:>8,} {m.bytes_per_s / 1e6:>9.1f} {m.ops_per_s:>9,.0f} "
            f"{m.latency_s * 1e3:>9.3f} {fit:>8} {resid:>7} {_ms(m.cpu_s):>7} {srv}{busy:>5}"
        )
    kind = "GET" if cal.kind == "rgw" else "read"
    rate = f"{rate_text(f.iops)} ({f.iops_from})"
    if f.iops_busy is not None:
        rate = f"{rate} at {100 * f.iops_busy:.0f}% busy" + (
            ": CPU-bound, unlimited in the profile" if f.cpu_bound else ""
        )
    lines.append(
        f"  fitted       {kind} latency {duration_text(f.latency_s)}, stream {bandwidth_text(f.stream_bandwidth)}, "
        f"aggregate {bandwidth_text(f.aggregate_bandwidth)} ({f.aggregate_from}), {rate}"
    )
    if f.request_cpu_s is not None or f.colocated_cpu_s is not None:
        colocated = (
            f"co-located servers' CPU {duration_text(f.colocated_cpu_s)} per request"
            if f.colocated_cpu_s is not None
            else "servers not co-located"
        )
        lines.append(
            f"  cpu          client CPU {duration_text(f.request_cpu_s or 0.0)} per request, {colocated}; "
            f"{kind} latency less the client's {duration_text(f.wait_latency_s)}"
        )
    if f.crowding is not None:
        c = f.crowding
        lines.append(
            f"  crowding     CPU per request x{c.high_cpu_s / c.low_cpu_s:.2f} from {c.low.threads} to "
            f"{c.high.threads} client processes: cpu_crowding {c.exponent:.3f}"
            + (f" (measured {c.measured:.3f})" if c.measured < 0 else "")
        )
    if f.open_latency_s is not None:
        lines.append(
            f"  metadata     open {duration_text(f.open_latency_s)}, stat {duration_text(f.stat_latency_s or 0.0)}"
            + (f"; open and close CPU {duration_text(f.open_cpu_s)}" if f.open_cpu_s is not None else "")
            + (f", servers' {duration_text(f.colocated_open_cpu_s)}" if f.colocated_open_cpu_s is not None else "")
        )
    lines += [f"  note         {note}" for note in cal.notes]
    return "\n".join(lines)
