"""``replay fio``: replay a trace's data reads on real storage and measure them.

    replay_fio(trace, "/mnt/nvme/replay", workdir)     a directory: a mounted file system or a local folder
    replay_fio(trace, "rbd:POOL/IMAGE", workdir)       an RBD image, through fio's rbd engine
    replay_fio(trace, "rados:POOL", workdir)           one RADOS object per file, through fio's rados engine
    replay_fio(trace, "cephfs:/PATH", workdir)         CephFS through libcephfs (the storage layer's helper)

The schedule (:mod:`trainio.replay.real.schedule`) is rendered per target: iologs and a job file for
fio, a JSON plan for the CephFS helper. Where the data set lives on each target, why CephFS goes
through a helper and what each measure means: docs/replay.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from trainio.models.formats import FormatError, parse_format
from trainio.models.units import bytes_text
from trainio.replay.real.iolog import (
    IOLOG_HEADER,
    JOB_FILE,
    RBD_FILE,
    RESULT_FILE,
    IologError,
    mapped,
    pace_text,
    write_fio_jobs,
)
from trainio.replay.real.result import ReplayResult, ReplayVerificationError
from trainio.replay.real.schedule import Schedule, build_schedule
from trainio.replay.real.shards import packed_schedule
from trainio.replay.storage import ceph
from trainio.replay.storage.directory import DirectoryStore, check_room, replace_file
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.fio import FioDirection, FioOutputError, find_fio, job_spans, lat_log_options, run_fio
from trainio.replay.storage.layout import DATA_PREFIX, ForeignDataError, Layout, ensure_layout
from trainio.replay.storage.target import CEPHFS, DIRECTORY, RADOS, RBD, Target, TargetError, parse_target
from trainio.replay.storage.workdir import subfolder, work_folder
from trainio.tracefile import Trace

ACCEPTS = (DIRECTORY, RBD, RADOS, CEPHFS)
"""The target kinds ``replay fio`` replays on."""
ALIGN = 4096
RBD_WRITE_CHUNK = 4 * 2**20
LAYOUT_META_KEY = "trainio.layout"
MAPPING_FILE = "mapping.tsv"
LAT_LOG_FOLDER, LAT_LOG_PREFIX = "latency", "job"
"""fio's per-I/O logs of a replay: WORKDIR/latency/job_lat.N.log."""
Progress = Callable[[str], None]


def target_of(text: str) -> Target:
    """``text`` parsed as a target ``replay fio`` takes (:class:`~trainio.replay.storage.target.TargetError` else);
    a directory target must not be a file."""
    target = parse_target(text, ACCEPTS, command="replay fio")
    if target.kind == DIRECTORY and target.directory_kind() == "other":
        raise TargetError(f"target(={text!r}) is a file, not a directory")
    return target


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


def _write_mapping(workdir: Path, header: str, rows: list[tuple]) -> Path:
    path = workdir / MAPPING_FILE
    lines = [f"# {header}"] + ["\t".join(map(str, row)) for row in rows]
    replace_file(path, ("\n".join(lines) + "\n").encode())
    return path


def _write_jobs(
    schedule: Schedule,
    workdir: Path,
    *,
    engine: list[str],
    describe: str,
    no_stall: bool,
    names: dict[str, str] | None = None,
    rbd_offsets: dict[str, int] | None = None,
) -> Path:
    comment = [
        "fio job file written by trainio replay/real/fioreplay.py",
        f"replays {schedule.expected_ops} data reads of {len(schedule.jobs)} jobs ({schedule.nodes} node(s)) "
        f"on {describe},",
        f"{pace_text(no_stall, schedule.time_scale)}; the data set must be in place (replay fio lays it out).",
    ]
    logs = subfolder(workdir, LAT_LOG_FOLDER)
    for old in logs.glob(f"{LAT_LOG_PREFIX}_*.log"):
        old.unlink()
    written = write_fio_jobs(
        schedule,
        workdir / "iolog",
        workdir / JOB_FILE,
        options=[*engine, "iodepth=1", "lat_percentiles=1", *lat_log_options(logs / LAT_LOG_PREFIX)],
        comment=comment,
        no_stall=no_stall,
        names=names,
        rbd_offsets=rbd_offsets,
    )
    return written[-1]


