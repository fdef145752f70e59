"""The data-loading pipeline of a data-parallel training job, as SimPy processes.

Each rank runs a training loop fed by its DataLoader workers: the loader keeps at most
``workers * prefetch_factor`` batches in flight, batch b goes to worker b mod W, and the loop
takes them in order, computes, meets every other rank at the step barrier (DDP's all-reduce) and
waits for the exposed part of the all-reduce. A preload phase may come before the first step.
How a worker loads a batch is the mode's business: ``ExactCluster`` (every request) or
``FluidNode`` (one fluid job per batch) fill in the abstract methods of ``Pipeline``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import ProcessGenerator

from trainio.models.counters import Counters
from trainio.models.network import exposed_allreduce_s
from trainio.models.plan import Plan
from trainio.models.resample import Resampler
from trainio.models.shards import ShardStream
from trainio.models.timeline import Recorder


class Barrier:
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


@dataclass(frozen=True)
class Epoch:
    """One epoch as every rank runs it."""

    hit_ratio: float
    """Fraction of its reads the node's page cache serves."""
    compute_s: np.ndarray
    """Accelerator time of every step of the epoch."""
    step_cpu_s: np.ndarray
    """The training process's own CPU work in every step, on the node's cores before the accelerator's share."""
    steps: np.ndarray
    """The steps simulated, in order: all of them, or a head and a tail with the middle skipped."""
    start_workers: bool = True
    """Whether the epoch pays the workers' start-up (every epoch unless they are persistent)."""
    gap_s: float = 0.0
    """Time before the epoch's first batch request (the gap after the previous epoch)."""

    @classmethod
    def numbered(cls, plan: Plan, index: int, hit_ratio: float, order: np.ndarray, steps: np.ndarray) -> Epoch:
        """Epoch ``index`` of the run, its steps the observed ones in ``order``
        (``trainio.models.resample.step_draws``): the first starts the workers and follows no gap."""
        start_workers = index == 0 or not plan.persistent_workers
        return cls(
            hit_ratio,
            plan.step_compute_s[order],
            plan.step_cpu_s[order],
            steps,
            start_workers,
            plan.epoch_gap_s if index > 0 else 0.0,
        )


def exposed(plan: Plan, compute: np.ndarray) -> np.ndarray:
    """The all-reduce each step waits for beyond its compute."""
    return exposed_allreduce_s(compute, plan.allreduce_s, plan.overlap_allreduce)


def has_preload(plan: Plan) -> bool:
    return plan.preload_bytes > 0 or plan.preload_cpu_s > 0


def totals(plan: Plan, draws: list[np.ndarray]) -> tuple[float, float]:
    """(compute, exposed all-reduce) seconds of a rank over the run."""
    compute = np.concatenate(draws)
    return float(compute.sum()), float(exposed(plan, compute).sum())


