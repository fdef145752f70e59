"""The emulated DataLoader's workers: what one emulated rank reads each epoch, and how a worker fetches a
batch -- each sample's recipe run against the storage (its reads issued for real, the traced time outside
I/O slept), or a shard stream read through a shuffle buffer -- and hands it over after the traced collate
time. Time is kept by a :class:`Pace`: the traced time outside I/O is due after the I/O before it ends, so
a slower storage delays everything after it. docs/replay.md (``replay emulate``) says why sleep, not busy
CPU, stands for the traced per-sample CPU. The training loop that drives the workers is :mod:`.loop`.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from trainio.replay.real.pipeline import Pipeline, Recipe, Step
from trainio.replay.real.shards import Member, shard_requests
from trainio.replay.storage.errors import ReplayError

MIN_SLEEP_S = 0.0005
"""Shorter sleeps are carried forward (a sleep of tens of microseconds overshoots by as much again)."""
POLL_S = 0.5
MAX_ERRORS_KEPT = 5


class Reader(Protocol):
    """One kind of storage as a worker reads it (``trainio.replay.storage``: files, RADOS, S3)."""

    def shutdown(self) -> None: ...


class Pace:
    """A clock of what is due: traced time outside I/O adds to it, I/O takes what it takes."""

    def __init__(self) -> None:
        self.due = time.perf_counter()

    def resume(self) -> None:
        """After waiting for work: nothing was due meanwhile."""
        self.due = max(self.due, time.perf_counter())

    def spend(self, seconds: float) -> None:
        self.due += seconds

    def wait(self, *, final: bool = False) -> None:
        """Sleep until what is due (``final``: to the end; else only a sleep worth taking)."""
        ahead = self.due - time.perf_counter()
        if ahead > (0.0 if final else MIN_SLEEP_S):
            time.sleep(ahead)

    def io(self, issued: float, ended: float) -> None:
        self.due = max(self.due, issued) + (ended - issued)


@dataclass(frozen=True)
class Io:
    """One request of a compiled recipe, after ``cpu_s``: ``open``, ``read``, ``close`` or ``get``."""

    cpu_s: float
    action: str
    name: str
    offset: int = 0
    length: int = 0
    whole: bool = False
    """``get``: the whole object, no Range."""


def compile_recipe(recipe: Recipe, kind: str, sizes: dict[str, int]) -> tuple[tuple[Io, ...], float]:
    """A recipe as ``kind`` of storage issues it: files open, read and close; RADOS reads (opens and
    closes have nothing to act on); S3 one GET per run of reads that follow each other between an open
    and a close (whole when it covers the object). Time outside I/O stays where it was, or moves to
    after the request that took the place of its I/O. Returns the requests and the time after them."""
    ios: list[Io] = []
    carried = 0.0
    run: list[Step] = []

    def flush() -> None:
        if run:
            first, length = run[0], sum(step.length for step in run)
            whole = first.offset == 0 and length == sizes.get(first.path)
            ios.append(Io(first.cpu_s, "get", first.path, first.offset, length, whole))
            run.clear()

    for step in recipe.steps:
        if kind == "rgw":
            continues = run and step.action == "read" and step.path == run[-1].path
            if continues and step.offset == run[-1].offset + run[-1].length:
                run.append(Step(0.0, step.action, step.path, step.offset, step.length))
                carried += step.cpu_s
                continue
            flush()
            if step.action == "read":
                run.append(Step(step.cpu_s + carried, step.action, step.path, step.offset, step.length))
                carried = 0.0
            else:
                carried += step.cpu_s
            continue
        if kind == "rados" and step.action != "read":
            carried += step.cpu_s
            continue
        ios.append(Io(step.cpu_s + carried, step.action, step.path, step.offset, step.length))
        carried = 0.0
    flush()
    return tuple(ios), recipe.tail_s + carried


@dataclass
class Tally:
    """What one batch (or one rank) read: bytes, requests, each data request's latency, errors."""

    bytes: int = 0
    ops: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    messages: list[str] = field(default_factory=list)
    samples: int = 0

    def add(self, other: Tally) -> None:
        self.samples += other.samples
        self.bytes += other.bytes
        self.ops += other.ops
        self.latencies += other.latencies
        self.errors += other.errors
        self.messages = (self.messages + other.messages)[:MAX_ERRORS_KEPT]


