"""Replay a trace's data reads on real storage and measure them: a directory, Ceph RBD, RADOS, CephFS.

    replay_fio(trace, "/mnt/nvme/replay", workdir)     a directory: a mounted file system or a local folder
    replay_fio(trace, "rbd:POOL/IMAGE", workdir)       an RBD image, through fio's rbd engine
    replay_fio(trace, "rados:POOL", workdir)           one RADOS object per file, through fio's rados engine
    replay_fio(trace, "cephfs:/PATH", workdir)         CephFS through libcephfs (replay/cephfs_helper.py)

**What is replayed.** Every traced process's data reads from files, with the opens and closes
around them, in order, at their offsets and lengths, paced as traced (``time_scale`` stretches
the gaps) or, with ``no_stall``, as fast as possible in the same order: the iologs of
:mod:`trainio.replay.iolog`, whose docstring says what a replay preserves. They are written once with the
data root standing for ``/`` and read back into a :class:`ReplayPlan` (one :class:`PlanJob` per
process and node, its ops as :class:`PlanOp`), which each target renders: iologs and a job file for
fio, or a JSON plan for the CephFS helper.

**Where the data set lives on each target** (sizes: as large as the furthest byte the trace read;
``mapping.tsv`` in the workdir lists the mapping of the run):

* directory ``DIR``: ``DIR/<path relative to the traced data root>`` (:func:`layout_dataset`,
  seeded random bytes). Files already there with the right size are kept; when files must be
  written, free space is checked first, and a file *larger* than the trace needs is taken as data
  trainio did not write and never overwritten (the replay is refused instead).
* ``rbd:POOL/IMAGE``: the files packed into the one image in path order (Python's ordering of
  the relative POSIX paths), each at a 4 KiB-aligned offset: the first at 0, each next one at the
  previous one's end rounded up to 4 KiB; the image needs the last one's end rounded up to 4 KiB
  (:func:`rbd_layout`). A missing image is created with that size; an existing smaller one is
  refused. The data is written once, by a fio write job, and the image's metadata key
  ``trainio.layout`` then records the layout's digest, so a later replay of the same layout
  skips the write. An existing image without that key that holds data is refused, not
  overwritten. Reads go through ``ioengine=rbd`` with the image as the iolog's single file:
  each read at its file's offset plus the file's place in the image; per-file opens and
  closes have nothing to act on and are dropped (the timing of the reads stays).
* ``rados:POOL``: one object per file, named by the relative path with ``%`` written ``%25`` and
  ``/`` written ``%2F`` (``train/n01/x.jpg`` -> ``train%2Fn01%2Fx.jpg``; :func:`rados_object_name`),
  written by the helper through the rados binding when missing or of another size. Every object
  is stat'ed before the replay and after it. Reads go through ``ioengine=rados`` with
  ``touch_objects=0`` and the object names in the iologs. fio 3.33's rados engine does not check
  whether a read succeeded (a missing object "reads" at tens of GB/s with error 0), hence the
  stats; a file over 128 MiB (``osd_max_object_size``'s default) is refused up front.
* ``cephfs:/PATH``: ``PATH/<relative path>`` inside the file system, written by the helper when
  missing or of another size.

**Why CephFS goes through a helper.** fio has no CephFS engine: it reaches CephFS only through a
kernel mount or ceph-fuse, and a replay cannot count on either (no mount privileges in containers
and CI). libcephfs can, but its Python binding (Debian's ``python3-cephfs``) is built for the
system interpreter only, not for the Python that runs trainio; so ``replay/cephfs_helper.py``,
which needs nothing but the standard library and that binding, runs under ``/usr/bin/python3``
with a JSON plan and replays each process in a thread with fio's pacing rule. The same helper
stats and writes RADOS objects through the ``rados`` binding (``cephfs`` is built on it): one
connection instead of a ``rados`` command per object.

**Nodes.** ``nodes=N`` replays N copies at once, as N nodes of a data-parallel job would, each
reading its DistributedSampler share: each traced process's reads are cut into *units*, one per
file open (the open, the reads of that file, its close), numbered in the order of the opens;
unit ``k`` goes to node ``k mod N``, as DistributedSampler gives sample ``k`` of an epoch to
rank ``k mod N``. Every node keeps the traced per-sample pace, so its ``i``-th unit is moved to
the time of the process's ``i``-th unit (shifted by ``open(i) - open(k)``, gaps inside a unit
kept): N nodes finish an epoch in about 1/N of the traced time and put N times the request rate on
the target. A process that the trace started after others had ended (the next epoch's workers)
starts as much earlier as those ended earlier (:func:`node_start_delays`); the gaps between them
stay. The shares together read exactly what the trace read. Node ``j`` of process ``pid`` runs as
job ``node{j}-pid-{pid}``; the result is the aggregate of all jobs, and ``planned_duration_s`` in
its details is how long this N-node schedule lasts at the traced pace.

**Measures** (:class:`~trainio.replay.result.ReplayResult`): ``bytes`` and ``ops`` from fio's read
``io_bytes`` and ``total_ios`` summed over jobs (the helper's counts for CephFS);
``duration_s``, the replay's wall span: the latest job's start delay plus its runtime (fio's
``job_runtime``, which leaves out fio's own start-up and connecting to Ceph); for CephFS from the
helper's common start to the last op's end; ``traced_duration_s``, the trace's own span of the
same reads: the first replayed read's start to the last one's end; ``lat_p50_ms``/``lat_p99_ms``
from fio's total-latency percentiles (``lat_percentiles=1``) of each job, merged as a mixture
weighted by the job's reads (:func:`mixed_percentile`), exact for CephFS; ``errors``, jobs that
failed plus short reads. ``bytes`` and ``ops`` are checked against the trace's data reads
(``expected_bytes``, ``expected_ops``); any difference raises
:class:`~trainio.replay.result.ReplayVerificationError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from trainio.replay.fio import FioDirection, FioOutputError, FioResult, read_fio_json
from trainio.replay.iolog import FIO_MAX_NAME, IOLOG_HEADER, IologError, dataset_root, layout_dataset, write_iologs
from trainio.replay.result import ReplayError, ReplayResult, ReplayVerificationError
from trainio.tracefile import Trace, open_trace

READ_OPS = ("read", "pread", "readv", "preadv", "fread")
ALIGN = 4096
RBD_WRITE_CHUNK = 4 * 2**20
RADOS_MAX_OBJECT = 128 * 2**20
LAYOUT_META_KEY = "trainio.layout"
RBD_FILE = "rbd"
CEPH_PYTHON = "/usr/bin/python3"
HELPER = Path(__file__).resolve().with_name("cephfs_helper.py")
DEFAULT_CEPH_CONF = "/etc/ceph/ceph.conf"
CEPH_TIMEOUT_S = 60
MOUNT_TIMEOUT_S = "10"
INSTALL_FIO = "install fio (Debian: apt-get install fio, or scripts/install-system-deps.sh)"
INSTALL_CEPH = (
    "install the Ceph client packages (Debian: ceph-common python3-rados python3-cephfs, "
    "or scripts/install-system-deps.sh)"
)
MAPPING_FILE = "mapping.tsv"
RESULT_FILE = "result.json"
REPLAY_JOB_FILE = "replay.fio"
Progress = Callable[[str], None]


class TargetError(ValueError):
    """A target string that names no storage trainio can replay on; the message carries it."""


@dataclass(frozen=True)
class Target:
    kind: str
    """``directory``, ``rbd``, ``rados`` or ``cephfs``."""
    path: str = ""
    """The directory, or the folder inside CephFS."""
    pool: str = ""
    image: str = ""


def parse_target(text: str) -> Target:
    """``DIR``, ``rbd:POOL/IMAGE``, ``rados:POOL`` or ``cephfs:/PATH``."""
    scheme, colon, rest = text.partition(":")
    if colon and scheme == "rbd":
        pool, slash, image = rest.partition("/")
        if not pool or not slash or not image or "/" in image:
            raise TargetError(f"target {text!r}: expected rbd:POOL/IMAGE")
        return Target("rbd", pool=pool, image=image)
    if colon and scheme == "rados":
        if not rest or "/" in rest:
            raise TargetError(f"target {text!r}: expected rados:POOL")
        return Target("rados", pool=rest)
    if colon and scheme == "cephfs":
        if not rest.startswith("/"):
            raise TargetError(f"target {text!r}: expected cephfs:/PATH (an absolute path inside the file system)")
        return Target("cephfs", path=posixpath.normpath(rest))
    if not text.strip():
        raise TargetError("target is empty: expected DIR, rbd:POOL/IMAGE, rados:POOL or cephfs:/PATH")
    return Target("directory", path=text)


# ------------------------------------------------------------------------------------------ plan


@dataclass(frozen=True)
class PlanOp:
    stamp_us: int
    """Microseconds since the job's start, as in a fio iolog (the first op of a process is at 1)."""
    path: str
    """Relative to the traced data root."""
    action: str
    """``open``, ``read`` or ``close``."""
    offset: int = 0
    length: int = 0


