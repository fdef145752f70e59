"""Exact mode: every request of every sample of every rank of every node, in one environment.

The reference the fast mode is measured against. A data request waits for an outstanding-request
slot of its node, for admission at the request-rate limit (``RateLimiter``) and for its first
byte, then moves its bytes through a processor-shared bandwidth pool (``SharedBandwidth``); opens
and stats cost their latency; page-cache hits cost nothing. CPU work shares the node's cores.
"""

from __future__ import annotations

import math

import numpy as np
import simpy
from simpy.events import ProcessGenerator
from simpy.resources.resource import Request

from trainio.models.counters import Counters, SimulationResult
from trainio.models.pipeline import Epoch, Pipeline, has_preload, totals
from trainio.models.plan import Plan
from trainio.models.resample import counts, step_draws
from trainio.models.shards import ShardStream
from trainio.models.storage import RateLimiter, SharedBandwidth
from trainio.models.timeline import Recorder


class ExactCluster(Pipeline):
    """The pipeline of every node, with every storage request and every sample's CPU time simulated."""

    def __init__(self, plan: Plan, *, nodes: int, rng: np.random.Generator, recorder: Recorder | None = None) -> None:
        super().__init__(plan, nodes=nodes, rng=rng, recorder=recorder)
        env = self.env
        self.cpus = [SharedBandwidth(env, plan.cpus_per_node, 1.0) for _ in range(nodes)]
        self.slots = (
            [simpy.Resource(env, capacity=int(plan.max_outstanding)) for _ in range(nodes)]
            if math.isfinite(plan.max_outstanding)
            else None
        )
        if plan.shared:
            pool = SharedBandwidth(
                env, plan.aggregate_bandwidth, plan.stream_bandwidth, plan.client_bandwidth, clients=nodes
            )
            self.pools = [(pool, node) for node in range(nodes)]
            self.limiters = [RateLimiter(env, plan.iops)] * nodes
        else:
            self.pools = [
                (SharedBandwidth(env, plan.aggregate_bandwidth, plan.stream_bandwidth), 0) for _ in range(nodes)
            ]
            self.limiters = [RateLimiter(env, plan.iops) for _ in range(nodes)]

    def load(self, node: int, epoch: Epoch, step: int, stream: ShardStream | None) -> ProcessGenerator:
        plan, rng, counters = self.plan, self.rng, self.loader
        n = plan.batch_samples(step)
        cpu = self.cpu_times.draw(n)
        if plan.kind == "files":
            sizes = self.sizes.draw(n)
            miss = rng.random(n) >= epoch.hit_ratio
            opens = counts(rng, plan.opens_per_sample, n)
            stats = counts(rng, plan.stats_per_sample, n)
            requests = counts(rng, plan.requests_per_sample, n)
            if plan.fault_bytes:  # a mapped sample's faults, each reading a whole readahead window
                faults = self.mapped_faults(node, epoch, n)
                requests = (np.floor(faults) + (rng.random(n) < faults - np.floor(faults))).astype(np.int64)
                sizes = requests * plan.fault_bytes
        for i in range(n):
            if plan.kind == "files" and miss[i]:
                yield from self._meta(node, opens[i], stats[i], counters)
                for _ in range(requests[i]):
                    yield from self._request(node, sizes[i] / requests[i], counters)
            elif plan.kind == "shards":
                assert stream is not None
                stream.taken += 1
                target = stream.target(stream.taken)
                while stream.pos < target:
                    opens_shard, size = stream.next_request()
                    if opens_shard:
                        yield from self._meta(node, plan.opens_per_shard, 0, counters)
                    if rng.random() >= epoch.hit_ratio:
                        yield from self._request(node, size, counters)
                    stream.pos += size
            yield from self.cpu(node, float(cpu[i]), counters)

    def preload_thread(self, node: int, thread: int) -> ProcessGenerator:
        opens, left, requests = self.preload_share(thread)
        yield from self._meta(node, opens, 0, self.preload)
        for _ in range(requests):
            size = min(self.plan.request_bytes, left)
            yield from self._request(node, size, self.preload)
            left -= size

    def cpu(self, node: int, seconds: float, counters: Counters) -> ProcessGenerator:
        if seconds <= 0:
            return
        started = self.env.now
        yield self.cpus[node].transfer(0, seconds)
        counters.cpu_s += seconds
        counters.cpu_wait_s += max(0.0, self.env.now - started - seconds)

    def _meta(self, node: int, opens: int, stats: int, counters: Counters) -> ProcessGenerator:
        plan = self.plan
        seconds = opens * plan.open_latency_s + stats * plan.stat_latency_s
        counters.meta_ops += opens + stats
        if seconds > 0:
            counters.meta_s += seconds
            yield self.env.timeout(seconds)
        yield from self._storage_cpu(node, opens * plan.open_cpu_s, opens * plan.open_server_cpu_s, counters)

    def _request(self, node: int, nbytes: float, counters: Counters) -> ProcessGenerator:
        env, plan = self.env, self.plan
        queued = env.now
        slot: Request | None = None
        if self.slots is not None:
            slot = self.slots[node].request()
            yield slot
        wait = self.limiters[node].delay()
        if wait > 0:
            yield env.timeout(wait)
        counters.queue_s += env.now - queued
        if plan.request_latency_s > 0:
            counters.latency_s += plan.request_latency_s
            yield env.timeout(plan.request_latency_s)
        moving = env.now
        pool, client = self.pools[node]
        yield pool.transfer(client, nbytes)
        counters.transfer_s += env.now - moving
        if self.recorder is not None and node == 0:
            self.recorder.read(moving, env.now, nbytes)
        if slot is not None:
            slot.resource.release(slot)
        counters.storage_bytes += nbytes
        counters.data_requests += 1
        yield from self._storage_cpu(node, plan.request_cpu_s, plan.server_cpu_s, counters)

    def _storage_cpu(self, node: int, client_s: float, server_s: float, counters: Counters) -> ProcessGenerator:
        """A storage operation's CPU: the co-located servers' beside it, then the client's in the
        worker's own time."""
        if server_s > 0:
            self.env.process(self._background_cpu(node, server_s, counters))
        if client_s > 0:
            counters.storage_cpu_s += client_s
            yield from self.cpu(node, client_s, counters)

    def _background_cpu(self, node: int, seconds: float, counters: Counters) -> ProcessGenerator:
        """Co-located servers' CPU for storage operations: it competes for the node's cores, but
        the operation does not wait for it."""
        counters.storage_cpu_s += seconds
        counters.cpu_s += seconds
        yield self.cpus[node].transfer(0, seconds)