def run_io(reader: Any, io: Io, pace: Pace, tally: Tally) -> None:
    """One request after its time outside I/O; a data request's bytes and latency go on ``tally``."""
    pace.spend(io.cpu_s)
    pace.wait()
    issued = time.perf_counter()
    if io.action == "open":
        reader.open(io.name)
    elif io.action == "close":
        reader.close(io.name)
    else:
        got = (
            reader.get(io.name, io.offset, io.length, io.whole)
            if io.action == "get"
            else reader.read(io.name, io.offset, io.length)
        )
        ended = time.perf_counter()
        tally.bytes += got
        tally.ops += 1
        tally.latencies.append(ended - issued)
        if got != io.length:
            tally.errors += 1
            if len(tally.messages) < MAX_ERRORS_KEPT:
                tally.messages.append(f"{io.action} {io.name} at {io.offset}: {got} of {io.length} bytes")
    pace.io(issued, time.perf_counter())


# ------------------------------------------------------------------------------ what one rank runs


@dataclass(frozen=True)
class RankPlan:
    """Who one emulated rank is: rank ``index`` of ``world``, node ``node``'s copy of traced rank
    ``traced`` (whose steps and collate times it takes). What it reads each epoch is worked out when the
    epoch starts (:func:`rank_batches`, :func:`rank_shards`)."""

    index: int
    node: int
    traced: int
    world: int
    epochs: int
    startup: tuple[tuple[Step, ...], ...] = ()
    """Its share of the traced start-up reads, one tuple per thread."""


@dataclass(frozen=True)
class LoaderConfig:
    """The loader and loop every rank emulates."""

    kind: str
    """The storage: ``directory``, ``rados`` or ``rgw``."""
    workers: int
    prefetch_factor: int
    batch_size: int
    drop_last: bool
    compute_scale: float
    worker_start_s: float
    """Non-persistent workers: from an epoch's first request to a worker's first fetch."""
    epoch_gap_s: float
    batch_receive_s: float
    collate_scale: float
    """Emulated over traced batch size: the traced collate time scales with it."""
    preload: bool
    shard_members: dict[int, tuple[tuple[int, Member], ...]] = field(default_factory=dict)
    """shards: each shard's samples with their places in it, in order."""
    shard_names: tuple[str, ...] = ()
    shuffle_buffer: int = 0
    request_bytes: float = 0.0
    shuffle: bool = False
    """A fresh seeded shuffle every epoch instead of the traced sample order."""
    seed: int = 0


@dataclass
class Compiled:
    """The pipeline, the loader and the data set's sizes, and each recipe compiled for the storage once."""

    pipeline: Pipeline
    config: LoaderConfig
    sizes: dict[str, int]
    cache: dict[tuple[int, int], tuple[tuple[Io, ...], float]] = field(default_factory=dict)

    def recipe(self, epoch: int, sample: int) -> tuple[tuple[Io, ...], float]:
        key = (epoch % self.pipeline.epochs, sample)
        if key not in self.cache:
            self.cache[key] = compile_recipe(self.pipeline.recipe(*key), self.config.kind, self.sizes)
        return self.cache[key]


def epoch_order(pipeline: Pipeline, epoch: int, *, shuffle: bool, seed: int) -> list[int]:
    """The epoch's sample order as one list: the traced ranks' orders interleaved as a DistributedSampler
    deals them (position ``i x R + r`` is traced rank ``r``'s ``i``-th sample; epochs beyond the traced
    ones repeat them), or a fresh shuffle of every sample."""
    if shuffle:
        order = pipeline.samples
        random.Random(f"{seed}-{epoch}").shuffle(order)
        return order
    per_rank = [[s for batch in rank.batches[epoch % pipeline.epochs] for s in batch] for rank in pipeline.ranks]
    longest = max((len(order) for order in per_rank), default=0)
    return [order[i] for i in range(longest) for order in per_rank if i < len(order)]


def rank_batches(compiled: Compiled, plan: RankPlan, epoch: int) -> tuple[tuple[int, ...], ...]:
    """files: the rank's DistributedSampler share of the epoch (every ``world``-th sample), in batches."""
    config = compiled.config
    share = epoch_order(compiled.pipeline, epoch, shuffle=config.shuffle, seed=config.seed)[plan.index :: plan.world]
    size = config.batch_size
    batches = [tuple(share[i : i + size]) for i in range(0, len(share), size)]
    return tuple(batch for batch in batches if len(batch) == size or not config.drop_last)


def rank_shards(compiled: Compiled, plan: RankPlan, epoch: int) -> tuple[int, ...]:
    """shards: the rank's shards of the epoch (every ``world``-th of a fresh seeded order), in order."""
    order = list(range(len(compiled.config.shard_names)))
    random.Random(f"{compiled.config.seed}-{epoch}").shuffle(order)
    return tuple(order[plan.index :: plan.world])


def quiet_children() -> None:
    """A terminal's Ctrl-C reaches the whole process group: the emulator alone decides when to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def one_line(exc: BaseException) -> str:
    """An exception as the one line a child process reports."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}" if not isinstance(exc, ReplayError) else text[0]