@dataclass(frozen=True)
class PlanJob:
    name: str
    node: int
    delay_us: int
    """When the job starts, after the earliest process's start (at the traced pace x time_scale)."""
    ops: tuple[PlanOp, ...]

    @property
    def end_us(self) -> int:
        return self.delay_us + self.ops[-1].stamp_us - 1


@dataclass(frozen=True)
class ReplayPlan:
    jobs: tuple[PlanJob, ...]
    sizes: dict[str, int]
    """Bytes each file (relative path) must hold: its furthest byte read."""
    data_root: str
    nodes: int
    time_scale: float
    expected_bytes: int
    expected_ops: int
    traced_duration_s: float

    @property
    def planned_duration_s(self) -> float:
        """How long the plan lasts at the traced pace x time_scale, start delays included."""
        return max(job.end_us for job in self.jobs) / 1e6


def _load(trace: Trace | str | os.PathLike) -> Trace:
    return trace if isinstance(trace, Trace) else open_trace(trace)


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


def _read_iolog(path: Path) -> list[PlanOp]:
    ops = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        stamp, name, action, *rest = line.split()
        if action == "add":
            continue
        offset, length = (int(rest[0]), int(rest[1])) if action == "read" else (0, 0)
        ops.append(PlanOp(int(stamp), name.removeprefix("/"), action, offset, length))
    return ops


