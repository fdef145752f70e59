"""The workload of one training process (one accelerator), as the simulator consumes it.

A ``Workload`` is derived from a captured trace (``trainio.models.workload.from_trace``) or built by hand
in tests. Distributions are kept as arrays of observed values and resampled by the simulator, so
that tails (a slow decode, a long step) survive the projection.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from trainio.models.cpu import processes_per_core

ACCESSES = ("read", "mmap")


class WorkloadError(ValueError):
    """A workload that cannot be simulated (empty, negative, inconsistent)."""


@dataclass(frozen=True)
class Workload:
    """What one training process does per epoch; all sizes in bytes, all times in seconds."""

    samples: int
    """Samples in the whole data set (one epoch of the whole job reads each once)."""
    batch_size: int
    epochs: int
    workers: int
    """DataLoader workers per training process (0 = loading in the training process itself)."""
    prefetch_factor: int
    sample_bytes: np.ndarray
    """Observed bytes read per sample (resampled)."""
    sample_cpu_s: np.ndarray
    """Observed CPU time per sample outside I/O: decode, transforms (resampled). From the thread's
    CPU time where the trace has it (format 1.3), else the wall time outside I/O."""
    step_compute_s: np.ndarray
    """Observed accelerator share of each step (between receiving a batch and asking for the next):
    the step's wall time less the training process's own CPU in it (``step_cpu_s``)."""
    files_per_sample: float = 1.0
    """Files (or objects) opened per sample in the captured format."""
    reads_per_sample: float = 1.0
    """Read requests per sample in the captured format."""
    stats_per_sample: float = 0.0
    """stat()/fstat() calls per sample that reach the file system (path checks, size look-ups)."""
    drop_last: bool = False
    shuffle: bool = True
    preload_bytes: int = 0
    """Bytes read in a bulk preload before the first step; 0 = no preload phase."""
    preload_files: int = 0
    preload_threads: int = 1
    preload_cpu_s: float = 0.0
    """CPU time of the preload beyond waiting for I/O (decode of what was preloaded)."""
    dataset_preloaded: bool = False
    """The preload read the process's share of the data set itself (the run used the ``preload``
    format); projections onto ``files``/``shards`` then read samples instead of preloading."""
    worker_start_s: float = 0.0
    """From an epoch's first batch request to its workers' first fetch: worker process start-up,
    paid every epoch unless the workers are persistent."""
    persistent_workers: bool = False
    batch_receive_s: float = 0.0
    """Training-loop time to take a batch that a worker has ready (IPC, unpickling, pinning): the
    median over batches of (batch received - max(batch requested, its fetch finished))."""
    epoch_gap_s: float = 0.0
    """From one epoch's last step to the next epoch's first batch request: the training loop's own
    per-epoch work (evaluation, checkpoints, logging) and the loader's iterator start-up."""
    model_bytes: int = 0
    """Gradient bytes all-reduced per step across ranks; 0 = no all-reduce modelled."""
    step_cpu_s: np.ndarray = field(default_factory=lambda: np.zeros(1))
    """The training process's own CPU in each step (Python, kernel launches, copies it makes itself),
    paired with ``step_compute_s`` (same length); zeros where the trace has no CPU times."""
    sample_wall_s: np.ndarray | None = None
    """Wall time per sample outside I/O, paired with ``sample_cpu_s``: beyond the CPU time, the sample
    waited for a core at the capture's load. None where the trace has no CPU times."""
    captured_usable_cores: float | None = None
    """Cores the captured job could use (affinity and cgroup quota), when the trace says."""
    captured_per_core: float | None = None
    """Loader processes per core at the capture (``trainio.models.cpu.processes_per_core``), where the
    per-sample and per-step CPU times were measured; None when the trace does not say its cores."""
    captured_processes: int = 1
    captured_duration_s: float | None = None
    """Measured time-to-train of the captured run, when known (for the as-captured self-check)."""
    access: str = "read"
    """How samples reach their bytes: ``read`` (read calls or GETs) or ``mmap`` (page faults on a
    memory-mapped data file: ``sample_bytes`` are then the mapped bytes a sample touches)."""
    shard_bytes: float | None = None
    """The captured record format packed samples into shards of this many bytes, read in order (an
    iterable dataset over tar shards or TFRecord files); None: one file or object per sample."""
    shuffle_buffer: int | None = None
    """Shards: samples a reader read before it handed out its first (its shuffle buffer's fill), as
    captured; None: the format's default (``SHUFFLE_BUFFER_SAMPLES`` when shuffling)."""
    fault_bytes: float | None = None
    """``mmap``: bytes one major fault brings in from storage (the readahead window), as the capture
    measured it (the fetches' ``read_bytes`` over their major faults); None: not measured."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.samples <= 0:
            raise WorkloadError(f"samples(={self.samples}) must be > 0")
        if self.batch_size <= 0:
            raise WorkloadError(f"batch_size(={self.batch_size}) must be > 0")
        if self.epochs <= 0:
            raise WorkloadError(f"epochs(={self.epochs}) must be > 0")
        if self.workers < 0:
            raise WorkloadError(f"workers(={self.workers}) must be >= 0")
        if self.prefetch_factor <= 0:
            raise WorkloadError(f"prefetch_factor(={self.prefetch_factor}) must be > 0")
        for name in ("sample_bytes", "sample_cpu_s", "step_compute_s"):
            values = np.asarray(getattr(self, name), dtype=float)
            if values.size == 0:
                raise WorkloadError(f"{name} is empty: the trace has no such observations")
            if np.any(values < 0) or not np.all(np.isfinite(values)):
                raise WorkloadError(f"{name} has negative or non-finite values")
            object.__setattr__(self, name, values)
        step_cpu = np.asarray(self.step_cpu_s, dtype=float)
        if not np.any(step_cpu):
            step_cpu = np.zeros(self.step_compute_s.size)
        if step_cpu.size != self.step_compute_s.size or np.any(step_cpu < 0) or not np.all(np.isfinite(step_cpu)):
            raise WorkloadError(
                f"step_cpu_s must hold one value >= 0 per step ({step_cpu.size} for {self.step_compute_s.size} steps)"
            )
        object.__setattr__(self, "step_cpu_s", step_cpu)
        if self.sample_wall_s is not None:
            wall = np.asarray(self.sample_wall_s, dtype=float)
            if wall.size != self.sample_cpu_s.size:
                raise WorkloadError(f"sample_wall_s has {wall.size} values for {self.sample_cpu_s.size} samples")
            object.__setattr__(self, "sample_wall_s", wall)
        if self.access not in ACCESSES:
            raise WorkloadError(f"access(={self.access!r}) must be one of {', '.join(ACCESSES)}")
        for name in ("captured_usable_cores", "captured_per_core", "fault_bytes", "shard_bytes"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and np.isfinite(value)):
                raise WorkloadError(f"{name}(={value}) must be > 0 and finite")

    @property
    def dataset_bytes(self) -> float:
        return float(self.samples * self.sample_bytes.mean())


# -- derived from a trace -------------------------------------------------------------------------

PRELOAD_MIN_FRACTION = 0.1
"""Data read before the first batch request counts as a preload phase above this share of all data."""


def _interval_sums(
    starts: np.ndarray, ends: np.ndarray, tids: np.ndarray, r_start: np.ndarray, r_tid: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Per interval: the sum of ``values`` of the records of the same thread starting inside it."""
    out = np.zeros(len(starts), dtype=float)
    for tid in np.unique(tids):
        sel = r_tid == tid
        order = np.argsort(r_start[sel])
        rs = r_start[sel][order]
        cum = np.concatenate([[0.0], np.cumsum(values[sel][order].astype(float))])
        rows = np.flatnonzero(tids == tid)
        lo = np.searchsorted(rs, starts[rows], "left")
        hi = np.searchsorted(rs, ends[rows], "right")
        out[rows] = cum[hi] - cum[lo]
    return out


