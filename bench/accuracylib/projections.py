"""The projections: each condition as a what-if over a round's baseline trace and profiles."""

from __future__ import annotations

from pathlib import Path

from trainio.models.workload import from_trace
from trainio.replay.projection.scenario import Scenario, project_trace
from trainio.tracefile.reader import open_trace

from .conditions import Condition, Setup


def scenario(cond: Condition, setup: Setup, round_: dict, *, exact: bool = False, separate: bool = False) -> Scenario:
    """``cond`` as a what-if over ``round_``'s trace and profiles. A captured step is the emulated
    accelerator's sleep plus the training loop's own work per step (taking the batch, the sleep's
    overshoot); another step time changes the sleep only, so ``compute_scale`` scales the sleep
    and keeps the loop's part, as the trace measured it."""
    step = cond.step_time_s if cond.step_time_s is not None else setup.step_time_s
    captured_step = round_["baseline"]["mean_step_ms"] / 1e3
    loop = max(0.0, captured_step - setup.step_time_s)
    return Scenario(
        profile=round_["paths"][cond.profile],
        nodes=cond.world if separate else 1,
        gpus_per_node=1 if separate else cond.world,
        workers=cond.workers,
        format=cond.format,
        page_cache=cond.page_cache,
        compute_scale=(step + loop) / captured_step,
        exact=exact,
    )


def projection(trace: Path, sc: Scenario) -> dict:
    result, workload, warnings = project_trace(trace, sc)
    storage_cpu_s = float(result.bottleneck_evidence["node_storage_cpu_s"]) * result.nodes
    return {
        "time_to_train_s": result.time_to_train_s,
        "bottleneck": result.bottleneck,
        "per_epoch_s": [round(float(e), 4) for e in result.per_epoch_s],
        "preload_s": round(result.preload_s, 4),
        "stall_fraction": round(result.stall_fraction, 4),
        "read_ops_per_s": round(result.read_ops_per_s, 1),
        "cpu_utilization": round(float(result.bottleneck_evidence["cpu_utilization"]), 4),
        "iops_utilization": round(float(result.bottleneck_evidence["iops_utilization"]), 4),
        "storage_cpu_ms_per_sample": round(1e3 * storage_cpu_s / (workload.samples * workload.epochs), 3),
        "warnings": warnings,
    }


def error_pct(projected: float, measured: float) -> float:
    return 100.0 * (projected - measured) / measured


def baseline_facts(trace: Path) -> dict:
    workload = from_trace(open_trace(trace))
    return {
        "samples": workload.samples,
        "epochs": workload.epochs,
        "batch_size": workload.batch_size,
        "workers": workload.workers,
        "captured_time_to_train_s": workload.captured_duration_s,
        "mean_sample_bytes": round(float(workload.sample_bytes.mean()), 1),
        "mean_sample_cpu_ms": round(1e3 * float(workload.sample_cpu_s.mean()), 4),
        "mean_step_ms": round(1e3 * float(workload.step_compute_s.mean()), 4),
        "worker_start_ms": round(1e3 * workload.worker_start_s, 3),
        "epoch_gap_ms": round(1e3 * workload.epoch_gap_s, 3),
        "batch_receive_ms": round(1e3 * workload.batch_receive_s, 3),
        "files_per_sample": workload.files_per_sample,
        "reads_per_sample": workload.reads_per_sample,
        "stats_per_sample": workload.stats_per_sample,
    }


def round_projections(cond: Condition, setup: Setup, rounds: list[dict], **how: bool) -> list[dict]:
    """``cond`` projected from each round's trace and profiles (``how``: ``scenario``'s flags)."""
    return [projection(r["trace"], scenario(cond, setup, r, **how)) for r in rounds]


def median_projection(projections: list[dict]) -> dict:
    """The projection whose time to train is the median of the rounds' (the lower one of two)."""
    ranked = sorted(projections, key=lambda p: p["time_to_train_s"])
    return ranked[(len(ranked) - 1) // 2]
