"""SimPy model of a data-parallel training job's data loading and steps.

Processes, per training process (rank):
  * W loader workers (PyTorch DataLoader). Batch b goes to worker b mod W; the loader keeps at
    most W * prefetch_factor batches in flight and hands them to the training loop in order, and
    sends the next batch index only when the loop takes a batch. W = 0 loads in the loop itself.
    A worker loads the samples of its batch one after the other: storage requests, then CPU time
    (resampled from the workload) on the node's cores, which are processor-shared like the Linux
    scheduler shares them among runnable processes (a worker uses at most one core). Every data
    request also takes its client's CPU from those cores, in the worker's own time, and, when the
    storage servers run on the training nodes, their CPU per request as background work beside it
    (their time is already in the request's latency: the client waits while they work).
  * The training loop: wait for the next batch (stall), take it from its worker, compute (resampled step time, one draw
    per step shared by all ranks: every rank runs the same model on the same-size batch), wait at
    the step barrier of all ranks (DDP's all-reduce synchronises them), then the exposed part of
    the all-reduce.
  * A preload phase before the first step: preload threads reading in large requests, then the
    preload's CPU time on one core.
Every epoch builds a new DataLoader iterator, so the pipeline starts empty each epoch; since the
barrier aligns all ranks at the end of an epoch, epochs are independent given the page-cache hit
ratio of each (``trainio.models.pagecache``).

Two modes:
  * exact: every request of every sample of every rank of every node for every epoch, in one
    SimPy environment; the reference. A data request waits for an outstanding-request slot of
    its node (if the backend caps them), for admission at the IOPS limit (``RateLimiter``), for
    its first-byte latency, and then moves its bytes through a processor-shared bandwidth pool
    (``SharedBandwidth``: per stream, per node NIC, aggregate). Opens and stats cost their
    latency. Page-cache hits cost nothing.
  * fast: the same pipeline with three reductions.
    1. Symmetry: one representative node is simulated; a shared backend gives it 1/N of the
       aggregate bandwidth and IOPS (what it gets when all N nodes pull alike, which the step
       barrier makes them do). Cross-node straggling from sampling noise is lost.
    2. Aggregation: loading a batch is one fluid job (``trainio.models.fluid``) whose time alone is the
       sum of its samples' metadata latency, request latency, transfer at the per-stream rate and
       CPU time. The node's active jobs progress at speeds from a mean-value analysis of the
       queueing network they form (bandwidth, request rate and cores as processor-shared
       stations, the cap on outstanding requests as a plain limit): exact unloaded and
       saturated, close to the per-request model in between. What is lost is the grain of a
       batch: a shard reader's large reads are spread over its batch instead of arriving in
       bursts, which makes I/O-bound shard readers with few workers look up to a few percent
       faster than exact mode (bench/whatif_speed.py reports the cases). A shard reader's
       shuffle-buffer fill, which precedes any decoding, is a read-only job of its own.
    3. Steady state: of an epoch longer than twice ``window_steps``, only a head and a tail of
       that many steps are simulated (the tail holds the end of the epoch: the prefetch queue's
       and a shard reader's shuffle buffer's drain); readers fast-forward over the skipped middle,
       whose steps are added at the steady state of the head's second half: step by step from
       the compute draws plus the mean stall when that half is compute-bound (< 2% stall), else
       at its mean step period. Counters scale by samples.
    When all epochs together would still exceed ``BUDGET_RANK_STEPS`` simulated rank-steps,
    epochs are grouped by page-cache hit ratio: at most ``MAX_EPOCH_CLASSES`` ratios are
    simulated and the others interpolated linearly between them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import simpy

from trainio.models.fluid import FluidPool, Station
from trainio.models.network import exposed_allreduce_s
from trainio.models.storage import RateLimiter, SharedBandwidth
from trainio.models.timeline import Recorder, Steady
from trainio.replay.plan import Plan

WINDOW_MIN_STEPS = 240
"""Fast mode simulates at least this many steps of an epoch before extrapolating."""
BUDGET_RANK_STEPS = 100_000
"""Fast mode simulates every epoch while epochs x window steps x ranks per node stays below."""
MAX_EPOCH_CLASSES = 8
_COMPUTE_BOUND_STALL = 0.02

Gen = Iterator[simpy.Event]


@dataclass
class Counters:
    """What one node's loaders (or its preload) did, summed over workers; seconds and counts."""

    storage_bytes: float = 0.0
    data_requests: float = 0.0
    meta_ops: float = 0.0
    cpu_s: float = 0.0
    """Core time: the workload's decode and transform, and the storage requests' CPU."""
    storage_cpu_s: float = 0.0
    """The part of ``cpu_s`` that storage requests took (client and co-located server)."""
    cpu_wait_s: float = 0.0
    """Waiting for a free core."""
    meta_s: float = 0.0
    """Waiting on open/stat latency."""
    latency_s: float = 0.0
    """Waiting for first bytes of data requests."""
    queue_s: float = 0.0
    """Queued at the IOPS limit or for an outstanding-request slot."""
    transfer_s: float = 0.0

    def plus(self, other: Counters, weight: float = 1.0) -> Counters:
        return Counters(**{f.name: getattr(self, f.name) + weight * getattr(other, f.name) for f in fields(self)})

    def scaled(self, factor: float) -> Counters:
        return Counters().plus(self, factor)


