"""trainio next to DFTracer on the MLPerf Storage emulator DLIO (a benchmark, not a test, not in CI).

    python bench/peer_overhead.py --dlio-venv /work/dlio-venv [--rounds 5] [--smoke]

Needs a DLIO 2.0.0 venv (2.6 GB; recipe in docs/capture.md). Runs DLIO's resnet50-like JPEG
workload (400 files, 3 epochs, 2 read threads, batch 32) plain, under DFTracer
(``DFTRACER_ENABLE=1``; off is ``DFTRACER_ENABLE=0`` set explicitly, since unset means on) and under
``tracer capture``, in an order that rotates every round. Each round also captures one DFTracer run
with trainio, so that both record the same reads: every byte DFTracer sees on a file must be in
trainio's trace. Reports per tool the median ratio to plain of DLIO's throughput and of the whole
command's wall time. Writes bench/results/peer_overhead.json.
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
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc

from trainio.tracefile import open_trace
from trainio.tracefile.format import READ_OPS

HERE = Path(__file__).resolve().parent
TOOLS = ("plain", "dftracer", "trainio")


def dlio_args(data: Path, files: int, epochs: int) -> list[str]:
    return [
        "workload=resnet50_a100",
        "++workload.framework=pytorch",
        "++workload.reader.data_loader=pytorch",
        "++workload.dataset.format=jpeg",
        f"++workload.dataset.num_files_train={files}",
        "++workload.dataset.num_samples_per_file=1",
        f"++workload.train.epochs={epochs}",
        "++workload.train.computation_time=0.001",
        "++workload.reader.read_threads=2",
        "++workload.reader.batch_size=32",
        f"++workload.dataset.data_folder={data}",
    ]


def run_dlio(cmd: list[str], env: dict[str, str], out: Path, log: Path) -> float:
    """Run DLIO once with its output in ``out`` and its log in ``log``; return the wall seconds.

    It runs inside the work folder: DLIO leaves ``hydra_log/`` and ``checkpoints/`` in its cwd.
    """
    t0 = time.perf_counter()
    with open(log, "w") as f:
        cmd = [*cmd, f"++workload.output.folder={out}"]
        subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=True, timeout=900, cwd=out.parent)
    return time.perf_counter() - t0


def run(cmd: list[str], env: dict[str, str], out: Path, log: Path) -> dict:
    """One DLIO run: whole-command wall seconds and DLIO's own mean throughput (samples/s)."""
    wall = run_dlio(cmd, env, out, log)
    metric = json.loads((out / "summary.json").read_text())["metric"]
    return {"wall_s": round(wall, 3), "throughput": metric["train_throughput_mean_samples_per_second"]}


def dftracer_bytes(out: Path) -> Counter:
    """Bytes DFTracer saw returned by reads, per file."""
    seen: Counter = Counter()
    for trace in out.glob("*.pfw"):
        for line in trace.read_text().splitlines():
            line = line.strip().rstrip(",")
            if '"cat":"POSIX"' not in line:
                continue
            event = json.loads(line)
            returned = int(event.get("args", {}).get("ret", 0) or 0)
            if event["name"] in ("read", "pread", "pread64", "readv", "preadv", "preadv2", "fread") and returned > 0:
                seen[event["args"]["fname"]] += returned
    return seen


