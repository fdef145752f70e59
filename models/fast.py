"""Fast mode: the exact pipeline reduced by symmetry, aggregation, a steady state and epoch classes.

One representative node is simulated (a shared backend gives it 1/N of the aggregate bandwidth
and request rate); loading a batch is one fluid job (``FluidPool``) instead of its requests; of a
long epoch only a head and a tail are simulated and the middle is extrapolated; and a run of many
epochs simulates a few page-cache hit ratios and interpolates the rest. docs/model.md says what
each reduction loses.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import NamedTuple

import numpy as np
from simpy.events import ProcessGenerator

from trainio.models.counters import Counters, SimulationResult
from trainio.models.fluid import FluidPool, Station
from trainio.models.pipeline import Epoch, Pipeline, exposed, has_preload, totals
from trainio.models.plan import Plan
from trainio.models.resample import step_draws
from trainio.models.shards import ShardStream
from trainio.models.timeline import Recorder, Steady

WINDOW_MIN_STEPS = 240
"""Fast mode simulates at least this many steps of an epoch before extrapolating."""
BUDGET_RANK_STEPS = 100_000
"""Fast mode simulates every epoch while epochs x window steps x ranks per node stays below."""
MAX_EPOCH_CLASSES = 8
"""Page-cache hit ratios simulated, at most, when the budget does not allow every epoch."""
_COMPUTE_BOUND_STALL = 0.02
"""Below this stall the skipped middle of an epoch is extrapolated step by step from its compute."""


class FluidNode(Pipeline):
    """The representative node's pipeline, each batch one fluid job sharing the node's bandwidth,
    request rate and cores (its share of them, when the backend is shared)."""

    def __init__(self, plan: Plan, *, rng: np.random.Generator, recorder: Recorder | None = None) -> None:
        super().__init__(plan, nodes=1, rng=rng, recorder=recorder)
        latency = plan.request_latency_s
        self.fluid = FluidPool(
            self.env,
            {
                "bandwidth": Station(plan.node_bandwidth, plan.stream_bandwidth),
                "requests": Station(plan.node_iops, 1.0 / latency if latency > 0 else math.inf),
                "cores": Station(plan.cpus_per_node, 1.0),
            },
            {"outstanding": plan.max_outstanding} if math.isfinite(plan.max_outstanding) else {},
        )

    def load(self, node: int, epoch: Epoch, step: int, stream: ShardStream | None) -> ProcessGenerator:
        plan, rng = self.plan, self.rng
        n = plan.batch_samples(step)
        cpu = float(self.cpu_times.draw(n).sum())
        if plan.kind == "files":
            misses = int(np.count_nonzero(rng.random(n) >= epoch.hit_ratio)) if epoch.hit_ratio else n
            per_sample = plan.opens_per_sample * plan.open_latency_s + plan.stats_per_sample * plan.stat_latency_s
            requests, nbytes = misses * plan.requests_per_sample, float(self.sizes.draw(misses).sum())
            if plan.fault_bytes:  # a mapped sample's faults, each reading a whole readahead window
                requests = float(self.mapped_faults(node, epoch, n).sum()) * misses / n
                nbytes = requests * plan.fault_bytes
            yield from self._fluid_job(
                opens=misses * plan.opens_per_sample,
                meta_ops=misses * (plan.opens_per_sample + plan.stats_per_sample),
                meta_s=misses * per_sample,
                requests=requests,
                nbytes=nbytes,
                cpu_s=cpu,
                counters=self.loader,
            )
        elif plan.kind == "shards":
            assert stream is not None
            if stream.taken == 0:  # the shuffle buffer's fill is read before anything is decoded
                yield from self._fluid_job(*self._stream_io(stream, 1, epoch), 0.0, self.loader)
            stream.taken += n
            yield from self._fluid_job(*self._stream_io(stream, stream.taken, epoch), cpu, self.loader)
        else:
            yield from self.cpu(node, cpu, self.loader)

    def preload_thread(self, node: int, thread: int) -> ProcessGenerator:
        opens, nbytes, requests = self.preload_share(thread)
        yield from self._fluid_job(opens, opens * self.plan.open_latency_s, requests, nbytes, 0.0, self.preload)

    def cpu(self, node: int, seconds: float, counters: Counters) -> ProcessGenerator:
        yield from self._fluid_job(0, 0.0, 0, 0.0, seconds, counters)

    def _stream_io(self, stream: ShardStream, taken: int, epoch: Epoch) -> tuple[float, float, float, float]:
        """(meta ops, meta seconds, requests, bytes) to read until ``taken`` samples can be handed
        out. Past the fill, a reader's requests fall evenly among its samples, so the fluid job
        reads exactly the bytes it needs, in fractional requests."""
        plan = self.plan
        end = max(stream.target(taken), stream.pos)
        miss = 1.0 - epoch.hit_ratio
        requests = (stream.requests_before(end) - stream.requests_before(stream.pos)) * miss
        opens = (end - stream.pos) / plan.shard_bytes * plan.opens_per_shard * miss
        nbytes = (end - stream.pos) * miss
        stream.pos = end
        return opens, opens * plan.open_latency_s, requests, nbytes

    def _background_cpu(self, seconds: float, counters: Counters) -> ProcessGenerator:
        """Co-located servers' CPU for storage operations: it competes for the node's cores, but
        the operation does not wait for it."""
        counters.storage_cpu_s += seconds
        counters.cpu_s += seconds
        yield self.fluid.run(0.0, {"cores": seconds})

    def _fluid_job(
        self,
        meta_ops: float,
        meta_s: float,
        requests: float,
        nbytes: float,
        cpu_s: float,
        counters: Counters,
        opens: float | None = None,
    ) -> ProcessGenerator:
        """One batch's (or preload thread's) work as one fluid job; ``opens`` among the ``meta_ops``
        (all of them unless given: shards and preloads only open)."""
        stations = self.fluid.stations
        requests_s = stations["requests"].alone_s(requests)
        transfer_s = stations["bandwidth"].alone_s(nbytes)
        plan = self.plan
        opens = meta_ops if opens is None else opens
        client_cpu_s = requests * plan.request_cpu_s + opens * plan.open_cpu_s
        server_cpu_s = requests * plan.server_cpu_s + opens * plan.open_server_cpu_s
        cpu_s += client_cpu_s
        if server_cpu_s > 0:
            self.env.process(self._background_cpu(server_cpu_s, counters))
        use = {"bandwidth": nbytes, "requests": requests, "cores": cpu_s}
        if self.fluid.limits:
            use["outstanding"] = requests_s + transfer_s
        started = self.env.now
        lost = yield self.fluid.run(meta_s, use)
        if self.recorder is not None:
            self.recorder.read(started, self.env.now, nbytes)
        latency_s = requests * self.plan.request_latency_s
        counters.meta_ops += meta_ops
        counters.meta_s += meta_s
        counters.latency_s += latency_s
        counters.queue_s += requests_s - latency_s + lost["requests"] + lost.get("outstanding", 0.0)
        counters.transfer_s += transfer_s + lost["bandwidth"]
        counters.cpu_s += cpu_s
        counters.storage_cpu_s += client_cpu_s
        counters.cpu_wait_s += lost["cores"]
        counters.storage_bytes += nbytes
        counters.data_requests += requests


def window_steps(plan: Plan) -> int:
    """Steps the fast mode simulates at each end of an epoch before skipping its middle: enough
    to fill the prefetch queue and, for shards, to drain the shuffle buffer."""
    drain = 0
    if plan.kind == "shards":
        drain = math.ceil(plan.shuffle_buffer / plan.batch_size) * max(plan.workers, 1)
    return max(WINDOW_MIN_STEPS, 10 * plan.workers * plan.prefetch_factor, 4 * drain)


def simulated_steps(plan: Plan) -> np.ndarray:
    """Every step, or a head and a tail of ``window_steps`` around a skipped steady middle (a
    whole number of worker rounds, so that batch b still goes to worker b mod W)."""
    steps, window, stride = plan.steps_per_epoch, window_steps(plan), max(plan.workers, 1)
    skip = (steps - 2 * window) // stride * stride
    if skip <= 0:
        return np.arange(steps)
    head = steps - window - skip
    return np.concatenate([np.arange(head), np.arange(head + skip, steps)])


def run_fast(plan: Plan, seed: int, recorder: Recorder | None = None) -> SimulationResult:
    """The representative node's preload, then its epochs: each simulated in a window, or a few
    simulated and the others interpolated by page-cache hit ratio; ``recorder`` collects the first
    rank's timeline (extrapolated stretches as ``Steady`` spans)."""
    preload_s, preload = 0.0, Counters()
    if has_preload(plan):
        sim = FluidNode(plan, rng=np.random.default_rng([seed, 2]), recorder=recorder)
        for _ in range(plan.ranks_per_node):
            sim.env.process(sim.preload_phase(0))
        sim.env.run()
        preload_s, preload = sim.env.now, sim.preload

    orders = [step_draws(plan, seed, e) for e in range(plan.epochs)]
    draws = [plan.step_compute_s[order] for order in orders]
    steps = simulated_steps(plan)
    ratios = np.array(plan.hit_ratios)
    if plan.epochs * steps.size * plan.ranks_per_node <= BUDGET_RANK_STEPS:
        if recorder is not None:
            recorder.offset_s = preload_s
        outcomes = [fast_epoch(plan, seed, e, ratios[e], orders[e], steps, recorder) for e in range(plan.epochs)]
        simulated = plan.epochs
    else:
        outcomes, simulated = interpolated_epochs(plan, seed, ratios, orders, steps)
        if recorder is not None:  # no epoch simulated as such: each one is a steady span
            start = preload_s
            for outcome, compute in zip(outcomes, draws, strict=True):
                sync = float(exposed(plan, compute).sum())
                recorder.steady.append(
                    Steady(start, start + outcome.seconds, float(compute.sum()), sync, outcome.loader.storage_bytes)
                )
                start += outcome.seconds
    loader, main = Counters(), Counters()
    for outcome in outcomes:
        loader, main = loader.plus(outcome.loader), main.plus(outcome.main)
    compute_s, allreduce_s = totals(plan, draws)
    return SimulationResult(
        mode="fast",
        preload_s=preload_s,
        epoch_s=tuple(outcome.seconds for outcome in outcomes),
        loader=loader,
        preload=preload,
        main=main,
        simulated_steps=simulated * steps.size * plan.ranks_per_node,
        compute_s=compute_s,
        allreduce_s=allreduce_s,
    )