@dataclass(frozen=True)
class SimulationResult:
    """Times are per rank (all ranks are step-synchronised); counters are per node."""

    mode: str
    preload_s: float
    epoch_s: tuple[float, ...]
    compute_s: float
    allreduce_s: float
    """Exposed (not overlapped) all-reduce time."""
    loader: Counters
    preload: Counters
    simulated_steps: int
    """Rank-steps actually simulated."""
    sim_wall_s: float

    @property
    def time_to_train_s(self) -> float:
        return self.preload_s + sum(self.epoch_s)


def simulate(plan: Plan, *, exact: bool = False, seed: int = 0, recorder: Recorder | None = None) -> SimulationResult:
    """Simulate ``plan``: every request (``exact``) or the reduced fast model; ``recorder``
    collects the first rank's timeline."""
    started = time.perf_counter()
    run = _run_exact if exact else _run_fast
    result = run(plan, seed, recorder)
    return SimulationResult(**{**result, "sim_wall_s": time.perf_counter() - started})


def window_steps(plan: Plan) -> int:
    """Steps the fast mode simulates at each end of an epoch before skipping its middle: enough
    to fill the prefetch queue and, for shards, to drain the shuffle buffer."""
    drain = 0
    if plan.kind == "shards":
        drain = math.ceil(plan.shuffle_buffer / plan.batch_size) * max(plan.workers, 1)
    return max(WINDOW_MIN_STEPS, 10 * plan.workers * plan.prefetch_factor, 4 * drain)


def _simulated_steps(plan: Plan) -> np.ndarray:
    """Every step, or a head and a tail of ``window_steps`` around a skipped steady middle (a
    whole number of worker rounds, so that batch b still goes to worker b mod W)."""
    steps, window, stride = plan.steps_per_epoch, window_steps(plan), max(plan.workers, 1)
    skip = (steps - 2 * window) // stride * stride
    if skip <= 0:
        return np.arange(steps)
    head = steps - window - skip
    return np.concatenate([np.arange(head), np.arange(head + skip, steps)])


@dataclass(frozen=True)
class _Epoch:
    hit_ratio: float
    compute_s: np.ndarray
    """Compute time of every step of the epoch."""
    steps: np.ndarray
    """The steps simulated, in order: all of them, or a head and a tail with the middle skipped."""
    start_workers: bool = True
    """Whether the epoch pays the workers' start-up (every epoch unless they are persistent)."""
    gap_s: float = 0.0
    """Time before the epoch's first batch request (the gap after the previous epoch)."""


def _starts_workers(plan: Plan, epoch: int) -> bool:
    return epoch == 0 or not plan.persistent_workers


def _gap_s(plan: Plan, epoch: int) -> float:
    return plan.epoch_gap_s if epoch > 0 else 0.0


