"""Stage-in: every node copies the data it will read from shared storage to its own disk, then trains.

The alternative to training straight from a shared store. ``copy_job`` says what one node copies:
with DistributedSampler reshuffling the whole data set across ranks every epoch, a node reads
every sample sooner or later, so it needs the whole data set; with fixed shards (the sampler
never crosses them) only its own. ``stage_in`` says how long the copy takes when all nodes copy at
once, whether it fits on the node-local disk, and how many GPU nodes could take the job.
docs/model.md, "Stage-in", states the equations and what they leave out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainio.models.backend import BackendProfile
from trainio.models.cluster import Cluster
from trainio.models.formats import LARGE_REQUEST_BYTES, RecordFormat
from trainio.models.workload import Workload

COPY_STREAMS = 16
"""Files a node copies at once by default: a parallel copy (rclone, s5cmd, fpsync, xargs -P)."""
BOUNDS = ("source-bandwidth", "nic", "target-write", "source-iops", "node-cpu", "streams", "local-capacity")
"""What limits a copy: the source's share of its aggregate bandwidth, the node's link to it, the
local disk's writes, the source's request rate, the node's cores (the storage client's CPU per
request), the copy's streams (each waits out a file's latency and CPU and moves it at the
per-stream bandwidth); ``local-capacity``: it does not fit at all."""


class StageInError(ValueError):
    """A copy that cannot be modelled: from node-local storage, to shared storage, or to a disk whose
    write bandwidth the profile does not give."""


@dataclass(frozen=True)
class CopyJob:
    """What one node copies before training."""

    bytes_per_node: float
    files_per_node: float
    whole_dataset: bool
    """Every node copies the whole data set (per-epoch reshuffling across all ranks)."""


@dataclass(frozen=True)
class StageIn:
    """A copy's outcome; ``seconds`` is None when the data does not fit on the node-local disk."""

    source: str
    target: str
    job: CopyJob
    streams: int
    seconds: float | None
    node_bandwidth: float
    """Bytes/s each node copies at, over the copy (0 when it cannot stage)."""
    bound: str
    """One of ``BOUNDS``."""
    capacity_bytes: float | None
    """Node-local bytes available to the data set; None: not known, not checked."""
    eligible_node_fraction: float
    """Fraction of the GPU nodes that can run the job: those with room for ``job.bytes_per_node``."""

    @property
    def fits(self) -> bool:
        return self.seconds is not None


def check_target(target: BackendProfile) -> None:
    """Raise StageInError unless data can be copied onto ``target``: node-local, write bandwidth known."""
    if target.shared:
        raise StageInError(
            f"cannot stage in to {target.name}: it is shared storage; stage-in copies to node-local disks"
        )
    if target.write_bandwidth is None:
        raise StageInError(
            f"cannot stage in to {target.name}: its profile gives no write_bandwidth (add one to copy onto it)"
        )


def copy_job(workload: Workload, fmt: RecordFormat, cluster: Cluster, *, fixed_shards: bool) -> CopyJob:
    """What each node copies: the data set in ``fmt`` (its files, shards or preload files), whole
    unless every node keeps a fixed shard (``fixed_shards``) or the sampler does not shuffle (then a
    node rereads its own share every epoch)."""
    dataset = workload.dataset_bytes
    files: float
    if fmt.kind == "shards":
        assert fmt.shard_bytes is not None  # RecordFormat checks it
        files = math.ceil(dataset / fmt.shard_bytes)
    elif fmt.kind == "preload":
        files = cluster.world_size * workload.preload_threads  # one file per preload thread of each rank
    else:
        files = workload.samples * max(1.0, workload.files_per_sample)
    whole = workload.shuffle and not fixed_shards
    if whole:
        return CopyJob(dataset, files, whole_dataset=True)
    share = cluster.samples_per_rank(workload.samples) * cluster.gpus_per_node / workload.samples
    share = min(1.0, share)  # DistributedSampler pads the data set to a multiple of the world size
    return CopyJob(dataset * share, math.ceil(files * share), whole_dataset=False)


def stage_in(
    source: BackendProfile,
    target: BackendProfile,
    cluster: Cluster,
    job: CopyJob,
    *,
    streams: int = COPY_STREAMS,
    capacity_bytes: float | None = None,
    nodes_with_space: float | None = None,
) -> StageIn:
    """All ``cluster.nodes`` copy ``job`` from ``source`` to ``target`` at once, each with ``streams``
    files in flight. ``capacity_bytes`` overrides the target's ``local_capacity_bytes``;
    ``nodes_with_space`` is the fraction of GPU nodes with that much local disk free (all by default)."""
    if not source.shared:
        raise StageInError(f"cannot stage in from {source.name}: it is node-local storage, every node already has it")
    check_target(target)
    if streams < 1:
        raise StageInError(f"streams(={streams}) must be >= 1")
    if nodes_with_space is not None and not 0 <= nodes_with_space <= 1:
        raise StageInError(f"nodes_with_space(={nodes_with_space}) must be a fraction from 0 to 1")
    capacity = capacity_bytes if capacity_bytes is not None else target.local_capacity_bytes
    if capacity is not None and job.bytes_per_node > capacity:
        return StageIn(source.name, target.name, job, streams, None, 0.0, "local-capacity", capacity, 0.0)
    per_file = _per_file_s(source, target, cluster, job)
    per_file["streams"] /= streams
    per_file["node-cpu"] *= source.crowding_factor(streams / cluster.cpus_per_node) / cluster.cpus_per_node
    bound = max(per_file, key=per_file.__getitem__)
    seconds = job.files_per_node * per_file[bound]
    return StageIn(
        source.name,
        target.name,
        job,
        streams,
        seconds,
        job.bytes_per_node / seconds if seconds > 0 else math.inf,
        bound,
        capacity,
        1.0 if nodes_with_space is None else nodes_with_space,
    )


def _per_file_s(source: BackendProfile, target: BackendProfile, cluster: Cluster, job: CopyJob) -> dict[str, float]:
    """Seconds per file each limit alone allows one node, all nodes copying alike; ``streams`` is
    one stream's time for a file, ``node-cpu`` one core's."""
    nodes = cluster.nodes
    size = job.bytes_per_node / job.files_per_node if job.files_per_node else 0.0
    posix = source.access != "object"
    requests = max(1.0, size / LARGE_REQUEST_BYTES) if posix else 1.0
    opens = 1.0 if posix else 0.0
    client_cpu = requests * source.request_cpu_s + opens * source.open_cpu_s
    assert source.client_nic_bandwidth is not None and target.write_bandwidth is not None  # checked above
    return {
        "source-bandwidth": size * nodes / source.aggregate_bandwidth,
        "nic": size / min(cluster.nic_bandwidth, source.client_nic_bandwidth),
        "target-write": size / target.write_bandwidth,
        "source-iops": requests * nodes / source.iops,
        "node-cpu": client_cpu + requests * source.colocated_cpu_s + opens * source.colocated_open_cpu_s,
        "streams": opens * (source.open_latency_s or 0.0)
        + source.request_latency_s
        + client_cpu
        + size / source.stream_bandwidth,
    }
