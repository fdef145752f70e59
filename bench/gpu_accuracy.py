"""Projection accuracy on a real GPU node: `replay what-if` against real ResNet-50 training, in two halves.

    python bench/gpu_accuracy.py gpu-run OUTDIR     # on the GPU machine: at most about 6 min
    python bench/gpu_accuracy.py project OUTDIR     # here: -> bench/results/gpu_accuracy.json and .md

The GPU half (``gpu-run``) generates ~5,000 synthetic JPEGs, probes the node's CPU crowding
(`replay calibrate --cpu`), captures the training (bench/gpulib/train.py: ResNet-50, bf16 autocast,
channels_last, SGD, batch 128, a real DataLoader with RandomResizedCrop(224), flip, normalise,
pin_memory; 2 epochs) with `tracer capture` at two worker counts, runs it untraced at several worker
counts, once with a preload and, if the time allows, under `torchrun --nproc_per_node 2` (two ranks
sharing the node's one GPU, their gradients averaged through gloo). Each run's time counts from the
start of data loading to the last step's end after a CUDA synchronisation. OUTDIR then holds
``runs.json`` (the measured times, the machine), one ``capture-wN.tar.gz`` per capture, ``cpu.toml``
and ``log.txt``: few and small enough to bring back from a lent machine.

The projection half (``project``) unpacks the captures and projects each one onto every measured
run with `replay what-if` (as-captured storage, the run's workers, preload format, two ranks on the
node, the node's CPU profile), writing every pair with ``name``, ``measured_s``, ``projected_s``,
``error_pct`` and ``bottleneck`` (the keys of bench/results/accuracy.json), the machine, and the summary
the targets are stated in: as captured within 5%; worker-count and preload projections median
|error| <= 5%, max <= 10%.

``gpu-run --stand-in`` runs the same script path on this CPU with a small CNN and 256 images: what
tests/data/gpu-standin holds and the test of the projection half reads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the documented command runs from a checkout
TRAIN = HERE / "gpulib" / "train.py"
RESULTS = HERE / "results"
CPU_PROBE_BUDGET_S = 10.0
AS_CAPTURED_TARGET_PCT = 5.0
TARGET_MEDIAN_PCT, TARGET_MAX_PCT = 5.0, 10.0


@dataclass(frozen=True)
class Plan:
    """What ``gpu-run`` measures."""

    model: str
    device: str
    images: int
    batch_size: int
    epochs: int
    captures: tuple[int, ...]
    """Worker counts captured with `tracer capture`."""
    runs: tuple[int, ...]
    """Worker counts run untraced."""
    preload_workers: int
    ddp_workers: int
    """Workers of each of the two ranks under torchrun (0: no DDP run)."""
    limit_s: float
    """Wall time the whole run may take; what would not fit is skipped and said so."""
    per_run_s: float
    """Timeout of one training run."""


GPU = Plan("resnet50", "cuda", 5000, 128, 2, (4, 12), (2, 4, 8, 12, 16), 8, 6, 345.0, 90.0)
STAND_IN = Plan("tiny", "cpu", 256, 32, 2, (1, 2), (1, 2, 3), 2, 1, 600.0, 120.0)


class GpuBenchError(RuntimeError):
    """A step of the benchmark that failed, or an OUTDIR that does not hold what it needs."""


def _command(plan: Plan, data: Path, workers: int, *extra: str) -> list[str]:
    return [
        str(TRAIN),
        "--data",
        str(data),
        "--images",
        str(plan.images),
        "--workers",
        str(workers),
        "--batch-size",
        str(plan.batch_size),
        "--epochs",
        str(plan.epochs),
        "--model",
        plan.model,
        "--device",
        plan.device,
        *extra,
    ]


def _reports(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"gpu_accuracy_train"')]


def _measured(reports: list[dict]) -> float:
    """From the first rank's start to the last rank's end."""
    return max(r["end_monotonic"] for r in reports) - min(r["start_monotonic"] for r in reports)


class Runner:
    """Runs the steps of ``gpu-run`` within the plan's time, logging every command's output."""

    def __init__(self, plan: Plan, out: Path) -> None:
        self.plan, self.out = plan, out
        self.started = time.monotonic()
        self.log = (out / "log.txt").open("w", encoding="utf-8")
        self.skipped: list[str] = []
        self.errors: list[str] = []

    def left_s(self) -> float:
        return self.plan.limit_s - (time.monotonic() - self.started)

    def run(self, what: str, cmd: list[str], timeout: float) -> list[dict] | None:
        """The JSON reports of ``cmd``; None (and a note) when it failed or there was no time for it."""
        timeout = min(timeout, self.left_s())
        if timeout < 10:
            self.skipped.append(f"{what}: no time left")
            return None
        print(f"gpu_accuracy: {what}", flush=True)
        self.log.write(f"$ {' '.join(cmd)}\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
        except subprocess.TimeoutExpired:
            self.errors.append(f"{what}: did not finish within {timeout:.0f} s")
            return None
        self.log.write(proc.stdout[-4000:] + proc.stderr[-4000:] + "\n")
        self.log.flush()
        reports = _reports(proc.stdout)
        if proc.returncode != 0 or not reports:
            last = (proc.stderr.strip().splitlines() or ["no report line"])[-1]
            self.errors.append(f"{what}: exit {proc.returncode}: {last}")
            return None
        return reports


def _generate(data: Path, count: int) -> None:
    """The JPEGs, in as many processes as there are cores (kept for the next run)."""
    sys.path.insert(0, str(TRAIN.parent))
    from train import generate  # the training script imports torch: this half only

    if len(list(data.glob("*.jpg"))) >= count:
        return
    cores = len(os.sched_getaffinity(0))
    bounds = [count * i // cores for i in range(cores + 1)]
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(generate, [data] * cores, bounds[:-1], bounds[1:]))


def build_interposer(log) -> None:
    """The tracer's C interposer for this Python, built as the package would build it (a lent machine
    runs the working tree, never installed); without a C compiler the captures go on without it."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    library = ROOT / "tracer" / f"_interpose{suffix}"
    if library.exists():
        return
    cmd = ["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(ROOT / "tracer" / "_interpose.c"), "-ldl"]
    try:
        proc = subprocess.run([*cmd, "-lpthread"], capture_output=True, text=True, timeout=120)
        log.write(f"$ {' '.join(cmd)} -lpthread\n{proc.stdout}{proc.stderr}\n")
    except OSError as exc:
        log.write(f"no interposer: {exc}\n")


def machine() -> dict:
    info = {
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
    }
    try:
        gpus = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        ).stdout.split("\n")
        info["gpus"] = [g.strip() for g in gpus if g.strip()]
    except (OSError, subprocess.TimeoutExpired):
        info["gpus"] = []
    return info


