"""Replay fidelity on local disk: replayed duration / traced duration of a bundled trace (a benchmark).

    python bench/replay_fidelity.py [--runs 5] [--smoke] [--out bench/results/replay_fidelity.json]

Replays traces/imagenet_jpeg-cpu with `replay fio` on a local directory, keeping the traced timing,
several times, and reports the median fidelity of the whole span (first read issued to last read done,
from fio's per-I/O log) and of the measured part (each job's reads, first issue to last issue, against
the plan's; the jobs' planned start delays left out). Target: within 5% of the traced duration (fio's
own iolog replay is known to drift to 2x and more, fio #1537). Needs fio (scripts/install-system-deps.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainio.replay.real.fioreplay import replay_fio

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "imagenet_jpeg-cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one run: checks the benchmark works")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "replay_fidelity.json")
    args = parser.parse_args()
    runs = 1 if args.smoke else args.runs
    rows = []
    with tempfile.TemporaryDirectory(prefix="trainio-fidelity-") as tmp:
        target = Path(tmp) / "data"
        for i in range(runs):
            work = Path(tmp) / f"run{i}"
            result = replay_fio(TRACE, str(target), work)
            rows.append(
                {
                    "duration_s": result.duration_s,
                    "traced_duration_s": result.traced_duration_s,
                    "fidelity": result.fidelity,
                    "measured_fidelity": result.measured_fidelity,
                    "jobs": result.details["measured_jobs"],
                    "bytes": result.bytes,
                    "ops": result.ops,
                }
            )
            print(
                f"run {i + 1}/{runs}: {result.duration_s:.3f} s replayed vs {result.traced_duration_s:.3f} s traced, "
                f"fidelity {result.fidelity:.4f}, measured part {result.measured_fidelity:.4f}",
                flush=True,
            )
    median = statistics.median(r["fidelity"] for r in rows)
    measured = statistics.median(r["measured_fidelity"] for r in rows)
    report = {
        "benchmark": "replay_fidelity",
        "trace": str(TRACE.relative_to(ROOT)),
        "target": "local directory (page cache warm after the layout)",
        "runs": rows,
        "median_fidelity": round(median, 4),
        "median_error_pct": round(100 * (median - 1), 2),
        "median_measured_fidelity": round(measured, 4),
        "median_measured_error_pct": round(100 * (measured - 1), 2),
        "spans": "fidelity: the whole replay, first read issued to last read done (fio's per-I/O log); "
        "measured: each job's reads, first to last issue, against the plan's (start delays left out)",
        "target_error_pct": 5.0,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cpus, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d"),
        "smoke": args.smoke,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"median fidelity {median:.4f} ({report['median_error_pct']:+.2f}%, target within 5%), measured part "
        f"{measured:.4f} ({report['median_measured_error_pct']:+.2f}%)\nwrote {args.out}"
    )


if __name__ == "__main__":
    main()