def _start_delays(job_file: Path) -> dict[str, int]:
    delays: dict[str, int] = {}
    job = None
    for line in job_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("[") and line != "[global]":
            job = line.strip("[]")
            delays[job] = 0
        elif job and line.startswith("startdelay="):
            delays[job] = int(line.removeprefix("startdelay=").removesuffix("us"))
    return delays


def split_shares(ops: Sequence[PlanOp], nodes: int) -> list[list[PlanOp]]:
    """One process's ops cut into ``nodes`` DistributedSampler shares (see the module docstring):
    unit ``k`` (the ``k``-th file open with its reads and close) goes to share ``k mod nodes`` and
    moves to the time of unit ``k // nodes``."""
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
    shares: list[list[PlanOp]] = [[] for _ in range(nodes)]
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


def build_plan(
    trace: Trace | str | os.PathLike, workdir: str | os.PathLike, *, nodes: int = 1, time_scale: float = 1.0
) -> ReplayPlan:
    """The jobs to replay: one per traced process that read data and node, at the traced pace."""
    trace = _load(trace)
    expected_bytes, expected_ops, traced = traced_reads(trace)
    if expected_ops == 0:
        raise ReplayError(
            f"trace {trace.path} has no data reads from files to replay (io_class 'data', kind 'file', "
            "returning bytes); object GETs are replayed by `replay s3`"
        )
    try:
        written = write_iologs(trace, Path(workdir) / "source", "/", time_scale=time_scale)
    except IologError as exc:
        raise ReplayError(f"cannot replay trace {trace.path}: {exc}") from exc
    delays = _start_delays(written[-1])
    processes = {path.stem: _read_iolog(path) for path in written[:-1]}
    shares = {name: split_shares(ops, nodes) for name, ops in processes.items()}
    starts = node_start_delays(
        {
            name: (delays.get(name, 0), ops[-1].stamp_us, max(s[-1].stamp_us for s in shares[name] if s))
            for name, ops in processes.items()
        }
    )
    jobs = []
    for name in processes:
        for node, share in enumerate(shares[name]):
            if share:
                jobs.append(PlanJob(name if nodes == 1 else f"node{node}-{name}", node, starts[name], tuple(share)))
    sizes: dict[str, int] = {}
    for job in jobs:
        for op in job.ops:
            if op.action == "read":
                sizes[op.path] = max(sizes.get(op.path, 0), op.offset + op.length)
    return ReplayPlan(
        jobs=tuple(jobs),
        sizes=dict(sorted(sizes.items())),
        data_root=dataset_root(trace),
        nodes=nodes,
        time_scale=time_scale,
        expected_bytes=expected_bytes,
        expected_ops=expected_ops,
        traced_duration_s=traced,
    )


# -------------------------------------------------------------------------------------- mappings


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def rbd_layout(sizes: dict[str, int]) -> tuple[dict[str, int], int]:
    """Each file's offset in the image (path order, 4 KiB-aligned) and the bytes the image needs."""
    offsets = {}
    end = 0
    for rel in sorted(sizes):
        offsets[rel] = end
        end = _align(end + sizes[rel])
    return offsets, end


def rados_object_name(rel: str) -> str:
    """The object that holds the file at ``rel`` (relative to the data root)."""
    return rel.replace("%", "%25").replace("/", "%2F")


def _fio_name(name: str) -> str:
    if len(name) > FIO_MAX_NAME:
        raise TargetError(f"fio's iolog cannot name {name!r}: {len(name)} characters > {FIO_MAX_NAME}")
    return name