class EpochOutcome(NamedTuple):
    """One epoch of the representative node: its seconds, what its loaders did and what its
    training processes' own CPU work did."""

    seconds: float
    loader: Counters
    main: Counters


def interpolated_epochs(
    plan: Plan, seed: int, ratios: np.ndarray, orders: list[np.ndarray], steps: np.ndarray
) -> tuple[list[EpochOutcome], int]:
    """Simulate a few hit ratios and interpolate every epoch's time and counters between them."""
    points = np.unique(ratios)
    if points.size > MAX_EPOCH_CLASSES:
        points = np.linspace(points[0], points[-1], MAX_EPOCH_CLASSES)
    simulated = []
    for point in points:
        epoch = int(np.argmin(np.abs(ratios - point)))  # the nearest epoch lends its compute draws
        simulated.append(fast_epoch(plan, seed, epoch, float(point), orders[epoch], steps))

    def between(ratio: float, values: list[float]) -> float:
        return float(np.interp(ratio, points, values))

    def counters(ratio: float, which: list[Counters]) -> Counters:
        return Counters(**{f.name: between(ratio, [getattr(c, f.name) for c in which]) for f in fields(Counters)})

    outcomes = [
        EpochOutcome(
            between(ratio, [o.seconds for o in simulated]),
            counters(ratio, [o.loader for o in simulated]),
            counters(ratio, [o.main for o in simulated]),
        )
        for ratio in ratios
    ]
    return outcomes, len(points)