# --------------------------------------------------------------------------------- measuring


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
    measured_fidelity: float = math.nan


@dataclass(frozen=True)
class _Span:
    """When one job's reads ran, in seconds on one clock: the first's issue, the last's issue and end."""

    first_issue_s: float
    last_issue_s: float
    last_end_s: float


def measured_part(schedule: Schedule, spans: dict[str, _Span], *, no_stall: bool) -> tuple[float, float, list[dict]]:
    """The replay's wall span from its reads' real times (first read issued to last read done, every
    job), and the fidelity of the part a replay measures: each job's reads, first issue to last issue,
    against the schedule's (start delays, which only the plan knows, left out); summed over jobs.
    NaN without the traced pace (``no_stall``). Also one row per job."""
    if not spans:
        return 0.0, math.nan, []
    origin = min(span.first_issue_s for span in spans.values())
    planned_first = {
        job.name: (job.delay_us + next(op.stamp_us for op in job.ops if op.action == "read")) / 1e6
        for job in schedule.jobs
    }
    plan_origin = min(planned_first[name] for name in spans)
    rows, planned_total, measured_total = [], 0.0, 0.0
    for job in schedule.jobs:
        span = spans.get(job.name)
        if span is None:
            continue
        stamps = [op.stamp_us for op in job.ops if op.action == "read"]
        planned, measured = (stamps[-1] - stamps[0]) / 1e6, span.last_issue_s - span.first_issue_s
        planned_total += planned
        measured_total += measured
        late = (span.first_issue_s - origin) - (planned_first[job.name] - plan_origin)
        rows.append(
            {"job": job.name, "planned_s": planned, "measured_s": measured, "started_late_s": 0.0 if no_stall else late}
        )
    duration = max(span.last_end_s for span in spans.values()) - origin
    fidelity = measured_total / planned_total if planned_total > 0 and not no_stall else math.nan
    return duration, fidelity, rows


def _timeout_s(schedule: Schedule) -> float:
    """Generous: a slow target may well take many times the traced span; a hung one should end."""
    return 600 + 20 * schedule.planned_duration_s


def _replay_with_fio(
    schedule: Schedule, job_file: Path, workdir: Path, *, no_stall: bool, say: Progress, env: dict | None = None
) -> _Measured:
    """Run the job file and read fio's report."""
    pace = "as fast as possible" if no_stall else f"as traced (the plan spans {schedule.planned_duration_s:.2f} s)"
    say(f"replaying {schedule.expected_ops:,} reads in {len(schedule.jobs)} fio jobs, {pace}: {job_file}")
    output = workdir / RESULT_FILE
    run = run_fio(job_file, output, readonly=True, timeout_s=_timeout_s(schedule), env=env)
    result = run.result
    reads = [job.read for job in result.jobs]
    failed = [f"{job.jobname}: error {job.error}" for job in result.jobs if job.error]
    try:
        logged = job_spans(workdir / LAT_LOG_FOLDER / LAT_LOG_PREFIX, len(result.jobs))
    except FioOutputError as exc:
        raise ReplayError(f"fio's per-I/O log cannot be read: {exc}") from exc
    spans = {
        job.jobname: _Span(span.first_issue_s, span.last_issue_s, span.last_end_s)
        for job, span in zip(result.jobs, logged, strict=True)
        if span is not None
    }
    duration, fidelity, rows = measured_part(schedule, spans, no_stall=no_stall)
    return _Measured(
        bytes=sum(r.io_bytes for r in reads),
        ops=sum(r.total_ios for r in reads),
        duration_s=duration,
        lat_p50_ms=mixed_percentile([(r.total_ios, _latency_table(r)) for r in reads], 50.0) / 1e6,
        lat_p99_ms=mixed_percentile([(r.total_ios, _latency_table(r)) for r in reads], 99.0) / 1e6,
        errors=len(failed) + sum(r.short_ios for r in reads),
        details={
            "fio_version": result.fio_version,
            "fio": find_fio(),
            "job_file": str(job_file),
            "result_file": str(output),
            "fio_wall_s": run.wall_s,
            "jobs": len(result.jobs),
            "span_source": "fio's per-I/O latency log (log_unix_epoch)",
            "measured_jobs": rows,
        },
        messages=(*failed, *result.messages),
        measured_fidelity=fidelity,
    )


