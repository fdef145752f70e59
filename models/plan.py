"""What every rank does in one projection, in counts, sizes and limits.

``make_plan`` joins a workload, a backend, a cluster and a record format into the numbers the
simulator consumes, so that the simulator itself knows nothing of profiles or formats' syntax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainio.models.backend import BackendProfile
from trainio.models.cluster import Cluster
from trainio.models.cpu import processes_per_core
from trainio.models.formats import LARGE_REQUEST_BYTES, SHUFFLE_BUFFER_SAMPLES, RecordFormat
from trainio.models.network import ring_allreduce_s
from trainio.models.pagecache import hit_ratios
from trainio.models.workload import Workload

READAHEAD_BYTES = 128 * 2**10
"""Bytes a major fault on a mapped file reads when the trace did not measure it: Linux's default
``read_ahead_kb`` of a block device (docs/model.md, "Memory-mapped data")."""


class PlanError(ValueError):
    """A projection that cannot run (no full batch per rank, a nonsensical count, ...)."""


@dataclass(frozen=True)
class Plan:
    """Per-rank work and per-node limits; bytes, seconds, requests per second."""

    nodes: int
    ranks_per_node: int
    workers: int
    prefetch_factor: int
    batch_size: int
    epochs: int
    samples_per_rank: int
    steps_per_epoch: int
    last_batch: int
    """Samples in the last batch of an epoch (a partial batch unless drop_last)."""
    sample_bytes: np.ndarray
    sample_cpu_s: np.ndarray
    """CPU work per sample at this node's processes per core (the captured, times ``host_crowding``)."""
    step_compute_s: np.ndarray
    """The accelerator's share of each observed step."""
    step_cpu_s: np.ndarray
    """The training process's own CPU work in each observed step (paired with ``step_compute_s``), at
    this node's processes per core."""
    kind: str
    """Record format kind: files, shards or preload."""
    opens_per_sample: float
    stats_per_sample: float
    requests_per_sample: float
    """Data requests (reads or GETs) per sample read from storage, ``files`` format."""
    fault_bytes: float
    """Memory-mapped samples (``files`` format): bytes every storage request (a major fault) reads;
    ``requests_per_sample`` is then a sample's faults while its readahead windows are not cached
    yet; 0 for samples that are read."""
    window_samples: float
    """Memory-mapped samples in random order: samples per readahead window (0 in sequential order,
    where every window faults once, in turn)."""
    mapped_samples: int
    """Samples of the mapped data set, of which each node reads a random share every epoch."""
    open_latency_s: float
    stat_latency_s: float
    request_latency_s: float
    request_cpu_s: float
    """The storage client's CPU per data request, on the node's cores, in the request's own time
    (the profile's, times its crowding factor at this node's client processes per core)."""
    server_cpu_s: float
    """Co-located storage servers' CPU per data request, on the node's cores beside the request
    (crowded as ``request_cpu_s``)."""
    processes_per_core: float
    """Processes issuing storage requests per core of a node: its DataLoader workers (the
    training processes themselves without workers)."""
    crowding: float
    """The profile's crowding factor at ``processes_per_core``, in both CPU figures above."""
    host_crowding: float
    """What the captured per-sample and per-step CPU times are multiplied by: the node's CPU crowding
    at ``processes_per_core`` over the capture's (1 when either is unknown)."""
    open_cpu_s: float
    """The client's CPU per open (as ``request_cpu_s``)."""
    open_server_cpu_s: float
    """Co-located servers' CPU per open (as ``server_cpu_s``)."""
    request_bytes: float
    """Request size of sequential bulk reads (shards, preload)."""
    shard_bytes: float
    opens_per_shard: int
    shuffle_buffer: int
    hit_ratios: tuple[float, ...]
    """Fraction of each epoch's reads served by the node's page cache."""
    preload_bytes: float
    preload_opens: float
    preload_threads: int
    preload_cpu_s: float
    worker_start_s: float
    """Delay before an epoch's workers deliver anything (process start-up)."""
    persistent_workers: bool
    batch_receive_s: float
    """Training-loop time to take a ready batch from the workers (IPC, unpickling)."""
    epoch_gap_s: float
    """Between one epoch's last step and the next epoch's first batch request."""
    shared: bool
    aggregate_bandwidth: float
    """Of the whole backend when shared, of one node's device otherwise."""
    stream_bandwidth: float
    client_bandwidth: float
    """What one node can move to a shared backend (min of its NIC and the backend's per-client limit)."""
    iops: float
    """Of the whole backend when shared, of one node's device otherwise."""
    max_outstanding: float
    cpus_per_node: int
    allreduce_s: float
    overlap_allreduce: bool

    @property
    def world(self) -> int:
        return self.nodes * self.ranks_per_node

    @property
    def node_bandwidth(self) -> float:
        """Bandwidth one node gets when every node pulls equally (its fair share, or its NIC)."""
        share = self.aggregate_bandwidth / self.nodes if self.shared else self.aggregate_bandwidth
        return min(share, self.client_bandwidth)

    @property
    def node_iops(self) -> float:
        return self.iops / self.nodes if self.shared else self.iops

    def mapped_faults(self, taken: int, n: int) -> np.ndarray:
        """Expected major faults of a node's next ``n`` samples of an epoch after ``taken``: a sample
        faults when its window is not in the node's page cache yet. In random order (without
        replacement) none of the other ``window_samples - 1`` samples of its window was among the
        ``k`` before it with probability ``(1 - k / mapped_samples) ** (window_samples - 1)``
        (docs/model.md, "Memory-mapped data")."""
        done = np.minimum((taken + np.arange(n)) / self.mapped_samples, 1.0)
        return self.requests_per_sample * (1.0 - done) ** max(self.window_samples - 1.0, 0.0)

    def batch_samples(self, step: int) -> int:
        return self.last_batch if step == self.steps_per_epoch - 1 else self.batch_size


