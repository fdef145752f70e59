"""``replay emulate``: time to train measured on real storage from a trace, without the training code.

    emulate(trace, "/mnt/cephfs/ds")                                   a directory (a mounted file system)
    emulate(trace, "s3://train/ds", EmulateOptions(endpoint=URL, nodes=2))   a bucket's prefix
    emulate(trace, "rados:trainpool", EmulateOptions(fmt="shards:64MiB"))     RADOS objects

The traced pipeline (:mod:`.pipeline`) is rebuilt per emulated rank -- N nodes x the traced ranks, all
on this host, each a process group of its own (:mod:`.loader`) -- its data set laid out at the target
once (files, or shards: :mod:`.shards`) and reused while its manifest matches, and every sample's reads
issued for real. The result holds what ``replay what-if`` projects, measured, next to the projection of
the same configuration. docs/replay.md (``replay emulate``) says what is kept and what is not.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainio.models.captured import NAME as AS_CAPTURED
from trainio.models.formats import LARGE_REQUEST_BYTES, SHUFFLE_BUFFER_SAMPLES, FormatError, parse_format
from trainio.replay.projection.scenario import Scenario, project_trace
from trainio.replay.real.loader import (
    Compiled,
    Io,
    LoaderConfig,
    RankPlan,
    compile_recipe,
    rank_batches,
    rank_shards,
)
from trainio.replay.real.loop import RankOutcome
from trainio.replay.real.pipeline import Pipeline, Recipe, Step, traced_pipeline
from trainio.replay.real.ranks import Snapshot, run_ranks
from trainio.replay.real.result import ReplayVerificationError
from trainio.replay.real.schedule import MAX_NODES
from trainio.replay.real.shards import pack, shard_requests
from trainio.replay.storage import ceph
from trainio.replay.storage.directory import DirectoryStore, FileReader, check_room
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import DATA_PREFIX, Layout, ensure_layout
from trainio.replay.storage.s3 import DEFAULT_TIMEOUTS, S3Reader, S3Store, Timeouts, new_session, s3_client
from trainio.replay.storage.target import DIRECTORY, RADOS, RGW, Target, TargetError, parse_target, with_endpoint
from trainio.tracefile import Trace, open_trace

ACCEPTS = (DIRECTORY, RADOS, RGW)
"""The target kinds ``replay emulate`` runs on."""
MAX_PROCESSES = 512
"""Processes (ranks and their workers) one emulation may start on this host."""
CLIENT_BOUND_BUSY = 0.9
"""Cores at least this busy over the emulation: the client (or its host), not the storage, was the limit."""
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 60.0
POLL_S = 0.25
CPU_MODEL = "sleep: each sample's traced time outside I/O slept, not burnt as CPU (docs/replay.md)"


@dataclass(frozen=True)
class EmulateOptions:
    """What to emulate; anything left unset stays as traced."""

    nodes: int = 1
    fmt: str = "files"
    """``files`` (as traced) or ``shards:SIZE``."""
    epochs: int | None = None
    compute_scale: float = 1.0
    workers: int | None = None
    batch_size: int | None = None
    shuffle: bool = False
    """A fresh seeded shuffle every epoch instead of the traced sample order."""
    seed: int = 0
    backend: str = AS_CAPTURED
    """The storage profile of the projection it is compared with (``replay what-if --backend``)."""
    profile: Path | None = None
    endpoint: str | None = None
    """For ``s3://BUCKET/PREFIX``."""
    overwrite: bool = False
    timeouts: Timeouts = DEFAULT_TIMEOUTS


