"""Sweep speed: a 7 x 3 x 2 grid of a bundled trace on the local pool, and the same grid on Ray.

    python bench/sweep_speed.py            # full run, writes bench/results/sweep.json
    python bench/sweep_speed.py --smoke --out out/bench-smoke/sweep.json    # 2 configurations, for CI

The grid: nodes 1..64 (7) x local-nvme, cephfs, rgw x files, shards:256MiB on
traces/imagenet_jpeg-cpu with its data set scaled to 100,000 samples and 10 epochs (as captured,
2,048 samples and 2 epochs, a projection takes ~30 ms and the sweep would measure only start-up).
The local pool (every usable core) must finish it
within 60 s. The same grid then runs on a throwaway Ray head with as many CPUs, started by
scripts/with-ray-head.sh in a network namespace of its own; both runs start from nothing (no sweep
file to reuse) in the same invocation. Reported per engine: the wall time (trace read, workers
started, every configuration, file written), the wall time per configuration, the mean projection
time inside the workers, and the per-configuration overhead (wall x workers / configurations less
the mean projection). Ray's connect time is reported apart from its sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The documented command runs from a checkout, without installing the package.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainio.replay.projection.engines import Engine, LocalPool, RayCluster, usable_cores  # noqa: E402
from trainio.replay.projection.grid import Grid  # noqa: E402
from trainio.replay.projection.sweep import run_sweep  # noqa: E402
from trainio.replay.projection.sweepfile import read_sweep  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TRACE = ROOT / "traces" / "imagenet_jpeg-cpu"
LIMIT_S = 60.0
SCALE = {"dataset_samples": "100000", "epochs": "10"}
GRID = {"nodes": "1,2,4,8,16,32,64", "backend": "local-nvme,cephfs,rgw", "format": "files,shards:256MiB", **SCALE}
SMOKE_GRID = {"nodes": "1,2", "backend": "rgw", "format": "files", **SCALE}


def measure(engine: Engine, grid: Grid) -> dict:
    """One sweep of ``grid`` from nothing on ``engine``."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "sweep.parquet"
        started = time.perf_counter()
        summary = run_sweep(TRACE, grid, out, engine)
        wall = time.perf_counter() - started
        rows = read_sweep(out).rows
    projections = [row["wall_s"] for row in rows]
    count = summary.configurations
    mean = sum(projections) / len(projections)
    return {
        "engine": engine.name,
        "workers": engine.workers,
        "configurations": count,
        "failed": summary.failed,
        "wall_s": round(wall, 3),
        "wall_per_configuration_s": round(wall / count, 4),
        "mean_projection_s": round(mean, 4),
        "overhead_per_configuration_s": round(wall * engine.workers / count - mean, 4),
    }


def on_ray(grid: dict, workers: int) -> dict:
    """The Ray half, run by this script inside scripts/with-ray-head.sh (it prints its JSON)."""
    script = ROOT / "scripts" / "with-ray-head.sh"
    command = [sys.executable, __file__, "--ray-inside", json.dumps(grid), "--workers", str(workers)]
    proc = subprocess.run(
        [str(script), str(workers), "--", *command],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if proc.returncode != 0:
        raise SystemExit(f"sweep_speed: the Ray run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ray_inside(grid: dict, workers: int) -> None:
    started = time.perf_counter()
    engine = RayCluster(os.environ["RAY_HEAD"], workers)
    connect = time.perf_counter() - started
    try:
        result = measure(engine, Grid.parse(grid))
    finally:
        engine.close()
    print(json.dumps({**result, "connect_s": round(connect, 3)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 configurations, for CI")
    parser.add_argument("--out", type=Path, default=RESULTS / "sweep.json", help="results file")
    parser.add_argument("--workers", type=int, default=usable_cores(), help="workers for both engines")
    parser.add_argument("--ray-inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_inside:
        ray_inside(json.loads(args.ray_inside), args.workers)
        return
    grid = SMOKE_GRID if args.smoke else GRID
    load_before = os.getloadavg()
    local = measure(LocalPool(args.workers), Grid.parse(grid))
    ray = on_ray(grid, args.workers)
    load_after = os.getloadavg()
    report = {
        "benchmark": "sweep_speed",
        "smoke": args.smoke,
        "trace": str(TRACE.relative_to(ROOT)),
        "grid": grid,
        "local": local,
        "ray": ray,
        "ray_vs_local_wall_per_configuration": round(
            ray["wall_per_configuration_s"] / local["wall_per_configuration_s"], 3
        ),
        "local_limit_s": LIMIT_S,
        "local_within_limit": local["wall_s"] <= LIMIT_S,
        "machine": {
            "cpus": os.cpu_count(),
            "usable_cpus": usable_cores(),
            "load_average_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"local pool ({local['workers']} workers): {local['configurations']} configurations in {local['wall_s']:.1f} s"
        f" ({local['wall_per_configuration_s'] * 1e3:.0f} ms each; limit {LIMIT_S:.0f} s: "
        f"{'met' if report['local_within_limit'] else 'MISSED'})"
    )
    print(
        f"Ray ({ray['workers']} CPUs): {ray['wall_s']:.1f} s ({ray['wall_per_configuration_s'] * 1e3:.0f} ms each)"
        f" + {ray['connect_s']:.1f} s to connect; x{report['ray_vs_local_wall_per_configuration']:.2f} the local"
        f" pool's time per configuration"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