class Fetcher:
    """What a loader worker does for one batch, in a worker process or (no workers) in the loop's own."""

    def __init__(self, plan: RankPlan, slot: int, compiled: Compiled, reader: Any) -> None:
        self.plan, self.slot, self.compiled, self.reader = plan, slot, compiled, reader
        self.pace = Pace()
        self.tally = Tally()
        self.streams: dict[int, Iterator[tuple[int, ...]]] = {}

    def fetch(self, epoch: int, k: int, samples: tuple[int, ...] | None, first: bool) -> tuple[str, Tally]:
        """``batch`` or, when a shard stream ran out, ``exhausted``; and what it read."""
        config = self.compiled.config
        self.pace.resume()
        if first:
            self.pace.spend(config.worker_start_s)
        self.tally = Tally()
        if samples is None:
            stream = self.streams.setdefault(epoch, _shard_batches(self, epoch))
            made = next(stream, None)
            if made is None:
                return "exhausted", self.tally
            self.tally.samples = len(made)
        else:
            self.tally.samples = len(samples)
            for sample in samples:
                ios, tail = self.compiled.recipe(epoch, sample)
                for io in ios:
                    run_io(self.reader, io, self.pace, self.tally)
                self.pace.spend(tail)
        traced = self.compiled.pipeline.ranks[self.plan.traced].collate_s[epoch % self.compiled.pipeline.epochs]
        self.pace.spend(traced[k % len(traced)] * config.collate_scale if traced else 0.0)
        self.pace.wait(final=True)
        return "batch", self.tally


def worker_main(
    plan: RankPlan,
    slot: int,
    compiled: Compiled,
    make_reader: Callable[[], Any],
    tasks: Any,
    results: Any,
) -> None:
    """One loader worker process: its tasks in order, each batch's outcome on ``results``."""
    quiet_children()
    reader = None
    try:
        reader = make_reader()
        fetcher = Fetcher(plan, slot, compiled, reader)
        while (task := tasks.get()) is not None:
            kind, tally = fetcher.fetch(*task)
            results.put((kind, task[1], tally))
    except Exception as exc:  # noqa: BLE001 - any failure reaches the emulator as one line, not a traceback
        results.put(("error", slot, one_line(exc)))
    finally:
        if reader is not None:
            reader.shutdown()


def _shard_batches(fetcher: Fetcher, epoch: int) -> Iterator[tuple[int, ...]]:
    """A shard reader: this worker's shards of the epoch front to back in large requests, samples handed
    out through a shuffle buffer, each after its traced time outside I/O. Reads land on the tally of the
    batch being made when they were issued."""
    plan, config, pace = fetcher.plan, fetcher.compiled.config, fetcher.pace
    mine = rank_shards(fetcher.compiled, plan, epoch)[fetcher.slot :: max(config.workers, 1)]
    members = [(sample, member) for shard in mine for sample, member in config.shard_members[shard]]
    requests = shard_requests([member for _, member in members], config.request_bytes)
    rng = random.Random(f"{config.seed}-{epoch}-{plan.index}-{fetcher.slot}")
    buffer: list[int] = []
    batch: list[int] = []
    done = 0
    current: int | None = None

    def hand_out(sample: int) -> tuple[int, ...] | None:
        ios, tail = fetcher.compiled.recipe(epoch, sample)
        pace.spend(sum(io.cpu_s for io in ios) + tail)  # its bytes came with the shard
        batch.append(sample)
        if len(batch) < config.batch_size:
            return None
        made = tuple(batch)
        batch.clear()
        return made

    action = "get" if config.kind == "rgw" else "read"
    for index, (sample, _) in enumerate(members):
        while done < len(requests) and requests[done].first <= index:
            request = requests[done]
            if request.shard != current:
                if current is not None:
                    fetcher.reader.close(config.shard_names[current])
                current = request.shard
                fetcher.reader.open(config.shard_names[current])
            io = Io(0.0, action, config.shard_names[current], request.offset, request.length)
            run_io(fetcher.reader, io, pace, fetcher.tally)
            done += 1
        buffer.append(sample)
        if len(buffer) > config.shuffle_buffer:
            j = rng.randrange(len(buffer))
            buffer[j], buffer[-1] = buffer[-1], buffer[j]
            made = hand_out(buffer.pop())
            if made:
                yield made
    if current is not None:
        fetcher.reader.close(config.shard_names[current])
    rng.shuffle(buffer)
    for sample in buffer:
        made = hand_out(sample)
        if made:
            yield made
    if batch and not config.drop_last:
        yield tuple(batch)
