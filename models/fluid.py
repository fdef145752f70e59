"""A fluid SimPy model of jobs that each use several shared resources while they run.

A job is sequential work made of many small steps, such as a loader worker reading and decoding a
batch: hundreds of (first byte, transfer, decode) cycles. Rather than simulating every step, each
active job progresses at a speed from a mean-value analysis of the queueing network the active
jobs form, each resource a processor-shared station; ``limits`` cap concurrency on top. The
equations and where they are exact: docs/model.md, "The fluid pool".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import simpy

_SAME_FINISH = 1e-9


class FluidError(ValueError):
    """A fluid job or pool that cannot exist (negative work, unknown resource, zero capacity)."""


@dataclass(frozen=True)
class Station:
    capacity: float
    """Units per second (bytes/s, requests/s, cores); inf = unlimited."""
    per_job: float
    """The most one job can use at once (one stream's bandwidth, one core)."""

    def __post_init__(self) -> None:
        if not (self.capacity > 0 and self.per_job > 0):
            raise FluidError(f"capacity(={self.capacity}) and per_job(={self.per_job}) must be > 0")

    @property
    def rate(self) -> float:
        """What one job gets alone."""
        return min(self.per_job, self.capacity)

    @property
    def servers(self) -> float:
        return self.capacity / self.rate if math.isfinite(self.capacity) else math.inf

    def alone_s(self, amount: float) -> float:
        """Seconds one job needs for ``amount`` when it has the station to itself."""
        return amount / self.rate if amount > 0 else 0.0


@dataclass
class _Job:
    left: float
    """Seconds alone still to go."""
    work: float
    demand: dict[str, float]
    """Seconds at each station when alone."""
    limit_use: dict[str, float]
    """Use of each limit per work-second."""
    done: simpy.Event
    lost: dict[str, float]
    """Seconds lost so far waiting for each resource."""
    speed: float = 1.0
    share: dict[str, float] | None = None
    """How the time this job loses splits among resources, at its current speed."""


class FluidPool:
    """Jobs sharing ``stations`` (and bounded by ``limits``), each at its MVA speed."""

    def __init__(
        self,
        env: simpy.Environment,
        stations: dict[str, Station],
        limits: dict[str, float] | None = None,
    ) -> None:
        self.env = env
        self.stations = dict(stations)
        self.limits = dict(limits or {})
        for name, limit in self.limits.items():
            if not limit > 0:
                raise FluidError(f"limit {name}(={limit}) must be > 0")
        self._names = [*self.stations, *self.limits]
        self._jobs: list[_Job] = []
        self._last = env.now
        self._timer = 0

    def run(self, delay: float, use: dict[str, float]) -> simpy.Event:
        """An event that fires when a job is done. The job waits out ``delay`` seconds of pure
        latency and needs ``use``: the total amount of each station (bytes, requests,
        core-seconds) and of each limit (seconds holding it). The event's value maps each
        resource to the seconds the job lost waiting for it."""
        unknown = set(use) - set(self._names)
        if unknown:
            raise FluidError(f"unknown resource {sorted(unknown)[0]!r}; known: {sorted(self._names)}")
        if delay < 0:
            raise FluidError(f"delay(={delay}) must be >= 0")
        demand = {name: station.alone_s(use.get(name, 0.0)) for name, station in self.stations.items()}
        work = delay + sum(demand.values())
        if work == 0:
            return self.env.timeout(0, value=dict.fromkeys(self._names, 0.0))
        self._advance()
        self._jobs.append(
            _Job(
                left=work,
                work=work,
                demand=demand,
                limit_use={name: use.get(name, 0.0) / work for name in self.limits},
                done=self.env.event(),
                lost=dict.fromkeys(self._names, 0.0),
            )
        )
        self._reschedule()
        return self._jobs[-1].done

    def _advance(self) -> None:
        elapsed = self.env.now - self._last
        if elapsed > 0:
            for job in self._jobs:
                job.left -= job.speed * elapsed
                if job.share:
                    slowed = (1.0 - job.speed) * elapsed
                    for name, share in job.share.items():
                        job.lost[name] += share * slowed
        self._last = self.env.now

    def _reschedule(self) -> None:
        self._solve()
        self._timer += 1
        if self._jobs:
            left = min(max(0.0, job.left) / job.speed for job in self._jobs)
            timer = self.env.timeout(left)
            timer.callbacks.append(partial(self._complete, self._timer))

    def _solve(self) -> None:
        """Set every active job's speed and how the time it loses splits among resources."""
        jobs = self._jobs
        if not jobs:
            return
        count = len(jobs)
        mean = {name: sum(job.demand[name] for job in jobs) / count for name in self.stations}
        queueing = [name for name, st in self.stations.items() if st.servers < count and mean[name] > 0]
        delay = sum(job.work for job in jobs) / count - sum(mean[name] for name in queueing)
        found = _arrival_slowdown(
            count, [mean[name] for name in queueing], [self.stations[name].servers for name in queueing], delay
        )
        for job in jobs:
            lost = {name: job.demand[name] * slowdown for name, slowdown in zip(queueing, found, strict=True)}
            total = sum(lost.values())
            job.speed = job.work / (job.work + total)
            job.share = {name: value / total for name, value in lost.items()} if total > 0 else None
        for name, limit in self.limits.items():
            used = sum(job.speed * job.limit_use[name] for job in jobs)
            if used > limit:
                for job in jobs:
                    job.speed *= limit / used
                    job.share = {name: 1.0}

    def _complete(self, timer: int, _event: simpy.Event) -> None:
        if timer != self._timer:
            return  # a job started or ended since: rescheduled
        self._advance()
        soonest = min(self._jobs, key=lambda job: job.left / job.speed)
        finished = [job for job in self._jobs if job is soonest or job.left <= _SAME_FINISH * job.work]
        self._jobs = [job for job in self._jobs if job not in finished]
        for job in finished:
            job.done.succeed(job.lost)
        self._reschedule()


def _arrival_slowdown(count: int, demand: list[float], servers: list[float], delay: float) -> list[float]:
    """Per station, E[j / min(j, c)] - 1 for a customer arriving at it in a closed network of
    ``count`` customers (j counts the arrival): exact load-dependent MVA over the stations'
    ``demand`` (seconds alone per cycle) and ``servers`` c, with ``delay`` seconds of pure delay
    per cycle. The time a job loses at a station is its demand there times this factor."""
    if not demand:
        return []
    d, present = np.asarray(demand), np.arange(1, count + 1, dtype=float)
    busy = np.minimum(present[None, :], np.asarray(servers)[:, None])  # min(j, c), j = 1..count
    stretch = present[None, :] / busy
    spent, step = d[:, None] * stretch, d[:, None] / busy  # residence per customer present; p's recursion
    # p[r, j]: probability of j customers at station r, at the population of the current round.
    p = np.zeros((d.size, count))
    p[:, 0] = 1.0
    for population in range(1, count):
        head = p[:, :population]
        throughput = population / (delay + float((spent[:, :population] * head).sum()))
        tail = throughput * step[:, :population] * head
        p[:, 1 : population + 1] = tail
        # 1 - sum is exact in theory and loses precision near saturation: clamp and renormalise.
        p[:, 0] = 1.0 - tail.sum(axis=1)
        if p[:, 0].min() < 0.0:
            p[:, 0] = np.maximum(p[:, 0], 0.0)
            p[:, : population + 1] /= p[:, : population + 1].sum(axis=1, keepdims=True)
    return ((stretch * p).sum(axis=1) - 1.0).tolist()
