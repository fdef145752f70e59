"""``tracer summary --json``: the stable, documented digest of a trace.

Keys (a contract other tools rely on): bytes_read, runtime_bytes_read, data_roots, read_ops,
files_opened, distinct_files, processes, samples, batches, epochs, duration_s,
data_stall_fraction, mean_step_s, mean_fetch_s, read_size_histogram, pattern, pattern_evidence,
coverage; plus reread_bytes, reread_fraction, ipc_bytes_read, object_ops, host_cpu, node_cpu, cpu, mapped,
record_format, warnings.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trainio.tracefile.classify import data_roots
from trainio.tracefile.format import OBJECT_READ_OPS, READ_OPS
from trainio.tracefile.reader import Trace
from trainio.tracefile.redact import Redactor

PRELOAD_FRACTION = 0.8
"""Share of data bytes read before the first training step above which a run is a bulk preload."""
STREAMING_FRACTION = 0.2
"""Share below which (and with reads spread over the steps) a run is streaming."""


def _np(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy(zero_copy_only=False)


def data_reads(trace: Trace) -> pa.Table:
    """Successful data reads (files and object GETs), in time order."""
    io = trace.io
    mask = pc.and_(
        pc.and_(pc.is_in(io["op"], pa.array(READ_OPS + OBJECT_READ_OPS)), pc.equal(io["io_class"], "data")),
        pc.greater(io["bytes_returned"], 0),
    )
    return io.filter(mask).sort_by("start_ns")


def data_mappings(trace: Trace) -> pa.Table:
    """Successful memory mappings of data files (``mmap`` rows; ``result`` is the address, -1 failed)."""
    io = trace.io
    mask = pc.and_(pc.equal(io["op"], "mmap"), pc.equal(io["io_class"], "data"))
    return io.filter(pc.and_(mask, pc.greater_equal(io["result"], 0)))


MAPPED_READ_FRACTION = 0.1
"""A run with data files mapped reads its data through the mappings when its data reads are less than
this share of the mapped bytes (an index, a JSON of metadata beside an Arrow file)."""


def mapped_bytes(maps: pa.Table) -> int:
    """Bytes of the mapped data files: each file's largest mapping."""
    if not maps.num_rows:
        return 0
    return int(
        pc.sum(maps.group_by("path").aggregate([("bytes_requested", "max")])["bytes_requested_max"]).as_py() or 0
    )


def reads_through_mappings(reads: pa.Table, maps: pa.Table) -> bool:
    """Whether the run read its data through memory mappings rather than read calls."""
    mapped = mapped_bytes(maps)
    return mapped > 0 and int(pc.sum(reads["bytes_returned"]).as_py() or 0) < MAPPED_READ_FRACTION * mapped


SEQUENTIAL_FRACTION = 0.5
"""Share of a worker's consecutive sample indices that follow each other (i, i+1) above which a
memory-mapped run reads its mapping sequentially."""


def sequential_fraction(events: pa.Table) -> float | None:
    """Of each thread's consecutive sample indices (its fetches' ``indices`` in time order), the share
    that goes to the next index; None without indices (iterable datasets number their items instead)."""
    if not events.num_rows:
        return None
    fetches = events.filter(pc.and_(pc.equal(events["event"], "fetch"), pc.is_valid(events["indices"])))
    steps = following = 0
    for key in set(zip(_np(fetches, "pid").tolist(), _np(fetches, "tid").tolist(), strict=True)):
        mine = fetches.filter(pc.and_(pc.equal(fetches["pid"], key[0]), pc.equal(fetches["tid"], key[1])))
        order = np.concatenate([np.asarray(x, dtype=np.int64) for x in mine.sort_by("start_ns")["indices"].to_pylist()])
        steps += max(order.size - 1, 0)
        following += int(np.count_nonzero(np.diff(order) == 1))
    return following / steps if steps else None


def mapped_stats(trace: Trace, samples: int) -> dict | None:
    """What a memory-mapped run read through its mappings of data files (None without any): the files
    and bytes mapped, what the DataLoader's fetches faulted in from storage (``read_bytes``, major
    faults), and per sample of an epoch (``samples`` per epoch)."""
    maps = data_mappings(trace)
    if not maps.num_rows:
        return None
    events = trace.events
    fetches = events.filter(pc.and_(pc.equal(events["event"], "fetch"), pc.is_valid(events["read_bytes"])))
    storage = int(pc.sum(fetches["read_bytes"]).as_py() or 0)
    faults = int(pc.sum(fetches["majflt"]).as_py() or 0)
    mapped = mapped_bytes(maps)
    return {
        "files": len(set(_np(maps, "path").tolist())),
        "mapped_bytes": mapped,
        "fetch_read_bytes": storage,
        "major_faults": faults,
        # the readahead window the kernel used; None without a major fault (all of it was cached)
        "bytes_per_fault": round(storage / faults) if faults and storage else None,
        "bytes_per_sample": round(mapped / samples) if samples else None,
    }


