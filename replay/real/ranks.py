"""Running the emulated ranks (:mod:`.loop`): start them, let them go together once all are ready, follow
their steps (progress), and on Ctrl-C ask them to stop after their current step and keep what they
measured; a rank that fails or dies fails the run, in one line."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainio.replay.real.loader import Compiled, RankPlan
from trainio.replay.real.loop import RankOutcome, rank_main
from trainio.replay.storage.errors import ReplayError
from trainio.tracefile.hostcpu import host_ticks

READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 60.0
POLL_S = 0.25


@dataclass(frozen=True)
class Snapshot:
    """Progress so far, all ranks together."""

    elapsed_s: float
    steps: int
    total_steps: int
    compute_s: float
    """Mean per rank."""
    bytes: int
    ops: int

    @property
    def accelerator_utilization(self) -> float:
        return self.compute_s / self.elapsed_s if self.elapsed_s > 0 else 0.0


def run_ranks(
    plans: list[RankPlan],
    compiled: Compiled,
    make_reader: Callable[[], Any],
    total_steps: int,
    progress: Callable[[Snapshot], None],
) -> tuple[list[RankOutcome], list[str], bool, dict]:
    """Start every rank, let them go together, follow them; on Ctrl-C ask them to stop and keep what they
    measured. Returns the outcomes, the errors, whether it was interrupted, and this host's CPU."""
    context = multiprocessing.get_context("fork")
    events, go, stop = context.Queue(), context.Event(), context.Event()
    ranks = [
        context.Process(target=rank_main, args=(plan, compiled, make_reader, events, go, stop, context))
        for plan in plans
    ]
    outcomes: dict[int, RankOutcome] = {}
    errors: list[str] = []
    interrupted = False
    steps = [0] * len(plans)
    computed = [0.0] * len(plans)
    moved = [0, 0]
    cpu: dict = {}
    try:
        for rank in ranks:
            rank.start()
        ready = 0
        deadline = time.monotonic() + READY_TIMEOUT_S
        while ready < len(plans) and not errors:
            kind, index, payload = _next_event(events, ranks, deadline, "getting ready")
            if kind == "ready":
                ready += 1
            elif kind == "error":
                errors.append(f"rank {index}: {payload}")
        if errors:
            return [], errors, False, cpu
        before, children = host_ticks(), _children_cpu_s()
        started = time.monotonic()
        go.set()
        last = 0.0
        while len(outcomes) + len(errors) < len(plans):
            try:
                event = _next_event(events, ranks, None, "running", poll=True)
                if event is None:
                    continue
                kind, index, payload = event
                if kind != "step":
                    _take(kind, index, payload, outcomes, errors, stop)
                    continue
                steps[index] += 1
                computed[index] += payload[1]
                moved[0] += payload[2]
                moved[1] += payload[3]
                now = time.monotonic()
                if now - last >= 0.2:
                    last = now
                    progress(Snapshot(now - started, sum(steps), total_steps, sum(computed) / len(plans), *moved))
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                deadline = time.monotonic() + DRAIN_TIMEOUT_S
                with contextlib.suppress(KeyboardInterrupt):
                    while len(outcomes) + len(errors) < len(plans):
                        kind, index, payload = _next_event(events, ranks, deadline, "stopping")
                        _take(kind, index, payload, outcomes, errors, stop)
                break
        cpu = {"start": before, "end": host_ticks(), "wall_s": time.monotonic() - started, "children_s": children}
    finally:
        stop.set()
        for rank in ranks:
            rank.join(DRAIN_TIMEOUT_S if not errors else 10)
            if rank.is_alive():
                rank.terminate()
                rank.join()
    if cpu:
        cpu["children_s"] = _children_cpu_s() - cpu["children_s"]
    return [outcomes[i] for i in sorted(outcomes)], errors, interrupted, cpu


def _take(kind: str, index: int, payload: Any, outcomes: dict, errors: list, stop: Any) -> None:
    if kind == "done":
        outcomes[index] = payload
    elif kind == "error":
        errors.append(f"rank {index}: {payload}")
        stop.set()


def _next_event(events: Any, ranks: list, deadline: float | None, doing: str, *, poll: bool = False) -> Any:
    """The next event of any rank; None (``poll``) when none came for a moment. A rank that died, or a
    deadline passed, is a :class:`ReplayError`."""
    while True:
        try:
            return events.get(timeout=POLL_S)
        except queue.Empty:
            dead = [i for i, rank in enumerate(ranks) if rank.exitcode not in (None, 0)]
            if dead:
                raise ReplayError(
                    f"emulated rank {dead[0]} died (exit code {ranks[dead[0]].exitcode}) {doing}"
                ) from None
            if deadline is not None and time.monotonic() > deadline:
                raise ReplayError(f"the emulated ranks did not answer while {doing}") from None
            if poll:
                return None


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