@dataclass
class EmulationResult:
    target: str
    nodes: int
    ranks: int
    format: str
    time_to_train_s: float
    per_epoch_s: list[float]
    accelerator_utilization: float
    stall_fraction: float
    read_MBps: float  # noqa: N815 - the documented key
    read_ops_per_s: float
    lat_p50_ms: float
    lat_p99_ms: float
    bytes: int
    ops: int
    expected_bytes: int
    expected_ops: int
    errors: int
    preload_s: float
    compute_s: float
    """Accelerator compute (the slept step time) of one rank, the mean over ranks."""
    steps: int
    samples: int
    projected_time_to_train_s: float
    projected_accelerator_utilization: float
    projected_bottleneck: str
    captured_time_to_train_s: float | None
    client_cpu_busy: float | None
    """The emulation's own processes' share of this host's cores over the run."""
    host_cpu_busy: float | None
    """This host's busy share of its cores over the run: every process on it (a co-located storage's,
    other users') with the emulation's."""
    emulator_cpu_s: float
    limited_by: str | None
    """``client-cpu`` when the emulation's processes kept this host's cores at least 90% busy (the client,
    not the storage, set the pace); ``host-cpu`` when the host's cores were that busy with the emulation
    and other work together (a co-located storage, other users); else None."""
    interrupted: bool = False
    details: dict = field(default_factory=dict)

    @property
    def projection_difference_s(self) -> float:
        """Projected less measured time to train."""
        return self.projected_time_to_train_s - self.time_to_train_s

    @property
    def projection_difference_pct(self) -> float:
        return 100 * self.projection_difference_s / self.time_to_train_s if self.time_to_train_s > 0 else math.nan

    def to_dict(self) -> dict:
        """JSON-ready: a figure that cannot be had (NaN) is null."""
        data = asdict(self)
        data.update(
            projection_difference_s=self.projection_difference_s,
            projection_difference_pct=self.projection_difference_pct,
        )
        return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in data.items()}


def target_of(text: str, endpoint: str | None = None) -> Target:
    """``text`` parsed as a target ``replay emulate`` takes (a directory must not be a file; an S3 target
    needs its endpoint); :class:`~trainio.replay.storage.target.TargetError` else."""
    target = with_endpoint(parse_target(text, ACCEPTS, command="replay emulate"), endpoint)
    if target.kind == DIRECTORY and target.directory_kind() == "other":
        raise TargetError(f"target(={text!r}) is a file, not a directory")
    return target


# ------------------------------------------------------------------------------ the plan of every rank


def _startup_share(threads: tuple[tuple[Step, ...], ...], node: int, nodes: int) -> tuple[tuple[Step, ...], ...]:
    """Node ``node``'s share of a rank's start-up reads: every ``nodes``-th file opened (each thread's)."""
    shares = []
    for steps in threads:
        unit, kept = -1, []
        for step in steps:
            unit += step.action == "open"
            if max(unit, 0) % nodes == node:
                kept.append(step)
        if kept:
            shares.append(tuple(kept))
    return tuple(shares)