def mmap_pattern(events: pa.Table, mapped: dict) -> tuple[str, dict]:
    """``mmap-sequential`` or ``mmap-random`` by the order the workers asked for the samples."""
    fraction = sequential_fraction(events)
    evidence = {"mapped_bytes": mapped["mapped_bytes"], "fetch_read_bytes": mapped["fetch_read_bytes"]}
    if fraction is None:
        return "mmap-sequential", {**evidence, "basis": "no sample indices (an iterable dataset reads in order)"}
    evidence["sequential_index_fraction"] = round(fraction, 4)
    return ("mmap-sequential" if fraction >= SEQUENTIAL_FRACTION else "mmap-random"), evidence


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Read sizes in power-of-two buckets labelled by their upper bound (``<=4KiB``)."""
    hist: dict[str, int] = {}
    if sizes.size == 0:
        return hist
    exps = np.ceil(np.log2(np.maximum(sizes, 1))).astype(int)
    for exp, count in zip(*np.unique(exps, return_counts=True), strict=True):
        hist[f"<={_human(2 ** int(exp))}"] = int(count)
    return hist


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n}{unit}"
        n //= 1024
    return f"{n}TiB"


def _reread_bytes(reads: pa.Table) -> int:
    """Bytes read again at the same (path, offset range) -- typically the same data every epoch."""
    if reads.num_rows == 0:
        return 0
    path = reads["path"].combine_chunks().dictionary_encode().indices.fill_null(-1).to_numpy(zero_copy_only=False)
    offset = reads["offset"].fill_null(-1).to_numpy()
    nbytes = _np(reads, "bytes_returned")
    order = np.lexsort((nbytes, offset, path))
    keys = np.stack([path[order], offset[order], nbytes[order]])
    again = np.zeros(len(order), dtype=bool)
    again[1:] = (keys[:, 1:] == keys[:, :-1]).all(axis=0)  # same as the read before it in this order
    return int(nbytes[order][again].sum())


def records_per_item(events: pa.Table) -> np.ndarray:
    """Samples (records) per ``sample`` event: n for an item an iterable pipeline batched itself
    (``{"batched": n}`` in its ``info``), else 1."""
    counts = np.ones(events.num_rows, dtype=np.int64)
    info = events["info"]
    if info.null_count < events.num_rows:
        for row in np.flatnonzero(pc.is_valid(info).to_numpy(zero_copy_only=False)):
            batched = json.loads(info[int(row)].as_py()).get("batched")
            if isinstance(batched, int) and batched > 0:
                counts[row] = batched
    return counts


SHARD_SAMPLES = 2
"""An iterable dataset whose data files hold at least this many samples each (per epoch) reads
packed records (tar shards, TFRecord): format ``shards``."""


def record_format(trace: Trace, reads: pa.Table, loop: dict) -> dict:
    """The record format the run read: ``shards`` when an iterable dataset (no ``dataset_length``)
    streamed data files holding many samples each (WebDataset tar shards, TFRecord files), with their
    count and mean bytes read per epoch and samples per shard; else ``files``."""
    events = trace.events
    starts = events.filter(pc.equal(events["event"], "epoch_start")) if events.num_rows else events
    configs = [json.loads(x) for x in starts["info"].to_pylist() if x] if starts.num_rows else []
    iterable = bool(configs) and all(c.get("dataset_length") is None for c in configs)
    files = len(set(_np(reads, "path").tolist())) if reads.num_rows else 0
    epochs = max(loop["epochs"], 1)
    per_epoch = loop["samples"] / epochs
    if not iterable or not files or per_epoch < SHARD_SAMPLES * files:
        return {"kind": "files"}
    return {
        "kind": "shards",
        "shards": files,
        "shard_bytes": round(float(_np(reads, "bytes_returned").sum()) / epochs / files),
        "samples_per_shard": round(per_epoch / files, 2),
    }


def loop_stats(events: pa.Table) -> dict:
    """Per-batch wait (data stall), step compute and worker fetch times."""
    ev = _np(events, "event") if events.num_rows else np.array([], dtype=object)
    start, end = _np(events, "start_ns"), _np(events, "end_ns")
    batch, step, fetch = ev == "batch", ev == "step", ev == "fetch"
    wait_s = (end[batch] - start[batch]) / 1e9
    step_s = (end[step] - start[step]) / 1e9
    fetch_s = (end[fetch] - start[fetch]) / 1e9
    epochs = 0
    if events.num_rows:
        starts = events.filter(pc.equal(events["event"], "epoch_start"))
        if starts.num_rows:
            counts = starts.group_by(["pid", "loader_id"]).aggregate([("epoch", "count")])
            epochs = int(pc.max(counts["epoch_count"]).as_py())
    total = wait_s.sum() + step_s.sum()
    return {
        "batches": int(batch.sum()),
        "samples": int(records_per_item(events.filter(pc.equal(events["event"], "sample"))).sum())
        if (ev == "sample").any()
        else int(sum(len(x) for x in events.filter(pc.equal(events["event"], "fetch"))["indices"].to_pylist() if x)),
        "epochs": epochs,
        "data_stall_fraction": float(wait_s.sum() / total) if total > 0 else None,
        "mean_step_s": float(step_s.mean()) if step_s.size else None,
        "mean_fetch_s": float(fetch_s.mean()) if fetch_s.size else None,
        "first_step_ns": int(end[batch].min()) if batch.any() else None,
        "last_step_ns": int(max(end[batch].max(), end[step].max() if step.any() else 0)) if batch.any() else None,
    }


def cpu_stats(events: pa.Table, processes: list[dict]) -> dict:
    """CPU time next to wall time (format 1.3): the training loop's own per step, a sample's, a
    fetch's, and each process role's total (utime + stime)."""

    def mean_of(event: str, column: str) -> tuple[float | None, int, float | None]:
        rows = events.filter(pc.and_(pc.equal(events["event"], event), pc.is_valid(events[column])))
        if not rows.num_rows:
            return None, 0, None
        wall = float(np.mean(_np(rows, "end_ns") - _np(rows, "start_ns"))) / 1e9
        return float(np.mean(_np(rows, column))) / 1e9, rows.num_rows, wall

    step, _, _ = mean_of("step", "cpu_ns") if events.num_rows else (None, 0, None)
    sample, measured, sample_wall = mean_of("sample", "cpu_ns") if events.num_rows else (None, 0, None)
    fetch, _, _ = mean_of("fetch", "cpu_ns") if events.num_rows else (None, 0, None)
    wait, _, _ = mean_of("batch", "cpu_ns") if events.num_rows else (None, 0, None)
    roles: dict[str, float] = {}
    for proc in processes:
        if isinstance(proc.get("utime_s"), int | float) and isinstance(proc.get("stime_s"), int | float):
            roles[proc.get("role") or "?"] = round(
                roles.get(proc.get("role") or "?", 0.0) + proc["utime_s"] + proc["stime_s"], 3
            )
    return {
        "mean_step_cpu_s": step,
        "mean_batch_wait_cpu_s": wait,
        "mean_fetch_cpu_s": fetch,
        "mean_sample_cpu_s": sample,
        "mean_sample_wall_s": sample_wall,
        "samples_measured": measured,
        "process_cpu_s": roles,
    }


def access_pattern(reads: pa.Table, loop: dict, manifest: dict) -> tuple[str, dict]:
    """preload / streaming / mixed, with the numbers that decided it."""
    nbytes = _np(reads, "bytes_returned").astype(float)
    start = _np(reads, "start_ns")
    total = nbytes.sum()
    if total == 0:
        return "none", {"reason": "no data reads"}
    first = loop.get("first_step_ns")
    evidence: dict = {"data_bytes": int(total)}
    if first is not None:
        before = float(nbytes[start < first].sum() / total)
        evidence.update(bytes_before_first_step_fraction=round(before, 4), first_step_basis="first batch received")
        last = loop.get("last_step_ns") or int(start.max())
        # Streaming means the reads keep coming while steps run: spread over the training window.
        after = start[start >= first]
        window = max(last - first, 1)
        spread = float((after.max() - after.min()) / window) if after.size > 1 else 0.0
        evidence["read_spread_over_steps"] = round(min(spread, 1.0), 4)
    else:
        run_start = manifest.get("start_monotonic_ns") or int(start.min())
        run_end = manifest.get("end_monotonic_ns") or int(start.max())
        cut = run_start + 0.2 * (run_end - run_start)
        before = float(nbytes[start < cut].sum() / total)
        evidence.update(bytes_in_first_fifth_fraction=round(before, 4), first_step_basis="no DataLoader events")
        spread = 1.0 - before
    if before >= PRELOAD_FRACTION:
        return "preload", evidence
    if before <= STREAMING_FRACTION and spread >= 0.5:
        return "streaming", evidence
    return "mixed", evidence


def own_rchar(processes: list[dict]) -> dict[int, int]:
    """Each process's own rchar: the kernel adds a reaped child's counters to its parent's.

    A traced child that ended before its parent's counters were read is taken as reaped by then
    (DataLoader and torchrun children are joined before their parent exits). Reads made before
    the process's program started (an exec'ing shell shim) are not the process's own either.
    """
    own = {}
    for proc in processes:
        if proc.get("rchar") is None:
            continue
        reaped = sum(
            child["rchar"]
            for child in processes
            if child.get("ppid") == proc["pid"]
            and child.get("rchar") is not None
            and child.get("end_ns") is not None
            and proc.get("end_ns") is not None
            and child["end_ns"] <= proc["end_ns"]
        )
        own[proc["pid"]] = max(proc["rchar"] - proc.get("rchar_before_start", 0) - reaped, 0)
    return own


def coverage(trace: Trace, data: pa.Table | None = None) -> dict:
    """Bytes returned by all traced read calls over what the kernel counted for the run.

    ``data``: the trace's ``data_reads`` when the caller has them already. Since format 1.2 the
    count is the process tree's (``tree_io``: every reaped process's
    ``/proc/PID/io``, however it ended) less what each process read before it could be traced
    (``rchar_before_start``). Older traces divide by the sum of each process's own rchar.
    """
    io = trace.io
    reads = pc.is_in(io["op"], pa.array(READ_OPS))
    tree = trace.manifest.get("tree_io")
    if isinstance(tree, dict) and isinstance(tree.get("rchar"), int):
        untraced = sum(int(p.get("rchar_before_start") or 0) for p in trace.processes)
        rchar = max(tree["rchar"] - untraced, 0)
        mask = reads
        basis = "process tree"
        with_counters = int(tree.get("processes", 0))
    else:
        own = own_rchar(trace.processes)
        rchar = int(sum(own.values()))
        mask = pc.and_(reads, pc.is_in(io["pid"], pa.array(list(own), pa.int32())))
        basis = "per process"
        with_counters = len(own)
    returned = pc.max_element_wise(pc.filter(io["bytes_returned"], mask), 0)
    traced = int(pc.sum(returned).as_py() or 0)
    return {
        "ratio": round(traced / rchar, 4) if rchar else None,
        "traced_bytes": traced,
        "rchar_bytes": rchar,
        "basis": basis,
        "processes_with_counters": with_counters,
        "processes": len(trace.processes),
        "c_level": bool(trace.manifest.get("interposer", {}).get("loaded_in_all", False)),
        **storage_coverage(trace, data),
        **object_coverage(trace),
    }


def object_coverage(trace: Trace) -> dict:
    """What the trace saw of the object reads: GET bytes it recorded against those plus the network
    bytes of processes that loaded an object-store client trainio does not hook (recv'd, and read()
    from sockets). ``object_ratio`` is null when no such client was loaded."""
    io = trace.io
    gets = pc.filter(io["bytes_returned"], pc.equal(io["op"], "get"))
    traced = int(pc.sum(gets).as_py() or 0)
    unhooked = [p for p in trace.processes if any(not c.get("hooked") for c in p.get("object_clients") or [])]
    pids = pa.array([p["pid"] for p in unhooked], pa.int32())
    socket_reads = pc.and_(
        pc.and_(pc.is_in(io["op"], pa.array(READ_OPS)), pc.is_in(io["pid"], pids)),
        pc.starts_with(pc.fill_null(io["path"], ""), "socket:"),
    )
    network = sum(int(p.get("socket_recv_bytes") or 0) for p in unhooked)
    network += int(pc.sum(pc.filter(io["bytes_returned"], socket_reads)).as_py() or 0)
    return {
        "object_bytes": traced,
        "unhooked_clients": sorted({c["client"] for p in unhooked for c in p["object_clients"] if not c["hooked"]}),
        "unhooked_network_bytes": network,
        "object_ratio": round(traced / (traced + network), 4) if unhooked and traced + network else None,
    }


STORAGE_EVIDENCE_BYTES = 1 << 20
"""Storage reads below this many bytes are too few to judge what the trace saw of them."""


def storage_coverage(trace: Trace, reads: pa.Table | None = None) -> dict:
    """What the trace saw of the bytes the kernel read from storage (``read_bytes``): mapped files
    faulted in, cache misses, readahead, reads it cannot see (io_uring, raw system calls).

    Judged where the loader works: in each fetch, the kernel's ``read_bytes`` of the fetching thread
    are explained when the trace holds the access that caused them, a data read of that thread
    during the fetch or a recorded mapping of a data file (mmap) made before the fetch ended.
    ``read_bytes_ratio`` = explained / all of them (null below STORAGE_EVIDENCE_BYTES, or in traces
    without per-fetch ``read_bytes``, before format 1.3). The process tree's ``read_bytes`` (library
    pages read by the dynamic loader included) and the mapped data bytes are given alongside.
    """
    io, events = trace.io, trace.events
    tree = trace.manifest.get("tree_io")
    tree = tree if isinstance(tree, dict) else {}
    maps = io.filter(
        pc.and_(
            pc.and_(pc.equal(io["op"], "mmap"), pc.equal(io["io_class"], "data")), pc.greater_equal(io["result"], 0)
        )
    )
    out = {
        "read_bytes": tree.get("read_bytes"),
        "mapped_bytes": int(pc.sum(maps["bytes_requested"]).as_py() or 0),
        "fetch_read_bytes": None,
        "fetch_read_bytes_explained": None,
        "read_bytes_ratio": None,
    }
    if not events.num_rows:
        return out
    fetches = events.filter(pc.and_(pc.equal(events["event"], "fetch"), pc.is_valid(events["read_bytes"])))
    if not fetches.num_rows:
        return out
    f_bytes = _np(fetches, "read_bytes")
    f_pid, f_tid, f_start, f_end = (_np(fetches, c) for c in ("pid", "tid", "start_ns", "end_ns"))
    explained = np.zeros(len(f_bytes), dtype=bool)
    if maps.num_rows:
        explained |= f_end >= int(pc.min(maps["start_ns"]).as_py())
    reads = data_reads(trace) if reads is None else reads
    if reads.num_rows:
        explained |= _any_inside(reads, f_pid, f_tid, f_start, f_end)
    total = int(f_bytes.sum())
    seen = int(f_bytes[explained].sum())
    out.update(
        fetch_read_bytes=total,
        fetch_read_bytes_explained=seen,
        read_bytes_ratio=round(seen / total, 4) if total >= STORAGE_EVIDENCE_BYTES else None,
    )
    return out


def _any_inside(reads: pa.Table, pid: np.ndarray, tid: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per interval: whether thread (pid, tid) has a read starting inside [start, end]."""
    _, ids = np.unique(
        np.concatenate(
            [_np(reads, "pid").astype(np.int64) << 32 | _np(reads, "tid"), pid.astype(np.int64) << 32 | tid]
        ),
        return_inverse=True,
    )
    r_id, f_id = ids[: reads.num_rows], ids[reads.num_rows :]
    r_start = _np(reads, "start_ns")
    origin = min(int(r_start.min()), int(start.min()))
    span = max(int(r_start.max()), int(end.max())) - origin + 1  # one time line per thread, end to end
    times = np.sort(r_id * span + (r_start - origin))
    first = np.searchsorted(times, f_id * span + (start - origin), "left")
    return np.searchsorted(times, f_id * span + (end - origin), "right") > first


