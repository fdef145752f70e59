"""A what-if scenario over one trace: the overrides a user asks for, resolved into the models.

This is the Python API behind ``replay what-if``: ``project_trace(trace_dir, Scenario(...))``.
Anything left unset stays as captured (epochs, batch size, workers, GPUs per node, CPUs and memory
of the captured host, record format). Many projections of one trace (a sweep) read it once with
``load_trace`` and project each scenario with ``project_loaded``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainio.models.backend import BackendProfile, builtin_names, builtin_profile, load_profile
from trainio.models.captured import NAME as AS_CAPTURED
from trainio.models.captured import captured_profile
from trainio.models.cluster import Cluster
from trainio.models.cpu import load_cpu_profile
from trainio.models.formats import RecordFormat, parse_format
from trainio.models.stagein import COPY_STREAMS, check_target, copy_job, stage_in
from trainio.models.timeline import Recorder
from trainio.models.workload import Workload, WorkloadError, from_trace
from trainio.replay.projection.whatif import WhatIfResult, project, with_stage_in
from trainio.tracefile.reader import open_trace

MAX_EPOCHS, MAX_GPUS_PER_NODE, MAX_SAMPLES = 1000, 256, 10**9
"""What a projection on one machine takes in reasonable time and memory: the model's cost grows with
epochs (quadratically), ranks per node and data set size (10^10 samples exhausted 24 GiB)."""


class ScenarioError(ValueError):
    """An option that names nothing known (a backend) or a value out of range."""


@dataclass(frozen=True)
class Scenario:
    nodes: int = 1
    gpus_per_node: int | None = None
    backend: str = AS_CAPTURED
    profile: Path | None = None
    """A profile TOML file; overrides ``backend``."""
    format: str | None = None
    epochs: int | None = None
    dataset_samples: int | None = None
    workers: int | None = None
    batch_size: int | None = None
    compute_scale: float = 1.0
    model_bytes: int | None = None
    cpus_per_node: int | None = None
    cpu_profile: Path | None = None
    """A CPU profile (``replay calibrate --cpu``): how the nodes' CPU work grows with busy processes per
    core (None: not measured, the captured CPU times hold at any load)."""
    node_memory_bytes: float | None = None
    page_cache: bool | None = None
    """Whether reads go through the page cache (None: the backend profile's ``page_cache``)."""
    readahead_bytes: float | None = None
    """Memory-mapped data sets: bytes one major fault reads (None: as captured, else 128 KiB)."""
    nic_bandwidth: float | None = None
    interconnect_bandwidth: float | None = None
    overlap_allreduce: bool = True
    exact: bool = False
    seed: int = 0
    stage_in: str | None = None
    """Before training every node copies the data it reads from the backend to this node-local
    storage (a built-in profile's name or a profile file) and trains from there."""
    stage_in_shard: bool = False
    """Each node keeps a fixed shard and the sampler never crosses shards: it copies only its own."""
    stage_in_streams: int = COPY_STREAMS
    """Files each node copies at once."""
    local_capacity_bytes: float | None = None
    """Node-local bytes for the data set (None: the stage-in profile's ``local_capacity_bytes``)."""
    nodes_with_space: float | None = None
    """Fraction of the GPU nodes with enough local disk free for a stage-in (None: all)."""


@dataclass(frozen=True)
class LoadedTrace:
    """What projections need from a trace, read once: small enough to ship to other processes."""

    path: str
    workload: Workload
    """As captured."""
    host: dict
    """The manifest's ``host`` (CPUs and memory of the captured machine)."""
    captured_backend: BackendProfile
    """The ``as-captured`` profile fitted from the trace's reads."""
    warnings: tuple[str, ...]


def load_trace(trace_dir: str | Path) -> LoadedTrace:
    trace = open_trace(trace_dir)
    workload = from_trace(trace)
    return LoadedTrace(
        path=str(trace.path),
        workload=workload,
        host=dict(trace.manifest.get("host", {})),
        captured_backend=captured_profile(trace),
        warnings=(*trace.warnings, *workload.notes),
    )


def resolve_backend(scenario: Scenario, loaded: LoadedTrace) -> BackendProfile:
    if scenario.profile is not None:
        profile = load_profile(scenario.profile)
    elif scenario.backend == AS_CAPTURED:
        profile = loaded.captured_backend
    elif scenario.backend in builtin_names():
        profile = builtin_profile(scenario.backend)
    else:
        known = ", ".join([AS_CAPTURED, *builtin_names()])
        raise ScenarioError(f"--backend {scenario.backend!r} is not a known backend (known: {known})")
    return _page_cache(profile, scenario)


def _page_cache(profile: BackendProfile, scenario: Scenario) -> BackendProfile:
    if scenario.page_cache is None:
        return profile
    return dataclasses.replace(profile, page_cache=scenario.page_cache)


def stage_in_target(text: str) -> BackendProfile:
    """The node-local profile a ``--stage-in`` names: a built-in's name or a profile file."""
    if text in builtin_names():
        profile = builtin_profile(text)
    elif text.endswith(".toml") or Path(text).exists():
        profile = load_profile(text)
    else:
        local = [name for name in builtin_names() if not builtin_profile(name).shared]
        raise ScenarioError(
            f"--stage-in {text!r} is neither a built-in profile nor a profile file (node-local: {', '.join(local)})"
        )
    check_target(profile)
    return profile


def apply_overrides(workload: Workload, scenario: Scenario) -> Workload:
    """The captured workload with the scenario's overrides; per-sample distributions are kept."""
    changes: dict = {}
    for name in ("epochs", "workers", "batch_size", "model_bytes"):
        value = getattr(scenario, name)
        if value is not None:
            changes[name] = value
    if scenario.dataset_samples is not None:
        changes["samples"] = scenario.dataset_samples
    if scenario.readahead_bytes is not None:
        if not 0 < scenario.readahead_bytes < math.inf:
            raise ScenarioError(f"--readahead(={scenario.readahead_bytes}) must be a size > 0")
        changes["fault_bytes"] = scenario.readahead_bytes
    if scenario.compute_scale != 1.0:
        if not 0 < scenario.compute_scale < math.inf:
            raise ScenarioError(f"--compute-scale(={scenario.compute_scale}) must be a number > 0")
        # the accelerator's share of a step; the training process's own CPU in it stays
        changes["step_compute_s"] = np.asarray(workload.step_compute_s) * scenario.compute_scale
    if changes.keys() - {"model_bytes"}:
        changes["captured_duration_s"] = None  # no longer the captured run
    return dataclasses.replace(workload, **changes) if changes else workload


def resolve_cluster(scenario: Scenario, workload: Workload, loaded: LoadedTrace) -> Cluster:
    host = loaded.host
    fields: dict = {
        "nodes": scenario.nodes,
        "gpus_per_node": scenario.gpus_per_node or workload.captured_processes,
        "cpus_per_node": scenario.cpus_per_node or host.get("cpus_usable") or host.get("cpus") or 1,
        "overlap_allreduce": scenario.overlap_allreduce,
    }
    memory = scenario.node_memory_bytes or host.get("memory_bytes")
    if memory:
        fields["node_memory_bytes"] = float(memory)
    if scenario.nic_bandwidth is not None:
        fields["nic_bandwidth"] = scenario.nic_bandwidth
    if scenario.interconnect_bandwidth is not None:
        fields["interconnect_bandwidth"] = scenario.interconnect_bandwidth
    if scenario.cpu_profile is not None:
        fields["cpu_crowding"] = load_cpu_profile(scenario.cpu_profile)
    return Cluster(**fields)


def captured_format(workload: Workload) -> RecordFormat:
    if workload.shard_bytes is not None:
        return RecordFormat("shards", workload.shard_bytes)
    return parse_format("preload" if workload.dataset_preloaded else "files")


def project_trace(
    trace_dir: str | Path, scenario: Scenario, recorder: Recorder | None = None
) -> tuple[WhatIfResult, Workload, list[str]]:
    """Project the trace under ``scenario``; also returns the workload used and warnings."""
    return project_loaded(load_trace(trace_dir), scenario, recorder)


def project_loaded(
    loaded: LoadedTrace, scenario: Scenario, recorder: Recorder | None = None
) -> tuple[WhatIfResult, Workload, list[str]]:
    """``project_trace`` of a trace already read; ``recorder`` collects one rank's timeline."""
    workload = apply_overrides(loaded.workload, scenario)
    backend = resolve_backend(scenario, loaded)
    cluster = resolve_cluster(scenario, workload, loaded)
    fmt = parse_format(scenario.format) if scenario.format else captured_format(workload)
    if workload.batch_size < 1:
        raise WorkloadError(f"batch_size(={workload.batch_size}) must be >= 1")
    warnings = list(loaded.warnings)
    ranks = cluster.nodes * cluster.gpus_per_node
    if ranks > workload.samples:
        warnings.append(
            f"{ranks:,} ranks ({cluster.nodes:,} nodes x {cluster.gpus_per_node}) for {workload.samples:,} samples: "
            "each rank reads less than one sample per epoch; the projection means little"
        )
    if scenario.stage_in is None:
        result = project(workload, backend, cluster, fmt, exact=scenario.exact, seed=scenario.seed, recorder=recorder)
        return result, workload, warnings
    target = _page_cache(stage_in_target(scenario.stage_in), scenario)
    stage = stage_in(
        backend,
        target,
        cluster,
        copy_job(workload, fmt, cluster, fixed_shards=scenario.stage_in_shard),
        streams=scenario.stage_in_streams,
        capacity_bytes=scenario.local_capacity_bytes,
        nodes_with_space=scenario.nodes_with_space,
    )
    trained = project(
        workload,
        target,
        cluster,
        fmt,
        exact=scenario.exact,
        seed=scenario.seed,
        recorder=recorder,
        fixed_shards=not stage.job.whole_dataset,
    )
    return with_stage_in(trained, stage), workload, warnings