def _with_layout(measured: _Measured, layout: Layout | dict, mapping: Path) -> _Measured:
    described = layout.to_dict() if isinstance(layout, Layout) else layout
    return replace(measured, details={**measured.details, "layout": described, "mapping_file": str(mapping)})


# --------------------------------------------------------------------------------------- targets


def _replay_directory(
    schedule: Schedule, target: Target, workdir: Path, no_stall: bool, overwrite: bool, say: Progress
) -> _Measured:
    store = DirectoryStore(target.directory)
    root = store.path
    names = mapped(schedule, lambda rel: str(root / rel))
    find_fio()
    layout = ensure_layout(
        store,
        schedule.sizes,
        purpose="replay",
        overwrite=overwrite,
        say=say,
        before_write=lambda nbytes: check_room(root, nbytes),
    )
    rows = [(names[r], s, f"{schedule.data_root}/{r}") for r, s in schedule.sizes.items()]
    mapping = _write_mapping(workdir, "file\tbytes\ttraced path", rows)
    job_file = _write_jobs(
        schedule, workdir, engine=["ioengine=psync"], describe=str(root), no_stall=no_stall, names=names
    )
    return _with_layout(_replay_with_fio(schedule, job_file, workdir, no_stall=no_stall, say=say), layout, mapping)