def training_reads(reads: pa.Table, trace: Trace) -> pa.Table:
    """The data reads that fed the training: made by DataLoader workers or inside a fetch.

    A run's other reads (a framework's config file under $HOME, a checkpoint) do not decide where
    the training data lives. Without workers or fetch events, every data read counts.
    """
    workers = [p["pid"] for p in trace.processes if p.get("role") == "worker"]
    chosen = np.isin(_np(reads, "pid"), workers) if reads.num_rows else np.zeros(0, dtype=bool)
    events = trace.events
    if events.num_rows and reads.num_rows:
        fetches = events.filter(pc.equal(events["event"], "fetch"))
        r_pid, r_tid, r_start = _np(reads, "pid"), _np(reads, "tid"), _np(reads, "start_ns")
        f_pid, f_tid, f_start, f_end = (_np(fetches, c) for c in ("pid", "tid", "start_ns", "end_ns"))
        for pid, tid in set(zip(f_pid.tolist(), f_tid.tolist(), strict=True)):
            mine = (f_pid == pid) & (f_tid == tid)
            order = np.argsort(f_start[mine])
            starts, ends = f_start[mine][order], f_end[mine][order]
            rows = np.flatnonzero((r_pid == pid) & (r_tid == tid))
            slot = np.searchsorted(starts, r_start[rows], "right") - 1
            inside = (slot >= 0) & (r_start[rows] <= ends[np.maximum(slot, 0)])
            chosen[rows[inside]] = True
    return reads.filter(pa.array(chosen)) if chosen.any() else reads


