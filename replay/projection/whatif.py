"""What-if projection: the time to train a captured workload on another backend, cluster or format.

``project`` simulates (``trainio.models.simulate``) and then names the bottleneck from the simulated
numbers. Time to train runs from the start of data loading (the preload, or the first batch
request) to the end of the last step. Accelerator utilisation is compute time over that wall
time, as MLPerf Storage defines AU; the stall fraction is the rest less the exposed all-reduce,
preload included. docs/model.md, "The bottleneck", lists the rules.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TypedDict

from trainio.models.backend import BackendProfile
from trainio.models.cluster import Cluster
from trainio.models.counters import Counters, SimulationResult
from trainio.models.formats import RecordFormat
from trainio.models.plan import Plan, make_plan
from trainio.models.simulate import simulate
from trainio.models.stagein import StageIn
from trainio.models.timeline import Recorder
from trainio.models.units import bytes_text
from trainio.models.workload import Workload

BOTTLENECKS = (
    "compute",
    "storage-bandwidth",
    "storage-latency",
    "storage-iops",
    "network",
    "cpu-preprocessing",
    "storage-cpu",
    "preload",
    "host-cpu",
)
COMPUTE_BOUND_STALL = 0.05
"""Below this stall fraction a run is compute-bound (or network-bound)."""
SATURATED = 0.85
"""A resource used at least this much of the training time is the bottleneck."""
STORAGE_CPU_SHARE = 0.5
"""Busy cores are named ``storage-cpu`` when storage requests (client and co-located servers)
take at least this share of their work, ``cpu-preprocessing`` otherwise."""
HOST_CPU_SHARE = 0.5
"""A run is ``host-cpu``-bound when the training processes' wait for a core for their own step work is
at least this share of the stall that the loop's fixed costs and the preload do not explain."""


class Evidence(TypedDict):
    """The numbers the bottleneck is named from (``bottleneck_evidence``): fractions of the time to
    train, one node's utilisations and rates over the training after the preload, and
    ``loader_time_share``, where the loaders' time went."""

    stall_fraction: float
    loop_overhead_fraction: float
    step_cpu_fraction: float
    host_cpu_wait_fraction: float
    compute_fraction: float
    network_fraction: float
    preload_fraction: float
    preload_share_of_stall: float
    bandwidth_utilization: float
    iops_utilization: float
    cpu_utilization: float
    storage_cpu_share: float
    node_storage_cpu_s: float
    node_read_MBps: float
    node_requests_per_s: float
    allreduce_per_step_s: float
    loader_time_share: dict[str, float]


@dataclass(frozen=True)
class WhatIfResult:
    time_to_train_s: float
    per_epoch_s: tuple[float, ...]
    accelerator_utilization: float
    stall_fraction: float
    read_MBps: float  # noqa: N815 - the documented result key
    """Mean storage read rate of the whole cluster over the run (MB = 1e6 bytes); cache hits excluded."""
    read_ops_per_s: float
    """Mean data requests (reads, GETs) per second of the whole cluster."""
    metadata_ops_per_s: float
    backend_capacity: dict[str, float]
    bottleneck: str
    bottleneck_evidence: Evidence
    nodes: int
    gpus_per_node: int
    backend: str
    format: str
    mode: str
    preload_s: float
    compute_s: float
    """Accelerator compute time of one rank."""
    allreduce_s: float
    """All-reduce time one rank waits for (not hidden behind compute)."""
    page_cache_hit_ratio: tuple[float, ...]
    simulated_steps: int
    sim_wall_s: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    stage_in_s: float | None = 0.0
    """Every node copying the data it reads to its local disk before training (``--stage-in``); 0
    when training reads the backend itself, None when the data does not fit on the local disk."""
    time_to_value_s: float | None = None
    """From the job's start to the trained model: ``stage_in_s`` + ``time_to_train_s``; None when
    the data cannot be staged."""
    local_reserved_bytes: float = 0.0
    """Local disk each node must hold for the job (0 when training reads shared storage)."""
    eligible_node_fraction: float = 1.0
    """Fraction of the GPU nodes that can run the job: all from shared storage; with a stage-in,
    those with ``local_reserved_bytes`` free (``--nodes-with-space``), none when it does not fit."""
    staging: dict[str, object] | None = None
    """The copy's details (``trainio.models.stagein.StageIn``); None without a stage-in."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: tuples become lists, unlimited (infinite) numbers become None."""
        return {key: _jsonable(value) for key, value in asdict(self).items()}


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, float) and math.isinf(value):
        return None
    return value