def rank_plans(pipeline: Pipeline, options: EmulateOptions) -> list[RankPlan]:
    """Every emulated rank: rank ``g`` is node ``g div R``'s copy of traced rank ``g mod R``, with its
    node's share of that rank's start-up reads."""
    traced = len(pipeline.ranks)
    world = options.nodes * traced
    epochs = options.epochs or pipeline.epochs
    return [
        RankPlan(
            g,
            g // traced,
            g % traced,
            world,
            epochs,
            _startup_share(pipeline.ranks[g % traced].startup, g // traced, options.nodes),
        )
        for g in range(world)
    ]


def _expected(plans: list[RankPlan], compiled: Compiled) -> tuple[int, int, int]:
    """Bytes, requests and steps the plans make, counted apart from the run."""
    config, sizes = compiled.config, compiled.sizes
    nbytes = ops = steps = 0

    def count(ios: tuple[Io, ...]) -> None:
        nonlocal nbytes, ops
        data = [io for io in ios if io.action in ("read", "get")]
        nbytes, ops = nbytes + sum(io.length for io in data), ops + len(data)

    workers = max(config.workers, 1)
    for plan in plans:
        for steps_of_thread in plan.startup:
            count(compile_recipe(Recipe(steps_of_thread, 0.0), config.kind, sizes)[0])
        for epoch in range(plan.epochs):
            if not config.shard_names:
                batches = rank_batches(compiled, plan, epoch)
                steps += len(batches)
                for batch in batches:
                    for sample in batch:
                        count(compiled.recipe(epoch, sample)[0])
                continue
            shards = rank_shards(compiled, plan, epoch)
            for slot in range(workers):
                members = [m for shard in shards[slot::workers] for _, m in config.shard_members[shard]]
                requests = shard_requests(members, config.request_bytes)
                nbytes, ops = nbytes + sum(r.length for r in requests), ops + len(requests)
                steps += math.ceil(len(members) / config.batch_size)
    return nbytes, ops, steps


# ------------------------------------------------------------------------------ the storage


@dataclass
class _Storage:
    """The target as the emulation uses it: where its layout goes and how a process reads it."""

    store: Any
    make_reader: Callable[[], Any]
    describe: str


def _storage(target: Target, options: EmulateOptions, scratch: Path) -> _Storage:
    if target.kind == DIRECTORY:
        root = target.directory
        return _Storage(DirectoryStore(root), lambda: FileReader(root), str(root))
    if target.kind == RADOS:
        conf = ceph.ceph_conf()
        ceph.check_pool(target.pool, conf)
        ceph.import_rados()  # fails here, in one line, rather than in every process
        pool = ceph.RadosStore(target.pool, DATA_PREFIX, scratch, conf)
        return _Storage(pool, lambda: ceph.RadosReader(target.pool, conf, pool.object_name), pool.root)
    prefix = target.prefix or DATA_PREFIX
    session = new_session()  # its service models loaded once, before the fork: each process's client is cheap
    client = s3_client(target.endpoint, pool=8, session=session, timeouts=options.timeouts)
    bucket = S3Store(client, target.endpoint, target.bucket, prefix)
    reader = lambda: S3Reader(target.endpoint, target.bucket, prefix, options.timeouts, session)  # noqa: E731
    return _Storage(bucket, reader, bucket.root)


# ------------------------------------------------------------------------------ running it


def _percentile_ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e3) if values else math.nan


# ------------------------------------------------------------------------------ the emulation