def gpu_run(out: Path, plan: Plan, data: Path) -> dict:
    """Everything ``gpu-run`` measures, written under ``out`` (``runs.json`` last)."""
    from trainio.replay.calibration.cpu import calibrate_cpu, render_cpu_calibration

    out.mkdir(parents=True, exist_ok=True)
    runner = Runner(plan, out)
    build_interposer(runner.log)
    print(f"gpu_accuracy: generating {plan.images} JPEGs in {data}", flush=True)
    _generate(data, plan.images)
    print("gpu_accuracy: probing the node's CPU crowding", flush=True)
    runner.log.write(render_cpu_calibration(calibrate_cpu(out / "cpu.toml", budget_s=CPU_PROBE_BUDGET_S)) + "\n")
    py = sys.executable
    captures, runs = [], []
    with tempfile.TemporaryDirectory(prefix="trainio-gpu-captures-") as scratch:
        for workers in plan.captures:
            trace = Path(scratch) / f"capture-w{workers}"
            cmd = [py, "-m", "trainio.tracer", "capture", "--out", str(trace), "--", py, *_command(plan, data, workers)]
            reports = runner.run(f"capture at {workers} workers", cmd, plan.per_run_s * 1.5)
            if reports is None:
                continue
            packed = out / f"capture-w{workers}.tar.gz"
            with tarfile.open(packed, "w:gz") as tar:
                tar.add(trace, arcname=trace.name)
            captures.append({"workers": workers, "file": packed.name, "traced_s": round(_measured(reports), 4)})
    variants = [(f"{w} workers", "workers", w, _command(plan, data, w)) for w in plan.runs]
    variants.append(
        (
            f"preload, {plan.preload_workers} workers",
            "preload",
            plan.preload_workers,
            [*_command(plan, data, plan.preload_workers, "--preload")],
        )
    )
    if plan.ddp_workers:
        shared = ["--shared-gpu"] if plan.device == "cuda" else []
        variants.append(
            (
                f"two ranks on the node, {plan.ddp_workers} workers each",
                "ranks",
                plan.ddp_workers,
                [
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    "--nproc_per_node",
                    "2",
                    *_command(plan, data, plan.ddp_workers, *shared),
                ],
            )
        )
    for name, kind, workers, args in variants:
        reports = runner.run(name, [py, *args], plan.per_run_s * (1.5 if kind == "ranks" else 1))
        if reports is not None:
            runs.append({"name": name, "kind": kind, "workers": workers, "measured_s": round(_measured(reports), 4)})
    result = {
        "benchmark": "gpu_accuracy",
        "stand_in": plan.device == "cpu",
        "plan": asdict(plan),
        "machine": machine(),
        "captures": captures,
        "runs": runs,
        "cpu_profile": "cpu.toml",
        "skipped": runner.skipped,
        "errors": runner.errors,
        "wall_s": round(time.monotonic() - runner.started, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    runner.log.close()
    (out / "runs.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def _scenario(run: dict, shared_gpu: bool):
    """The what-if of a measured run."""
    from trainio.replay.projection.scenario import Scenario

    if run["kind"] == "preload":
        return Scenario(workers=run["workers"], format="preload")
    if run["kind"] == "ranks":
        # two ranks on the node's one GPU take its accelerator share of each step in turns
        return Scenario(workers=run["workers"], gpus_per_node=2, compute_scale=2.0 if shared_gpu else 1.0)
    return Scenario(workers=run["workers"])


def project(outdir: Path) -> dict:
    """Every capture in ``outdir`` projected onto every measured run; the result and its summary."""
    import dataclasses

    from trainio.replay.projection.scenario import load_trace, project_loaded

    runs_file = outdir / "runs.json"
    if not runs_file.is_file():
        raise GpuBenchError(f"{outdir} holds no runs.json: run `python bench/gpu_accuracy.py gpu-run {outdir}` first")
    measured = json.loads(runs_file.read_text())
    cpu = outdir / measured["cpu_profile"]
    shared = measured["plan"]["device"] == "cuda"
    scenarios = []
    with tempfile.TemporaryDirectory(prefix="trainio-gpu-traces-") as scratch:
        for capture in measured["captures"]:
            with tarfile.open(outdir / capture["file"]) as tar:
                tar.extractall(scratch, filter="data")
            loaded = load_trace(Path(scratch) / f"capture-w{capture['workers']}")
            for run in measured["runs"]:
                sc = dataclasses.replace(_scenario(run, shared), cpu_profile=cpu if cpu.is_file() else None)
                result, _, _ = project_loaded(loaded, sc)
                as_captured = run["kind"] == "workers" and run["workers"] == capture["workers"]
                projected = result.time_to_train_s
                scenarios.append(
                    {
                        "name": f"captured at {capture['workers']} workers -> "
                        + ("as captured" if as_captured else run["name"]),
                        "measured_s": run["measured_s"],
                        "projected_s": round(projected, 4),
                        "error_pct": round(100 * (projected - run["measured_s"]) / run["measured_s"], 2),
                        "bottleneck": result.bottleneck,
                        "captured_workers": capture["workers"],
                        "kind": "as captured" if as_captured else run["kind"],
                        "traced_s": capture["traced_s"],
                        "notes": list(result.notes),
                    }
                )
    if not scenarios:
        raise GpuBenchError(f"{runs_file}: no capture and run to compare ({measured['errors'] or 'nothing ran'})")
    errors = [abs(s["error_pct"]) for s in scenarios]
    projected = [abs(s["error_pct"]) for s in scenarios if s["kind"] != "as captured"]
    as_captured = [abs(s["error_pct"]) for s in scenarios if s["kind"] == "as captured"]
    return {
        "benchmark": "gpu_accuracy",
        "stand_in": measured["stand_in"],
        "machine": measured["machine"],
        "plan": measured["plan"],
        "scenarios": scenarios,
        "median_abs_error_pct": round(statistics.median(errors), 2),
        "max_abs_error_pct": round(max(errors), 2),
        "as_captured_max_abs_error_pct": round(max(as_captured), 2) if as_captured else None,
        "projections_median_abs_error_pct": round(statistics.median(projected), 2) if projected else None,
        "projections_max_abs_error_pct": round(max(projected), 2) if projected else None,
        "targets_pct": {
            "as_captured": AS_CAPTURED_TARGET_PCT,
            "projections_median": TARGET_MEDIAN_PCT,
            "projections_max": TARGET_MAX_PCT,
        },
        "measured_on": measured["date"],
        "gpu_run_wall_s": measured["wall_s"],
        "notes": [*measured["skipped"], *measured["errors"]],
        "date": time.strftime("%Y-%m-%d"),
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    what = "CPU stand-in (small CNN on the CPU)" if result["stand_in"] else f"{', '.join(m['gpus']) or 'GPU'}"
    lines = [
        "# Projection accuracy on a GPU node (`bench/gpu_accuracy.py`)",
        "",
        f"Measured {result['measured_on']} on {what}, {m['cpus']} CPUs, {m['memory_gib']} GiB "
        f"({result['gpu_run_wall_s']:.0f} s of `gpu-run`); projected {result['date']} with `replay what-if` "
        "(as-captured storage, the node's CPU profile).",
        "",
        "| captured at | projected to | measured s | projected s | error | bottleneck |",
        "|---|---|---:|---:|---:|---|",
        *(
            f"| {s['captured_workers']} workers | {s['name'].split(' -> ')[1]} | {s['measured_s']:.2f} | "
            f"{s['projected_s']:.2f} | {s['error_pct']:+.1f}% | {s['bottleneck']} |"
            for s in result["scenarios"]
        ),
        "",
        f"As captured: max |error| {result['as_captured_max_abs_error_pct']}% (target {AS_CAPTURED_TARGET_PCT:.0f}%). "
        f"Worker-count, preload and ranks projections: median |error| {result['projections_median_abs_error_pct']}%, "
        f"max {result['projections_max_abs_error_pct']}% (targets {TARGET_MEDIAN_PCT:.0f}% and {TARGET_MAX_PCT:.0f}%).",
        "",
        *(f"- {note}" for note in result["notes"]),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="half", required=True)
    run = sub.add_parser("gpu-run", help="measure on the GPU machine; writes OUTDIR")
    run.add_argument("outdir", type=Path)
    run.add_argument("--stand-in", action="store_true", help="a small CNN on this CPU, 256 images (tests)")
    run.add_argument(
        "--data",
        type=Path,
        help="where the JPEGs are generated (kept) [TMPDIR/trainio-gpu-accuracy-N]",
    )
    proj = sub.add_parser("project", help="project OUTDIR's captures onto its runs")
    proj.add_argument("outdir", type=Path)
    proj.add_argument("--out", type=Path, default=RESULTS / "gpu_accuracy.json", help="result JSON; .md beside it")
    args = parser.parse_args()
    if args.half == "gpu-run":
        plan = STAND_IN if args.stand_in else GPU
        data = args.data or Path(tempfile.gettempdir()) / f"trainio-gpu-accuracy-{plan.images}"
        result = gpu_run(args.outdir, plan, data)
        print(json.dumps({k: result[k] for k in ("captures", "runs", "skipped", "errors", "wall_s")}, indent=1))
        print(f"wrote {args.outdir}\nnext: python bench/gpu_accuracy.py project {args.outdir}")
        return
    try:
        result = project(args.outdir)
    except (GpuBenchError, OSError, KeyError, ValueError, tarfile.TarError) as err:
        print(f"gpu_accuracy: error: {err}", file=sys.stderr)
        sys.exit(2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
