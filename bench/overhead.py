"""Tracing overhead on a loader-bound small-file workload (a benchmark, not a test).

    python bench/overhead.py [--pairs 9] [--smoke]

Runs bench/workloads/small_files.py with and without `tracer capture`, alternating the two in each
pair so that machine noise hits both alike, and reports the median slowdown of the training loop
(the workload's own timer), of the whole command (start-up and finalize included), and the trace's
size per recorded event. Writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workloads" / "small_files.py"


def run(cmd: list[str]) -> tuple[float, float, float]:
    """(loop seconds, loop CPU seconds of the workload and its workers, whole-command wall seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    wall = time.perf_counter() - t0
    line = next(line for line in proc.stdout.splitlines() if line.startswith("{"))
    report = json.loads(line)
    return report["loop_s"], report["cpu_s"], wall


def trace_events(trace: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in trace.rglob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="one small pair: checks the benchmark runs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "overhead.json")
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.files, args.epochs = 1, 300, 1
    work = Path(tempfile.mkdtemp(prefix="trainio-overhead-"))
    data = work / "data"
    workload = [sys.executable, str(WORKLOAD), str(data), "--files", str(args.files), "--epochs", str(args.epochs)]
    subprocess.run(workload, capture_output=True, check=True, timeout=600)  # generate data, warm the page cache
    rows = []
    for i in range(args.pairs):
        trace = work / f"trace{i}"
        plain = run(workload)
        traced = run([sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--", *workload])
        size = sum(p.stat().st_size for p in trace.rglob("*") if p.is_file())
        events = trace_events(trace)
        rows.append(
            {
                "plain_loop_s": plain[0],
                "traced_loop_s": traced[0],
                "plain_cpu_s": plain[1],
                "traced_cpu_s": traced[1],
                "plain_wall_s": plain[2],
                "traced_wall_s": traced[2],
                "trace_bytes": size,
                "trace_events": events,
            }
        )
        print(
            f"pair {i + 1}/{args.pairs}: loop {plain[0]:.3f} s -> {traced[0]:.3f} s, "
            f"cpu {plain[1]:.2f} s -> {traced[1]:.2f} s, wall {plain[2]:.2f} s -> {traced[2]:.2f} s, "
            f"{events} events, {size / 1e6:.2f} MB",
            flush=True,
        )
        shutil.rmtree(trace)
    shutil.rmtree(work)
    loop = statistics.median(r["traced_loop_s"] / r["plain_loop_s"] for r in rows)
    cpu = statistics.median(r["traced_cpu_s"] / r["plain_cpu_s"] for r in rows)
    wall = statistics.median(r["traced_wall_s"] / r["plain_wall_s"] for r in rows)
    per_event = statistics.median(r["trace_bytes"] / r["trace_events"] for r in rows)
    result = {
        "benchmark": "overhead",
        "workload": {
            "files": args.files,
            "file_bytes": 8192,
            "epochs": args.epochs,
            "workers": 2,
            "batch_size": 32,
            "persistent_workers": True,
            "per_sample_work": "open, read 8 KiB, close; no decode",
        },
        "pairs": rows,
        "median_loop_slowdown_pct": round(100 * (loop - 1), 2),
        "median_cpu_overhead_pct": round(100 * (cpu - 1), 2),
        "median_wall_slowdown_pct": round(100 * (wall - 1), 2),
        "trace_bytes_per_event": round(per_event, 2),
        "target_loop_slowdown_pct": 3.0,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cpus, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d"),
        "smoke": args.smoke,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"training-loop slowdown (median of {len(rows)} pairs): {result['median_loop_slowdown_pct']:+.2f}%"
        f"  (target <= 3%)\nloop CPU overhead (workload + workers): {result['median_cpu_overhead_pct']:+.2f}%"
        f"\nwhole-command slowdown (start-up and finalize included): {result['median_wall_slowdown_pct']:+.2f}%"
        f"\ntrace size: {per_event:.1f} bytes per event\nwrote {args.out}"
    )


if __name__ == "__main__":
    main()
