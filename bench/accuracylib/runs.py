"""The real runs: the reference training as the workload, the data set placed on every backend, one run
of a condition with its processes started together, and the baseline capture."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trainio.replay.projection.scenario import Scenario

from .conditions import BenchError, Condition, Setup, say
from .machine import ATTEMPTS, CpuMeter, Patience, Usage, cpu_probe_ms, quietly
from .projections import baseline_facts, error_pct, projection

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "examples" / "reference_train.py"
RUN_TIMEOUT_S = 600


def workload_cmd(source: str, setup: Setup, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(WORKLOAD),
        "--source",
        source,
        "--samples",
        str(setup.samples),
        "--batch-size",
        str(setup.batch_size),
        "--epochs",
        str(setup.epochs),
        *(["--raw-share", str(setup.raw_share)] if setup.raw_share else []),
        *extra,
    ]


def _run(cmd: list[str], env: dict, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"{what} did not finish within {timeout:.0f} s") from err
    if proc.returncode != 0:
        raise BenchError(f"{what} exited {proc.returncode}:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    return proc


@contextmanager
def cephfs_mount(env: dict, folder: Path, wanted: bool) -> Iterator[Path | None]:
    """CephFS mounted with ceph-fuse at ``folder`` while the block runs, when ``wanted`` (files mapped
    from CephFS need a mount: libcephfs has no mmap); None otherwise."""
    if not wanted:
        yield None
        return
    if shutil.which("ceph-fuse") is None:
        raise BenchError(
            "ceph-fuse is not installed (scripts/install-system-deps.sh): the memmap-on-CephFS runs need it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["ceph-fuse", "-c", env["CEPH_CONF"], str(folder)], env=env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise BenchError(f"ceph-fuse could not mount CephFS at {folder}: {proc.stderr[-1500:]}")
    say(f"CephFS mounted at {folder} (ceph-fuse)")
    try:
        yield folder
    finally:
        subprocess.run(["fusermount", "-u", str(folder)], capture_output=True, text=True, timeout=120)


def sources(env: dict, data: Path, dataset: str, mount: Path | None = None) -> dict[str, str]:
    """Where each kind of source keeps the data set ``dataset`` (the local copy is ``data``; ``mount``:
    where CephFS is mounted, if it is)."""
    endpoint = env["TRAINIO_S3_ENDPOINT"]
    return {
        "local": f"local:{data}",
        "local-shards": f"local-shards:{data}-shards",
        "memmap": f"memmap:{data}-memmap",
        **({"memmap-cephfs": f"memmap:{mount / dataset}-memmap"} if mount is not None else {}),
        "rgw": f"rgw:{endpoint}/{dataset}",
        "rgw-shards": f"rgw-shards:{endpoint}/{dataset}/shards",
        "rados": f"rados:trainpool/{dataset}",
        "cephfs": f"cephfs:/{dataset}",
    }


def place_data(needed: set[str], where: dict[str, str], setup: Setup, data: Path, env: dict) -> None:
    for kind in ["local", *sorted(needed - {"local"})]:
        t0 = time.monotonic()
        proc = _run(
            workload_cmd(where[kind], setup, "--data", str(data), "--place"), env, 600, f"placing data on {kind}"
        )
        say(f"{proc.stdout.strip().splitlines()[-1]} ({time.monotonic() - t0:.1f} s)")


@dataclass(frozen=True)
class RunResult:
    measured_s: float
    processes: list[dict]
    usage: Usage
    waited_s: float
    """Waiting for a quiet machine before the start."""
    probe_ms: float
    """``cpu_probe_ms()`` just before the start."""

    def to_dict(self) -> dict:
        return {
            "measured_s": round(self.measured_s, 4),
            "per_process_s": [p["time_to_train_s"] for p in self.processes],
            "preload_s": [p["preload_s"] for p in self.processes],
            "samples": sum(p["samples"] for p in self.processes),
            "workload_cpu_s": round(sum(p["cpu_s"] for p in self.processes), 3),
            "waited_for_quiet_s": round(self.waited_s, 1),
            "cpu_probe_ms": round(self.probe_ms, 2),
            **self.usage.to_dict(),
        }


def run_condition(
    cond: Condition, setup: Setup, where: dict[str, str], env: dict, meter: CpuMeter, folder: Path, wait_s: float
) -> RunResult:
    """One real run of ``cond``: its processes get ready, wait for a quiet machine (at most
    ``wait_s``) and start together (a start barrier); the CPU the workload, the Ceph daemons and
    everything else used meanwhile is counted."""
    folder.mkdir(parents=True)
    extra = [
        "--world",
        str(cond.world),
        "--workers",
        str(cond.workers if cond.workers is not None else setup.workers),
        "--step-time",
        str(cond.step_time_s if cond.step_time_s is not None else setup.step_time_s),
        "--start-barrier",
        str(folder),
        *(["--preload"] if cond.preload else []),
    ]
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(cond.world):
            with open(folder / f"out-{rank}", "w") as out, open(folder / f"err-{rank}", "w") as err:
                cmd = workload_cmd(where[cond.source], setup, "--rank", str(rank), *extra)
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT))
        deadline = time.monotonic() + 180
        while not all((folder / f"ready-{rank}").exists() for rank in range(cond.world)):
            failed = [rank for rank, p in enumerate(procs) if p.poll() is not None]
            if failed or time.monotonic() > deadline:
                rank = failed[0] if failed else 0
                raise BenchError(
                    f"{cond.name}: rank {rank} exited or did not get ready: "
                    f"{(folder / f'err-{rank}').read_text()[-3000:]}"
                )
            time.sleep(0.01)
        pids = tuple(p.pid for p in procs)
        waited = meter.wait_for_quiet(wait_s, pids)
        probe = cpu_probe_ms()
        before = meter.sample(pids)
        (folder / "go").touch()
        for p in procs:
            p.wait(timeout=RUN_TIMEOUT_S)
        usage = meter.usage(before, meter.sample())
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"{cond.name}: a rank did not finish within {RUN_TIMEOUT_S} s") from err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    reports = []
    for rank, p in enumerate(procs):
        if p.returncode != 0:
            raise BenchError(
                f"{cond.name}: rank {rank} exited {p.returncode}: {(folder / f'err-{rank}').read_text()[-3000:]}"
            )
        lines = [line for line in (folder / f"out-{rank}").read_text().splitlines() if line.startswith("{")]
        if not lines:
            raise BenchError(f"{cond.name}: rank {rank} printed no result line")
        reports.append(json.loads(lines[-1]))
    start = min(r["start_monotonic"] for r in reports)
    end = max(r["end_monotonic"] for r in reports)
    return RunResult(measured_s=end - start, processes=reports, usage=usage, waited_s=waited, probe_ms=probe)


def cpu_per_sample(runs: list[RunResult]) -> dict[str, float]:
    """Medians over ``runs``: CPU milliseconds per sample of the workload (its processes and
    DataLoader workers; ``loop``: the training processes alone) and of the Ceph daemons, and the
    share of the cores they kept busy."""
    workload, loop, ceph, busy, probe = [], [], [], [], []
    for run in runs:
        probe.append(run.probe_ms)
        samples = sum(p["samples"] for p in run.processes)
        workload.append(1e3 * sum(p["cpu_s"] for p in run.processes) / samples)
        loop.append(1e3 * sum(p["main_cpu_s"] for p in run.processes) / samples)
        ceph.append(1e3 * sum(run.usage.ceph_cpu_s.values()) / samples)
        busy.append((run.usage.own_cpu_s + sum(run.usage.ceph_cpu_s.values())) / (run.usage.cpus * run.usage.window_s))
    return {
        "workload": round(statistics.median(workload), 3),
        "loop": round(statistics.median(loop), 3),
        "ceph": round(statistics.median(ceph), 3),
        "cores_busy": round(statistics.median(busy), 3),
        "cpu_probe_ms": round(statistics.median(probe), 2),
    }


def capture_baseline(
    where: dict[str, str],
    setup: Setup,
    data: Path,
    env: dict,
    folder: Path,
    meter: CpuMeter,
    patience: Patience,
    source: str = "local",
) -> tuple[Path, dict]:
    """One baseline trace (local disk, one node, as captured by a user; ``source``: one file per
    sample, or local-shards) in ``folder``-TRY, on a quiet machine, and its facts with the as-captured
    self-check."""
    base_cmd = workload_cmd(
        where[source], setup, "--workers", str(setup.workers), "--step-time", str(setup.step_time_s)
    )
    say("capturing the baseline: " + " ".join(base_cmd[1:]))
    tries = iter(range(ATTEMPTS))

    def capture() -> object:
        trace = folder.with_name(f"{folder.name}-try{next(tries)}")
        t0 = time.monotonic()
        _run(
            [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--", *base_cmd],
            env,
            600,
            "capture",
        )
        return trace, time.monotonic() - t0

    (trace, capture_s), usage = quietly(meter, "baseline capture", patience, capture)
    baseline = {
        "command": "tracer capture -- python examples/reference_train.py "
        + " ".join(base_cmd[2:]).replace(str(data), "DATA"),
        "capture_wall_s": round(capture_s, 2),
        "machine_usage": usage.to_dict(),
        **baseline_facts(trace),
    }
    as_captured = projection(trace, Scenario())
    baseline["self_check"] = {
        "as_captured_projected_s": round(as_captured["time_to_train_s"], 4),
        "error_pct": round(error_pct(as_captured["time_to_train_s"], baseline["captured_time_to_train_s"]), 2),
    }
    return trace, baseline
