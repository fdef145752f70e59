"""Emulation vs the real training, on local disk (a benchmark).

    python bench/emulate_vs_real.py [--runs 3] [--smoke] [--out bench/results/emulate.json]

The bundled reference training (examples/reference_train.py: a real DataLoader reading and decoding
JPEGs, the accelerator a sleep per step) runs for real on a local data set, and is captured once with
`tracer capture`; `replay emulate` then runs the trace on a local directory. The runs alternate (real,
emulation, real, ...) so that both meet the machine's same moments. Reported: the median time to train of
each (the training's own figure: first batch request to last step end, the figure emulate measures), their
ratio (target: within 5%), the traced run's own time and what `replay what-if` projects for the trace. Each
run also records how much of the host's CPU other processes took meanwhile (``trainio.tracefile.hostcpu``):
the real training decodes on the CPU and slows down under a neighbour's load, the emulation sleeps that
time; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainio.replay.projection.scenario import Scenario, project_trace
from trainio.replay.real.emulate import emulate
from trainio.tracefile.hostcpu import host_cpu, read_counters

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = ROOT / "examples" / "reference_train.py"
TARGET_PCT = 5.0
RUN_TIMEOUT_S = 600


def workload(data: Path, samples: int, epochs: int) -> list[str]:
    return [
        sys.executable,
        str(WORKLOAD),
        "--source",
        f"local:{data}",
        "--data",
        str(data),
        "--samples",
        str(samples),
        "--epochs",
        str(epochs),
        "--workers",
        "2",
        "--step-time",
        "0.02",
    ]


def others_share(run: Callable[[], float]) -> tuple[float, float]:
    """``run()``'s result and the share of the host's CPU that processes other than its own took meanwhile."""
    before = read_counters()
    value = run()
    return value, host_cpu(before, read_counters())["other_fraction"]


def time_to_train(command: list[str]) -> float:
    """The training's own time to train (its last output line is a JSON report)."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... exited {proc.returncode}: {proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["time_to_train_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="real runs and emulations each")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="a small data set, one run each: checks it works")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "emulate.json")
    args = parser.parse_args()
    runs, samples, epochs = (1, 256, 1) if args.smoke else (args.runs, args.samples, args.epochs)
    with tempfile.TemporaryDirectory(prefix="trainio-emulate-bench-") as tmp:
        data, trace, target = Path(tmp) / "data", Path(tmp) / "trace", Path(tmp) / "emulated"
        command = workload(data, samples, epochs)
        print(f"placing {samples} JPEGs in {data}", flush=True)
        subprocess.run([*command, "--place"], check=True, capture_output=True, timeout=RUN_TIMEOUT_S, cwd=ROOT)
        print("capturing the training", flush=True)
        traced_s = time_to_train(
            [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--", *command]
        )
        projected = project_trace(trace, Scenario())[0].time_to_train_s
        emulate(trace, str(target), progress=None)  # lays the data set out, once
        real, emulated, rows = [], [], []
        for i in range(runs):
            real_s, real_others = others_share(lambda: time_to_train(command))
            emulated_s, emulated_others = others_share(lambda: emulate(trace, str(target)).time_to_train_s)
            real.append(real_s)
            emulated.append(emulated_s)
            rows.append(
                {
                    "real_s": real_s,
                    "emulated_s": emulated_s,
                    "others_cpu_real": real_others,
                    "others_cpu_emulated": emulated_others,
                }
            )
            print(
                f"run {i + 1}/{runs}: real {real_s:.3f} s, emulated {emulated_s:.3f} s "
                f"(others took {real_others:.0%} / {emulated_others:.0%} of the CPU)",
                flush=True,
            )
    real_s, emulated_s = statistics.median(real), statistics.median(emulated)
    error = 100 * (emulated_s / real_s - 1)
    report = {
        "benchmark": "emulate_vs_real",
        "workload": f"examples/reference_train.py --samples {samples} --epochs {epochs} --workers 2 --step-time 0.02",
        "target": "local directory (page cache warm after the layout, as the real data after its generation)",
        "runs": rows,
        "real_time_to_train_s": round(real_s, 4),
        "emulated_time_to_train_s": round(emulated_s, 4),
        "emulated_vs_real_pct": round(error, 2),
        "traced_run_time_to_train_s": round(traced_s, 4),
        "emulated_vs_traced_run_pct": round(100 * (emulated_s / traced_s - 1), 2),
        "what_if_projected_s": round(projected, 4),
        "what_if_vs_real_pct": round(100 * (projected / real_s - 1), 2),
        "target_pct": TARGET_PCT,
        "within_target": abs(error) <= TARGET_PCT,
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cpus, {platform.platform()}",
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d"),
        "smoke": args.smoke,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"real {real_s:.3f} s, emulated {emulated_s:.3f} s ({error:+.2f}%, target within {TARGET_PCT:g}%); "
        f"the traced run {traced_s:.3f} s, what-if {projected:.3f} s\nwrote {args.out}"
    )


if __name__ == "__main__":
    main()
