"""The cluster a training job runs on, and how DistributedSampler splits an epoch over it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainio.models.cpu import CpuCrowding


class ClusterError(ValueError):
    """A cluster description that cannot exist (no nodes, no memory, ...)."""


@dataclass(frozen=True)
class Cluster:
    """Nodes of identical shape; bandwidths in bytes/s, memory in bytes, latency in seconds.

    ``nic_bandwidth`` bounds each node's storage traffic (with the backend's own per-client
    limit); the interconnect carries the gradient all-reduce. ``cpu_crowding`` is how the nodes'
    CPU work grows with busy processes per core (measured by ``replay calibrate --cpu``).
    """

    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_node: int = 16
    node_memory_bytes: float = 256 * 2**30
    """Memory the page cache may use on one node."""
    nic_bandwidth: float = math.inf
    interconnect_bandwidth: float = 100e9 / 8
    """Per-rank bandwidth of the slowest link of the all-reduce ring (100 Gbit/s by default)."""
    interconnect_latency_s: float = 5e-6
    overlap_allreduce: bool = True
    """DDP overlaps the gradient all-reduce with the backward pass (gradient buckets)."""
    cpu_crowding: CpuCrowding = CpuCrowding()

    def __post_init__(self) -> None:
        for name in ("nodes", "gpus_per_node", "cpus_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ClusterError(f"{name}(={value!r}) must be an integer >= 1")
        for name in ("node_memory_bytes", "interconnect_latency_s"):
            if not getattr(self, name) >= 0:
                raise ClusterError(f"{name}(={getattr(self, name)}) must be >= 0")
        for name in ("nic_bandwidth", "interconnect_bandwidth"):
            if not getattr(self, name) > 0:
                raise ClusterError(f"{name}(={getattr(self, name)}) must be > 0")

    @property
    def world_size(self) -> int:
        """Training processes in the job: one per accelerator."""
        return self.nodes * self.gpus_per_node

    def samples_per_rank(self, samples: int) -> int:
        """Samples one rank reads per epoch: DistributedSampler pads the data set to a multiple
        of the world size, so every rank gets ceil(samples / world)."""
        return math.ceil(samples / self.world_size)