def project(
    workload: Workload,
    backend: BackendProfile,
    cluster: Cluster,
    fmt: RecordFormat,
    *,
    exact: bool = False,
    seed: int = 0,
    recorder: Recorder | None = None,
    fixed_shards: bool = False,
) -> WhatIfResult:
    """Project ``workload`` onto ``backend`` and ``cluster`` with records in format ``fmt``;
    ``recorder`` collects the first rank's timeline; ``fixed_shards`` as in ``make_plan``."""
    plan = make_plan(workload, backend, cluster, fmt, seed=seed, fixed_shards=fixed_shards)
    sim = simulate(plan, exact=exact, seed=seed, recorder=recorder)
    total = sim.time_to_train_s
    read_bytes = (sim.loader.storage_bytes + sim.preload.storage_bytes) * plan.nodes
    requests = (sim.loader.data_requests + sim.preload.data_requests) * plan.nodes
    meta_ops = (sim.loader.meta_ops + sim.preload.meta_ops) * plan.nodes
    evidence = _evidence(plan, sim)
    notes = []
    if fmt.kind == "preload" and plan.preload_bytes * plan.ranks_per_node > cluster.node_memory_bytes:
        notes.append(
            f"preload holds {plan.preload_bytes * plan.ranks_per_node / 1e9:.1f} GB per node, more than "
            f"node_memory_bytes(={cluster.node_memory_bytes / 1e9:.1f} GB)"
        )
    if plan.host_crowding != 1:
        notes.append(
            f"CPU per sample and per step x{plan.host_crowding:.2f}: {plan.processes_per_core:.2g} loader processes "
            f"per core, the capture had {workload.captured_per_core:.2g} ({cluster.cpu_crowding.name})"
        )
    if plan.crowding != 1 and backend.node_cpu_per_request_s > 0:
        measured = (
            f"the profile's cpu_crowding_curve, measured at {', '.join(f'{p:.2g}' for p, _ in curve.points)}"
            if (curve := backend.cpu_crowding_curve).measured
            else f"the profile measured {backend.cpu_crowding_base:.2g} (cpu_crowding {backend.cpu_crowding:.3g})"
        )
        notes.append(
            f"CPU per request x{plan.crowding:.2f} ({1e3 * (plan.request_cpu_s + plan.server_cpu_s):.2f} ms): "
            f"{plan.processes_per_core:.2g} client processes per core, {measured}"
        )
    return WhatIfResult(
        time_to_train_s=total,
        per_epoch_s=sim.epoch_s,
        accelerator_utilization=_ratio(sim.compute_s, total),
        stall_fraction=evidence["stall_fraction"],
        read_MBps=_ratio(read_bytes, total) / 1e6,
        read_ops_per_s=_ratio(requests, total),
        metadata_ops_per_s=_ratio(meta_ops, total),
        backend_capacity=backend_capacity(plan),
        bottleneck=classify(evidence),
        bottleneck_evidence=evidence,
        nodes=cluster.nodes,
        gpus_per_node=cluster.gpus_per_node,
        backend=backend.name,
        format=str(fmt),
        mode=sim.mode,
        preload_s=sim.preload_s,
        compute_s=sim.compute_s,
        allreduce_s=sim.allreduce_s,
        page_cache_hit_ratio=plan.hit_ratios,
        simulated_steps=sim.simulated_steps,
        sim_wall_s=sim.sim_wall_s,
        notes=tuple(notes),
        time_to_value_s=total,
    )


def with_stage_in(result: WhatIfResult, stage: StageIn) -> WhatIfResult:
    """``result`` (the training on the stage-in target) preceded by the copy ``stage``: the backend
    named is the copy's source, the time to value includes the copy."""
    job = stage.job
    notes = [
        "every node copies the whole data set: DistributedSampler reshuffles it across all ranks every epoch"
        if job.whole_dataset
        else f"each node copies only its own 1/{result.nodes} of the data set (a fixed shard)"
    ]
    if stage.capacity_bytes is None:
        notes.append(f"{stage.target} gives no local capacity: whether the data fits is not checked")
    if not stage.fits:
        notes.append(
            f"cannot stage: {bytes_text(job.bytes_per_node)} per node does not fit in the "
            f"{bytes_text(stage.capacity_bytes or 0)} of local disk on {stage.target}"
        )
    staging: dict[str, object] = {
        "source": stage.source,
        "target": stage.target,
        "fits": stage.fits,
        "whole_dataset": job.whole_dataset,
        "bytes_per_node": job.bytes_per_node,
        "files_per_node": job.files_per_node,
        "streams": stage.streams,
        "node_MBps": stage.node_bandwidth / 1e6,
        "bound": stage.bound,
        "local_capacity_bytes": stage.capacity_bytes,
    }
    return replace(
        result,
        backend=stage.source,
        stage_in_s=stage.seconds,
        time_to_value_s=None if stage.seconds is None else stage.seconds + result.time_to_train_s,
        local_reserved_bytes=job.bytes_per_node,
        eligible_node_fraction=stage.eligible_node_fraction,
        staging=staging,
        notes=result.notes + tuple(notes),
    )


