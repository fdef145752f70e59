"""Small synthetic traces written with the real format, for reader and summary tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trainio.models.workload import Workload
from trainio.tracefile.format import EVENTS_SCHEMA, FORMAT_NAME, FORMAT_VERSION, IO_SCHEMA, file_metadata


def io_row(pid: int, path: str, nbytes: int, start_ns: int, op: str = "read", io_class: str = "data") -> dict:
    return {
        "pid": pid,
        "tid": pid,
        "op": op,
        "fd": 3,
        "path": path,
        "kind": "file",
        "offset": None,
        "bytes_requested": nbytes,
        "bytes_returned": nbytes,
        "result": nbytes,
        "start_ns": start_ns,
        "duration_ns": 1000,
        "io_class": io_class,
        "role": "main",
    }


def event_row(
    pid: int,
    event: str,
    start_ns: int,
    end_ns: int,
    batch: int | None = None,
    epoch: int = 0,
    cpu_ns: int | None = None,
) -> dict:
    return {
        "cpu_ns": cpu_ns,
        "pid": pid,
        "tid": pid,
        "event": event,
        "loader_id": 0,
        "epoch": epoch,
        "batch": batch,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "io_ns": 0,
        "role": "main",
    }


def write_part(folder: Path, name: str, rows: list[dict], schema: pa.Schema, kind: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema.with_metadata(file_metadata(kind, "test")))
    pq.write_table(table, folder / f"{name}.parquet")


def make_trace(
    root: Path,
    reads: list[tuple[int, int]],
    events: list[dict] | None = None,
    io_rows: list[dict] | None = None,
    duration_s: float = 10.0,
    processes: list[dict] | None = None,
    host: dict | None = None,
) -> Path:
    """A finalized trace: one io part per pid in ``reads`` ((pid, bytes) -> one data read each);
    ``processes`` and ``host`` replace the manifest's."""
    root.mkdir(parents=True)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "status": "complete",
        "exit_code": 0,
        "start_monotonic_ns": 0,
        "end_monotonic_ns": int(duration_s * 1e9),
        "duration_s": duration_s,
        "processes": processes
        if processes is not None
        else [{"pid": pid, "ppid": 0, "role": "main", "rchar": nbytes, "end_ns": 1} for pid, nbytes in reads],
        "lost": [],
        "interposer": {"loaded_in_all": True},
        **({"host": host} if host is not None else {}),
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    rows = io_rows if io_rows is not None else [io_row(pid, f"/data/set/f{pid}.bin", n, pid) for pid, n in reads]
    pids = sorted({r["pid"] for r in rows}) or [0]
    for pid in pids:
        write_part(root / "io", f"{pid}-0", [r for r in rows if r["pid"] == pid], IO_SCHEMA, "io")
    if events:
        write_part(root / "events", "1-0", events, EVENTS_SCHEMA, "events")
    return root


MAIN, FIRST_WORKER = 100, 200


def loader_trace(
    root: Path,
    *,
    batches: int = 8,
    batch_size: int = 4,
    workers: int = 2,
    sample_wall_ns: int = 3_000_000,
    sample_cpu_ns: int | None = 2_000_000,
    read_ns: int = 1_000_000,
    step_wall_ns: int = 20_000_000,
    step_cpu_ns: int | None = 5_000_000,
    cores: int | None = 4,
) -> Path:
    """A one-epoch DataLoader run: ``workers`` worker processes each fetch every ``workers``-th batch,
    a sample = one read of ``read_ns`` then decoding until ``sample_wall_ns``; the training loop
    takes each batch when ready and steps for ``step_wall_ns``. CPU times (format 1.3's ``cpu_ns``)
    are left null where None; ``cores`` is the host's ``host.cpu.usable_cores``."""
    events: list[dict] = []
    reads: list[dict] = []
    info = {"dataset_length": batches * batch_size, "batch_size": batch_size, "num_workers": workers}
    start = {**event_row(MAIN, "epoch_start", 0, 0), "info": json.dumps(info)}
    events.append(start)
    fetch_ns = batch_size * sample_wall_ns
    clock = 1_000_000
    for b in range(batches):
        worker = FIRST_WORKER + b % workers
        begin = 1_000_000 + (b // workers) * fetch_ns
        fetch = event_row(worker, "fetch", begin, begin + fetch_ns)
        events.append({**fetch, "worker_id": b % workers, "loader_id": None, "role": "worker"})
        for i in range(batch_size):
            t0 = begin + i * sample_wall_ns
            sample = event_row(worker, "sample", t0, t0 + sample_wall_ns, cpu_ns=sample_cpu_ns)
            events.append({**sample, "sample": b * batch_size + i, "io_ns": read_ns, "loader_id": None})
            row = io_row(worker, f"/data/set/{b * batch_size + i:05d}.jpg", 20_000, t0)
            reads.append({**row, "duration_ns": read_ns, "role": "worker"})
        ready = begin + fetch_ns
        events.append(event_row(MAIN, "batch", clock, max(clock, ready) + 100_000, batch=b))
        clock = max(clock, ready) + 100_000
        events.append(event_row(MAIN, "step", clock, clock + step_wall_ns, batch=b, cpu_ns=step_cpu_ns))
        clock += step_wall_ns
    processes = [{"pid": MAIN, "ppid": 1, "role": "main", "end_ns": 1}] + [
        {"pid": FIRST_WORKER + w, "ppid": MAIN, "role": "worker", "worker_id": w, "end_ns": 1} for w in range(workers)
    ]
    host = {"cpus": cores, "cpus_usable": cores, "cpu": {"usable_cores": cores}} if cores else {}
    return make_trace(root, [], io_rows=reads, events=events, processes=processes, host=host)


def small_workload(**fields) -> Workload:
    """One epoch of 4,096 samples of 100 kB in batches of 32 over 2 workers, 0.1 ms of CPU per sample,
    1 ms steps, unless given."""
    values = {
        "samples": 4096,
        "batch_size": 32,
        "epochs": 1,
        "workers": 2,
        "prefetch_factor": 2,
        "sample_bytes": np.array([100e3]),
        "sample_cpu_s": np.array([1e-4]),
        "step_compute_s": np.array([1e-3]),
    }
    return Workload(**{**values, **fields})
