"""The traced training pipeline, as ``replay emulate`` rebuilds it (:func:`traced_pipeline`).

Per training process (rank) of the trace: each epoch's batches in the traced order (each batch's sample
indices, from its worker's ``fetch``), each step's time and each batch's collate time (a fetch's time
outside its samples); per sample occurrence a *recipe*: its opens, reads and closes of data files (from
the replay schedule's traced operations) with the traced time outside I/O before each and after the last
(decode, transforms: the per-sample CPU); the reads a rank made before its first batch outside any sample
(an index, a bulk preload); and the loader's configuration (workers, prefetch, batch size), its workers'
start-up, the loop's per-epoch and per-batch costs (:func:`trainio.models.workload.from_trace`).
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow.compute as pc

from trainio.models.workload import Workload, from_trace
from trainio.replay.real.schedule import TracedOp, traced_file_ops
from trainio.replay.storage.errors import ReplayError
from trainio.tracefile import Trace


class PipelineError(ReplayError):
    """A trace whose training pipeline cannot be rebuilt (no DataLoader events, no samples)."""


@dataclass(frozen=True)
class Step:
    """One I/O of a recipe, after ``cpu_s`` of traced time outside I/O."""

    cpu_s: float
    action: str
    """``open``, ``read`` or ``close`` (an S3 emulation compiles reads into ``get``)."""
    path: str
    """Relative to the traced data root."""
    offset: int = 0
    length: int = 0


@dataclass(frozen=True)
class Recipe:
    """What one sample cost in the trace: its I/O in order and the time outside it."""

    steps: tuple[Step, ...]
    tail_s: float
    """After the last I/O (all of the sample's time when it read nothing)."""

    @property
    def cpu_s(self) -> float:
        return sum(step.cpu_s for step in self.steps) + self.tail_s

    @property
    def bytes(self) -> int:
        return sum(step.length for step in self.steps if step.action == "read")

    @property
    def reads(self) -> int:
        return sum(step.action == "read" for step in self.steps)


@dataclass(frozen=True)
class RankTrace:
    """One traced training process: per epoch, per batch."""

    pid: int
    batches: tuple[tuple[tuple[int, ...], ...], ...]
    """Each epoch's batches, each a tuple of sample indices, in the order the loop received them."""
    steps_s: tuple[tuple[float, ...], ...]
    collate_s: tuple[tuple[float, ...], ...]
    startup: tuple[tuple[Step, ...], ...] = ()
    """Its reads before the first batch outside any sample, one tuple per traced thread."""
    startup_keys: frozenset[tuple[int, int]] = frozenset()
    """(tid, start) of the traced ops ``startup`` holds."""


@dataclass(frozen=True)
class Pipeline:
    trace_path: Path
    data_root: str
    ranks: tuple[RankTrace, ...]
    recipes: tuple[dict[int, Recipe], ...]
    """Per traced epoch: sample index -> its recipe in that epoch."""
    sizes: dict[str, int]
    """Bytes each data file must hold: the furthest byte any recipe or start-up read reads."""
    workload: Workload
    """The loader's configuration and the loop's costs, as ``replay what-if`` reads them."""
    unplaced_reads: int = 0
    """Traced data reads in no sample and not before a rank's first batch: not emulated."""
    unplaced_bytes: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def epochs(self) -> int:
        return len(self.recipes)

    @property
    def samples(self) -> list[int]:
        """Every sample index with a recipe, sorted."""
        return sorted({index for epoch in self.recipes for index in epoch})

    @property
    def preload(self) -> bool:
        """The start-up reads are a bulk preload (what-if's rule): the time to train includes them."""
        return self.workload.preload_bytes > 0

    def recipe(self, epoch: int, sample: int) -> Recipe:
        """``sample``'s recipe in ``epoch`` (epochs beyond the traced ones repeat them); a sample the
        traced epoch did not read takes its recipe from another epoch."""
        found = self.recipes[epoch % self.epochs].get(sample)
        if found is None:
            found = next(epoch[sample] for epoch in self.recipes if sample in epoch)
        return found


def _recipe(ops: list[TracedOp], start_ns: int, end_ns: int) -> Recipe:
    steps, last = [], start_ns
    for op in ops:
        steps.append(Step(max(0, op.ns - last) / 1e9, op.action, op.path, op.offset, op.length))
        last = max(last, op.end_ns)
    return Recipe(tuple(steps), max(0, end_ns - last) / 1e9)


def _inside(ops: list[TracedOp], starts: list[int], start_ns: int, end_ns: int) -> list[TracedOp]:
    return ops[bisect.bisect_left(starts, start_ns) : bisect.bisect_right(starts, end_ns)]


def traced_pipeline(trace: Trace, *, command: str = "replay emulate") -> Pipeline:
    """The training pipeline of ``trace`` (see the module docstring); :class:`PipelineError` when the
    trace has no DataLoader batches or no per-sample events to rebuild it from."""
    events = trace.events
    if events.num_rows == 0 or pc.sum(pc.equal(events["event"], "batch")).as_py() == 0:
        raise PipelineError(
            f"trace {trace.path} has no DataLoader batches to emulate a training loop from: "
            "replay fio replays its reads as traced"
        )
    root, by_pid = traced_file_ops(trace, command)
    workload = from_trace(trace)
    rows = events.to_pylist()
    per_loader: dict[tuple[int, int], int] = defaultdict(int)
    for r in rows:
        if r["event"] == "batch":
            per_loader[(r["pid"], r["loader_id"])] += 1
    loader = max(per_loader.items(), key=lambda item: item[1])[0][1]
    train_pids = sorted(pid for pid, lid in per_loader if lid == loader)
    epochs = 1 + max(r["epoch"] or 0 for r in rows if r["event"] == "batch" and r["loader_id"] == loader)
    parent = {p["pid"]: p.get("ppid") for p in trace.processes if p.get("role") == "worker"}
    owner = {pid: parent.get(pid, pid) for pid in {r["pid"] for r in rows}}
    samples = sorted((r for r in rows if r["event"] == "sample"), key=lambda r: r["start_ns"])
    if not samples:
        raise PipelineError(f"trace {trace.path} has no per-sample events (dataset[i] calls) to emulate samples from")
    ops_of: dict[tuple[int, int], list[TracedOp]] = defaultdict(list)
    for pid, ops in by_pid.items():
        for op in ops:
            ops_of[(pid, op.tid)].append(op)
    starts_of = {key: [op.ns for op in ops] for key, ops in ops_of.items()}

    ranks: list[RankTrace] = []
    epoch_of_sample: dict[tuple[int, int, int], int] = {}
    used: set[tuple[int, int, int]] = set()  # (pid, tid, ns) of every op a recipe or the start-up holds
    for pid in train_pids:
        mine = [r for r in rows if owner.get(r["pid"]) == pid]
        rank, placed = _rank(pid, loader, mine, epochs, workload)
        ranks.append(rank)
        epoch_of_sample.update(placed)
    recipes: list[dict[int, Recipe]] = [{} for _ in range(epochs)]
    for r in samples:
        key = (r["pid"], r["tid"])
        inside = _inside(ops_of.get(key, []), starts_of.get(key, []), r["start_ns"], r["end_ns"])
        used.update((r["pid"], op.tid, op.ns) for op in inside)
        epoch = epoch_of_sample.get((r["pid"], r["tid"], r["start_ns"]), 0)
        recipes[epoch].setdefault(r["sample"], _recipe(inside, r["start_ns"], r["end_ns"]))
    ranks = [_with_startup(rank, rows, loader, by_pid.get(rank.pid, []), used) for rank in ranks]
    for rank in ranks:
        used.update((rank.pid, step_key[0], step_key[1]) for step_key in rank.startup_keys)
    unplaced = [
        op for pid, ops in by_pid.items() for op in ops if op.action == "read" and (pid, op.tid, op.ns) not in used
    ]
    sizes: dict[str, int] = {}
    for per_epoch in recipes:
        for recipe in per_epoch.values():
            _grow(sizes, recipe.steps)
    for rank in ranks:
        for thread in rank.startup:
            _grow(sizes, thread)
    notes = []
    if unplaced:
        notes.append(
            f"{len(unplaced):,} traced data reads ({sum(op.length for op in unplaced):,} bytes) were in no sample "
            "and after the first batch: the emulation does not issue them"
        )
    return Pipeline(
        trace_path=Path(trace.path),
        data_root=root,
        ranks=tuple(ranks),
        recipes=tuple(recipes),
        sizes=dict(sorted(sizes.items())),
        workload=workload,
        unplaced_reads=len(unplaced),
        unplaced_bytes=sum(op.length for op in unplaced),
        notes=tuple(notes),
    )


def _grow(sizes: dict[str, int], steps: tuple[Step, ...]) -> None:
    for step in steps:
        if step.action == "read":
            sizes[step.path] = max(sizes.get(step.path, 0), step.offset + step.length)


def _rank(
    pid: int, loader: int, mine: list[dict], epochs: int, workload: Workload
) -> tuple[RankTrace, dict[tuple[int, int, int], int]]:
    """One training process's batches, steps and collate times per epoch (``mine``: its events and its
    workers'), and the epoch of each of its sample events ((pid, tid, start) -> epoch).

    Batch ``k`` of an epoch came from worker ``k mod W``, its ``k div W``-th fetch of that epoch (the
    DataLoader deals batches round-robin, anew each epoch); a worker slot's fetches over all epochs, in
    time order, are dealt to the epochs in turn, whatever processes ran them (a non-persistent loader
    starts new ones every epoch, and they fetch before the loop records the epoch's start)."""
    counts = [0] * epochs
    steps: list[dict[int, float]] = [{} for _ in range(epochs)]
    for r in mine:
        if r["pid"] == pid and r["loader_id"] == loader and r["event"] in ("batch", "step"):
            epoch, batch = r["epoch"] or 0, r["batch"] or 0
            if r["event"] == "batch":
                counts[epoch] = max(counts[epoch], batch + 1)
            else:
                steps[epoch][batch] = (r["end_ns"] - r["start_ns"]) / 1e9
    slots: dict[int, list[dict]] = defaultdict(list)
    for r in sorted((r for r in mine if r["event"] == "fetch"), key=lambda r: r["start_ns"]):
        slots[r["worker_id"] if r["worker_id"] is not None else 0].append(r)
    width = len(slots)
    taken = dict.fromkeys(slots, 0)
    samples = sorted((r for r in mine if r["event"] == "sample"), key=lambda r: r["start_ns"])
    spans = _SampleSpans(samples)
    batches, collate, placed = [], [], {}
    for epoch in range(epochs):
        wanted = [sorted(slots)[k % width] for k in range(counts[epoch])] if width else []
        if wanted and all(taken[w] + wanted.count(w) <= len(slots[w]) for w in set(wanted)):
            fetched = []
            for w in wanted:
                fetched.append(slots[w][taken[w]])
                taken[w] += 1
            if all(f["indices"] is not None for f in fetched):
                batches.append(tuple(tuple(f["indices"]) for f in fetched))
                collate.append(tuple(spans.outside_s(f) for f in fetched))
                placed.update({key: epoch for f in fetched for key in spans.inside(f)})
                continue
        # no fetches with their indices: the samples in the order they were read, batch after batch
        order = [r for r in samples if (r["pid"], r["tid"], r["start_ns"]) not in placed][
            : counts[epoch] * workload.batch_size
        ]
        placed.update({(r["pid"], r["tid"], r["start_ns"]): epoch for r in order})
        size = workload.batch_size
        batches.append(tuple(tuple(r["sample"] for r in order[i : i + size]) for i in range(0, len(order), size)))
        collate.append(tuple(0.0 for _ in range(0, len(order), size)))
    rank = RankTrace(
        pid=pid,
        batches=tuple(batches),
        steps_s=tuple(tuple(steps[e].get(b, 0.0) for b in range(len(batches[e]))) for e in range(epochs)),
        collate_s=tuple(collate),
    )
    return rank, placed


def _with_startup(
    rank: RankTrace, rows: list[dict], loader: int, ops: list[TracedOp], used: set[tuple[int, int, int]]
) -> RankTrace:
    """The rank with its reads before its first batch request that no sample holds, one tuple per thread."""
    first = min(
        r["start_ns"] for r in rows if r["pid"] == rank.pid and r["event"] == "batch" and r["loader_id"] == loader
    )
    threads: dict[int, list[TracedOp]] = defaultdict(list)
    for op in ops:
        if op.ns < first and (rank.pid, op.tid, op.ns) not in used:
            threads[op.tid].append(op)
    return replace(
        rank,
        startup=tuple(_recipe(thread, thread[0].ns, thread[-1].end_ns).steps for thread in threads.values()),
        startup_keys=frozenset((op.tid, op.ns) for thread in threads.values() for op in thread),
    )


class _SampleSpans:
    """The sample events of each thread, to tell how much of a fetch they took."""

    def __init__(self, samples: list[dict]) -> None:
        self.starts: dict[tuple[int, int], list[int]] = defaultdict(list)
        durations: dict[tuple[int, int], list[int]] = defaultdict(list)
        for r in samples:  # sorted by start
            self.starts[(r["pid"], r["tid"])].append(r["start_ns"])
            durations[(r["pid"], r["tid"])].append(r["end_ns"] - r["start_ns"])
        self.sums = {key: [0, *itertools.accumulate(values)] for key, values in durations.items()}

    def inside(self, fetch: dict) -> list[tuple[int, int, int]]:
        """(pid, tid, start) of the sample events inside a fetch."""
        key = (fetch["pid"], fetch["tid"])
        starts = self.starts.get(key, [])
        lo, hi = bisect.bisect_left(starts, fetch["start_ns"]), bisect.bisect_right(starts, fetch["end_ns"])
        return [(*key, start) for start in starts[lo:hi]]

    def outside_s(self, fetch: dict) -> float:
        """A fetch's time outside its samples: the collate (and sampler) work of one batch."""
        key = (fetch["pid"], fetch["tid"])
        starts, sums = self.starts.get(key, []), self.sums.get(key, [0])
        lo, hi = bisect.bisect_left(starts, fetch["start_ns"]), bisect.bisect_right(starts, fetch["end_ns"])
        return max(0, fetch["end_ns"] - fetch["start_ns"] - (sums[hi] - sums[lo])) / 1e9
