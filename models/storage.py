"""SimPy models of shared limits: bandwidth shared among transfers, and a request-rate (IOPS)
limit.
"""

from __future__ import annotations

import heapq
import math
from functools import partial

import simpy

# Two completions closer than this (relative, in units of work) finish together: it absorbs the
# rounding of the virtual clocks, far below any size that matters.
_SAME_FINISH = 1e-9


class StorageModelError(ValueError):
    """A storage model with limits that cannot serve anything."""


class SharedBandwidth:
    """Fluid processor sharing of one bandwidth pool among concurrent transfers.

    Every active transfer of client (node) ``c`` runs at the same rate: its own cap is
    ``min(per_stream, per_client / active_on_c)``, and the pool's ``aggregate`` is split max-min
    fairly among all transfers (one that is capped below the fair share leaves the rest to the
    others). Rates are recomputed whenever a transfer starts or ends.

    Because all transfers of one client share one rate, each client keeps a virtual clock (the
    bytes every one of its active transfers has received) and a heap of virtual finish times,
    so an update costs O(clients) rather than O(transfers). The unit of work need not be bytes:
    a node's cores are the same model with core-seconds and one core per process.
    """

    def __init__(
        self,
        env: simpy.Environment,
        aggregate: float,
        per_stream: float,
        per_client: float = math.inf,
        clients: int = 1,
    ) -> None:
        for name, value in (("aggregate", aggregate), ("per_stream", per_stream), ("per_client", per_client)):
            if not value > 0:
                raise StorageModelError(f"{name}(={value}) must be > 0")
        if clients < 1:
            raise StorageModelError(f"clients(={clients}) must be >= 1")
        self.env = env
        self.aggregate = aggregate
        self.per_stream = per_stream
        self.per_client = per_client
        self._unlimited = math.isinf(aggregate) and math.isinf(min(per_stream, per_client))
        self._active = [0] * clients
        self._virtual = [0.0] * clients
        self._rate = [0.0] * clients
        self._finish: list[list[tuple[float, int, simpy.Event]]] = [[] for _ in range(clients)]
        self._last = env.now
        self._timer = 0
        self._seq = 0

    def transfer(self, client: int, amount: float) -> simpy.Event:
        """An event that fires when ``amount`` units have been moved for ``client``."""
        if amount <= 0 or self._unlimited:
            return self.env.timeout(0)
        self._advance()
        done = self.env.event()
        heapq.heappush(self._finish[client], (self._virtual[client] + amount, self._seq, done))
        self._seq += 1
        self._active[client] += 1
        self._reschedule()
        return done

    def _advance(self) -> None:
        elapsed = self.env.now - self._last
        if elapsed > 0:
            for client, active in enumerate(self._active):
                if active:
                    self._virtual[client] += self._rate[client] * elapsed
        self._last = self.env.now

    def _share(self) -> None:
        caps = [
            (min(self.per_stream, self.per_client / active), client)
            for client, active in enumerate(self._active)
            if active
        ]
        remaining, flows = self.aggregate, sum(self._active)
        for cap, client in sorted(caps):
            fair = remaining / flows
            rate = cap if cap <= fair else fair
            self._rate[client] = rate
            if cap <= fair:
                remaining -= cap * self._active[client]
                flows -= self._active[client]

    def _reschedule(self) -> None:
        self._share()
        soonest, which = math.inf, -1
        for client, heap in enumerate(self._finish):
            if heap:
                left = (heap[0][0] - self._virtual[client]) / self._rate[client]
                if left < soonest:
                    soonest, which = left, client
        self._timer += 1
        if which >= 0:
            timer = self.env.timeout(max(soonest, 0.0))
            timer.callbacks.append(partial(self._complete, self._timer, which))

    def _complete(self, timer: int, client: int, _event: simpy.Event) -> None:
        if timer != self._timer:
            return  # a start or end since then rescheduled
        self._advance()
        self._pop(client)  # the transfer this timer was set for is done, whatever rounding says
        for other, heap in enumerate(self._finish):
            while heap and heap[0][0] - self._virtual[other] <= _SAME_FINISH * heap[0][0]:
                self._pop(other)
        self._reschedule()

    def _pop(self, client: int) -> None:
        finish, _, done = heapq.heappop(self._finish[client])
        self._virtual[client] = max(self._virtual[client], finish)
        self._active[client] -= 1
        done.succeed()


class RateLimiter:
    """Admits requests at most ``rate`` per second, first come first served.

    A request is admitted 1/rate after the one before it (a token bucket without burst), so below
    the limit nobody waits and at the limit requests queue. Computed, not simulated: admission
    order is call order, which in SimPy is simulated-time order.
    """

    def __init__(self, env: simpy.Environment, rate: float) -> None:
        if not rate > 0:
            raise StorageModelError(f"rate(={rate}) must be > 0")
        self.env = env
        self.rate = rate
        self._next = -math.inf

    def delay(self) -> float:
        """Seconds the caller must wait before its request is admitted."""
        if math.isinf(self.rate):
            return 0.0
        start = max(self.env.now, self._next)
        self._next = start + 1.0 / self.rate
        return start - self.env.now