def _rbd_layout_on_image(
    schedule: Schedule, target: Target, workdir: Path, conf: str, overwrite: bool, say: Progress
) -> tuple[dict[str, int], dict]:
    """Create the image if needed and write the packed data set unless the image holds it. An image
    trainio did not create (no ``trainio.layout`` metadata) is refused unless ``overwrite``."""
    spec = f"{target.pool}/{target.image}"
    offsets, needed = rbd_layout(schedule.sizes)
    packed = [[r, offsets[r], s] for r, s in schedule.sizes.items()]
    digest = hashlib.sha256(json.dumps(packed).encode()).hexdigest()[:16]
    info = ceph.ceph_tool("rbd", "info", "--format", "json", spec, conf=conf)
    if ceph.missing(info):
        say(f"creating rbd image {spec} of {needed} bytes")
        ceph.tool_output(ceph.ceph_tool("rbd", "create", "--size", f"{needed}B", spec, conf=conf), f"rbd create {spec}")
        size, marker = needed, None
    else:
        size = json.loads(ceph.tool_output(info, f"rbd info {spec}"))["size"]
        if size < needed:
            raise ReplayError(
                f"rbd image too small: needs {needed} bytes, has {size} ({spec}; `rbd resize` it or name a new image)"
            )
        meta = ceph.ceph_tool("rbd", "image-meta", "get", spec, LAYOUT_META_KEY, conf=conf)
        marker = None if ceph.missing(meta) else ceph.tool_output(meta, f"rbd image-meta get {spec}").strip()
        if marker is None and not overwrite:
            raise ForeignDataError(
                f"rbd image {spec} was not created by trainio (no {LAYOUT_META_KEY} metadata): name a new image, "
                "or pass --overwrite to let trainio write the data set over its contents"
            )
    if marker == digest:
        say(f"data set in place on rbd image {spec} ({LAYOUT_META_KEY}={digest})")
        return offsets, {"image_bytes": size, "needed_bytes": needed, "bytes_written": 0, "digest": digest}
    set_meta = ("rbd", "image-meta", "set", spec, LAYOUT_META_KEY)
    ceph.tool_output(ceph.ceph_tool(*set_meta, "writing", conf=conf), "rbd image-meta set")
    say(f"writing the data set ({bytes_text(needed)}, {len(schedule.sizes):,} files packed) to rbd image {spec}")
    iolog = workdir / "rbd-layout.iolog"
    writes = [f"{start} {min(RBD_WRITE_CHUNK, needed - start)}" for start in range(0, needed, RBD_WRITE_CHUNK)]
    lines = [IOLOG_HEADER, f"1 {RBD_FILE} add", f"1 {RBD_FILE} open", *(f"1 {RBD_FILE} write {w}" for w in writes)]
    replace_file(iolog, ("\n".join([*lines, f"1 {RBD_FILE} close"]) + "\n").encode())
    # iodepth 1: fio 3.33 replaying an iolog through the rbd engine at a deeper queue loses the
    # writes from its counts, and crashes on reads.
    job_file = workdir / "rbd-layout.fio"
    replace_file(
        job_file,
        (
            "; fio job file written by trainio replay/real/fioreplay.py: writes the packed data set once\n"
            f"[layout]\nioengine=rbd\npool={target.pool}\nrbdname={target.image}\nclientname=admin\n"
            f"iodepth=1\nreplay_no_stall=1\nread_iolog={iolog}\n"
        ).encode(),
    )
    env = {**os.environ, "CEPH_CONF": conf}
    result = run_fio(job_file, workdir / "rbd-layout.json", readonly=False, timeout_s=600, env=env).result
    wrote = sum(job.write.io_bytes for job in result.jobs)
    if wrote != needed or any(job.error for job in result.jobs):
        errors = [f"error {job.error}" for job in result.jobs if job.error]
        raise ReplayError(f"writing rbd image {spec} wrote {wrote} of {needed} bytes: {errors + list(result.messages)}")
    ceph.tool_output(ceph.ceph_tool(*set_meta, digest, conf=conf), "rbd image-meta set")
    return offsets, {"image_bytes": size, "needed_bytes": needed, "bytes_written": needed, "digest": digest}


def _replay_rbd(
    schedule: Schedule, target: Target, workdir: Path, no_stall: bool, overwrite: bool, say: Progress
) -> _Measured:
    find_fio()
    conf = ceph.ceph_conf()
    ceph.check_pool(target.pool, conf)
    offsets, layout = _rbd_layout_on_image(schedule, target, workdir, conf, overwrite, say)
    rows = [(offsets[r], s, f"{schedule.data_root}/{r}") for r, s in schedule.sizes.items()]
    mapping = _write_mapping(workdir, "offset\tbytes\ttraced path", rows)
    engine = ["ioengine=rbd", f"pool={target.pool}", f"rbdname={target.image}", "clientname=admin"]
    describe = f"rbd image {target.pool}/{target.image}"
    job_file = _write_jobs(schedule, workdir, engine=engine, describe=describe, no_stall=no_stall, rbd_offsets=offsets)
    env = {**os.environ, "CEPH_CONF": conf}  # fio's rbd engine has no conf= option
    measured = _replay_with_fio(schedule, job_file, workdir, no_stall=no_stall, say=say, env=env)
    return _with_layout(measured, layout, mapping)


