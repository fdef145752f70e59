"""The emulated training loop of one rank, a process of its own: its loader workers started as processes
(:mod:`.loader`), its share of the traced start-up reads, then every epoch -- batch ``k`` asked of worker
``k mod W`` with ``prefetch x W`` in flight, each awaited in order, the traced receive time taken and the
traced step time slept (x ``compute_scale``), as MLPerf Storage emulates an accelerator -- each step
reported to the emulator, its outcome at the end.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainio.replay.real.loader import (
    Compiled,
    Fetcher,
    Pace,
    RankPlan,
    Tally,
    compile_recipe,
    one_line,
    quiet_children,
    rank_batches,
    run_io,
    worker_main,
)
from trainio.replay.real.pipeline import Recipe, Step
from trainio.replay.storage.errors import ReplayError

POLL_S = 0.5


@dataclass
class RankOutcome:
    """What one emulated rank measured (monotonic seconds, one clock for every process)."""

    index: int
    node: int
    start_s: float = 0.0
    """The start of data loading: the preload, or the first batch request."""
    end_s: float = 0.0
    """The end of the last step."""
    epochs: list[tuple[float, float]] = field(default_factory=list)
    compute_s: float = 0.0
    wait_s: float = 0.0
    steps: int = 0
    tally: Tally = field(default_factory=Tally)
    """Reads and samples; the start-up's reads included."""
    startup_s: float = 0.0
    stopped: bool = False


class _Workers:
    """The loop's side of its worker processes: tasks out round-robin over the active ones, outcomes
    back in the order the tasks went out (a DataLoader's rule), a worker whose stream ran out dropped."""

    def __init__(self, plan: RankPlan, compiled: Compiled, make_reader: Callable[[], Any], context: Any) -> None:
        self.results = context.Queue()
        self.tasks = [context.Queue() for _ in range(compiled.config.workers)]
        self.processes = [
            context.Process(
                target=worker_main, args=(plan, slot, compiled, make_reader, tasks, self.results), daemon=True
            )
            for slot, tasks in enumerate(self.tasks)
        ]
        for process in self.processes:
            process.start()
        self.owner: dict[int, int] = {}
        self.ready: dict[int, tuple[str, Tally]] = {}

    def epoch(self) -> None:
        self.active = list(range(len(self.tasks)))
        self.turn = 0
        self.started: set[int] = set()
        self.owner.clear()

    def send(self, epoch: int, k: int, samples: tuple[int, ...] | None) -> None:
        slot = self.active[self.turn % len(self.active)]
        self.turn += 1
        self.owner[k] = slot
        self.tasks[slot].put((epoch, k, samples, slot not in self.started))
        self.started.add(slot)

    def receive(self, k: int, stop: Any) -> tuple[str, Tally]:
        while k not in self.ready:
            try:
                kind, index, tally = self.results.get(timeout=POLL_S)
            except queue.Empty:
                dead = [slot for slot, p in enumerate(self.processes) if not p.is_alive()]
                if dead:
                    code = self.processes[dead[0]].exitcode
                    raise ReplayError(f"loader worker {dead[0]} died (exit code {code})") from None
                continue
            if kind == "error":
                raise ReplayError(f"loader worker {index}: {tally}")
            self.ready[index] = (kind, tally)
        kind, tally = self.ready.pop(k)
        if kind == "exhausted" and self.owner[k] in self.active:
            self.active.remove(self.owner[k])
        return kind, tally

    def close(self) -> None:
        for tasks in self.tasks:
            tasks.put(None)
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join()


class _InLoop:
    """No workers: the loop fetches each batch itself (``num_workers=0``)."""

    def __init__(self, plan: RankPlan, compiled: Compiled, reader: Any) -> None:
        self.fetcher = Fetcher(plan, 0, compiled, reader)
        self.pending: dict[int, tuple[int, tuple[int, ...] | None]] = {}

    def epoch(self) -> None:
        self.active = [0]
        self.first = True

    def send(self, epoch: int, k: int, samples: tuple[int, ...] | None) -> None:
        self.pending[k] = (epoch, samples)

    def receive(self, k: int, stop: Any) -> tuple[str, Tally]:
        epoch, samples = self.pending.pop(k)
        outcome = self.fetcher.fetch(epoch, k, samples, self.first)
        self.first = False
        if outcome[0] == "exhausted":
            self.active = []
        return outcome

    def close(self) -> None:
        pass


