"""Text summary of a replay on real storage (JSON is the result's dict itself)."""

from __future__ import annotations

import math

from trainio.replay.result import ReplayResult


def replay_summary(result: ReplayResult, op_name: str, moved_detail: str = "", extra: tuple[str, ...] = ()) -> str:
    """What a real replay moved, how long it took next to the traced run, throughput, latency, errors."""
    d = result.details
    pace = "as traced" if result.mode == "as-traced" else "no stall: as fast as possible"
    if d.get("time_scale", 1.0) != 1.0 and result.mode == "as-traced":
        pace += f", gaps x {d['time_scale']:g}"
    fidelity = "-" if math.isnan(result.fidelity) else f"{result.fidelity:.3f}"
    lines = [
        f"  replayed     {result.bytes / 1e6:,.1f} MB in {result.ops:,} {op_name}{moved_detail} on {result.target}"
        f"   ({result.nodes} node{'s' if result.nodes > 1 else ''}, {pace})",
        f"  expected     {result.expected_bytes / 1e6:,.1f} MB in {result.expected_ops:,} {op_name} (from the trace)",
        f"  duration     {result.duration_s:.3f} s replayed vs {result.traced_duration_s:.3f} s traced:"
        f" fidelity {fidelity}",
    ]
    if result.nodes > 1 and "planned_duration_s" in d:
        lines.append(f"  schedule     {d['planned_duration_s']:.3f} s for {result.nodes} nodes at the traced pace")
    lines += [
        f"  throughput   {result.read_MBps:,.1f} MB/s, {result.ops_per_s:,.0f} {op_name}/s",
        f"  latency      p50 {result.lat_p50_ms:.3f} ms, p99 {result.lat_p99_ms:.3f} ms",
        f"  errors       {result.errors}" + (f"   ({'; '.join(d['messages'][:2])})" if d.get("messages") else ""),
        *extra,
    ]
    return "\n".join(lines)