def _replay_rados(
    schedule: Schedule, target: Target, workdir: Path, no_stall: bool, overwrite: bool, say: Progress
) -> _Measured:
    too_big = [(rel, size) for rel, size in schedule.sizes.items() if size > ceph.RADOS_MAX_OBJECT]
    if too_big:
        rel, size = too_big[0]
        raise ReplayError(
            f"{rel} needs an object of {size} bytes, over RADOS's {ceph.RADOS_MAX_OBJECT} (osd_max_object_size): "
            "replay on rbd: or cephfs: instead"
        )
    find_fio()
    conf = ceph.ceph_conf()
    ceph.check_pool(target.pool, conf)
    store = ceph.RadosStore(target.pool, DATA_PREFIX, workdir, conf)
    names = mapped(schedule, store.object_name)
    layout = ensure_layout(store, schedule.sizes, purpose="replay", overwrite=overwrite, say=say)
    rows = [(names[r], s, f"{schedule.data_root}/{r}") for r, s in schedule.sizes.items()]
    mapping = _write_mapping(workdir, "object\tbytes\ttraced path", rows)
    engine = ["ioengine=rados", f"pool={target.pool}", f"conf={conf}", "clientname=admin", "touch_objects=0"]
    describe = f"rados pool {target.pool}"
    job_file = _write_jobs(schedule, workdir, engine=engine, describe=describe, no_stall=no_stall, names=names)
    measured = _replay_with_fio(schedule, job_file, workdir, no_stall=no_stall, say=say)
    objects = {names[rel]: size for rel, size in schedule.sizes.items()}
    after = ceph.rados_objects(target.pool, objects, workdir, conf)
    if not after.complete:
        raise ReplayVerificationError(after.problem("after the replay"))
    return _with_layout(measured, layout, mapping)


def _replay_cephfs(
    schedule: Schedule, target: Target, workdir: Path, no_stall: bool, overwrite: bool, say: Progress
) -> _Measured:
    conf = ceph.ceph_conf()
    store = ceph.CephFSStore(target.path, workdir, conf)
    layout = ensure_layout(store, schedule.sizes, purpose="replay", overwrite=overwrite, say=say)
    processes = [
        {
            "name": job.name,
            "node": job.node,
            "start_delay_us": job.delay_us,
            "ops": [[op.path, op.action, op.offset, op.length, op.stamp_us] for op in job.ops],
        }
        for job in schedule.jobs
    ]
    plan = {"conf": conf, "root": target.path, "no_stall": no_stall}
    rows = [(posixpath.join(target.path, r), s, f"{schedule.data_root}/{r}") for r, s in schedule.sizes.items()]
    mapping = _write_mapping(workdir, "cephfs path\tbytes\ttraced path", rows)
    pace = "as fast as possible" if no_stall else f"as traced (the plan spans {schedule.planned_duration_s:.2f} s)"
    say(
        f"replaying {schedule.expected_ops:,} reads in {len(processes)} threads on cephfs:{target.path} "
        f"through libcephfs, {pace}"
    )
    start = time.monotonic()
    result = ceph.run_helper("cephfs", {**plan, "processes": processes}, workdir, conf, _timeout_s(schedule))
    reads = result["latency_ms"].get("read", {})
    spans = {
        p["name"]: _Span(p["first_read_s"], p["last_read_s"], p["last_end_s"])
        for p in result["processes"]
        if p.get("first_read_s") is not None
    }
    _, fidelity, measured_jobs = measured_part(schedule, spans, no_stall=no_stall)
    return _Measured(
        bytes=result["bytes"],
        ops=result["ops"],
        duration_s=result["duration_s"],
        measured_fidelity=fidelity,
        lat_p50_ms=reads.get("p50", math.nan),
        lat_p99_ms=reads.get("p99", math.nan),
        errors=result["errors"],
        details={
            "helper": f"{ceph.CEPH_PYTHON} {ceph.HELPER}",
            "plan_file": str(workdir / "cephfs-plan.json"),
            "result_file": str(workdir / "cephfs-result.json"),
            "helper_wall_s": time.monotonic() - start,
            "latency_ms": result["latency_ms"],
            "layout": layout.to_dict(),
            "mapping_file": str(mapping),
            "measured_jobs": measured_jobs,
        },
        messages=tuple(result["error_messages"]),
    )


RUNNERS = {DIRECTORY: _replay_directory, RBD: _replay_rbd, RADOS: _replay_rados, CEPHFS: _replay_cephfs}


