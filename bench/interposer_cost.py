"""What the interposer's records cost per small-file sample, measured in one process (a benchmark).

    python bench/interposer_cost.py [--files 3000] [--epochs 15] [--processes 3] [--smoke]

The worst case's per-sample I/O (open, read 8 KiB, close: six records, two time stamps each) runs
in one process under the interposer, with the recording switched on and off on alternate epochs
(``trainio_suppress_thread``), so that both sides share the process, its caches and its moment;
that resolves a tenth of a microsecond, where runs with and without ``tracer capture`` move by
several. Each time-stamp mode (the TSC, where the kernel's clock source is the TSC, and
``clock_gettime``, ``TRAINIO_TSC=0``) runs in ``--processes`` fresh processes, alternated. Reports
the median extra CPU time per sample of each mode and writes bench/results/interposer_cost.json.
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

from trainio.tracer.interposer import Interposer, library_path
from trainio.tracer.spoolread import c_records

HERE = Path(__file__).resolve().parent
MODES = {"tsc": "1", "clock_gettime": "0"}


def child(data: Path, epochs: int) -> None:
    """Runs under LD_PRELOAD: per-sample CPU time with the recording on and off, alternate epochs."""
    interposer = Interposer()  # the copy LD_PRELOAD loaded
    lib = interposer.lib
    files = sorted(str(p) for p in data.iterdir())
    times: dict[int, list[float]] = {0: [], 1: []}

    def epoch(suppress: int) -> float:
        lib.trainio_suppress_thread(suppress)
        start = time.thread_time()
        for name in files:
            with open(name, "rb") as f:
                f.read()
        used = time.thread_time() - start
        lib.trainio_suppress_thread(0)
        return used

    epoch(1)  # warm the page cache and the interpreter
    for i in range(2 * epochs):
        times[i % 2].append(epoch(i % 2))
    spool = Path(os.environ["TRAINIO_TRACE_DIR"]) / "spool" / f"io-{interposer.tag()}.spool"
    lib.trainio_suppress_thread(1)
    header = c_records(spool)[0]
    on, off = (1e6 * statistics.median(times[k]) / len(files) for k in (0, 1))
    print(json.dumps({"on_us": on, "off_us": off, "time_stamps": header["time_stamps"]}))


def measure(data: Path, work: Path, mode: str, epochs: int) -> dict:
    trace = Path(tempfile.mkdtemp(dir=work))
    (trace / "spool").mkdir()
    env = dict(os.environ, LD_PRELOAD=library_path(), TRAINIO_TRACE_DIR=str(trace), TRAINIO_TSC=MODES[mode])
    cmd = [sys.executable, __file__, "--child", str(data), "--epochs", str(epochs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=600).stdout
    shutil.rmtree(trace)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=15, help="epochs with the recording on (as many off)")
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per time-stamp mode")
    parser.add_argument("--smoke", action="store_true", help="a small run: checks the benchmark runs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "interposer_cost.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs)
        return
    if args.smoke:
        args.files, args.epochs, args.processes = 200, 2, 1
    work = Path(tempfile.mkdtemp(prefix="trainio-interposer-cost-"))
    data = work / "data"
    data.mkdir()
    for i in range(args.files):
        (data / f"{i:06d}.bin").write_bytes(os.urandom(8192))
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for p in range(args.processes):
        for mode in MODES if p % 2 == 0 else reversed(MODES):
            runs[mode].append(measure(data, work, mode, args.epochs))
            r = runs[mode][-1]
            print(
                f"{mode} ({r['time_stamps']}), process {p + 1}/{args.processes}: {r['on_us']:.2f} us a sample"
                f" recording, {r['off_us']:.2f} us not: +{r['on_us'] - r['off_us']:.2f} us",
                flush=True,
            )
    shutil.rmtree(work)
    extra = {mode: statistics.median(r["on_us"] - r["off_us"] for r in rs) for mode, rs in runs.items()}
    result = {
        "benchmark": "interposer_cost",
        "workload": {"files": args.files, "file_bytes": 8192, "per_sample": "open, read, close (Python)"},
        "epochs_each_side": args.epochs,
        "runs": runs,
        "extra_us_per_sample": {mode: round(v, 3) for mode, v in extra.items()},
        "tsc_active": all(r["time_stamps"] == "tsc" for r in runs["tsc"]),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cpus, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d"),
        "smoke": args.smoke,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"interposer records per sample: +{extra['tsc']:.2f} us with TSC stamps"
        f" ({'active' if result['tsc_active'] else 'not available here: clock_gettime was used'}),"
        f" +{extra['clock_gettime']:.2f} us with clock_gettime (medians of {args.processes} processes)"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