def _write_mapping(workdir: Path, header: str, rows: list[tuple]) -> Path:
    path = workdir / MAPPING_FILE
    lines = [f"# {header}"] + ["\t".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------- fio job files


def _iolog_lines(job: PlanJob, name_of: Callable[[str], str], rbd_offsets: dict[str, int] | None) -> list[str]:
    if rbd_offsets is not None:
        lines = [IOLOG_HEADER, f"1 {RBD_FILE} add", f"{job.ops[0].stamp_us} {RBD_FILE} open"]
        lines += [
            f"{op.stamp_us} {RBD_FILE} read {rbd_offsets[op.path] + op.offset} {op.length}"
            for op in job.ops
            if op.action == "read"
        ]
        return [*lines, f"{job.ops[-1].stamp_us} {RBD_FILE} close"]
    names = {op.path: name_of(op.path) for op in job.ops}
    lines = [IOLOG_HEADER] + [f"1 {name} add" for name in dict.fromkeys(names.values())]
    holders: dict[str, int] = {}
    for op in job.ops:
        name = names[op.path]
        if op.action == "open":
            holders[name] = holders.get(name, 0) + 1
            if holders[name] > 1:  # a share can meet a file it still holds open: fio opens it once
                continue
        elif op.action == "close":
            holders[name] = holders.get(name, 0) - 1
            if holders[name] > 0:
                continue
        line = f"{op.stamp_us} {name} {op.action}"
        lines.append(f"{line} {op.offset} {op.length}" if op.action == "read" else line)
    return lines


def _write_jobs(
    plan: ReplayPlan,
    workdir: Path,
    *,
    engine: list[str],
    describe: str,
    no_stall: bool,
    name_of: Callable[[str], str] = str,
    rbd_offsets: dict[str, int] | None = None,
) -> Path:
    iologs = workdir / "iolog"
    iologs.mkdir(parents=True, exist_ok=True)
    sections = []
    for job in plan.jobs:
        path = iologs / f"{job.name}.iolog"
        path.write_text("\n".join(_iolog_lines(job, name_of, rbd_offsets)) + "\n", encoding="utf-8")
        section = [f"[{job.name}]", f"read_iolog={path}"]
        if not no_stall and job.delay_us > 0:
            section.append(f"startdelay={job.delay_us}us")
        sections.append("\n".join(section))
    pace = "as fast as possible" if no_stall else f"at the traced pace x {plan.time_scale:g}"
    job_file = workdir / REPLAY_JOB_FILE
    header = [
        "; fio job file written by trainio replay/fioreplay.py",
        f"; replays {plan.expected_ops} data reads of {len(plan.jobs)} jobs ({plan.nodes} node(s)) on {describe},",
        f"; {pace}; the data set must be in place (replay fio lays it out).",
        f"; run: fio --readonly --output-format=json --output={RESULT_FILE} {job_file}",
        "[global]",
        *engine,
        "iodepth=1",
        "lat_percentiles=1",
        *(["replay_no_stall=1"] if no_stall else []),
    ]
    job_file.write_text("\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    return job_file


def _fio() -> str:
    fio = shutil.which("fio")
    if fio is None:
        raise ReplayError(f"fio not found on PATH: {INSTALL_FIO}")
    return fio


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"


def _run_fio(
    fio: str, job_file: Path, output: Path, *, readonly: bool, timeout: float, env: dict | None = None
) -> tuple[FioResult, float]:
    """fio's report and the command's wall time."""
    output.unlink(missing_ok=True)
    args = [fio, *(["--readonly"] if readonly else []), "--output-format=json", f"--output={output}", str(job_file)]
    start = time.monotonic()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"fio did not finish within {timeout:.0f} s: {job_file}") from exc
    wall = time.monotonic() - start
    try:
        return read_fio_json(output), wall
    except FioOutputError as exc:
        raise ReplayError(f"fio exited {proc.returncode} without a report ({exc}): {_tail(proc.stderr)}") from exc


def _latency_table(direction: FioDirection) -> dict[float, float]:
    return direction.lat_ns.percentile or direction.clat_ns.percentile


def mixed_percentile(tables: Sequence[tuple[int, dict[float, float]]], q: float) -> float:
    """The ``q``-th percentile of the mixture of several jobs' latency distributions.

    Each table (percentile -> value, fio's form) is read as a step CDF reaching 1 at its largest
    value and weighted by its job's operation count; the answer is the smallest listed value at
    which the weighted CDF reaches ``q`` percent. NaN without data.
    """
    tables = [(weight, table) for weight, table in tables if weight > 0 and table]
    if not tables:
        return math.nan
    total = sum(weight for weight, _ in tables)

    def cdf(x: float) -> float:
        share = 0.0
        for weight, table in tables:
            top = max(table.values())
            level = 100.0 if x >= top else max((p for p, v in table.items() if v <= x), default=0.0)
            share += weight * level
        return share / total

    candidates = sorted({v for _, table in tables for v in table.values()})
    return next((x for x in candidates if cdf(x) >= q - 1e-9), candidates[-1])


@dataclass(frozen=True)
class _Measured:
    bytes: int
    ops: int
    duration_s: float
    lat_p50_ms: float
    lat_p99_ms: float
    errors: int
    details: dict = field(default_factory=dict)
    messages: tuple[str, ...] = ()


def _fio_timeout(plan: ReplayPlan) -> float:
    """Generous: a slow target may well take many times the traced span; a hung one should end."""
    return 600 + 20 * plan.planned_duration_s


def _replay_with_fio(
    plan: ReplayPlan, fio: str, job_file: Path, workdir: Path, *, no_stall: bool, say: Progress, env: dict | None = None
) -> _Measured:
    pace = "as fast as possible" if no_stall else f"as traced (the plan spans {plan.planned_duration_s:.2f} s)"
    say(f"replaying {plan.expected_ops:,} reads in {len(plan.jobs)} fio jobs, {pace}: {job_file}")
    output = workdir / RESULT_FILE
    result, wall = _run_fio(fio, job_file, output, readonly=True, timeout=_fio_timeout(plan), env=env)
    delays = {job.name: 0 if no_stall else job.delay_us for job in plan.jobs}
    reads = [job.read for job in result.jobs]
    failed = [f"{job.jobname}: error {job.error}" for job in result.jobs if job.error]
    return _Measured(
        bytes=sum(r.io_bytes for r in reads),
        ops=sum(r.total_ios for r in reads),
        duration_s=max((delays.get(j.jobname, 0) / 1e6 + j.job_runtime_ms / 1000 for j in result.jobs), default=0.0),
        lat_p50_ms=mixed_percentile([(r.total_ios, _latency_table(r)) for r in reads], 50.0) / 1e6,
        lat_p99_ms=mixed_percentile([(r.total_ios, _latency_table(r)) for r in reads], 99.0) / 1e6,
        errors=len(failed) + sum(r.short_ios for r in reads),
        details={
            "fio_version": result.fio_version,
            "fio": fio,
            "job_file": str(job_file),
            "result_file": str(output),
            "fio_wall_s": wall,
            "jobs": len(result.jobs),
        },
        messages=(*failed, *result.messages),
    )


# ------------------------------------------------------------------------------------------ Ceph


def _ceph_conf() -> str:
    return os.environ.get("CEPH_CONF") or DEFAULT_CEPH_CONF


def _mon_host(conf: str) -> str:
    try:
        text = Path(conf).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"unknown: cannot read {conf}: {exc.strerror}"
    found = re.search(r"^\s*mon[ _]host\s*=\s*(.+?)\s*$", text, re.MULTILINE | re.IGNORECASE)
    return found.group(1) if found else f"unknown: no 'mon host' in {conf}"


def _unreachable(conf: str, reason: str) -> ReplayError:
    return ReplayError(f"cannot reach Ceph with CEPH_CONF={conf} (mon host {_mon_host(conf)}): {reason}")


def _ceph(tool: str, *args: str, conf: str) -> subprocess.CompletedProcess:
    """``rados``/``rbd`` with a time limit; a time-out means Ceph is unreachable."""
    command = [tool, "-c", conf, "--client_mount_timeout", MOUNT_TIMEOUT_S, *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=CEPH_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise ReplayError(f"{tool} not found on PATH: {INSTALL_CEPH}") from exc
    except subprocess.TimeoutExpired as exc:
        raise _unreachable(conf, f"`{tool} {' '.join(args)}` did not answer within {CEPH_TIMEOUT_S} s") from exc


def _check_pool(pool: str, conf: str) -> None:
    proc = _ceph("rados", "lspools", conf=conf)
    if proc.returncode != 0:
        raise _unreachable(conf, f"`rados lspools` exited {proc.returncode}: {_tail(proc.stderr, 1)}")
    pools = proc.stdout.split()
    if pool not in pools:
        raise ReplayError(f"Ceph pool {pool!r} does not exist (pools: {', '.join(pools) or 'none'})")


def _missing(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode != 0 and "No such file or directory" in proc.stderr


def _ceph_ok(proc: subprocess.CompletedProcess, what: str) -> str:
    if proc.returncode != 0:
        raise ReplayError(f"{what} failed (exit {proc.returncode}): {_tail(proc.stderr, 2)}")
    return proc.stdout


def _run_helper(command: str, plan: dict, workdir: Path, conf: str, timeout: float) -> dict:
    if not os.access(CEPH_PYTHON, os.X_OK):
        raise ReplayError(f"{CEPH_PYTHON} not found: the Ceph Python bindings need the system Python; {INSTALL_CEPH}")
    plan_file = workdir / f"{command}-plan.json"
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    try:
        proc = subprocess.run(
            [CEPH_PYTHON, str(HELPER), command, str(plan_file)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"{HELPER.name} {command} did not finish within {timeout:.0f} s ({plan_file})") from exc
    if proc.returncode == 3:
        raise _unreachable(conf, _tail(proc.stderr, 1))
    if proc.returncode == 4:
        raise ReplayError(f"{_tail(proc.stderr, 1)}: {INSTALL_CEPH}")
    if proc.returncode != 0:
        raise ReplayError(f"{HELPER.name} {command} failed (exit {proc.returncode}): {_tail(proc.stderr, 2)}")
    try:
        result = json.loads(proc.stdout)
    except ValueError as exc:
        raise ReplayError(f"{HELPER.name} {command} printed no JSON result: {_tail(proc.stdout)}") from exc
    (workdir / f"{command}-result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


# --------------------------------------------------------------------------------------- targets


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return ""


def directory_room(plan: ReplayPlan, root: Path) -> int:
    """Bytes the data set still needs under ``root`` (0: in place). Raises ReplayError when the
    file system has less room than that, or when files must be written where a file larger than
    the trace reads (data trainio did not lay out) would be overwritten."""
    to_write = 0
    foreign = []
    for rel, size in plan.sizes.items():
        path = root / rel
        have = path.stat().st_size if path.is_file() else None
        if have is None or have < size:
            to_write += size - (have or 0)
        elif have > size:
            foreign.append(f"{path} ({have} bytes, the trace reads {size})")
    if to_write and foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ReplayError(
            f"{root} holds files trainio did not lay out, larger than the trace reads: {foreign[0]}{more}; "
            "they will not be overwritten: choose an empty target directory"
        )
    if to_write:
        free = shutil.disk_usage(_existing_ancestor(root)).free
        if to_write > free:
            raise ReplayError(
                f"not enough space under {root}: the data set needs {to_write} bytes ({_human(to_write)}) more, "
                f"{free} bytes ({_human(free)}) are free"
            )
    return to_write


def _replay_directory(trace: Trace, plan: ReplayPlan, target: Target, workdir: Path, no_stall: bool, say: Progress):
    root = Path(target.path).absolute()
    names = {rel: _fio_name(str(root / rel)) for rel in plan.sizes}
    to_write = directory_room(plan, root)
    fio_path = _fio()
    layout = {"files": len(plan.sizes), "bytes_written": to_write}
    if to_write:
        say(f"laying out {len(plan.sizes):,} files ({_human(to_write)} to write) under {root}")
        layout["reused_files"] = layout_dataset(trace, root).reused_files
    else:
        say(f"data set in place: {len(plan.sizes):,} files under {root}")
    rows = [(names[r], s, f"{plan.data_root}/{r}") for r, s in plan.sizes.items()]
    mapping = _write_mapping(workdir, "file\tbytes\ttraced path", rows)
    job_file = _write_jobs(
        plan, workdir, engine=["ioengine=psync"], describe=str(root), no_stall=no_stall, name_of=names.__getitem__
    )
    measured = _replay_with_fio(plan, fio_path, job_file, workdir, no_stall=no_stall, say=say)
    return replace(measured, details={**measured.details, "layout": layout, "mapping_file": str(mapping)})


def _rbd_layout_on_image(plan: ReplayPlan, target: Target, workdir: Path, fio_path: str, conf: str, say: Progress):
    """Create the image if needed and write the packed data set unless the image holds it."""
    spec = f"{target.pool}/{target.image}"
    offsets, needed = rbd_layout(plan.sizes)
    digest = hashlib.sha256(json.dumps([[r, offsets[r], s] for r, s in plan.sizes.items()]).encode()).hexdigest()[:16]
    info = _ceph("rbd", "info", "--format", "json", spec, conf=conf)
    if _missing(info):
        say(f"creating rbd image {spec} of {needed} bytes")
        _ceph_ok(_ceph("rbd", "create", "--size", f"{needed}B", spec, conf=conf), f"rbd create {spec}")
        size, marker = needed, None
    else:
        size = json.loads(_ceph_ok(info, f"rbd info {spec}"))["size"]
        if size < needed:
            raise ReplayError(
                f"rbd image too small: needs {needed} bytes, has {size} ({spec}; `rbd resize` it or name a new image)"
            )
        meta = _ceph("rbd", "image-meta", "get", spec, LAYOUT_META_KEY, conf=conf)
        marker = None if _missing(meta) else _ceph_ok(meta, f"rbd image-meta get {spec}").strip()
        if marker is None:
            du = json.loads(_ceph_ok(_ceph("rbd", "du", "--format", "json", spec, conf=conf), f"rbd du {spec}"))
            used = sum(image.get("used_size", 0) for image in du.get("images", []))
            if used:
                raise ReplayError(
                    f"rbd image {spec} holds {used} bytes that trainio did not write (no {LAYOUT_META_KEY} "
                    "metadata); it will not be overwritten: name a new image"
                )
    if marker == digest:
        say(f"data set in place on rbd image {spec} ({LAYOUT_META_KEY}={digest})")
        return offsets, {"image_bytes": size, "needed_bytes": needed, "bytes_written": 0, "digest": digest}
    _ceph_ok(_ceph("rbd", "image-meta", "set", spec, LAYOUT_META_KEY, "writing", conf=conf), "rbd image-meta set")
    say(f"writing the data set ({_human(needed)}, {len(plan.sizes):,} files packed) to rbd image {spec}")
    iolog = workdir / "rbd-layout.iolog"
    writes = [f"{start} {min(RBD_WRITE_CHUNK, needed - start)}" for start in range(0, needed, RBD_WRITE_CHUNK)]
    lines = [IOLOG_HEADER, f"1 {RBD_FILE} add", f"1 {RBD_FILE} open", *(f"1 {RBD_FILE} write {w}" for w in writes)]
    iolog.write_text("\n".join([*lines, f"1 {RBD_FILE} close"]) + "\n", encoding="utf-8")
    # iodepth 1: fio 3.33 replaying an iolog through the rbd engine at a deeper queue loses the
    # writes from its counts, and crashes on reads.
    job_file = workdir / "rbd-layout.fio"
    job_file.write_text(
        "; fio job file written by trainio replay/fioreplay.py: writes the packed data set once\n"
        f"[layout]\nioengine=rbd\npool={target.pool}\nrbdname={target.image}\nclientname=admin\n"
        f"iodepth=1\nreplay_no_stall=1\nread_iolog={iolog}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "CEPH_CONF": conf}
    result, _ = _run_fio(fio_path, job_file, workdir / "rbd-layout.json", readonly=False, timeout=600, env=env)
    wrote = sum(job.write.io_bytes for job in result.jobs)
    if wrote != needed or any(job.error for job in result.jobs):
        errors = [f"error {job.error}" for job in result.jobs if job.error]
        raise ReplayError(f"writing rbd image {spec} wrote {wrote} of {needed} bytes: {errors + list(result.messages)}")
    _ceph_ok(_ceph("rbd", "image-meta", "set", spec, LAYOUT_META_KEY, digest, conf=conf), "rbd image-meta set")
    return offsets, {"image_bytes": size, "needed_bytes": needed, "bytes_written": needed, "digest": digest}


def _replay_rbd(trace: Trace, plan: ReplayPlan, target: Target, workdir: Path, no_stall: bool, say: Progress):
    fio_path = _fio()
    conf = _ceph_conf()
    _check_pool(target.pool, conf)
    offsets, layout = _rbd_layout_on_image(plan, target, workdir, fio_path, conf, say)
    rows = [(offsets[r], s, f"{plan.data_root}/{r}") for r, s in plan.sizes.items()]
    mapping = _write_mapping(workdir, "offset\tbytes\ttraced path", rows)
    engine = ["ioengine=rbd", f"pool={target.pool}", f"rbdname={target.image}", "clientname=admin"]
    describe = f"rbd image {target.pool}/{target.image}"
    job_file = _write_jobs(plan, workdir, engine=engine, describe=describe, no_stall=no_stall, rbd_offsets=offsets)
    env = {**os.environ, "CEPH_CONF": conf}  # fio's rbd engine has no conf= option
    measured = _replay_with_fio(plan, fio_path, job_file, workdir, no_stall=no_stall, say=say, env=env)
    return replace(measured, details={**measured.details, "layout": layout, "mapping_file": str(mapping)})


def _check_objects(plan: ReplayPlan, target: Target, workdir: Path, conf: str, *, write: bool) -> dict:
    objects = {rados_object_name(rel): size for rel, size in plan.sizes.items()}
    checked = _run_helper(
        "rados", {"conf": conf, "pool": target.pool, "objects": objects, "seed": 0, "write": write}, workdir, conf, 600
    )
    if checked["ok"] != len(objects):
        bad = ", ".join(
            f"{name} (expected {want} bytes, found {'none' if have < 0 else have})"
            for name, want, have in checked["bad"]
        )
        when = "after writing them" if write else "after the replay"
        error = ReplayError if write else ReplayVerificationError
        missing = len(objects) - checked["ok"]
        raise error(
            f"rados pool {target.pool}: {missing} of {len(objects)} objects missing or of the wrong size {when}: {bad}"
        )
    return checked


def _replay_rados(trace: Trace, plan: ReplayPlan, target: Target, workdir: Path, no_stall: bool, say: Progress):
    too_big = [(rel, size) for rel, size in plan.sizes.items() if size > RADOS_MAX_OBJECT]
    if too_big:
        rel, size = too_big[0]
        raise ReplayError(
            f"{rel} needs an object of {size} bytes, over RADOS's {RADOS_MAX_OBJECT} (osd_max_object_size): "
            "replay on rbd: or cephfs: instead"
        )
    names = {rel: _fio_name(rados_object_name(rel)) for rel in plan.sizes}
    fio_path = _fio()
    conf = _ceph_conf()
    _check_pool(target.pool, conf)
    say(f"checking {len(names):,} objects in rados pool {target.pool} (writing the missing ones)")
    before = _check_objects(plan, target, workdir, conf, write=True)
    if before["written"]:
        say(f"wrote {before['written']:,} objects ({_human(before['bytes_written'])})")
    mapping = _write_mapping(
        workdir, "object\tbytes\ttraced path", [(names[r], s, f"{plan.data_root}/{r}") for r, s in plan.sizes.items()]
    )
    engine = ["ioengine=rados", f"pool={target.pool}", f"conf={conf}", "clientname=admin", "touch_objects=0"]
    describe = f"rados pool {target.pool}"
    job_file = _write_jobs(
        plan, workdir, engine=engine, describe=describe, no_stall=no_stall, name_of=names.__getitem__
    )
    measured = _replay_with_fio(plan, fio_path, job_file, workdir, no_stall=no_stall, say=say)
    _check_objects(plan, target, workdir, conf, write=False)
    layout = {"objects": before["objects"], "written": before["written"], "bytes_written": before["bytes_written"]}
    return replace(measured, details={**measured.details, "layout": layout, "mapping_file": str(mapping)})


def _replay_cephfs(trace: Trace, plan: ReplayPlan, target: Target, workdir: Path, no_stall: bool, say: Progress):
    conf = _ceph_conf()
    processes = [
        {
            "name": job.name,
            "node": job.node,
            "start_delay_us": job.delay_us,
            "ops": [[op.path, op.action, op.offset, op.length, op.stamp_us] for op in job.ops],
        }
        for job in plan.jobs
    ]
    helper_plan = {
        "conf": conf,
        "root": target.path,
        "files": plan.sizes,
        "seed": 0,
        "no_stall": no_stall,
        "processes": processes,
    }
    rows = [(posixpath.join(target.path, r), s, f"{plan.data_root}/{r}") for r, s in plan.sizes.items()]
    mapping = _write_mapping(workdir, "cephfs path\tbytes\ttraced path", rows)
    pace = "as fast as possible" if no_stall else f"as traced (the plan spans {plan.planned_duration_s:.2f} s)"
    say(
        f"replaying {plan.expected_ops:,} reads in {len(processes)} threads on cephfs:{target.path} "
        f"through libcephfs, {pace}"
    )
    start = time.monotonic()
    result = _run_helper("cephfs", helper_plan, workdir, conf, _fio_timeout(plan))
    reads = result["latency_ms"].get("read", {})
    return _Measured(
        bytes=result["bytes"],
        ops=result["ops"],
        duration_s=result["duration_s"],
        lat_p50_ms=reads.get("p50", math.nan),
        lat_p99_ms=reads.get("p99", math.nan),
        errors=result["errors"],
        details={
            "helper": f"{CEPH_PYTHON} {HELPER}",
            "plan_file": str(workdir / "cephfs-plan.json"),
            "result_file": str(workdir / "cephfs-result.json"),
            "helper_wall_s": time.monotonic() - start,
            "latency_ms": result["latency_ms"],
            "layout": result["layout"],
            "mapping_file": str(mapping),
        },
        messages=tuple(result["error_messages"]),
    )


RUNNERS = {"directory": _replay_directory, "rbd": _replay_rbd, "rados": _replay_rados, "cephfs": _replay_cephfs}


def replay_fio(
    trace: Trace | str | os.PathLike,
    target: str,
    workdir: Path,
    *,
    nodes: int = 1,
    no_stall: bool = False,
    time_scale: float = 1.0,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay the trace's data reads on ``target`` (see the module docstring) and measure them.

    ``workdir`` receives the iologs, job files, plans, fio's report and ``mapping.tsv``.
    ``progress`` gets one line per step. Raises :class:`TargetError` for a target string that
    names nothing, :class:`~trainio.replay.result.ReplayError` when the replay cannot run (no fio, Ceph
    unreachable, no room, a trace without data reads) and
    :class:`~trainio.replay.result.ReplayVerificationError` when it read other bytes or ops than the trace.
    """
    if nodes < 1:
        raise ValueError(f"nodes(={nodes}) must be >= 1")
    say = progress or (lambda _line: None)
    spec = parse_target(target)
    trace = _load(trace)
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(trace, workdir, nodes=nodes, time_scale=time_scale)
    say(
        f"{plan.expected_ops:,} data reads ({_human(plan.expected_bytes)}) of {len(plan.sizes):,} files, "
        f"{len(plan.jobs)} jobs on {nodes} node(s); the trace spans {plan.traced_duration_s:.2f} s"
    )
    measured = RUNNERS[spec.kind](trace, plan, spec, workdir, no_stall, say)
    result = ReplayResult(
        target=target,
        nodes=nodes,
        bytes=measured.bytes,
        ops=measured.ops,
        duration_s=measured.duration_s,
        traced_duration_s=plan.traced_duration_s,
        lat_p50_ms=measured.lat_p50_ms,
        lat_p99_ms=measured.lat_p99_ms,
        errors=measured.errors,
        mode="no-stall" if no_stall else "as-traced",
        expected_bytes=plan.expected_bytes,
        expected_ops=plan.expected_ops,
        details={
            **measured.details,
            "workdir": str(workdir),
            "data_root": plan.data_root,
            "files": len(plan.sizes),
            "time_scale": time_scale,
            "planned_duration_s": plan.planned_duration_s,
            "messages": list(measured.messages),
        },
    )
    if result.bytes != result.expected_bytes or result.ops != result.expected_ops:
        why = f": {'; '.join(measured.messages[:3])}" if measured.messages else ""
        raise ReplayVerificationError(
            f"the replay on {target} read {result.bytes} bytes in {result.ops} reads, the trace "
            f"{result.expected_bytes} bytes in {result.expected_ops} reads{why}"
        )
    return result