def from_trace(trace, *, epochs: int | None = None) -> Workload:
    """Derive the per-process workload from a captured trace.

    The training processes are those that received DataLoader batches; their main loader (the one
    with most batches) defines batch size, workers and epochs. A trace without DataLoader events is
    modelled from its I/O alone: one sample per data file, no compute (with a note saying so).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from trainio.tracefile.summary import (
        data_mappings,
        data_reads,
        loop_stats,
        mapped_bytes,
        mapped_stats,
        reads_through_mappings,
        record_format,
        records_per_item,
    )

    events = trace.events
    reads = data_reads(trace)
    maps = data_mappings(trace)
    notes: list[str] = []
    r_pid = reads["pid"].to_numpy()
    r_tid = reads["tid"].to_numpy()
    r_start = reads["start_ns"].to_numpy()
    r_bytes = reads["bytes_returned"].to_numpy()
    r_dur = reads["duration_ns"].to_numpy()
    mapped = reads_through_mappings(reads, maps)
    if reads.num_rows == 0 and not mapped:
        raise WorkloadError(f"{trace.path}: the trace holds no data reads: nothing to project")
    kinds = events["event"].to_numpy(zero_copy_only=False) if events.num_rows else np.array([], dtype=object)
    batches = events.filter(pc.equal(events["event"], "batch")) if events.num_rows else events
    if batches.num_rows == 0:
        if mapped:
            raise WorkloadError(
                f"{trace.path}: the data was memory-mapped but the trace has no DataLoader events: "
                "nothing says what a sample read"
            )
        return _io_only_workload(trace, reads, epochs)

    # The training processes and their main loader.
    counts = batches.group_by(["pid", "loader_id"]).aggregate([("batch", "count")]).to_pylist()
    main_loader = max(counts, key=lambda c: c["batch_count"])["loader_id"]
    train_pids = sorted({c["pid"] for c in counts if c["loader_id"] == main_loader})
    starts = events.filter(
        pc.and_(pc.equal(events["event"], "epoch_start"), pc.equal(events["loader_id"], main_loader))
    )
    starts = starts.filter(pc.is_in(starts["pid"], pa.array(train_pids, pa.int32())))
    config = json.loads(starts["info"][0].as_py()) if starts.num_rows else {}
    captured_epochs = max(Counter(starts["pid"].to_pylist()).values()) if starts.num_rows else 1
    in_train = np.isin(events["pid"].to_numpy(), train_pids) & (
        events["loader_id"].to_numpy(zero_copy_only=False) == main_loader
    )
    step_rows = (kinds == "step") & in_train
    e_start = events["start_ns"].to_numpy()
    e_end = events["end_ns"].to_numpy()
    e_cpu = _cpu_ns(events)
    step_s = (e_end[step_rows] - e_start[step_rows]) / 1e9
    step_cpu = np.minimum(np.nan_to_num(e_cpu[step_rows]) / 1e9, step_s)
    if step_s.size == 0:
        step_s = step_cpu = np.zeros(1)
        notes.append("no step events: step compute taken as 0")

    # Samples: bytes read and CPU time per dataset[i] call (fall back to per-fetch averages).
    e_tid = events["tid"].to_numpy()
    e_pid = events["pid"].to_numpy()
    key_r = r_pid.astype(np.int64) << 32 | r_tid.astype(np.int64)
    key_e = e_pid.astype(np.int64) << 32 | e_tid.astype(np.int64)
    sample_rows = kinds == "sample"
    unit_rows = sample_rows if sample_rows.any() else kinds == "fetch"
    # An item an iterable pipeline batched itself holds that many samples.
    per_unit = records_per_item(events.filter(pa.array(unit_rows))).astype(float)
    if not sample_rows.any():
        per_unit = np.array([len(x or []) or 1 for x in events.filter(pa.array(unit_rows))["indices"].to_pylist()])
        notes.append("no per-sample events: per-sample costs are per-batch averages")
    sample_wall = None
    if unit_rows.any():
        nbytes = _interval_sums(e_start[unit_rows], e_end[unit_rows], key_e[unit_rows], r_start, key_r, r_bytes)

        def count_in_units(ops: tuple[str, ...]) -> np.ndarray:
            rows = _data_ops(trace, ops)
            keys = rows["pid"].to_numpy().astype(np.int64) << 32 | rows["tid"].to_numpy().astype(np.int64)
            return _interval_sums(
                e_start[unit_rows],
                e_end[unit_rows],
                key_e[unit_rows],
                rows["start_ns"].to_numpy(),
                keys,
                np.ones(rows.num_rows),
            )

        nopen = count_in_units(("open", "fopen", "get"))
        nstat = count_in_units(("stat", "fstat"))
        nread = _interval_sums(
            e_start[unit_rows], e_end[unit_rows], key_e[unit_rows], r_start, key_r, np.ones(len(r_start))
        )
        io_ns = events["io_ns"].to_numpy(zero_copy_only=False).astype(float)
        outside_io = np.maximum(e_end - e_start - np.nan_to_num(io_ns), 0) / 1e9
        # CPU work outside I/O: the thread's CPU time, at most its wall time outside I/O (a storage
        # client's own CPU inside the I/O calls belongs to the captured storage, not to the sample).
        work = np.where(np.isnan(e_cpu), outside_io, np.minimum(np.nan_to_num(e_cpu) / 1e9, outside_io))
        unit_wall, cpu_s = outside_io[unit_rows], work[unit_rows]
        if sample_rows.any():
            span = (e_end - e_start).astype(float)
            wall_over = _batch_overhead_per_sample(kinds, e_start, e_end, key_e, sample_rows, span)
            cpu_over = _batch_overhead_per_sample(kinds, e_start, e_end, key_e, sample_rows, e_cpu)
            unit_wall = unit_wall + wall_over
            cpu_s = cpu_s + np.where(np.isnan(cpu_over), wall_over, np.minimum(np.nan_to_num(cpu_over), wall_over))
        sample_bytes = np.repeat(nbytes / per_unit, per_unit.astype(int))
        sample_cpu = np.repeat(cpu_s / per_unit, per_unit.astype(int))
        if not np.isnan(e_cpu[unit_rows]).all():
            sample_wall = np.repeat(unit_wall / per_unit, per_unit.astype(int))
        files_per_sample = float(nopen.sum() / per_unit.sum())
        reads_per_sample = float(nread.sum() / per_unit.sum())
        stats_per_sample = float(nstat.sum() / per_unit.sum())
    else:
        sample_bytes, sample_cpu = np.zeros(1), np.zeros(1)
        files_per_sample = reads_per_sample = stats_per_sample = 0.0

    # Preload: data read before the training processes first asked for a batch, outside any fetch.
    first_request = int(e_start[(kinds == "batch") & in_train].min())
    inside = np.zeros(len(r_start), dtype=bool)
    if unit_rows.any():
        inside = _inside_any(r_start, key_r, e_start[unit_rows], e_end[unit_rows], key_e[unit_rows])
    pre = (r_start < first_request) & ~inside
    preload_bytes = int(r_bytes[pre].sum())
    if mapped or preload_bytes < PRELOAD_MIN_FRACTION * r_bytes.sum():
        pre[:] = False  # an index or metadata file read at start-up, not a bulk preload
        preload_bytes = 0
    preload_files, preload_threads, preload_cpu_s = 0, 1, 0.0
    load_start = first_request
    dataset_preloaded = False
    if preload_bytes:
        pre_reads = reads.filter(pa.array(pre))
        load_start = int(r_start[pre].min())
        preload_threads = len(np.unique(key_r[pre]))
        wall_s = (first_request - load_start) / 1e9
        io_busy_s = r_dur[pre].sum() / 1e9 / preload_threads
        per_path = pre_reads.group_by("path").aggregate([("bytes_returned", "sum")])
        preload_files = per_path.num_rows
        preload_cpu_s = max(wall_s - io_busy_s, 0.0)
        # The data set came from the preload when the loader itself read (almost) nothing: the
        # samples' sizes are then the preloaded files', spread over the samples.
        if sample_bytes.mean() * max(len(sample_bytes), 1) < PRELOAD_MIN_FRACTION * preload_bytes:
            dataset_preloaded = True
            sizes = per_path["bytes_returned_sum"].to_numpy().astype(float)
            per_sample_files = per_path.num_rows / max(config.get("dataset_length") or per_path.num_rows, 1)
            sample_bytes = sizes * per_sample_files
            files_per_sample = per_sample_files
            reads_per_sample = float(pre.sum()) / max(config.get("dataset_length") or per_path.num_rows, 1)
    last = int(max(e_end[step_rows].max() if step_rows.any() else 0, e_end[(kinds == "batch") & in_train].max()))
    samples = config.get("dataset_length")
    if not samples and sample_rows.any():  # an iterable dataset: the samples its items held per epoch
        samples = max(round(per_unit.sum() / captured_epochs), 1)
    samples = samples or int(len(np.unique(reads["path"].to_numpy(zero_copy_only=False))))
    fmt = record_format(trace, reads, loop_stats(events))
    shuffle_buffer = None
    if fmt.get("shard_bytes") and sample_rows.any():
        # A stream's first item (sample 0 of each worker's epoch) waited for what its reader read first.
        first = events["sample"].to_numpy(zero_copy_only=False)[unit_rows] == 0
        per_record = max(float(np.sum(nbytes)) / float(per_unit.sum()), 1.0)
        if first.any():
            shuffle_buffer = max(round(float(np.median(nbytes[first] / per_record - per_unit[first]))), 0)
    fault_bytes = None
    if mapped:
        sample_bytes = np.full(max(len(sample_cpu), 1), mapped_bytes(maps) / samples)
        fault_bytes = (mapped_stats(trace, samples) or {}).get("bytes_per_fault")
        files_per_sample = reads_per_sample = stats_per_sample = 0.0
    workers = int(config.get("num_workers") or 0)
    cores = _usable_cores(trace.manifest)
    return Workload(
        samples=int(samples),
        batch_size=int(config.get("batch_size") or 1) * int(per_unit.max() if sample_rows.any() else 1),
        epochs=epochs or captured_epochs,
        workers=workers,
        prefetch_factor=int(config.get("prefetch_factor") or 2),
        sample_bytes=sample_bytes,
        sample_cpu_s=sample_cpu,
        step_compute_s=step_s - step_cpu,
        step_cpu_s=step_cpu,
        sample_wall_s=sample_wall,
        captured_usable_cores=cores,
        captured_per_core=processes_per_core(len(train_pids), workers, cores) if cores else None,
        files_per_sample=files_per_sample,
        reads_per_sample=reads_per_sample,
        stats_per_sample=stats_per_sample,
        dataset_preloaded=dataset_preloaded,
        worker_start_s=_worker_start_s(trace, events, train_pids, main_loader),
        persistent_workers=bool(config.get("persistent_workers", False)),
        epoch_gap_s=_epoch_gap_s(events, train_pids, main_loader),
        batch_receive_s=_batch_receive_s(trace, events, train_pids, main_loader),
        drop_last=bool(config.get("drop_last", False)),
        shuffle=bool(config.get("shuffle", True)),
        preload_bytes=preload_bytes,
        preload_files=preload_files,
        preload_threads=preload_threads,
        preload_cpu_s=preload_cpu_s,
        captured_processes=len(train_pids),
        captured_duration_s=(last - load_start) / 1e9 if epochs in (None, captured_epochs) else None,
        access="mmap" if mapped else "read",
        shard_bytes=fmt.get("shard_bytes"),
        shuffle_buffer=shuffle_buffer,
        fault_bytes=fault_bytes,
        notes=tuple(notes),
    )


def _batch_overhead_per_sample(kinds, starts, ends, keys, sample_rows, amount) -> np.ndarray:
    """Each sample's share, in seconds, of its fetch's ``amount`` (nanoseconds of wall or of CPU time per
    event) outside ``dataset[i]`` calls (collate, sampler): work per batch that the per-sample figures
    do not see; NaN where the fetch's or a sample's amount is unknown."""
    fetch = kinds == "fetch"
    out = np.zeros(int(sample_rows.sum()))
    if not fetch.any():
        return out
    f_start, f_end, f_key = starts[fetch], ends[fetch], keys[fetch]
    s_start, s_key = starts[sample_rows], keys[sample_rows]
    inside = _interval_sums(f_start, f_end, f_key, s_start, s_key, amount[sample_rows])
    count = _interval_sums(f_start, f_end, f_key, s_start, s_key, np.ones(len(s_start)))
    overhead = np.maximum(amount[fetch] - inside, 0) / np.maximum(count, 1) / 1e9
    for key in np.unique(f_key):
        rows = np.flatnonzero(f_key == key)
        order = rows[np.argsort(f_start[rows])]
        mine = np.flatnonzero(s_key == key)
        idx = np.searchsorted(f_start[order], s_start[mine], "right") - 1
        ok = idx >= 0
        owner = order[idx[ok]]
        ok_rows = mine[ok][s_start[mine[ok]] <= f_end[owner]]
        owner = owner[s_start[mine[ok]] <= f_end[owner]]
        out[ok_rows] = overhead[owner]
    return out


def _cpu_ns(events) -> np.ndarray:
    """Each event's CPU time of its recording thread in nanoseconds (format 1.3), NaN where unknown."""
    return events["cpu_ns"].to_numpy(zero_copy_only=False).astype(float)


