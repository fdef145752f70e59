"""Tracing overhead on a loader-bound small-file workload (a benchmark, not a test).

    python bench/overhead.py [--pairs 9] [--startup-runs 30] [--instructions] [--smoke]

Runs bench/workloads/small_files.py with and without `tracer capture` in pairs whose order
alternates (plain first in even pairs, traced first in odd ones), so that machine noise and warm-up
hit both alike. Reports, as medians of the pairs: the training loop's slowdown (the workload's own
timer), the CPU overhead of the loop (workload + workers), the whole command's slowdown, the
finalize rate (seconds per million recorded events, over the run's whole finalize, and the marginal
rate: one more capture of four times the epochs, the difference in finalize time over the difference
in events, which leaves out finalize's fixed start) and the trace's size per event; and the extra
start-up time of one traced Python process (`python -c pass` in the capture's environment against
plain, alternated). Next to each wall time it gives the CPU time (user + system) of the whole process
tree, which a shared machine disturbs far less. ``--instructions`` adds a figure that does not depend
on the machine's load at all: the instructions executed per sample, traced and untraced, counted by
valgrind's callgrind on the same workload in one process (no workers), as the difference between a
2-epoch and a 1-epoch run (start-up cancels out); it takes a few minutes. Writes
bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.compute as pc

from trainio.tracefile import open_trace
from trainio.tracer.capture import traced_env
from trainio.tracer.usage import ENV_SAMPLE_SHARE

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workloads" / "small_files.py"
TARGETS = {"loop_slowdown_pct": 3.0, "cpu_overhead_pct": 5.0, "startup_extra_ms": 50.0, "finalize_s_per_million": 0.5}
"""The finalize target is checked against both rates: over the whole finalize, and marginal."""


def _tree_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str, float]:
    """(wall seconds, stdout, CPU seconds of the command's whole process tree) of a command that must
    succeed.

    A blocking wait, not ``subprocess.run(timeout=...)``, whose polling rounds a 40 ms start-up up
    to 64 ms; a timer kills a command that hangs.
    """
    cpu0 = _tree_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    out = proc.communicate()[0]
    wall = time.perf_counter() - t0
    watchdog.cancel()
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, out, _tree_cpu() - cpu0


def run(cmd: list[str]) -> tuple[float, float, float, float]:
    """(loop seconds, loop CPU seconds of the workload and its workers, whole-command wall seconds,
    whole-command CPU seconds of its process tree: tracer capture and finalize included)."""
    wall, out, cpu = timed(cmd)
    report = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    return report["loop_s"], report["cpu_s"], wall, cpu


def measured_share(trace: Path) -> float:
    """Share of the trace's samples whose CPU time and faults the recorder measured."""
    events = open_trace(trace).events
    samples = events.filter(pc.equal(events["event"], "sample"))
    return samples["cpu_ns"].drop_null().length() / max(samples.num_rows, 1)


def instructions_per_sample(data: Path, work: Path, files: int, share: float) -> dict:
    """Instructions executed per sample, untraced and traced, counted by callgrind: the workload
    in one process (no DataLoader workers), 1 and 2 epochs, the difference being one epoch. Valgrind
    slows Python fifty-fold but not system calls, so the recorder would measure more samples than
    natively: it measures ``share`` of them, as it did in the native runs."""
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed"}
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env[ENV_SAMPLE_SHARE] = str(share)
    counts: dict[str, dict[int, int]] = {"plain": {}, "traced": {}}
    for mode in ("plain", "traced"):
        for epochs in (1, 2):
            trace = work / f"callgrind-{mode}-{epochs}"
            (trace / "spool").mkdir(parents=True)
            run_env = traced_env(env, trace, []) if mode == "traced" else env
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={trace}/callgrind.out.%p"]
            cmd += [sys.executable, str(WORKLOAD), str(data), "--files", str(files), "--epochs", str(epochs)]
            cmd += ["--workers", "0", "--freeze-gc"]  # a full collection at a random moment is millions of instructions
            proc = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=1800)
            found = re.search(r"Collected : (\d+)", proc.stderr)
            if proc.returncode != 0 or found is None:
                raise RuntimeError(f"callgrind run failed: {proc.stderr[-2000:]}")
            counts[mode][epochs] = int(found.group(1))
            print(f"callgrind {mode} {epochs} epoch(s): {counts[mode][epochs]:,} instructions", flush=True)
    per_sample = {mode: (c[2] - c[1]) / files for mode, c in counts.items()}
    return {
        "instructions": counts,
        "per_sample_plain": round(per_sample["plain"]),
        "per_sample_traced": round(per_sample["traced"]),
        "overhead_pct": round(100 * (per_sample["traced"] / per_sample["plain"] - 1), 2),
        "samples_measured_share": share,
        "note": "user-space instructions only (valgrind does not count the kernel's system calls and page faults)",
    }


