"""The projections: each condition as a what-if over a round's baseline trace and profiles."""

from __future__ import annotations

import statistics
from pathlib import Path

from trainio.models.workload import from_trace
from trainio.replay.projection.scenario import Scenario, project_trace
from trainio.tracefile.reader import open_trace

from .conditions import AS_CAPTURED, Condition, Setup


def scenario(cond: Condition, setup: Setup, round_: dict, *, exact: bool = False, separate: bool = False) -> Scenario:
    """``cond`` as a what-if over ``round_``'s trace and profiles (its CPU profile included). A
    captured step's accelerator share (the step less the loop's own CPU) is the emulated
    accelerator's sleep plus what else the loop waited for (the sleep's overshoot); another step
    time changes the sleep only, so ``compute_scale`` scales that share to the new sleep plus the
    same overshoot, as the trace measured it."""
    step = cond.step_time_s if cond.step_time_s is not None else setup.step_time_s
    baseline = round_["baseline"]
    accelerator = (baseline["mean_step_ms"] - baseline.get("mean_step_cpu_ms", 0.0)) / 1e3
    overshoot = max(0.0, accelerator - setup.step_time_s)
    return Scenario(
        profile=None if cond.profile == AS_CAPTURED else round_["paths"][cond.profile],
        nodes=cond.world if separate else 1,
        gpus_per_node=1 if separate else cond.world,
        workers=cond.workers,
        format=cond.format,
        page_cache=cond.page_cache,
        compute_scale=(step + overshoot) / accelerator,
        cpu_profile=round_.get("cpu_profile"),
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
        "mean_sample_wall_ms": None
        if workload.sample_wall_s is None
        else round(1e3 * float(workload.sample_wall_s.mean()), 4),
        "mean_step_ms": round(1e3 * float((workload.step_compute_s + workload.step_cpu_s).mean()), 4),
        "mean_step_cpu_ms": round(1e3 * float(workload.step_cpu_s.mean()), 4),
        "captured_per_core": workload.captured_per_core,
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


def projected_fields(cond: Condition, setup: Setup, rounds: list[dict], measured_s: float, paired: list[float]) -> dict:
    """What a scenario row says of its projections: the median of the rounds' (fast and exact mode)
    against ``measured_s``, each round's against its own run (``paired``), and for several
    processes on one host the projection onto as many separate nodes."""
    fasts = round_projections(cond, setup, rounds)
    fast, exact = median_projection(fasts), median_projection(round_projections(cond, setup, rounds, exact=True))
    row = {
        "projected_s": round(fast["time_to_train_s"], 4),
        "error_pct": round(error_pct(fast["time_to_train_s"], measured_s), 2),
        "bottleneck": fast["bottleneck"],
        "projected_exact_s": round(exact["time_to_train_s"], 4),
        "error_exact_pct": round(error_pct(exact["time_to_train_s"], measured_s), 2),
        "projected_rounds_s": [round(f["time_to_train_s"], 4) for f in fasts],
        "round_error_pct": [
            round(error_pct(f["time_to_train_s"], run), 2) for f, run in zip(fasts, paired, strict=True)
        ],
        "projected_cpu_ms_per_sample": statistics.median(r["baseline"]["mean_sample_cpu_ms"] for r in rounds),
        "projection": fast,
        "projection_exact": exact,
    }
    if cond.world > 1:
        separate = median_projection(round_projections(cond, setup, rounds, separate=True))
        row["projected_separate_nodes_s"] = round(separate["time_to_train_s"], 4)
        row["error_separate_nodes_pct"] = round(error_pct(separate["time_to_train_s"], measured_s), 2)
    return row


def summary(scenarios: list[dict]) -> dict:
    """Median and largest |error| of a set, fast and exact mode, and of its single rounds."""
    errors = [abs(s["error_pct"]) for s in scenarios]
    exact = [abs(s["error_exact_pct"]) for s in scenarios]
    rounds = [abs(e) for s in scenarios for e in s["round_error_pct"]]
    return {
        "median_abs_error_pct": round(statistics.median(errors), 2),
        "max_abs_error_pct": round(max(errors), 2),
        "median_abs_error_exact_pct": round(statistics.median(exact), 2),
        "max_abs_error_exact_pct": round(max(exact), 2),
        "median_abs_round_error_pct": round(statistics.median(rounds), 2),
        "max_abs_round_error_pct": round(max(rounds), 2),
    }