class Pipeline(ABC):
    """One SimPy environment with ``nodes`` nodes of ``plan.ranks_per_node`` ranks each."""

    def __init__(self, plan: Plan, *, nodes: int, rng: np.random.Generator, recorder: Recorder | None = None) -> None:
        env = self.env = simpy.Environment()
        self.plan, self.rng, self.recorder = plan, rng, recorder
        self.sizes = Resampler(plan.sample_bytes, rng)
        self.cpu_times = Resampler(plan.sample_cpu_s, rng)
        ranks = nodes * plan.ranks_per_node
        self.barrier = Barrier(env, ranks) if ranks > 1 else None
        self.loader, self.preload, self.main = Counters(), Counters(), Counters()
        self.mapped_taken: dict[tuple[int, int], int] = {}
        """Samples each node has loaded in each epoch (keyed by node and the epoch's id), for the faults
        of memory-mapped samples: the node's processes share its page cache."""
        self.preload_end = 0.0
        self.epoch_end: list[float] = []
        self.step_ends: list[float] = []

    @abstractmethod
    def load(self, node: int, epoch: Epoch, step: int, stream: ShardStream | None) -> ProcessGenerator:
        """A worker (or the loop itself) loads batch ``step`` into memory."""

    @abstractmethod
    def preload_thread(self, node: int, thread: int) -> ProcessGenerator:
        """One preload thread reads its part of the preload."""

    @abstractmethod
    def cpu(self, node: int, seconds: float, counters: Counters) -> ProcessGenerator:
        """``seconds`` of work on one of the node's cores."""

    def rank(self, node: int, epochs: list[Epoch], *, preload: bool, log: bool) -> ProcessGenerator:
        """A training process: the preload, then every epoch; ``log`` records its step ends."""
        if preload:
            yield from self.preload_phase(node)
        self.preload_end = max(self.preload_end, self.env.now)
        for index, epoch in enumerate(epochs):
            yield from self._epoch(node, epoch, log)
            if index == len(self.epoch_end):
                self.epoch_end.append(self.env.now)
            self.epoch_end[index] = max(self.epoch_end[index], self.env.now)

    def preload_phase(self, node: int) -> ProcessGenerator:
        """Preload threads reading in large requests, then the preload's CPU time on one core."""
        plan = self.plan
        threads = [self.env.process(self.preload_thread(node, t)) for t in range(plan.preload_threads)]
        yield self.env.all_of(threads)
        yield from self.cpu(node, plan.preload_cpu_s, self.preload)

    def preload_share(self, thread: int) -> tuple[int, float, int]:
        """(opens, bytes, requests) of preload thread ``thread``: the files dealt out in turn, the
        bytes evenly."""
        plan = self.plan
        count, files = plan.preload_threads, round(plan.preload_opens)
        opens = files // count + (thread < files % count)
        nbytes = plan.preload_bytes / count
        return opens, nbytes, math.ceil(nbytes / plan.request_bytes)

    def _epoch(self, node: int, epoch: Epoch, log: bool) -> ProcessGenerator:
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
                self._skip(node, epoch, stream, previous, step, 1)
                previous = step
                yield from self.load(node, epoch, step, stream)
            compute, own_cpu = float(epoch.compute_s[step]), float(epoch.step_cpu_s[step])
            if own_cpu > 0:
                yield from self.cpu(node, own_cpu, self.main)
            started = env.now
            yield env.timeout(compute)
            if self.barrier is not None:
                yield self.barrier.wait()
            wait = exposed_allreduce_s(compute, plan.allreduce_s, plan.overlap_allreduce)
            if wait > 0:
                yield env.timeout(wait)
            if log:
                self.step_ends.append(env.now)
                if self.recorder is not None:
                    self.recorder.step(started, started + compute, env.now)

    def _worker(
        self, node: int, epoch: Epoch, worker: int, sent: list[simpy.Event], ready: list[simpy.Event]
    ) -> ProcessGenerator:
        workers = self.plan.workers
        stream = self._stream(range(worker, self.plan.steps_per_epoch, workers))
        previous = worker - workers
        for position in range(worker, len(epoch.steps), workers):
            step = int(epoch.steps[position])
            self._skip(node, epoch, stream, previous, step, workers)
            previous = step
            yield sent[position]
            yield from self.load(node, epoch, step, stream)
            ready[position].succeed()

    def mapped_faults(self, node: int, epoch: Epoch, n: int) -> np.ndarray:
        """Expected faults of the node's next ``n`` memory-mapped samples of ``epoch`` (``Plan.mapped_faults``)."""
        key = (node, id(epoch))
        taken = self.mapped_taken.get(key, 0)
        self.mapped_taken[key] = taken + n
        return self.plan.mapped_faults(taken, n)

    def _skip(self, node: int, epoch: Epoch, stream: ShardStream | None, previous: int, step: int, stride: int) -> None:
        """Fast-forward a reader over the skipped middle of an epoch (full batches, read in the
        steady state the extrapolation accounts for)."""
        skipped = (step - previous) // stride - 1
        if skipped > 0 and self.plan.fault_bytes:
            key = (node, id(epoch))
            self.mapped_taken[key] = self.mapped_taken.get(key, 0) + skipped * self.plan.batch_size
        if stream is not None and skipped > 0:
            stream.taken += skipped * self.plan.batch_size
            stream.pos = max(stream.pos, stream.target(stream.taken))

    def _stream(self, batches: range) -> ShardStream | None:
        if self.plan.kind != "shards":
            return None
        return ShardStream(self.plan, sum(self.plan.batch_samples(b) for b in batches), self.sizes)