def replay_fio(
    trace: Trace | str | os.PathLike,
    target: str,
    workdir: Path | None = None,
    *,
    nodes: int = 1,
    no_stall: bool = False,
    time_scale: float = 1.0,
    fmt: str = "files",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay the trace's data reads on ``target`` (see the module docstring) and measure them.

    ``fmt`` ``shards:SIZE`` lays the traced files out packed into shards of that size and replays each
    process's reads as a shard reader would issue them (:mod:`trainio.replay.real.shards`).
    ``workdir`` receives the iologs, job files, plans, fio's report and ``mapping.tsv`` (by default a
    new temporary folder, removed again if the replay fails). The data set is laid out in a layout root
    of trainio's own (docs/replay.md); ``overwrite`` lets trainio write where other data lies.
    ``progress`` gets one line per step. Raises :class:`~trainio.replay.storage.target.TargetError`
    for a target ``replay fio`` does not take, :class:`~trainio.replay.storage.layout.ForeignDataError`
    for a target or work folder holding what trainio did not write,
    :class:`~trainio.replay.real.iolog.IologError` for names or reads fio cannot express,
    :class:`~trainio.replay.storage.errors.ReplayError` when the replay cannot run (no fio, Ceph
    unreachable, no room, a trace without data reads) and
    :class:`~trainio.replay.real.result.ReplayVerificationError` when it read other bytes or ops than
    the trace.
    """
    if nodes < 1:
        raise ValueError(f"nodes(={nodes}) must be >= 1")
    say = progress or (lambda _line: None)
    spec = target_of(target)
    record_format = parse_format(fmt)
    if record_format.kind == "preload":
        raise FormatError(f"format {fmt!r}: replay fio replays files or shards:SIZE")
    schedule = build_schedule(trace, nodes=nodes, time_scale=time_scale, command="replay fio")
    if record_format.kind == "shards":
        schedule = packed_schedule(schedule, record_format)
    for note in schedule.notes:
        say(f"warning: {note}")
    say(
        f"{schedule.expected_ops:,} data reads ({bytes_text(schedule.expected_bytes)}) of {len(schedule.sizes):,} "
        f"{'shards' if record_format.kind == 'shards' else 'files'}, {len(schedule.jobs)} jobs on {nodes} node(s); "
        f"the trace spans {schedule.traced_duration_s:.2f} s"
    )
    with work_folder(workdir, prefix="trainio-fio-", overwrite=overwrite) as folder:
        try:
            measured = RUNNERS[spec.kind](schedule, spec, folder, no_stall, overwrite, say)
        except IologError as exc:
            raise IologError(f"cannot replay trace {schedule.trace_path} on {target}: {exc}") from exc
        result = ReplayResult(
            target=target,
            nodes=nodes,
            bytes=measured.bytes,
            ops=measured.ops,
            duration_s=measured.duration_s,
            traced_duration_s=schedule.traced_duration_s,
            lat_p50_ms=measured.lat_p50_ms,
            lat_p99_ms=measured.lat_p99_ms,
            errors=measured.errors,
            mode="no-stall" if no_stall else "as-traced",
            measured_fidelity=measured.measured_fidelity,
            expected_bytes=schedule.expected_bytes,
            expected_ops=schedule.expected_ops,
            details={
                **measured.details,
                "workdir": str(folder),
                "data_root": schedule.data_root,
                "files": len(schedule.sizes),
                "format": str(record_format),
                "time_scale": time_scale,
                "planned_duration_s": schedule.planned_duration_s,
                "messages": list(measured.messages),
                "warnings": [*schedule.warnings, *schedule.notes],
            },
        )
        if result.bytes != result.expected_bytes or result.ops != result.expected_ops:
            why = f": {'; '.join(measured.messages[:3])}" if measured.messages else ""
            raise ReplayVerificationError(
                f"the replay on {target} read {result.bytes} bytes in {result.ops} reads, the trace "
                f"{result.expected_bytes} bytes in {result.expected_ops} reads{why}"
            )
    return result