def trainio_bytes(trace: Path) -> Counter:
    io = open_trace(trace).io
    reads = io.filter(
        pc.and_(pc.is_in(io["op"], pc.cast(list(READ_OPS), "string")), pc.greater(io["bytes_returned"], 0))
    )
    seen: Counter = Counter()
    for path, n in zip(reads["path"].to_pylist(), reads["bytes_returned"].to_pylist(), strict=True):
        seen[path] += n
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dlio-venv", type=Path, default=Path("/work/dlio-venv"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="one round of one epoch: checks the benchmark runs")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "peer_overhead.json")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.epochs = 1, 1
    dlio = args.dlio_venv / "bin" / "dlio_benchmark"
    if not dlio.exists():
        sys.exit(f"peer_overhead: error: no DLIO at {dlio} (--dlio-venv; install recipe in docs/capture.md)")
    work = Path(tempfile.mkdtemp(prefix="trainio-peer-"))
    data = work / "data"
    base = [str(dlio), *dlio_args(data, args.files, args.epochs)]
    off = {**os.environ, "DFTRACER_ENABLE": "0"}
    on = {**os.environ, "DFTRACER_ENABLE": "1", "DFTRACER_INC_METADATA": "1"}
    gen = [*base, "++workload.workflow.generate_data=True", "++workload.workflow.train=False"]
    run_dlio(gen, off, work / "gen", work / "gen.log")
    capture = [sys.executable, "-m", "trainio.tracer", "capture", "--out"]
    rounds = []
    for i in range(args.rounds):
        order = TOOLS[i % 3 :] + TOOLS[: i % 3]
        row: dict = {"order": list(order)}
        for tool in order:
            out, trace = work / f"r{i}-{tool}", work / f"r{i}-{tool}-trace"
            cmd = [*capture, str(trace), "--", *base] if tool == "trainio" else base
            row[tool] = run(cmd, on if tool == "dftracer" else off, out, work / f"r{i}-{tool}.log")
            if tool == "trainio":
                manifest = json.loads((trace / "manifest.json").read_text())
                row[tool].update(coverage=manifest["coverage"]["ratio"], finalize_s=manifest["finalize"]["seconds"])
                shutil.rmtree(trace)
        both, trace = work / f"r{i}-both", work / f"r{i}-both-trace"
        run([*capture, str(trace), "--", *base], on, both, work / f"r{i}-both.log")
        theirs, ours = dftracer_bytes(both), trainio_bytes(trace)
        short = {f: (n, ours.get(f, 0)) for f, n in theirs.items() if ours.get(f, 0) < n}
        row["bytes_check"] = {
            "dftracer_bytes": sum(theirs.values()),
            "dftracer_files": len(theirs),
            "trainio_bytes_same_files": sum(ours.get(f, 0) for f in theirs),
            "files_short": len(short),
            "every_byte_seen": not short,
            "trainio_coverage": json.loads((trace / "manifest.json").read_text())["coverage"]["ratio"],
        }
        shutil.rmtree(trace)
        rounds.append(row)
        print(
            f"round {i + 1}/{args.rounds} ({', '.join(order)}): "
            + ", ".join(f"{t} {row[t]['throughput']:.0f} samples/s in {row[t]['wall_s']:.1f} s" for t in TOOLS)
            + f"; DFTracer {row['bytes_check']['dftracer_bytes']:,} B, trainio has "
            f"{row['bytes_check']['trainio_bytes_same_files']:,} B of them",
            flush=True,
        )
    shutil.rmtree(work)
    summary = {
        tool: {
            "throughput_ratio_to_plain": round(
                statistics.median(r[tool]["throughput"] / r["plain"]["throughput"] for r in rounds), 3
            ),
            "wall_ratio_to_plain": round(
                statistics.median(r[tool]["wall_s"] / r["plain"]["wall_s"] for r in rounds), 3
            ),
        }
        for tool in ("dftracer", "trainio")
    }
    result = {
        "benchmark": "peer_overhead",
        "workload": {
            "dlio": "2.0.0 resnet50_a100, pytorch, jpeg",
            "files": args.files,
            "epochs": args.epochs,
            "read_threads": 2,
            "batch_size": 32,
        },
        "rounds": rounds,
        "median": summary,
        "every_byte_seen_in_all_rounds": all(r["bytes_check"]["every_byte_seen"] for r in rounds),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cpus, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d"),
        "smoke": args.smoke,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for tool, figures in summary.items():
        throughput, wall = figures["throughput_ratio_to_plain"], figures["wall_ratio_to_plain"]
        print(f"{tool}: throughput x{throughput} of plain, wall x{wall}")
    print(f"every byte DFTracer saw is in trainio's trace, all rounds: {result['every_byte_seen_in_all_rounds']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