def rank_main(
    plan: RankPlan,
    compiled: Compiled,
    make_reader: Callable[[], Any],
    events: Any,
    go: Any,
    stop: Any,
    context: Any,
) -> None:
    """One emulated rank: its workers start, it says ``ready``, waits for ``go``, runs its start-up reads
    and its epochs, reporting each step on ``events`` and its outcome at the end."""
    quiet_children()
    loaders: _Workers | _InLoop | None = None
    reader = None
    outcome = RankOutcome(plan.index, plan.node)
    try:
        config = compiled.config
        if config.workers:
            loaders = _Workers(plan, compiled, make_reader, context)  # forked before any storage client is
        reader = make_reader()
        loaders = loaders or _InLoop(plan, compiled, reader)
        events.put(("ready", plan.index, None))
        go.wait()
        outcome.start_s = time.monotonic()
        _startup(plan, compiled, make_reader, outcome)
        if not config.preload:
            outcome.start_s = time.monotonic()
        _epochs(plan, compiled, loaders, events, stop, outcome)
        outcome.end_s = time.monotonic()
        events.put(("done", plan.index, outcome))
    except Exception as exc:  # noqa: BLE001 - any failure reaches the emulator as one line, not a traceback
        events.put(("error", plan.index, one_line(exc)))
    finally:
        if loaders is not None:
            loaders.close()
        if reader is not None:
            reader.shutdown()


def _startup(plan: RankPlan, compiled: Compiled, make_reader: Callable[[], Any], outcome: RankOutcome) -> None:
    """The rank's share of the traced reads before the first batch: one thread per traced thread."""
    if not plan.startup:
        return
    begin = time.monotonic()
    failures: list[BaseException] = []

    def thread_main(steps: tuple[Step, ...], tally: Tally) -> None:
        reader = make_reader()
        try:
            ios, _ = compile_recipe(Recipe(steps, 0.0), compiled.config.kind, compiled.sizes)
            pace = Pace()
            for io in ios:
                run_io(reader, io, pace, tally)
        except Exception as exc:  # noqa: BLE001 - handed to the rank, which reports it
            failures.append(exc)
        finally:
            reader.shutdown()

    tallies = [Tally() for _ in plan.startup]
    threads = [
        threading.Thread(target=thread_main, args=(steps, tally), daemon=True)
        for steps, tally in zip(plan.startup, tallies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    for tally in tallies:
        outcome.tally.add(tally)
    outcome.startup_s = time.monotonic() - begin


def _send(loaders: _Workers | _InLoop, epoch: int, batches: tuple[tuple[int, ...], ...] | None, sent: int) -> int:
    """Ask for batch ``sent`` (its samples, or a shard stream's next); how many have been asked for."""
    loaders.send(epoch, sent, None if batches is None else batches[sent])
    return sent + 1


def _epochs(
    plan: RankPlan, compiled: Compiled, loaders: _Workers | _InLoop, events: Any, stop: Any, outcome: RankOutcome
) -> None:
    config = compiled.config
    traced = compiled.pipeline.ranks[plan.traced]
    in_flight = max(1, config.prefetch_factor * config.workers)
    for epoch in range(plan.epochs):
        if stop.is_set():
            outcome.stopped = True
            return
        if epoch:
            time.sleep(config.epoch_gap_s)
        begin = time.monotonic()
        batches = rank_batches(compiled, plan, epoch) if not config.shard_names else None
        steps = traced.steps_s[epoch % len(traced.steps_s)] or (0.0,)
        loaders.epoch()
        sent = 0
        for _ in range(in_flight if batches is None else min(in_flight, len(batches))):
            sent = _send(loaders, epoch, batches, sent)
        k = taken = 0
        while (k < len(batches)) if batches is not None else (k < sent):
            asked = time.monotonic()
            kind, tally = loaders.receive(k, stop)
            k += 1
            if kind == "exhausted":
                if loaders.active:
                    sent = _send(loaders, epoch, batches, sent)
                continue
            outcome.wait_s += time.monotonic() - asked
            time.sleep(config.batch_receive_s)
            if (batches is not None and sent < len(batches)) or (batches is None and loaders.active):
                sent = _send(loaders, epoch, batches, sent)
            step_begin = time.monotonic()
            time.sleep(steps[taken % len(steps)] * config.compute_scale)
            step = time.monotonic() - step_begin
            outcome.compute_s += step
            outcome.steps += 1
            outcome.tally.add(tally)
            taken += 1
            events.put(("step", plan.index, (epoch, step, tally.bytes, tally.ops)))
            if stop.is_set():
                outcome.stopped = True
                outcome.epochs.append((begin, time.monotonic()))
                return
        outcome.epochs.append((begin, time.monotonic()))