def finalize_scaling(work: Path, data: Path, files: int, epochs: int, rows: list[dict]) -> dict:
    """Finalize's marginal cost per event and its fixed part: one capture of four times the epochs
    against the pairs' captures (median), so that start-up work (imports, manifest, the summary's
    fixed steps) does not count as a per-event cost."""
    trace = work / "trace-scaling"
    cmd = [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--"]
    cmd += [sys.executable, str(WORKLOAD), str(data), "--files", str(files), "--epochs", str(4 * epochs)]
    timed(cmd)
    finalized = json.loads((trace / "manifest.json").read_text())["finalize"]
    shutil.rmtree(trace)
    small_s = statistics.median(r["finalize_s"] for r in rows)
    small_events = statistics.median(r["trace_events"] for r in rows)
    marginal = (finalized["seconds"] - small_s) / max(finalized["rows"] - small_events, 1)
    return {
        "large_epochs": 4 * epochs,
        "large_events": finalized["rows"],
        "large_finalize_s": finalized["seconds"],
        "large_finalize_cpu_s": finalized.get("cpu_s"),
        "small_events": small_events,
        "small_finalize_s": small_s,
        "marginal_s_per_million": round(1e6 * marginal, 3),
        "fixed_s": round(small_s - marginal * small_events, 3),
    }


def startup_extra_ms(work: Path, runs: int) -> tuple[float, list[tuple[float, float]]]:
    """Median extra wall time of a traced `python -c pass` over a plain one, in alternated pairs."""
    trace = work / "startup-trace"
    (trace / "spool").mkdir(parents=True)
    env = traced_env(dict(os.environ), trace, [])

    def once(environ: dict[str, str]) -> float:
        return timed([sys.executable, "-c", "pass"], environ)[0]

    pairs = []
    for i in range(runs):
        if i % 2 == 0:
            plain = once(dict(os.environ))
            traced = once(env)
        else:
            traced = once(env)
            plain = once(dict(os.environ))
        pairs.append((plain, traced))
    shutil.rmtree(trace)
    return 1000 * statistics.median(t - p for p, t in pairs), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--startup-runs", type=int, default=30)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--instructions", action="store_true", help="also count instructions per sample (valgrind)")
    parser.add_argument("--smoke", action="store_true", help="one small pair: checks the benchmark runs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "overhead.json")
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.files, args.epochs, args.startup_runs = 1, 300, 1, 2
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="trainio-overhead-"))
    data = work / "data"
    workload = [sys.executable, str(WORKLOAD), str(data), "--files", str(args.files), "--epochs", str(args.epochs)]
    subprocess.run(workload, capture_output=True, check=True, timeout=600)  # generate data, warm the page cache
    startup_ms, startup_pairs = startup_extra_ms(work, args.startup_runs)
    print(f"start-up: a traced Python process starts {startup_ms:+.1f} ms later (median of {len(startup_pairs)})")
    rows = []
    for i in range(args.pairs):
        trace = work / f"trace{i}"
        traced_cmd = [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--", *workload]
        if i % 2 == 0:
            plain, traced = run(workload), run(traced_cmd)
        else:
            traced, plain = run(traced_cmd), run(workload)
        manifest = json.loads((trace / "manifest.json").read_text())
        events = manifest["finalize"]["rows"]
        size = sum(p.stat().st_size for p in trace.rglob("*") if p.is_file())
        rows.append(
            {
                "order": "plain first" if i % 2 == 0 else "traced first",
                "plain_loop_s": plain[0],
                "traced_loop_s": traced[0],
                "plain_cpu_s": plain[1],
                "traced_cpu_s": traced[1],
                "plain_wall_s": plain[2],
                "traced_wall_s": traced[2],
                "plain_tree_cpu_s": plain[3],
                "traced_tree_cpu_s": traced[3],
                "finalize_s": manifest["finalize"]["seconds"],
                "finalize_cpu_s": manifest["finalize"].get("cpu_s"),
                "trace_bytes": size,
                "trace_events": events,
                "coverage": manifest["coverage"]["ratio"],
                "samples_measured_share": round(measured_share(trace), 4),
            }
        )
        print(
            f"pair {i + 1}/{args.pairs} ({rows[-1]['order']}): loop {plain[0]:.3f} s -> {traced[0]:.3f} s, "
            f"cpu {plain[1]:.2f} s -> {traced[1]:.2f} s, wall {plain[2]:.2f} s -> {traced[2]:.2f} s "
            f"(tree CPU {plain[3]:.2f} s -> {traced[3]:.2f} s), "
            f"finalize {manifest['finalize']['seconds']:.2f} s for {events:,} events, {size / 1e6:.2f} MB",
            flush=True,
        )
        shutil.rmtree(trace)
    scaling = finalize_scaling(work, data, args.files, args.epochs, rows)
    print(
        f"finalize at {scaling['large_events']:,} events: {scaling['large_finalize_s']:.2f} s;"
        f" marginal {scaling['marginal_s_per_million']:.3f} s per million events, fixed {scaling['fixed_s']:.2f} s",
        flush=True,
    )
    share = statistics.median(r["samples_measured_share"] for r in rows)
    counted = instructions_per_sample(data, work, args.files, share) if args.instructions else None
    shutil.rmtree(work)
    loop = statistics.median(r["traced_loop_s"] / r["plain_loop_s"] for r in rows)
    tree_cpu = statistics.median(r["traced_tree_cpu_s"] / r["plain_tree_cpu_s"] for r in rows)
    finalize_cpu = statistics.median(1e6 * r["finalize_cpu_s"] / r["trace_events"] for r in rows)
    cpu = statistics.median(r["traced_cpu_s"] / r["plain_cpu_s"] for r in rows)
    wall = statistics.median(r["traced_wall_s"] / r["plain_wall_s"] for r in rows)
    per_event = statistics.median(r["trace_bytes"] / r["trace_events"] for r in rows)
    finalize_rate = statistics.median(1e6 * r["finalize_s"] / r["trace_events"] for r in rows)
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
        "startup_pairs_s": startup_pairs,
        "median_loop_slowdown_pct": round(100 * (loop - 1), 2),
        "median_cpu_overhead_pct": round(100 * (cpu - 1), 2),
        "startup_extra_ms": round(startup_ms, 1),
        "finalize_s_per_million_events": round(finalize_rate, 3),
        "median_wall_slowdown_pct": round(100 * (wall - 1), 2),
        "median_tree_cpu_overhead_pct": round(100 * (tree_cpu - 1), 2),
        "finalize_cpu_s_per_million_events": round(finalize_cpu, 3),
        "finalize_marginal_s_per_million_events": scaling["marginal_s_per_million"],
        "finalize_fixed_s": scaling["fixed_s"],
        "finalize_scaling": scaling,
        "instructions_per_sample": counted,
        "trace_bytes_per_event": round(per_event, 2),
        "targets": TARGETS,
        "target_loop_slowdown_pct": TARGETS["loop_slowdown_pct"],
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cpus, {platform.platform()}",
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "date": time.strftime("%Y-%m-%d"),
        "smoke": args.smoke,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"training-loop slowdown (median of {len(rows)} alternated pairs): {result['median_loop_slowdown_pct']:+.2f}%"
        f"  (target <= {TARGETS['loop_slowdown_pct']}%)"
        f"\nloop CPU overhead (workload + workers): {result['median_cpu_overhead_pct']:+.2f}%"
        f"  (target <= {TARGETS['cpu_overhead_pct']}%)"
        f"\nstart-up of a traced Python process: {result['startup_extra_ms']:+.1f} ms"
        f"  (target <= {TARGETS['startup_extra_ms']:.0f} ms)"
        f"\nfinalize: {result['finalize_s_per_million_events']:.3f} s per million events"
        f"  (target <= {TARGETS['finalize_s_per_million']} s)"
        f"  ({result['finalize_cpu_s_per_million_events']:.3f} CPU-s);"
        f" marginal {result['finalize_marginal_s_per_million_events']:.3f} s per million,"
        f" fixed {result['finalize_fixed_s']:.2f} s"
        f"\nwhole-command slowdown (start-up and finalize included): {result['median_wall_slowdown_pct']:+.2f}%,"
        f" CPU of its process tree {result['median_tree_cpu_overhead_pct']:+.2f}%"
        f"\ntrace size: {per_event:.1f} bytes per event"
    )
    if counted and "overhead_pct" in counted:
        print(
            f"instructions per sample: {counted['per_sample_plain']:,} untraced, {counted['per_sample_traced']:,}"
            f" traced ({counted['overhead_pct']:+.2f}%)"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