def _compute_draws(plan: Plan, seed: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s step times: one run-long sequence of passes over the observations, each
    pass a fresh permutation, so a run as long as the captured one uses every observed step once
    (a one-off warm-up step is neither lost nor repeated)."""
    steps = plan.steps_per_epoch
    start, stop = epoch * steps, (epoch + 1) * steps
    n = plan.step_compute_s.size
    rng = np.random.default_rng([seed, 1])
    passes = [rng.permutation(plan.step_compute_s) for _ in range(stop // n + 1)]
    return np.concatenate(passes)[start:stop]


def _exposed(plan: Plan, compute: np.ndarray) -> np.ndarray:
    return exposed_allreduce_s(compute, plan.allreduce_s, plan.overlap_allreduce)


def _counts(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    """Integer counts per sample with the given mean (a fractional part becomes a coin flip)."""
    base = math.floor(mean)
    frac = mean - base
    if frac == 0:
        return np.full(n, base, dtype=np.int64)
    return base + (rng.random(n) < frac)


class _Resampler:
    """Draws observed values without replacement, reshuffling after every pass, so that the mean
    of any run of draws longer than a pass is the observations' mean: a short simulated window
    is not biased by a lucky draw."""

    def __init__(self, values: np.ndarray, rng: np.random.Generator) -> None:
        self.values, self.rng = values, rng
        self._order = rng.permutation(values)
        self._next = 0

    def draw(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            if self._next == self._order.size:
                self._order, self._next = self.rng.permutation(self.values), 0
            take = min(n, self._order.size - self._next)
            parts.append(self._order[self._next : self._next + take])
            self._next += take
            n -= take
        return np.concatenate(parts) if parts else self.values[:0]


class _Barrier:
    """Releases everyone once all ``parties`` have arrived; reusable step after step."""

    def __init__(self, env: simpy.Environment, parties: int) -> None:
        self.env = env
        self.parties = parties
        self._arrived = 0
        self._event = env.event()

    def wait(self) -> simpy.Event:
        event = self._event
        self._arrived += 1
        if self._arrived == self.parties:
            self._arrived = 0
            self._event = self.env.event()
            event.succeed()
        return event


class _ShardStream:
    """One reader's sequential pass over its shards in one epoch.

    Sample k may be handed out once the reader has read ``shuffle_buffer`` samples beyond it (the
    shuffle buffer's fill). Reads are requests of ``request_bytes`` that never cross a shard end;
    each shard is opened when its first byte is read.
    """

    def __init__(self, plan: Plan, samples: int, sizes: _Resampler) -> None:
        self.plan = plan
        self.ends = np.cumsum(sizes.draw(samples))
        self.total = float(self.ends[-1]) if samples else 0.0
        self.samples = samples
        self.taken = 0
        self.pos = 0.0

    def target(self, taken: int) -> float:
        """Bytes that must have been read before ``taken`` samples can be handed out."""
        needed = min(taken + self.plan.shuffle_buffer, self.samples)
        return float(self.ends[needed - 1]) if needed else 0.0

    def next_request(self) -> tuple[bool, float]:
        """(opens a shard, bytes) of the request at the current position."""
        shard, size = self.plan.shard_bytes, self.plan.request_bytes
        offset = self.pos % shard if math.isfinite(shard) else self.pos
        return offset == 0, min(size, shard - offset, self.total - self.pos)

    def requests_before(self, position: float) -> float:
        """Requests that read [0, position), counting a request in progress by its fraction."""
        shard, size = self.plan.shard_bytes, self.plan.request_bytes
        if not math.isfinite(shard):
            return position / size
        full = math.floor(position / shard)
        return full * math.ceil(shard / size) + (position - full * shard) / size


class _Sim:
    """One SimPy environment with ``nodes`` nodes of ``plan.ranks_per_node`` ranks each."""

    def __init__(
        self, plan: Plan, *, exact: bool, nodes: int, rng: np.random.Generator, recorder: Recorder | None = None
    ) -> None:
        env = self.env = simpy.Environment()
        self.plan, self.exact, self.rng, self.recorder = plan, exact, rng, recorder
        self.sizes = _Resampler(plan.sample_bytes, rng)
        self.cpu_times = _Resampler(plan.sample_cpu_s, rng)
        ranks = nodes * plan.ranks_per_node
        self.barrier = _Barrier(env, ranks) if ranks > 1 else None
        self.loader, self.preload = Counters(), Counters()
        self.preload_end = 0.0
        self.epoch_end: list[float] = []
        self.step_ends: list[float] = []
        if not exact:
            # The representative node's share of everything (see the module docstring).
            latency = plan.request_latency_s
            self.fluid = FluidPool(
                env,
                {
                    "bandwidth": Station(plan.node_bandwidth, plan.stream_bandwidth),
                    "requests": Station(plan.node_iops, 1.0 / latency if latency > 0 else math.inf),
                    "cores": Station(plan.cpus_per_node, 1.0),
                },
                {"outstanding": plan.max_outstanding} if math.isfinite(plan.max_outstanding) else {},
            )
            return
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

    # --- a rank -----------------------------------------------------------------------------

    def rank(self, node: int, epochs: list[_Epoch], *, preload: bool, log: bool) -> Gen:
        if preload:
            yield from self._preload(node)
        self.preload_end = max(self.preload_end, self.env.now)
        for index, epoch in enumerate(epochs):
            yield from self._epoch(node, epoch, log)
            if index == len(self.epoch_end):
                self.epoch_end.append(self.env.now)
            self.epoch_end[index] = max(self.epoch_end[index], self.env.now)

    def _epoch(self, node: int, epoch: _Epoch, log: bool) -> Gen:
        env, plan = self.env, self.plan
        count, workers = len(epoch.steps), plan.workers
        delay = epoch.gap_s + (plan.worker_start_s if workers and epoch.start_workers else 0.0)
        if delay > 0:
            yield env.timeout(delay)
        if workers:
            ahead = workers * plan.prefetch_factor
            sent = [env.event() for _ in range(count)]
            ready = [env.event() for _ in range(count)]
            for position in range(min(ahead, count)):
                sent[position].succeed()
            for worker in range(min(workers, count)):
                env.process(self._worker(node, epoch, worker, sent, ready))
        else:
            stream = self._stream(range(plan.steps_per_epoch))
            previous = -1
        for position, step in enumerate(epoch.steps.tolist()):
            if workers:
                yield ready[position]
                if position + ahead < count:
                    sent[position + ahead].succeed()
                if plan.batch_receive_s > 0:
                    yield env.timeout(plan.batch_receive_s)
            else:
                self._skip(stream, previous, step, 1)
                previous = step
                yield from self._load(node, epoch, step, stream)
            compute = float(epoch.compute_s[step])
            started = env.now
            yield env.timeout(compute)
            if self.barrier is not None:
                yield self.barrier.wait()
            exposed = exposed_allreduce_s(compute, plan.allreduce_s, plan.overlap_allreduce)
            if exposed > 0:
                yield env.timeout(exposed)
            if log:
                self.step_ends.append(env.now)
                if self.recorder is not None:
                    self.recorder.step(started, started + compute, env.now)

    def _worker(self, node: int, epoch: _Epoch, worker: int, sent: list, ready: list) -> Gen:
        workers = self.plan.workers
        stream = self._stream(range(worker, self.plan.steps_per_epoch, workers))
        previous = worker - workers
        for position in range(worker, len(epoch.steps), workers):
            step = int(epoch.steps[position])
            self._skip(stream, previous, step, workers)
            previous = step
            yield sent[position]
            yield from self._load(node, epoch, step, stream)
            ready[position].succeed()

    def _skip(self, stream: _ShardStream | None, previous: int, step: int, stride: int) -> None:
        """Fast-forward a reader over the skipped middle of an epoch (full batches, read in the
        steady state the extrapolation accounts for)."""
        skipped = (step - previous) // stride - 1
        if stream is not None and skipped > 0:
            stream.taken += skipped * self.plan.batch_size
            stream.pos = max(stream.pos, stream.target(stream.taken))

    def _stream(self, batches: range) -> _ShardStream | None:
        if self.plan.kind != "shards":
            return None
        return _ShardStream(self.plan, sum(self.plan.batch_samples(b) for b in batches), self.sizes)

    # --- loading a batch --------------------------------------------------------------------

    def _load(self, node: int, epoch: _Epoch, step: int, stream: _ShardStream | None) -> Gen:
        if self.exact:
            yield from self._load_exact(node, epoch, step, stream)
        else:
            yield from self._load_fluid(node, epoch, step, stream)

    def _load_exact(self, node: int, epoch: _Epoch, step: int, stream: _ShardStream | None) -> Gen:
        plan, rng, counters = self.plan, self.rng, self.loader
        n = plan.batch_samples(step)
        cpu = self.cpu_times.draw(n)
        if plan.kind == "files":
            sizes = self.sizes.draw(n)
            miss = rng.random(n) >= epoch.hit_ratio
            opens = _counts(rng, plan.opens_per_sample, n)
            stats = _counts(rng, plan.stats_per_sample, n)
            requests = _counts(rng, plan.requests_per_sample, n)
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
            yield from self._cpu(node, float(cpu[i]), counters)

    def _load_fluid(self, node: int, epoch: _Epoch, step: int, stream: _ShardStream | None) -> Gen:
        plan, rng = self.plan, self.rng
        n = plan.batch_samples(step)
        cpu = float(self.cpu_times.draw(n).sum())
        if plan.kind == "files":
            misses = int(np.count_nonzero(rng.random(n) >= epoch.hit_ratio)) if epoch.hit_ratio else n
            per_sample = plan.opens_per_sample * plan.open_latency_s + plan.stats_per_sample * plan.stat_latency_s
            yield from self._fluid_job(
                opens=misses * plan.opens_per_sample,
                meta_ops=misses * (plan.opens_per_sample + plan.stats_per_sample),
                meta_s=misses * per_sample,
                requests=misses * plan.requests_per_sample,
                nbytes=float(self.sizes.draw(misses).sum()),
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
            yield from self._fluid_job(0, 0.0, 0, 0.0, cpu, self.loader)

    def _stream_io(self, stream: _ShardStream, taken: int, epoch: _Epoch) -> tuple[float, float, float, float]:
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

    # --- preload ----------------------------------------------------------------------------

    def _preload(self, node: int) -> Gen:
        plan = self.plan
        threads = [self.env.process(self._preload_thread(node, t)) for t in range(plan.preload_threads)]
        yield self.env.all_of(threads)
        if self.exact:
            yield from self._cpu(node, plan.preload_cpu_s, self.preload)
        else:
            yield from self._fluid_job(0, 0.0, 0, 0.0, plan.preload_cpu_s, self.preload)

    def _preload_thread(self, node: int, thread: int) -> Gen:
        plan, counters = self.plan, self.preload
        count, files = plan.preload_threads, round(plan.preload_opens)
        opens = files // count + (thread < files % count)
        nbytes = plan.preload_bytes / count
        requests = math.ceil(nbytes / plan.request_bytes)
        if not self.exact:
            yield from self._fluid_job(opens, opens * plan.open_latency_s, requests, nbytes, 0.0, counters)
            return
        yield from self._meta(node, opens, 0, counters)
        left = nbytes
        for _ in range(requests):
            size = min(plan.request_bytes, left)
            yield from self._request(node, size, counters)
            left -= size

    # --- resources --------------------------------------------------------------------------

    def _meta(self, node: int, opens: int, stats: int, counters: Counters) -> Gen:
        plan = self.plan
        seconds = opens * plan.open_latency_s + stats * plan.stat_latency_s
        counters.meta_ops += opens + stats
        if seconds > 0:
            counters.meta_s += seconds
            yield self.env.timeout(seconds)
        yield from self._storage_cpu(node, opens * plan.open_cpu_s, opens * plan.open_server_cpu_s, counters)

    def _request(self, node: int, nbytes: float, counters: Counters) -> Gen:
        env, plan = self.env, self.plan
        queued = env.now
        slot = None
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
            self.slots[node].release(slot)
        counters.storage_bytes += nbytes
        counters.data_requests += 1
        yield from self._storage_cpu(node, plan.request_cpu_s, plan.server_cpu_s, counters)

    def _cpu(self, node: int, seconds: float, counters: Counters) -> Gen:
        if seconds <= 0:
            return
        started = self.env.now
        yield self.cpus[node].transfer(0, seconds)
        counters.cpu_s += seconds
        counters.cpu_wait_s += max(0.0, self.env.now - started - seconds)

    def _storage_cpu(self, node: int, client_s: float, server_s: float, counters: Counters) -> Gen:
        """A storage operation's CPU (exact mode): the co-located servers' beside it, then the
        client's in the worker's own time."""
        if server_s > 0:
            self.env.process(self._background_cpu(server_s, counters, node))
        if client_s > 0:
            counters.storage_cpu_s += client_s
            yield from self._cpu(node, client_s, counters)

    def _background_cpu(self, seconds: float, counters: Counters, node: int = 0) -> Gen:
        """Co-located servers' CPU for storage operations: it competes for the node's cores, but
        the operation does not wait for it."""
        counters.storage_cpu_s += seconds
        counters.cpu_s += seconds
        if self.exact:
            yield self.cpus[node].transfer(0, seconds)
        else:
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
    ) -> Gen:
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


# --- drivers ------------------------------------------------------------------------------------


def _has_preload(plan: Plan) -> bool:
    return plan.preload_bytes > 0 or plan.preload_cpu_s > 0


def _totals(plan: Plan, draws: list[np.ndarray]) -> dict[str, float]:
    compute = np.concatenate(draws)
    return {"compute_s": float(compute.sum()), "allreduce_s": float(_exposed(plan, compute).sum())}


def _run_exact(plan: Plan, seed: int, recorder: Recorder | None) -> dict:
    sim = _Sim(plan, exact=True, nodes=plan.nodes, rng=np.random.default_rng([seed, 0]), recorder=recorder)
    draws = [_compute_draws(plan, seed, e) for e in range(plan.epochs)]
    every = np.arange(plan.steps_per_epoch)
    epochs = [
        _Epoch(plan.hit_ratios[e], draws[e], every, _starts_workers(plan, e), _gap_s(plan, e))
        for e in range(plan.epochs)
    ]
    preload = _has_preload(plan)
    for node in range(plan.nodes):
        for local in range(plan.ranks_per_node):
            sim.env.process(sim.rank(node, epochs, preload=preload, log=node == local == 0))
    sim.env.run()
    ends = [sim.preload_end, *sim.epoch_end]
    return {
        "mode": "exact",
        "preload_s": sim.preload_end,
        "epoch_s": tuple(b - a for a, b in zip(ends, ends[1:], strict=False)),
        "loader": sim.loader.scaled(1 / plan.nodes),
        "preload": sim.preload.scaled(1 / plan.nodes),
        "simulated_steps": plan.world * plan.steps_per_epoch * plan.epochs,
        **_totals(plan, draws),
    }


def _run_fast(plan: Plan, seed: int, recorder: Recorder | None) -> dict:
    preload_s, preload = 0.0, Counters()
    if _has_preload(plan):
        sim = _Sim(plan, exact=False, nodes=1, rng=np.random.default_rng([seed, 2]), recorder=recorder)
        for _ in range(plan.ranks_per_node):
            sim.env.process(sim._preload(0))
        sim.env.run()
        preload_s, preload = sim.env.now, sim.preload

    draws = [_compute_draws(plan, seed, e) for e in range(plan.epochs)]
    steps = _simulated_steps(plan)
    ratios = np.array(plan.hit_ratios)
    if plan.epochs * steps.size * plan.ranks_per_node <= BUDGET_RANK_STEPS:
        if recorder is not None:
            recorder.offset_s = preload_s
        outcomes = [_fast_epoch(plan, seed, e, ratios[e], draws[e], steps, recorder) for e in range(plan.epochs)]
        simulated = plan.epochs
    else:
        outcomes, simulated = _interpolated_epochs(plan, seed, ratios, draws, steps)
        if recorder is not None:  # no epoch simulated as such: each one is a steady span
            start = preload_s
            for (seconds, counters), compute in zip(outcomes, draws, strict=True):
                exposed = float(_exposed(plan, compute).sum())
                recorder.steady.append(
                    Steady(start, start + seconds, float(compute.sum()), exposed, counters.storage_bytes)
                )
                start += seconds
    loader = Counters()
    for _, counters in outcomes:
        loader = loader.plus(counters)
    return {
        "mode": "fast",
        "preload_s": preload_s,
        "epoch_s": tuple(seconds for seconds, _ in outcomes),
        "loader": loader,
        "preload": preload,
        "simulated_steps": simulated * steps.size * plan.ranks_per_node,
        **_totals(plan, draws),
    }


def _interpolated_epochs(
    plan: Plan, seed: int, ratios: np.ndarray, draws: list[np.ndarray], steps: np.ndarray
) -> tuple[list[tuple[float, Counters]], int]:
    """Simulate a few hit ratios and interpolate every epoch's time and counters between them."""
    points = np.unique(ratios)
    if points.size > MAX_EPOCH_CLASSES:
        points = np.linspace(points[0], points[-1], MAX_EPOCH_CLASSES)
    simulated = []
    for point in points:
        epoch = int(np.argmin(np.abs(ratios - point)))  # the nearest epoch lends its compute draws
        simulated.append(_fast_epoch(plan, seed, epoch, float(point), draws[epoch], steps))

    def between(ratio: float, values: list[float]) -> float:
        return float(np.interp(ratio, points, values))

    outcomes = [
        (
            between(ratio, [seconds for seconds, _ in simulated]),
            Counters(**{f.name: between(ratio, [getattr(c, f.name) for _, c in simulated]) for f in fields(Counters)}),
        )
        for ratio in ratios
    ]
    return outcomes, len(points)


def _fast_epoch(
    plan: Plan,
    seed: int,
    index: int,
    hit_ratio: float,
    compute: np.ndarray,
    steps: np.ndarray,
    recorder: Recorder | None = None,
) -> tuple[float, Counters]:
    """(seconds, loader counters) of one epoch of the representative node."""
    sim = _Sim(plan, exact=False, nodes=1, rng=np.random.default_rng([seed, 3, index]), recorder=recorder)
    epoch = _Epoch(float(hit_ratio), compute, steps, _starts_workers(plan, index), _gap_s(plan, index))
    for local in range(plan.ranks_per_node):
        sim.env.process(sim.rank(0, [epoch], preload=False, log=local == 0))
    sim.env.run()
    seconds = sim.epoch_end[0]
    if steps.size == plan.steps_per_epoch:
        if recorder is not None:
            recorder.offset_s += seconds
        return seconds, sim.loader
    # Add the skipped middle at the steady state of the head's second half.
    head = int(np.argmax(np.diff(steps) > 1)) + 1
    skipped = compute[head : steps[head]]
    half = head // 2
    periods = np.diff(np.asarray(sim.step_ends[half - 1 : head]))
    window = compute[half:head]
    stall = periods - window - _exposed(plan, window)
    simulated_s = seconds
    if stall.sum() <= _COMPUTE_BOUND_STALL * periods.sum():
        seconds += float(skipped.sum() + _exposed(plan, skipped).sum() + skipped.size * max(0.0, stall.mean()))
    else:
        seconds += float(skipped.size * periods.mean())
    simulated_samples = sum(plan.batch_samples(step) for step in steps.tolist())
    loader = sim.loader.scaled(plan.samples_per_rank / simulated_samples)
    if recorder is not None:
        middle = Steady(
            0.0,
            seconds - simulated_s,
            float(skipped.sum()),
            float(_exposed(plan, skipped).sum()),
            loader.storage_bytes - sim.loader.storage_bytes,
        )
        recorder.extrapolate(sim.step_ends[head - 1], middle)
        recorder.offset_s += seconds
    return seconds, loader