def run_exact(plan: Plan, seed: int, recorder: Recorder | None = None) -> SimulationResult:
    """Every node, rank, epoch and request of ``plan`` in one environment; ``recorder`` collects
    the first rank's timeline."""
    sim = ExactCluster(plan, nodes=plan.nodes, rng=np.random.default_rng([seed, 0]), recorder=recorder)
    orders = [step_draws(plan, seed, e) for e in range(plan.epochs)]
    every = np.arange(plan.steps_per_epoch)
    epochs = [Epoch.numbered(plan, e, plan.hit_ratios[e], orders[e], every) for e in range(plan.epochs)]
    preload = has_preload(plan)
    for node in range(plan.nodes):
        for local in range(plan.ranks_per_node):
            sim.env.process(sim.rank(node, epochs, preload=preload, log=node == local == 0))
    sim.env.run()
    ends = [sim.preload_end, *sim.epoch_end]
    compute_s, allreduce_s = totals(plan, [epoch.compute_s for epoch in epochs])
    return SimulationResult(
        mode="exact",
        preload_s=sim.preload_end,
        epoch_s=tuple(b - a for a, b in zip(ends, ends[1:], strict=False)),
        loader=sim.loader.scaled(1 / plan.nodes),
        preload=sim.preload.scaled(1 / plan.nodes),
        main=sim.main.scaled(1 / plan.nodes),
        simulated_steps=plan.world * plan.steps_per_epoch * plan.epochs,
        compute_s=compute_s,
        allreduce_s=allreduce_s,
    )