def summarize(trace: Trace) -> dict:
    """The ``tracer summary --json`` dictionary."""
    io = trace.io
    reads = data_reads(trace)
    is_read = pc.is_in(io["op"], pa.array(READ_OPS + OBJECT_READ_OPS))
    is_runtime = pc.is_in(io["io_class"], pa.array(["runtime", "trace"]))
    runtime = pc.filter(io["bytes_returned"], pc.and_(is_read, is_runtime))
    ipc = pc.filter(io["bytes_returned"], pc.and_(is_read, pc.equal(io["io_class"], "ipc")))
    opens = pc.and_(pc.is_in(io["op"], pa.array(["open", "fopen", "get"])), pc.equal(io["io_class"], "data"))
    files_opened = int(pc.sum(pc.and_(opens, pc.greater_equal(io["result"], 0))).as_py() or 0)
    paths = _np(reads, "path")
    nbytes = _np(reads, "bytes_returned")
    per_path: dict[str, int] = {}
    if reads.num_rows:
        grouped = training_reads(reads, trace).group_by("path").aggregate([("bytes_returned", "sum")])
        per_path = dict(zip(grouped["path"].to_pylist(), grouped["bytes_returned_sum"].to_pylist(), strict=True))
    loop = loop_stats(trace.events)
    pattern, evidence = access_pattern(reads, loop, trace.manifest)
    mapped = mapped_stats(trace, loop["samples"] // max(loop["epochs"], 1))
    if mapped is not None:
        maps = data_mappings(trace).group_by("path").aggregate([("bytes_requested", "max")])
        for path, size in zip(maps["path"].to_pylist(), maps["bytes_requested_max"].to_pylist(), strict=True):
            per_path[path] = per_path.get(path, 0) + size
        if reads_through_mappings(reads, data_mappings(trace)):
            pattern, evidence = mmap_pattern(trace.events, mapped)
    total = int(nbytes.sum())
    reread = _reread_bytes(reads)
    return {
        "bytes_read": total,
        "runtime_bytes_read": int(pc.sum(runtime).as_py() or 0),
        "ipc_bytes_read": int(pc.sum(ipc).as_py() or 0),
        "data_roots": [Redactor().text(root) for root in data_roots(per_path)],
        "read_ops": int(reads.num_rows),
        "files_opened": files_opened,
        "distinct_files": int(len(set(paths.tolist()))) if paths.size else 0,
        "processes": len(trace.processes),
        "samples": loop["samples"],
        "batches": loop["batches"],
        "epochs": loop["epochs"],
        "duration_s": trace.manifest.get("duration_s"),
        "data_stall_fraction": loop["data_stall_fraction"],
        "mean_step_s": loop["mean_step_s"],
        "mean_fetch_s": loop["mean_fetch_s"],
        "read_size_histogram": size_histogram(nbytes),
        "pattern": pattern,
        "pattern_evidence": evidence,
        "reread_bytes": reread,
        "reread_fraction": round(reread / total, 4) if total else 0.0,
        "object_ops": int(pc.sum(pc.equal(io["kind"], "object")).as_py() or 0),
        "coverage": coverage(trace, reads),
        "exit_code": trace.manifest.get("exit_code"),
        "host_cpu": trace.manifest.get("host_cpu"),
        "node_cpu": (trace.manifest.get("host") or {}).get("cpu"),
        "cpu": cpu_stats(trace.events, trace.processes),
        "mapped": mapped,
        "record_format": record_format(trace, training_reads(reads, trace) if reads.num_rows else reads, loop),
        "warnings": list(trace.warnings) + list(trace.manifest.get("lost", [])),
    }
