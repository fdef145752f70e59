"""Text renderings of what-if results and backend profiles (JSON is the dicts themselves)."""

from __future__ import annotations

import math

from trainio.models.units import bytes_text
from trainio.models.workload import Workload
from trainio.replay.projection.whatif import WhatIfResult


def _num(value: object, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "unlimited"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}{unit}"
    return str(value)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h ({seconds:,.0f} s)"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min ({seconds:,.1f} s)"
    return f"{seconds:.2f} s"


def whatif_table(result: WhatIfResult, workload: Workload) -> str:
    capacity = result.backend_capacity
    lines = [
        f"what-if  {result.nodes} node(s) x {result.gpus_per_node} GPU(s), backend {result.backend}, "
        f"format {result.format}, {workload.epochs} epoch(s), {result.mode} mode",
        f"  time to train      {_duration(result.time_to_train_s)}"
        + (f"   (captured run: {_duration(workload.captured_duration_s)})" if workload.captured_duration_s else "")
        + (
            f"   (on {result.staging['target']}, had the data fit)"
            if result.staging and not result.staging["fits"]
            else ""
        ),
        f"  per epoch          {', '.join(_duration(s) for s in result.per_epoch_s[:4])}"
        + (" ..." if len(result.per_epoch_s) > 4 else ""),
        f"  accelerator util.  {100 * result.accelerator_utilization:.1f}%   "
        f"stall {100 * result.stall_fraction:.1f}%   preload {_duration(result.preload_s)}",
        f"  storage demand     {_num(result.read_MBps, ' MB/s')}, {_num(result.read_ops_per_s, ' ops/s', 0)}"
        f"   capacity {_num(capacity.get('aggregate_MBps'), ' MB/s')}, {_num(capacity.get('iops'), ' IOPS', 0)}",
        f"  bottleneck         {result.bottleneck}",
        *_stage_in_lines(result),
    ]
    evidence: dict[str, object] = dict(result.bottleneck_evidence)
    shares = result.bottleneck_evidence["loader_time_share"]
    del evidence["loader_time_share"]
    lines.append("  evidence           " + ", ".join(f"{k}={_num(v, digits=3)}" for k, v in evidence.items()))
    if shares:
        spent = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.005)
        lines.append(f"  loaders spend      {spent}")
    lines += _captured_cpu(workload)
    lines += [f"  note               {note}" for note in result.notes]
    return "\n".join(lines)


def _stage_in_lines(result: WhatIfResult) -> list[str]:
    staging = result.staging
    if staging is None:
        return []
    per_node = f"{bytes_text(result.local_reserved_bytes)} per node"
    if result.stage_in_s is None or result.time_to_value_s is None:
        capacity = staging["local_capacity_bytes"]
        assert isinstance(capacity, float)
        return [
            f"  stage-in           cannot stage: {per_node}, {staging['target']} holds {bytes_text(capacity)}",
            "  time to value      none: the data does not fit on the node-local disk",
        ]
    return [
        f"  stage-in           {_duration(result.stage_in_s)}: {per_node} "
        f"({_num(staging['files_per_node'], ' files', 0)}) from {staging['source']} to {staging['target']} "
        f"at {_num(staging['node_MBps'], ' MB/s')}, limited by {staging['bound']}",
        f"  time to value      {_duration(result.time_to_value_s)}   (stage-in + time to train on {staging['target']})",
        f"  local disk         {per_node} reserved; "
        f"{100 * result.eligible_node_fraction:.0f}% of GPU nodes can run the job",
    ]


def _captured_cpu(workload: Workload) -> list[str]:
    """What the trace measured of CPU time (format 1.3): per sample beside its wall time, per step."""
    if workload.sample_wall_s is None and not workload.step_cpu_s.any():
        return []
    cpu_ms, parts = 1e3 * float(workload.sample_cpu_s.mean()), []
    if workload.sample_wall_s is not None:
        wall_ms = 1e3 * float(workload.sample_wall_s.mean())
        waited = f", {100 * (1 - cpu_ms / wall_ms):.0f}% waiting for a core" if wall_ms > cpu_ms else ""
        parts.append(f"sample {cpu_ms:.2f} ms of {wall_ms:.2f} ms outside I/O{waited}")
    step_cpu_ms = 1e3 * float(workload.step_cpu_s.mean())
    step_ms = step_cpu_ms + 1e3 * float(workload.step_compute_s.mean())
    parts.append(f"step {step_cpu_ms:.2f} ms of {step_ms:.2f} ms (the rest the accelerator's)")
    where = f" at {workload.captured_per_core:.2g} loader processes per core" if workload.captured_per_core else ""
    return [f"  captured CPU       {'; '.join(parts)}{where}"]


def backends_table(rows: list[dict]) -> str:
    header = (
        f"{'name':<11} {'kind':<7} {'shared':<6} {'open ms':>8} {'req ms':>7} {'cpu ms':>7} {'stream MB/s':>12} "
        f"{'aggr MB/s':>11} {'IOPS':>10}  source"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['name']:<11} {r['kind']:<7} {'yes' if r['shared'] else 'no':<6} {_num(r['open_ms'], digits=2):>8} "
            f"{_num(r['request_latency_ms'], digits=2):>7} {_num(r['request_cpu_ms'], digits=2):>7} "
            f"{_num(r['stream_MBps'], digits=0):>12} "
            f"{_num(r['aggregate_MBps'], digits=0):>11} {_num(r['iops'], digits=0):>10}  {r['source']}"
        )
    return "\n".join(lines)
