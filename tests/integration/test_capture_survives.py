"""Records survive however a process ends, and coverage notices when they do not (issue 12).

Each run is a real DataLoader with persistent workers (tests/workloads/persistent_workers.py);
the workers append every sample they read to a marks file, the ground truth a kill cannot erase.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.helpers import WORKLOADS, run_cli, summary_json
from trainio.tracefile import open_trace
from trainio.tracefile.format import READ_OPS

WORKLOAD = WORKLOADS / "persistent_workers.py"


def capture(tmp_path: Path, data: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    trace = tmp_path / "trace"
    proc = run_cli("tracer", "capture", "--out", trace, "--", sys.executable, WORKLOAD, data, *args, timeout=300)
    return proc, trace


def marks(data: Path) -> Counter:
    return Counter(int(line) for line in (data / "marks").read_text().split())


def traced_samples(trace: Path) -> Counter:
    events = open_trace(trace).events
    return Counter(r["sample"] for r in events.to_pylist() if r["event"] == "sample")


@pytest.mark.parametrize("end", ["sigterm", "sigkill"])
def test_persistent_workers_killed_at_the_end_lose_nothing(tmp_path, end):
    """DLIO's pattern: a short run (well under a second of training) whose persistent workers are
    killed at exit instead of being shut down. Every byte and every sample is in the trace."""
    data = tmp_path / "data"
    proc, trace = capture(tmp_path, data, "--end", end)
    assert proc.returncode == 0, proc.stderr
    expected = json.loads(proc.stdout.strip().splitlines()[-1])
    digest = summary_json(trace)
    assert digest["bytes_read"] == expected["bytes"]
    assert digest["samples"] == expected["samples"] == sum(marks(data).values())
    assert traced_samples(trace) == marks(data)
    assert digest["coverage"]["ratio"] >= 0.98, digest["coverage"]
    assert digest["coverage"]["basis"] == "process tree"
    assert digest["data_roots"] == [str((data / "files").resolve())]
    workers = [p for p in open_trace(trace).processes if p["role"] == "worker"]
    assert sorted(p["worker_id"] for p in workers) == [0, 1]
    assert sorted(p["pid"] for p in workers) == sorted(expected["workers"])
    assert all(p["exit_via"] is None and p["ended"].startswith("killed") for p in workers), workers
    # Killed without an exit record, yet their CPU time is known: the main process reaped them.
    assert all(p["cpu_from"] == "reaped by its traced parent" and p["utime_s"] + p["stime_s"] > 0 for p in workers)
    assert "WARNING" not in proc.stderr.replace("WARNING        busy host", "")


def test_an_oom_kill_of_the_main_process_mid_epoch_keeps_every_read(tmp_path):
    """The main process is SIGKILLed after 5 batches; its workers finish their fetches and end."""
    data = tmp_path / "data"
    proc, trace = capture(tmp_path, data, "--end", "oom", "--epochs", "3")
    assert proc.returncode == -signal.SIGKILL, proc.stderr  # the capture ends killed by the same signal
    digest = summary_json(trace)
    read = marks(data)
    assert traced_samples(trace) == read
    assert digest["bytes_read"] == sum(read.values()) * 16384
    assert digest["batches"] == 5
    assert digest["coverage"]["ratio"] >= 0.98, digest["coverage"]
    main = next(p for p in open_trace(trace).processes if p["role"] == "main")
    assert main["ended"].startswith("killed")


def test_a_process_whose_records_are_lost_shows_as_low_coverage_everywhere(tmp_path):
    """Worker 0's spool files are deleted before finalize: coverage drops below 98% and every
    place a user reads the trace says so (capture summary, tracer summary, replay what-if)."""
    data = tmp_path / "data"
    proc, trace = capture(tmp_path, data, "--end", "join", "--size", "262144", "--drop-worker-spool")
    assert proc.returncode == 0, proc.stderr
    digest = summary_json(trace)
    assert digest["coverage"]["ratio"] < 0.98, digest["coverage"]
    assert "WARNING        LOW COVERAGE" in proc.stderr
    assert "LOW COVERAGE" in run_cli("tracer", "summary", trace, check=True).stdout
    whatif = run_cli("replay", "what-if", "--trace", trace, "--backend", "as-captured", check=True)
    assert "LOW COVERAGE" in whatif.stdout + whatif.stderr


def test_finalize_refuses_while_traced_processes_run_and_keeps_what_it_cannot_read(tmp_path):
    """The capture itself is SIGKILLed while its workers run: `tracer finalize` refuses (exit 2, one
    line) until they end, then keeps every readable record, even with one process's Python spool
    gone, and deletes the spool only once the Parquet files are written."""
    data = tmp_path / "data"
    trace = tmp_path / "trace"
    cmd = [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--"]
    cmd += [sys.executable, str(WORKLOAD), str(data), "--end", "join", "--epochs", "400"]
    capture_proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((trace / "spool").glob("py-*.spool"))) < 3:
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(capture_proc.pid, signal.SIGKILL)  # the tracer only: the training goes on
        capture_proc.wait(timeout=30)
        refused = run_cli("tracer", "finalize", trace)
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1 and "still running" in refused.stderr, refused.stderr
        assert (trace / "spool").is_dir() and not (trace / "io").exists()
    finally:
        os.killpg(capture_proc.pid, signal.SIGKILL)
    main_pid = json.loads((trace / "manifest.json").read_text())["capture_pid"]
    main_py = next(p for p in (trace / "spool").glob("py-*.spool") if _ppid(p) == main_pid)
    main_py.unlink()  # the main process's facts and loader events: gone
    worker_py = next(p for p in (trace / "spool").glob("py-*.spool") if p != main_py)
    worker_py.write_bytes(b"garbage" * 100)  # one worker's: unreadable
    deadline = time.monotonic() + 30
    while (fin := run_cli("tracer", "finalize", trace)).returncode == 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the killed processes' locks go when the kernel has torn them down
    assert fin.returncode == 0, fin.stderr
    assert f"{worker_py}: not a Python recorder spool" in fin.stderr
    assert not (trace / "spool").exists()
    t = open_trace(trace)
    main_tag = main_py.name[len("py-") : -len(".spool")]
    assert any(p["tag"] == main_tag and p["role"] == "main" for p in t.processes)
    assert int(main_tag.split("-")[0]) in set(t.io["pid"].to_pylist())  # its C records are kept
    digest = summary_json(trace)
    assert digest["samples"] > 0  # the other worker's
    # Every worker read, from C. A worker killed between a read and its mark has read one sample more
    # than it marked: each file is read at least as often as marked, and at most two reads more in all.
    read = traced_reads(t)
    marked = marks(data)
    assert all(read[i] >= n for i, n in marked.items()), {i: (n, read[i]) for i, n in marked.items() if read[i] < n}
    assert 0 <= read.total() - marked.total() <= 2 and digest["bytes_read"] == read.total() * 16384


def traced_reads(t) -> Counter:
    """Successful data reads per file index (``files/00012.bin`` -> 12)."""
    io = t.io
    data = pc.and_(pc.equal(io["io_class"], "data"), pc.is_in(io["op"], pa.array(READ_OPS)))
    reads = io.filter(pc.and_(data, pc.greater(io["bytes_returned"], 0)))
    return Counter(int(Path(p).stem) for p in reads["path"].to_pylist())


def _ppid(spool: Path) -> int:
    from trainio.tracer.spool import HEADER

    return HEADER.unpack_from(spool.read_bytes(), 0)[5]


def test_finalize_api_leaves_the_callers_arrow_memory_pool_and_repeats_itself(tmp_path):
    """`finalize` runs on the C allocator (pyarrow's default gave back and re-faulted pages at a cost
    that varied run to run) and gives the caller its own default pool back; finalizing a copy of the
    same spool yields the same rows."""
    from trainio.tracer.finalize import finalize

    data, keep = tmp_path / "data", tmp_path / "kept"
    script = f'"{sys.executable}" "{WORKLOAD}" "{data}" && cp -r "$TRAINIO_TRACE_DIR" "{keep}"'
    proc = run_cli("tracer", "capture", "--out", tmp_path / "trace", "--", "sh", "-c", script, timeout=300)
    assert proc.returncode == 0, proc.stderr
    before = pa.default_memory_pool()
    done = finalize(keep)
    assert pa.default_memory_pool().backend_name == before.backend_name
    # cp's reads of the spool are the trace's own in the capture, foreign files in the copy: compare
    # the reads of the data set
    under = str(data.resolve()) + "/"
    rows = [
        t.io.filter(pc.starts_with(pc.fill_null(t.io["path"], ""), under))
        for t in (open_trace(tmp_path / "trace"), open_trace(keep))
    ]
    assert rows[0].num_rows == rows[1].num_rows > 0
    for column in ("op", "bytes_returned", "io_class"):
        assert rows[0][column].to_pylist() == rows[1][column].to_pylist(), column
    assert traced_samples(keep) == traced_samples(tmp_path / "trace") == marks(data)
    assert done.summary["samples"] == summary_json(tmp_path / "trace")["samples"]