def emulate(
    trace: Trace | str | os.PathLike,
    target: str,
    options: EmulateOptions = EmulateOptions(),
    *,
    progress: Callable[[Snapshot], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> EmulationResult:
    """Emulate the traced training on ``target`` (see the module docstring) and measure it.

    ``progress`` gets a :class:`Snapshot` a few times a second, ``say`` one line per step of the work.
    Raises :class:`~trainio.replay.storage.target.TargetError` for a target it does not take,
    :class:`~trainio.models.formats.FormatError` for a format other than files or shards:SIZE,
    :class:`ValueError` for more processes than :data:`MAX_PROCESSES`,
    :class:`~trainio.replay.storage.layout.ForeignDataError` for a target holding what trainio did not
    write, :class:`~trainio.replay.real.pipeline.PipelineError` for a trace without a training loop to
    rebuild, :class:`~trainio.replay.storage.errors.ReplayError` when the emulation cannot run or fails,
    and :class:`~trainio.replay.real.result.ReplayVerificationError` when it read other bytes or requests
    than its plan. Ctrl-C stops it between steps; the result then says ``interrupted``.
    """
    say = say or (lambda _line: None)
    spec = target_of(target, options.endpoint)
    fmt = parse_format(options.fmt)
    if fmt.kind == "preload":
        raise FormatError(f"format {options.fmt!r}: replay emulate runs files or shards:SIZE")
    if not 1 <= options.nodes <= MAX_NODES:
        raise ValueError(f"nodes(={options.nodes}) must be 1 to {MAX_NODES}")
    if not 0 < options.compute_scale < math.inf:
        raise ValueError(f"compute_scale(={options.compute_scale}) must be a number > 0")

    trace = trace if isinstance(trace, Trace) else open_trace(Path(trace))
    pipeline = traced_pipeline(trace)
    for note in pipeline.notes:
        say(f"warning: {note}")
    workload = pipeline.workload
    workers = workload.workers if options.workers is None else options.workers
    batch_size = options.batch_size or workload.batch_size
    world = options.nodes * len(pipeline.ranks)
    if world * (1 + workers) > MAX_PROCESSES:
        raise ValueError(
            f"{world} ranks x (1 + {workers} workers) are {world * (1 + workers)} processes, more than "
            f"{MAX_PROCESSES} on one host: ask for fewer --nodes or --workers"
        )
    scenario = Scenario(
        nodes=options.nodes,
        backend=options.backend,
        profile=options.profile,
        format=options.fmt if fmt.kind == "shards" else None,
        epochs=options.epochs,
        workers=options.workers,
        batch_size=options.batch_size,
        compute_scale=options.compute_scale,
        seed=options.seed,
    )
    projected, _, _ = project_trace(pipeline.trace_path, scenario)
    say(f"what-if projects {projected.time_to_train_s:.2f} s for this configuration ({projected.backend})")

    layout = None
    sizes = dict(pipeline.sizes)
    if fmt.kind == "shards":
        assert fmt.shard_bytes is not None
        layout = pack([(s, pipeline.recipe(0, s).bytes) for s in pipeline.samples], fmt.shard_bytes)
        startup = {step.path for rank in pipeline.ranks for steps in rank.startup for step in steps}
        sizes = {**{path: size for path, size in sizes.items() if path in startup}, **layout.files}
    config = LoaderConfig(
        kind=spec.kind,
        workers=workers,
        prefetch_factor=workload.prefetch_factor,
        batch_size=batch_size,
        drop_last=workload.drop_last,
        compute_scale=options.compute_scale,
        worker_start_s=0.0 if workload.persistent_workers else workload.worker_start_s,
        epoch_gap_s=workload.epoch_gap_s,
        batch_receive_s=workload.batch_receive_s,
        collate_scale=batch_size / workload.batch_size,
        preload=pipeline.preload,
        shard_members=(
            {
                i: tuple((key, layout.members[key]) for key in layout.order if layout.members[key].shard == i)
                for i in range(len(layout.names))
            }
            if layout
            else {}
        ),
        shard_names=layout.names if layout else (),
        shuffle_buffer=SHUFFLE_BUFFER_SAMPLES,
        request_bytes=fmt.request_bytes or LARGE_REQUEST_BYTES,
        shuffle=options.shuffle,
        seed=options.seed,
    )
    plans = rank_plans(pipeline, options)
    compiled = Compiled(pipeline, config, sizes)
    expected_bytes, expected_ops, total_steps = _expected(plans, compiled)
    if spec.kind == RADOS and max(sizes.values(), default=0) > ceph.RADOS_MAX_OBJECT:
        raise ReplayError(
            f"an object of {max(sizes.values())} bytes is over RADOS's {ceph.RADOS_MAX_OBJECT}: use smaller shards"
        )
    with tempfile.TemporaryDirectory(prefix="trainio-emulate-") as scratch:
        storage = _storage(spec, options, Path(scratch))
        laid = ensure_layout(
            storage.store,
            sizes,
            purpose="replay",
            overwrite=options.overwrite,
            say=say,
            before_write=(lambda n: check_room(spec.directory, n)) if spec.kind == DIRECTORY else lambda n: None,
        )
        say(
            f"emulating {world} rank(s) ({options.nodes} node(s) x {len(pipeline.ranks)}) with {workers} worker(s) "
            f"each, {plans[0].epochs} epoch(s), on {storage.describe}"
        )
        compiled = Compiled(pipeline, config, sizes)
        outcomes, errors, interrupted, cpu = run_ranks(
            plans, compiled, storage.make_reader, total_steps, progress or (lambda _s: None)
        )
    if errors:
        raise ReplayError(f"the emulation on {target} failed: {errors[0]}")
    result = _result(spec, options, pipeline, projected, outcomes, cpu, laid, interrupted, fmt_text=str(fmt))
    result.expected_bytes, result.expected_ops = expected_bytes, expected_ops
    result.details.update(
        workers=workers,
        batch_size=batch_size,
        prefetch_factor=config.prefetch_factor,
        epochs=plans[0].epochs,
        shuffle="fresh" if options.shuffle else "traced order",
        cpu_model=CPU_MODEL,
        warnings=[*trace.warnings, *pipeline.notes],
        projection={"backend": projected.backend, "bottleneck": projected.bottleneck, "mode": projected.mode},
    )
    if not interrupted and (result.bytes, result.ops) != (expected_bytes, expected_ops) or result.errors:
        raise ReplayVerificationError(
            f"the emulation on {target} read {result.bytes} bytes in {result.ops} requests, its plan "
            f"{expected_bytes} bytes in {expected_ops} ({result.errors} short reads; "
            f"{'; '.join(result.details.get('messages', [])[:2]) or '-'})"
        )
    return result


def _result(
    spec: Target,
    options: EmulateOptions,
    pipeline: Pipeline,
    projected: Any,
    outcomes: list[RankOutcome],
    cpu: dict,
    laid: Layout,
    interrupted: bool,
    *,
    fmt_text: str,
) -> EmulationResult:
    start = min((o.start_s for o in outcomes), default=0.0)
    end = max((o.end_s for o in outcomes), default=0.0)
    total = max(0.0, end - start)
    epochs = max((len(o.epochs) for o in outcomes), default=0)
    per_epoch = [
        max(o.epochs[e][1] for o in outcomes if len(o.epochs) > e)
        - min(o.epochs[e][0] for o in outcomes if len(o.epochs) > e)
        for e in range(epochs)
    ]
    compute = sum(o.compute_s for o in outcomes) / max(len(outcomes), 1)
    latencies = [value for o in outcomes for value in o.tally.latencies]
    nbytes, ops = sum(o.tally.bytes for o in outcomes), sum(o.tally.ops for o in outcomes)
    client = host = None
    if cpu:
        (b0, t0), (b1, t1) = cpu["start"], cpu["end"]
        host = (b1 - b0) / (t1 - t0) if t1 > t0 else None
        capacity = (os.cpu_count() or 1) * cpu["wall_s"]
        client = min(1.0, cpu["children_s"] / capacity) if capacity > 0 else None
    limited = (
        "client-cpu" if (client or 0) >= CLIENT_BOUND_BUSY else "host-cpu" if (host or 0) >= CLIENT_BOUND_BUSY else None
    )
    same = options.epochs in (None, pipeline.epochs) and options.nodes == 1 and options.compute_scale == 1
    same = same and options.workers is None and options.batch_size is None and fmt_text == "files"
    return EmulationResult(
        target=spec.text,
        nodes=options.nodes,
        ranks=len(outcomes),
        format=fmt_text,
        time_to_train_s=total,
        per_epoch_s=per_epoch,
        accelerator_utilization=compute / total if total > 0 else 0.0,
        stall_fraction=max(0.0, total - compute) / total if total > 0 else 0.0,
        read_MBps=nbytes / total / 1e6 if total > 0 else 0.0,
        read_ops_per_s=ops / total if total > 0 else 0.0,
        lat_p50_ms=_percentile_ms(latencies, 50),
        lat_p99_ms=_percentile_ms(latencies, 99),
        bytes=nbytes,
        ops=ops,
        expected_bytes=0,
        expected_ops=0,
        errors=sum(o.tally.errors for o in outcomes),
        preload_s=max((o.startup_s for o in outcomes), default=0.0) if pipeline.preload else 0.0,
        compute_s=compute,
        steps=sum(o.steps for o in outcomes),
        samples=sum(o.tally.samples for o in outcomes),
        projected_time_to_train_s=projected.time_to_train_s,
        projected_accelerator_utilization=projected.accelerator_utilization,
        projected_bottleneck=projected.bottleneck,
        captured_time_to_train_s=pipeline.workload.captured_duration_s if same else None,
        client_cpu_busy=client,
        host_cpu_busy=host,
        emulator_cpu_s=cpu.get("children_s", 0.0),
        limited_by=limited,
        interrupted=interrupted,
        details={
            "layout": laid.to_dict(),
            "host_cpus": os.cpu_count(),
            "messages": [m for o in outcomes for m in o.tally.messages][:5],
            "stopped_ranks": sum(o.stopped for o in outcomes),
        },
    )