def backend_capacity(plan: Plan) -> dict[str, float]:
    """The backend's limits as this cluster sees them (MB = 1e6 bytes; inf = unlimited)."""
    nodes = plan.nodes
    if plan.shared:
        aggregate = min(plan.aggregate_bandwidth, nodes * plan.client_bandwidth)
        iops = plan.iops
    else:
        aggregate, iops = nodes * plan.aggregate_bandwidth, nodes * plan.iops
    return {
        "aggregate_MBps": aggregate / 1e6,
        "iops": iops,
        "per_stream_MBps": plan.stream_bandwidth / 1e6,
        "per_node_MBps": plan.node_bandwidth / 1e6,
        "per_node_iops": plan.node_iops,
    }


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _evidence(plan: Plan, sim: SimulationResult) -> Evidence:
    total = sim.time_to_train_s
    training = total - sim.preload_s
    loader = sim.loader
    stall = max(0.0, total - sim.compute_s - sim.allreduce_s)
    ranks = plan.ranks_per_node
    own_cpu_s, own_wait_s = sim.main.cpu_s / ranks, sim.main.cpu_wait_s / ranks
    return Evidence(
        stall_fraction=_ratio(stall, total),
        loop_overhead_fraction=_ratio(min(_loop_overhead_s(plan) + own_cpu_s, stall), total),
        step_cpu_fraction=_ratio(own_cpu_s, total),
        host_cpu_wait_fraction=_ratio(own_wait_s, total),
        compute_fraction=_ratio(sim.compute_s, total),
        network_fraction=_ratio(sim.allreduce_s, total),
        preload_fraction=_ratio(sim.preload_s, total),
        preload_share_of_stall=_ratio(sim.preload_s, stall),
        bandwidth_utilization=_ratio(loader.storage_bytes, training * plan.node_bandwidth),
        iops_utilization=_ratio(loader.data_requests, training * plan.node_iops),
        cpu_utilization=_ratio(loader.cpu_s + sim.main.cpu_s, training * plan.cpus_per_node),
        storage_cpu_share=_ratio(loader.storage_cpu_s, loader.cpu_s),
        node_storage_cpu_s=loader.storage_cpu_s + sim.preload.storage_cpu_s,
        node_read_MBps=_ratio(loader.storage_bytes, training) / 1e6,
        node_requests_per_s=_ratio(loader.data_requests, training),
        allreduce_per_step_s=plan.allreduce_s,
        loader_time_share=_loader_shares(loader),
    )


def _loop_overhead_s(plan: Plan) -> float:
    """Stall no storage or CPU change removes: taking ready batches from the workers, the gaps
    between epochs and the workers' start-up, as the captured run paid them."""
    receive = plan.batch_receive_s * plan.steps_per_epoch * plan.epochs
    gaps = plan.epoch_gap_s * (plan.epochs - 1)
    starts = plan.worker_start_s * (1 if plan.persistent_workers else plan.epochs)
    return receive + gaps + starts


def _loader_shares(loader: Counters) -> dict[str, float]:
    parts = {
        "metadata": loader.meta_s,
        "latency": loader.latency_s,
        "queue": loader.queue_s,
        "transfer": loader.transfer_s,
        "cpu": loader.cpu_s,
        "cpu_wait": loader.cpu_wait_s,
    }
    busy = sum(parts.values())
    return {name: _ratio(seconds, busy) for name, seconds in parts.items()}


def classify(evidence: Evidence) -> str:
    """Name the bottleneck from the numbers ``project`` reports as evidence."""
    stall = evidence["stall_fraction"]
    unexplained = stall - evidence["loop_overhead_fraction"] - evidence["preload_fraction"]
    if unexplained < COMPUTE_BOUND_STALL and evidence["preload_share_of_stall"] < 0.5:
        return "network" if evidence["network_fraction"] > evidence["compute_fraction"] else "compute"
    if evidence["network_fraction"] > stall:
        return "network"
    if evidence["preload_share_of_stall"] >= 0.5:
        return "preload"
    if evidence["host_cpu_wait_fraction"] >= HOST_CPU_SHARE * unexplained:
        return "host-cpu"
    saturation = {
        "storage-bandwidth": evidence["bandwidth_utilization"],
        "storage-iops": evidence["iops_utilization"],
        "cpu-preprocessing": evidence["cpu_utilization"],
    }
    busiest = max(saturation, key=saturation.__getitem__)
    cpu = "storage-cpu" if evidence["storage_cpu_share"] >= STORAGE_CPU_SHARE else "cpu-preprocessing"
    if saturation[busiest] >= SATURATED:
        return cpu if busiest == "cpu-preprocessing" else busiest
    # Nothing saturated: the loaders are slow by themselves; name what they spend time on.
    shares = evidence["loader_time_share"]
    waits = {
        "storage-latency": shares["metadata"] + shares["latency"],
        "storage-iops": shares["queue"],
        "storage-bandwidth": shares["transfer"],
        "cpu-preprocessing": shares["cpu"] + shares["cpu_wait"],
    }
    busiest = max(waits, key=waits.__getitem__)
    return cpu if busiest == "cpu-preprocessing" else busiest
