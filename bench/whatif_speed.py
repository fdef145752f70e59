"""What-if projection: fast-mode speed on an ImageNet-sized job, and fast vs exact agreement.

    python bench/whatif_speed.py            # full run, writes bench/results/whatif.json
    python bench/whatif_speed.py --smoke --out out/whatif-smoke.json    # a few seconds, for CI

The large case is ImageNet-1k shaped (1,281,167 samples of ~110 KB, 90 epochs, batch 256 per
GPU, 8 DataLoader workers) on 64 nodes x 8 GPUs, projected in fast mode onto several built-in
backends; the fast mode must finish each in 30 s. The small cases run both modes and report how
far fast is from exact. Workloads are synthetic (log-normal sample sizes and decode times, a
ResNet-50-like step time), not captured traces.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# The documented command runs from a checkout, without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainio.models.backend import BackendProfile, builtin_profile
from trainio.models.cluster import Cluster
from trainio.models.formats import parse_format
from trainio.models.workload import Workload
from trainio.replay.projection.whatif import project

RESULTS = Path(__file__).parent / "results"
LARGE_LIMIT_S = 30.0
RNG = np.random.default_rng(2024)
SAMPLE_BYTES = RNG.lognormal(np.log(100e3), 0.45, 5000)  # mean ~110 KB, like ImageNet JPEGs
SAMPLE_CPU = RNG.lognormal(np.log(4e-3), 0.3, 5000)  # decode + random-resized-crop per image
STEP = RNG.normal(0.1, 0.004, 1000)  # ResNet-50, batch 256, one modern GPU


def imagenet(epochs: int) -> Workload:
    return Workload(
        samples=1_281_167,
        batch_size=256,
        epochs=epochs,
        workers=8,
        prefetch_factor=2,
        sample_bytes=SAMPLE_BYTES,
        sample_cpu_s=SAMPLE_CPU,
        step_compute_s=STEP,
        model_bytes=102_000_000,  # ResNet-50 fp32 gradients
    )


def small(**fields: object) -> Workload:
    values: dict = {
        "samples": 4096,
        "batch_size": 32,
        "epochs": 2,
        "workers": 4,
        "prefetch_factor": 2,
        "sample_bytes": SAMPLE_BYTES,
        "sample_cpu_s": SAMPLE_CPU / 2,
        "step_compute_s": STEP / 2,
    }
    return Workload(**{**values, **fields})


def plain(**fields: object) -> BackendProfile:
    """A POSIX backend without limits unless given: the small cases dial one limit at a time."""
    return BackendProfile.unlimited(**{"name": "synthetic", **fields})


def small_cases(smoke: bool) -> dict[str, tuple]:
    one_node = Cluster(gpus_per_node=2, cpus_per_node=8)
    cases = {
        "compute-bound": (small(), plain(read_latency_s=2e-4), one_node, "files"),
        "bandwidth-bound": (small(), plain(aggregate_bandwidth=150e6, read_latency_s=2e-4), one_node, "files"),
        "latency-bound": (small(), plain(read_latency_s=4e-3, open_latency_s=1e-3), one_node, "files"),
        "iops-bound": (small(workers=8), plain(iops=800, read_latency_s=1e-3), one_node, "files"),
        "multi-node-shared": (
            small(),
            plain(aggregate_bandwidth=300e6, stream_bandwidth=200e6, client_nic_bandwidth=150e6, read_latency_s=5e-4),
            Cluster(nodes=4, gpus_per_node=2, cpus_per_node=8),
            "files",
        ),
        "cpu-bound": (small(workers=8), plain(read_latency_s=1e-4), Cluster(gpus_per_node=2, cpus_per_node=2), "files"),
        # As many workers as cores, their decoding about as long as a step: the knee of the cores.
        "cpu-knee": (
            small(workers=2, step_compute_s=STEP / 3),
            plain(read_latency_s=1e-4),
            Cluster(gpus_per_node=1, cpus_per_node=2),
            "files",
        ),
        "near-saturation": (small(), plain(aggregate_bandwidth=165e6, read_latency_s=3e-4), one_node, "files"),
        "shards": (
            small(),
            plain(aggregate_bandwidth=150e6, read_latency_s=1e-3),
            Cluster(nodes=2, gpus_per_node=2, cpus_per_node=8),
            "shards:16MiB",
        ),
        "nfs-page-cache": (
            small(epochs=3),
            builtin_profile("nfs"),
            Cluster(nodes=2, gpus_per_node=2, cpus_per_node=8, node_memory_bytes=250e6),
            "files",
        ),
        "rgw-object": (small(), builtin_profile("rgw"), Cluster(nodes=2, gpus_per_node=2, cpus_per_node=8), "files"),
        "long-epoch-shards": (
            small(samples=60_000, epochs=1, step_compute_s=STEP / 5),
            plain(aggregate_bandwidth=120e6),
            Cluster(cpus_per_node=8),
            "shards:64MiB",
        ),
    }
    if smoke:
        return {name: cases[name] for name in ("bandwidth-bound", "multi-node-shared")}
    return cases


def run_large(smoke: bool) -> list[dict]:
    job = imagenet(epochs=2 if smoke else 90)
    cluster = Cluster(
        nodes=64,
        gpus_per_node=8,
        cpus_per_node=96,
        node_memory_bytes=1024 * 2**30,
        nic_bandwidth=200e9 / 8,
        interconnect_bandwidth=200e9 / 8,
    )
    rows = []
    for name in ("nfs",) if smoke else ("local-nvme", "nfs", "cephfs", "s3"):
        result = project(job, builtin_profile(name), cluster, parse_format("files"))
        rows.append(
            {
                "backend": name,
                "epochs": job.epochs,
                "sim_wall_s": result.sim_wall_s,
                "within_limit": result.sim_wall_s <= LARGE_LIMIT_S,
                "time_to_train_s": result.time_to_train_s,
                "accelerator_utilization": result.accelerator_utilization,
                "bottleneck": result.bottleneck,
                "simulated_steps": result.simulated_steps,
            }
        )
    return rows


def run_agreement(smoke: bool) -> list[dict]:
    rows = []
    for name, (job, storage, cluster, fmt) in small_cases(smoke).items():
        fast = project(job, storage, cluster, parse_format(fmt))
        exact = project(job, storage, cluster, parse_format(fmt), exact=True)
        rows.append(
            {
                "case": name,
                "fast_s": fast.time_to_train_s,
                "exact_s": exact.time_to_train_s,
                "difference_pct": 100 * (fast.time_to_train_s / exact.time_to_train_s - 1),
                "fast_bottleneck": fast.bottleneck,
                "exact_bottleneck": exact.bottleneck,
                "fast_wall_s": fast.sim_wall_s,
                "exact_wall_s": exact.sim_wall_s,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few-seconds run for CI")
    parser.add_argument("--out", type=Path, default=RESULTS / "whatif.json", help="results file")
    args = parser.parse_args()
    smoke = args.smoke
    started = time.perf_counter()
    large, agreement = run_large(smoke), run_agreement(smoke)
    report = {
        "benchmark": "whatif_speed",
        "smoke": smoke,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "large_limit_s": LARGE_LIMIT_S,
        "large": large,
        "agreement": agreement,
        "wall_s": time.perf_counter() - started,
    }
    path = args.out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")

    print(f"ImageNet-sized job on 64 nodes x 8 GPUs, fast mode (limit {LARGE_LIMIT_S:.0f} s):")
    print(f"  {'backend':<12}{'epochs':>7}{'wall s':>9}{'time to train':>15}{'AU':>7}  bottleneck")
    for row in large:
        print(
            f"  {row['backend']:<12}{row['epochs']:>7}{row['sim_wall_s']:>9.2f}"
            f"{row['time_to_train_s']:>14.0f}s{row['accelerator_utilization']:>7.2f}  {row['bottleneck']}"
        )
    print("Fast vs exact:")
    print(f"  {'case':<20}{'fast s':>9}{'exact s':>9}{'diff %':>8}{'exact wall':>12}  bottleneck (fast / exact)")
    for row in agreement:
        print(
            f"  {row['case']:<20}{row['fast_s']:>9.3f}{row['exact_s']:>9.3f}{row['difference_pct']:>+8.2f}"
            f"{row['exact_wall_s']:>11.2f}s  {row['fast_bottleneck']} / {row['exact_bottleneck']}"
        )
    print(f"wrote {path}")
    if not all(row["within_limit"] for row in large):
        sys.exit(f"fast mode took longer than {LARGE_LIMIT_S:.0f} s on the large case")


if __name__ == "__main__":
    main()