def fast_epoch(
    plan: Plan,
    seed: int,
    index: int,
    hit_ratio: float,
    order: np.ndarray,
    steps: np.ndarray,
    recorder: Recorder | None = None,
) -> EpochOutcome:
    """One epoch of the representative node, its steps the observed ones in ``order``."""
    sim = FluidNode(plan, rng=np.random.default_rng([seed, 3, index]), recorder=recorder)
    epoch = Epoch.numbered(plan, index, float(hit_ratio), order, steps)
    for local in range(plan.ranks_per_node):
        sim.env.process(sim.rank(0, [epoch], preload=False, log=local == 0))
    sim.env.run()
    seconds = sim.epoch_end[0]
    if steps.size == plan.steps_per_epoch:
        if recorder is not None:
            recorder.offset_s += seconds
        return EpochOutcome(seconds, sim.loader, sim.main)
    # Add the skipped middle at the steady state of the head's second half: a step's own work is
    # its accelerator time and its training process's CPU at the unloaded rate.
    compute, own = epoch.compute_s, epoch.compute_s + epoch.step_cpu_s
    head = int(np.argmax(np.diff(steps) > 1)) + 1
    skipped = compute[head : steps[head]]
    half = head // 2
    periods = np.diff(np.asarray(sim.step_ends[half - 1 : head]))
    window = compute[half:head]
    stall = periods - own[half:head] - exposed(plan, window)
    simulated_s = seconds
    if stall.sum() <= _COMPUTE_BOUND_STALL * periods.sum():
        seconds += float(
            own[head : steps[head]].sum() + exposed(plan, skipped).sum() + skipped.size * max(0.0, stall.mean())
        )
    else:
        seconds += float(skipped.size * periods.mean())
    simulated_samples = sum(plan.batch_samples(step) for step in steps.tolist())
    loader = sim.loader.scaled(plan.samples_per_rank / simulated_samples)
    main = sim.main.scaled(plan.steps_per_epoch / steps.size)
    if recorder is not None:
        middle = Steady(
            0.0,
            seconds - simulated_s,
            float(skipped.sum()),
            float(exposed(plan, skipped).sum()),
            loader.storage_bytes - sim.loader.storage_bytes,
        )
        recorder.extrapolate(sim.step_ends[head - 1], middle)
        recorder.offset_s += seconds
    return EpochOutcome(seconds, loader, main)