def _usable_cores(manifest: dict) -> float | None:
    """Cores the captured job could use: format 1.3's ``host.cpu.usable_cores`` (affinity and cgroup
    quota), else the affinity count older traces give as ``host.cpus_usable``."""
    host = manifest.get("host") or {}
    cores = (host.get("cpu") or {}).get("usable_cores") or host.get("cpus_usable")
    return float(cores) if isinstance(cores, int | float) and cores > 0 else None


def _batch_receive_s(trace, events, train_pids: list[int], loader: int) -> float:
    """Median main-side cost of taking a ready batch. Workers get batches round-robin and the loop
    receives them in order, so batch k of an epoch is the (k // W)-th fetch of worker k % W."""
    children: dict[int, set[int]] = {}
    for proc in trace.processes:
        if proc.get("role") == "worker":
            children.setdefault(proc.get("ppid"), set()).add(proc["pid"])
    rows = events.to_pylist()
    costs = []
    for pid in train_pids:
        fetches = [r for r in rows if r["event"] == "fetch" and r["pid"] in children.get(pid, ())]
        batches = [r for r in rows if r["event"] == "batch" and r["pid"] == pid and r["loader_id"] == loader]
        workers = max((r["worker_id"] for r in fetches), default=-1) + 1
        for epoch in sorted({b["epoch"] for b in batches}):
            mine = sorted((b for b in batches if b["epoch"] == epoch), key=lambda b: b["batch"])
            begin, end = mine[0]["start_ns"], mine[-1]["end_ns"]
            per_worker = [
                sorted(
                    (f for f in fetches if f["worker_id"] == w and f["end_ns"] >= begin and f["start_ns"] <= end),
                    key=lambda f: f["start_ns"],
                )
                for w in range(workers)
            ]
            for b in mine:
                queue = per_worker[b["batch"] % workers] if workers else []
                if b["batch"] // max(workers, 1) < len(queue):
                    ready = queue[b["batch"] // workers]["end_ns"]
                    costs.append((b["end_ns"] - max(b["start_ns"], ready)) / 1e9)
    return float(np.median(costs)) if costs else 0.0


def _epoch_gap_s(events, train_pids: list[int], loader: int) -> float:
    """Mean time from an epoch's end (the call that found it exhausted) to the next first request."""
    import pyarrow.compute as pc

    rows = events.filter(pc.equal(events["loader_id"], loader)).to_pylist()
    gaps = []
    for pid in train_pids:
        ends = {r["epoch"]: r["start_ns"] for r in rows if r["pid"] == pid and r["event"] == "epoch_end"}
        firsts = {
            r["epoch"]: r["start_ns"] for r in rows if r["pid"] == pid and r["event"] == "batch" and r["batch"] == 0
        }
        gaps += [(firsts[e + 1] - end) / 1e9 for e, end in ends.items() if e + 1 in firsts]
    return float(np.mean(gaps)) if gaps else 0.0


def _worker_start_s(trace, events, train_pids: list[int], loader: int) -> float:
    """Mean delay from each epoch's first batch request to the first fetch of that rank's workers."""
    import pyarrow.compute as pc

    children: dict[int, set[int]] = {}
    for proc in trace.processes:
        if proc.get("role") == "worker":
            children.setdefault(proc.get("ppid"), set()).add(proc["pid"])
    fetches = events.filter(pc.and_(pc.equal(events["event"], "fetch"), pc.is_valid(events["worker_id"])))
    firsts = events.filter(pc.and_(pc.equal(events["event"], "batch"), pc.equal(events["batch"], 0)))
    firsts = firsts.filter(pc.equal(firsts["loader_id"], loader))
    f_pid, f_start = fetches["pid"].to_numpy(), fetches["start_ns"].to_numpy()
    delays = []
    for pid, start in zip(firsts["pid"].to_pylist(), firsts["start_ns"].to_pylist(), strict=True):
        mine = np.sort(f_start[np.isin(f_pid, list(children.get(pid, ())))])
        after = mine[mine >= start]
        if pid in train_pids and after.size:
            delays.append((after[0] - start) / 1e9)
    return float(np.mean(delays)) if delays else 0.0


def _data_ops(trace, ops: tuple[str, ...]):
    """The trace's successful operations ``ops`` on data files."""
    import pyarrow as pa
    import pyarrow.compute as pc

    io = trace.io
    mask = pc.and_(pc.is_in(io["op"], pa.array(list(ops))), pc.equal(io["io_class"], "data"))
    return io.filter(pc.and_(mask, pc.greater_equal(io["result"], 0)))


def _inside_any(r_start, r_key, starts, ends, keys) -> np.ndarray:
    """Whether each record starts inside one of the intervals of its own thread."""
    inside = np.zeros(len(r_start), dtype=bool)
    for key in np.unique(keys):
        rows = keys == key
        order = np.argsort(starts[rows])
        s, e = starts[rows][order], ends[rows][order]
        sel = np.flatnonzero(r_key == key)
        idx = np.searchsorted(s, r_start[sel], "right") - 1
        ok = idx >= 0
        inside[sel[ok]] = r_start[sel[ok]] <= e[idx[ok]]
    return inside


def _io_only_workload(trace, reads, epochs: int | None) -> Workload:
    """No DataLoader events: one sample per data file, I/O only (the caller warns)."""
    import pyarrow.compute as pc

    per_file = reads.group_by("path").aggregate([("bytes_returned", "sum"), ("path", "count")])
    sizes = per_file["bytes_returned_sum"].to_numpy().astype(float)
    times = reads["start_ns"].to_numpy()
    reread = float(pc.sum(per_file["path_count"]).as_py()) / max(per_file.num_rows, 1)
    return Workload(
        samples=per_file.num_rows,
        batch_size=1,
        epochs=epochs or max(1, round(reread)),
        workers=0,
        prefetch_factor=1,
        sample_bytes=sizes / max(round(reread), 1),
        sample_cpu_s=np.zeros(1),
        step_compute_s=np.zeros(1),
        reads_per_sample=reads.num_rows / per_file.num_rows / max(round(reread), 1),
        captured_duration_s=(times.max() - times.min()) / 1e9,
        notes=("the trace has no DataLoader events: modelled from I/O alone (no compute, one sample per file)",),
    )
