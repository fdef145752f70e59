"""A what-if scenario over one trace: the overrides a user asks for, resolved into the models.

This is the Python API behind ``replay what-if``: ``project_trace(trace_dir, Scenario(...))``.
Anything left unset stays as captured (epochs, batch size, workers, GPUs per node, CPUs and memory
of the captured host, record format).
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
from trainio.models.formats import RecordFormat, parse_format
from trainio.models.workload import Workload, WorkloadError, from_trace
from trainio.replay.projection.whatif import WhatIfResult, project
from trainio.tracefile.reader import Trace, open_trace


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
    node_memory_bytes: float | None = None
    page_cache: bool | None = None
    """Whether reads go through the page cache (None: the backend profile's ``page_cache``)."""
    nic_bandwidth: float | None = None
    interconnect_bandwidth: float | None = None
    overlap_allreduce: bool = True
    exact: bool = False
    seed: int = 0


def resolve_backend(scenario: Scenario, trace: Trace) -> BackendProfile:
    if scenario.profile is not None:
        profile = load_profile(scenario.profile)
    elif scenario.backend == AS_CAPTURED:
        profile = captured_profile(trace)
    elif scenario.backend in builtin_names():
        profile = builtin_profile(scenario.backend)
    else:
        known = ", ".join([AS_CAPTURED, *builtin_names()])
        raise ScenarioError(f"--backend {scenario.backend!r} is not a known backend (known: {known})")
    if scenario.page_cache is None:
        return profile
    return dataclasses.replace(profile, page_cache=scenario.page_cache)


def apply_overrides(workload: Workload, scenario: Scenario) -> Workload:
    """The captured workload with the scenario's overrides; per-sample distributions are kept."""
    changes: dict = {}
    for name in ("epochs", "workers", "batch_size", "model_bytes"):
        value = getattr(scenario, name)
        if value is not None:
            changes[name] = value
    if scenario.dataset_samples is not None:
        changes["samples"] = scenario.dataset_samples
    if scenario.compute_scale != 1.0:
        if not 0 < scenario.compute_scale < math.inf:
            raise ScenarioError(f"--compute-scale(={scenario.compute_scale}) must be a number > 0")
        changes["step_compute_s"] = np.asarray(workload.step_compute_s) * scenario.compute_scale
    if changes.keys() - {"model_bytes"}:
        changes["captured_duration_s"] = None  # no longer the captured run
    return dataclasses.replace(workload, **changes) if changes else workload


def resolve_cluster(scenario: Scenario, workload: Workload, trace: Trace) -> Cluster:
    host = trace.manifest.get("host", {})
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
    return Cluster(**fields)


def captured_format(workload: Workload) -> RecordFormat:
    return parse_format("preload" if workload.dataset_preloaded else "files")


def project_trace(trace_dir: str | Path, scenario: Scenario) -> tuple[WhatIfResult, Workload, list[str]]:
    """Project the trace under ``scenario``; also returns the workload used and warnings."""
    trace = open_trace(trace_dir)
    warnings = list(trace.warnings)
    captured = from_trace(trace)
    warnings.extend(captured.notes)
    workload = apply_overrides(captured, scenario)
    backend = resolve_backend(scenario, trace)
    cluster = resolve_cluster(scenario, workload, trace)
    fmt = parse_format(scenario.format) if scenario.format else captured_format(workload)
    if workload.batch_size < 1:
        raise WorkloadError(f"batch_size(={workload.batch_size}) must be >= 1")
    ranks = cluster.nodes * cluster.gpus_per_node
    if ranks > workload.samples:
        warnings.append(
            f"{ranks:,} ranks ({cluster.nodes:,} nodes x {cluster.gpus_per_node}) for {workload.samples:,} samples: "
            "each rank reads less than one sample per epoch; the projection means little"
        )
    result = project(workload, backend, cluster, fmt, exact=scenario.exact, seed=scenario.seed)
    return result, workload, warnings