def make_plan(
    workload: Workload,
    backend: BackendProfile,
    cluster: Cluster,
    fmt: RecordFormat,
    *,
    seed: int = 0,
    fixed_shards: bool = False,
) -> Plan:
    """The per-rank work of ``workload`` run on ``cluster`` against ``backend`` in format ``fmt``;
    ``fixed_shards``: each node keeps one shard of the data set and the sampler never crosses them
    (data staged onto node-local disks shard by shard), which only the page cache sees."""
    for name in ("files_per_sample", "reads_per_sample", "stats_per_sample", "preload_cpu_s"):
        value = getattr(workload, name)
        if not (value >= 0 and math.isfinite(value)):
            raise PlanError(f"{name}(={value}) must be >= 0 and finite")
    for name in ("preload_bytes", "preload_files", "model_bytes"):
        if getattr(workload, name) < 0:
            raise PlanError(f"{name}(={getattr(workload, name)}) must be >= 0")
    if workload.preload_threads < 1:
        raise PlanError(f"preload_threads(={workload.preload_threads}) must be >= 1")

    per_rank = cluster.samples_per_rank(workload.samples)
    batch = workload.batch_size
    steps = per_rank // batch if workload.drop_last else math.ceil(per_rank / batch)
    if steps == 0:
        raise PlanError(
            f"batch_size(={batch}) is larger than the {per_rank} samples each of the "
            f"{cluster.world_size} ranks reads per epoch, and drop_last drops them all"
        )
    last = batch if workload.drop_last else per_rank - (steps - 1) * batch

    is_object = backend.access == "object"
    files = max(1.0, workload.files_per_sample)
    mean_bytes = float(workload.sample_bytes.mean())
    mapped = workload.access == "mmap" and fmt.kind == "files"
    if mapped and is_object:
        raise PlanError(f"backend {backend.name!r} is an object store: a memory-mapped data set needs a file system")
    fault = (workload.fault_bytes or READAHEAD_BYTES) if mapped else 0.0
    # A sample's faults: in random order one window (or its bytes' worth), in turn its share of them.
    faults = (max(mean_bytes, fault) if workload.shuffle else mean_bytes) / fault if mapped else 0.0
    window_samples = fault / mean_bytes if mapped and workload.shuffle and mean_bytes > 0 else 0.0

    # The preload phase: start-up reads the run did anyway, plus the data set for ``preload``.
    startup = not workload.dataset_preloaded
    preload_bytes = float(workload.preload_bytes) if startup else 0.0
    preload_opens = float(workload.preload_files) if startup else 0.0
    preload_cpu = workload.preload_cpu_s if startup else 0.0
    if fmt.kind == "preload":
        rank_bytes = per_rank * mean_bytes
        preload_bytes += rank_bytes
        preload_opens += workload.preload_threads  # one large file (or shard list) per thread
        if workload.dataset_preloaded and workload.preload_bytes > 0:
            preload_cpu = workload.preload_cpu_s * rank_bytes / workload.preload_bytes

    per_core = processes_per_core(cluster.gpus_per_node, workload.workers, cluster.cpus_per_node)
    crowding = backend.crowding_factor(per_core)
    host = 1.0
    if workload.captured_per_core is not None:
        host = cluster.cpu_crowding.ratio(per_core, workload.captured_per_core)
    cached_bytes, readers = workload.dataset_bytes, cluster.nodes
    if fixed_shards:  # every node rereads its own shard: a data set of its own
        cached_bytes, readers = cached_bytes / cluster.nodes, 1
    client = math.inf
    if backend.shared:
        assert backend.client_nic_bandwidth is not None  # BackendProfile checks it
        client = min(cluster.nic_bandwidth, backend.client_nic_bandwidth)

    return Plan(
        nodes=cluster.nodes,
        ranks_per_node=cluster.gpus_per_node,
        workers=workload.workers,
        prefetch_factor=workload.prefetch_factor,
        batch_size=batch,
        epochs=workload.epochs,
        samples_per_rank=per_rank,
        steps_per_epoch=steps,
        last_batch=last,
        sample_bytes=workload.sample_bytes,
        sample_cpu_s=workload.sample_cpu_s * host,
        step_compute_s=workload.step_compute_s,
        step_cpu_s=workload.step_cpu_s * host,
        kind=fmt.kind,
        opens_per_sample=0.0 if is_object or mapped else files,
        stats_per_sample=0.0 if is_object or mapped else workload.stats_per_sample,
        # An object store answers one GET per file; a file system sees the captured reads; a mapping
        # one fault per readahead window.
        requests_per_sample=faults if mapped else files if is_object else max(files, workload.reads_per_sample),
        fault_bytes=fault,
        window_samples=window_samples,
        mapped_samples=workload.samples,
        open_latency_s=backend.open_latency_s or 0.0,
        stat_latency_s=backend.stat_latency_s or 0.0,
        request_latency_s=backend.request_latency_s,
        request_cpu_s=backend.request_cpu_s * crowding,
        server_cpu_s=backend.colocated_cpu_s * crowding,
        processes_per_core=per_core,
        crowding=crowding,
        host_crowding=host,
        open_cpu_s=0.0 if is_object else backend.open_cpu_s,
        open_server_cpu_s=0.0 if is_object else backend.colocated_open_cpu_s,
        request_bytes=fmt.request_bytes or LARGE_REQUEST_BYTES,
        shard_bytes=fmt.shard_bytes or math.inf,
        opens_per_shard=0 if is_object else 1,
        shuffle_buffer=workload.shuffle_buffer
        if workload.shuffle_buffer is not None
        else SHUFFLE_BUFFER_SAMPLES
        if workload.shuffle
        else 0,
        hit_ratios=tuple(
            hit_ratios(
                workload.epochs,
                cached_bytes,
                readers,
                cluster.node_memory_bytes,
                shuffle=workload.shuffle,
                # mapped pages always go through the page cache (no O_DIRECT for a mapping)
                enabled=(backend.page_cache or mapped) and fmt.kind != "preload",
                seed=seed,
            )
        ),
        preload_bytes=preload_bytes,
        preload_opens=0.0 if is_object else preload_opens,
        preload_threads=workload.preload_threads,
        preload_cpu_s=preload_cpu,
        worker_start_s=workload.worker_start_s if workload.workers else 0.0,
        persistent_workers=workload.persistent_workers,
        epoch_gap_s=workload.epoch_gap_s,
        batch_receive_s=workload.batch_receive_s if workload.workers else 0.0,
        shared=backend.shared,
        aggregate_bandwidth=backend.aggregate_bandwidth,
        stream_bandwidth=backend.stream_bandwidth,
        client_bandwidth=client,
        iops=backend.iops,
        max_outstanding=backend.max_outstanding,
        cpus_per_node=cluster.cpus_per_node,
        allreduce_s=ring_allreduce_s(
            workload.model_bytes,
            cluster.world_size,
            cluster.interconnect_bandwidth,
            cluster.interconnect_latency_s,
        ),
        overlap_allreduce=cluster.overlap_allreduce,
    )
