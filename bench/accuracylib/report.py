"""The Markdown beside the result JSON."""

from __future__ import annotations

from .conditions import TARGET_MAX_PCT, TARGET_MEDIAN_PCT


def markdown(result: dict) -> str:
    lines = [
        "# Projection accuracy (`bench/accuracy.py`)",
        "",
        f"{result['date']}, {result['machine']}. Baseline: {result['baseline']['command']}",
        f"(local disk, 1 node, one file per sample). Profiles: {result['profiles_from']}.",
        f"{len(result['baselines'])} round(s), each: calibrate, capture the baseline, project every condition "
        "from that trace and those profiles, run every condition once. Measured: the median of the rounds' runs; "
        "projected: the median of the rounds' projections (`replay what-if`, fast mode; exact mode beside it); "
        "round errors: each round's projection against its own run.",
        "",
        "| scenario | measured s | projected s | error | bottleneck | exact s | exact error | run spread "
        "| round errors |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for s in result["scenarios"]:
        lines.append(
            f"| {s['name']} | {s['measured_s']:.2f} | {s['projected_s']:.2f} | {s['error_pct']:+.1f}% | "
            f"{s['bottleneck']} | {s['projected_exact_s']:.2f} | {s['error_exact_pct']:+.1f}% | "
            f"{s['spread_pct']:.1f}% | {' '.join(f'{e:+.0f}%' for e in s['round_error_pct'])} |"
        )
    lines += [
        "",
        "Where the CPU went in the real runs (per sample, median of the runs counted), next to the "
        "projection's: the baselines' decode and transform time, "
        + " / ".join(f"{b['mean_sample_cpu_ms']:.2f}" for b in result["baselines"])
        + " ms in the rounds' captures, plus the storage requests' CPU (the client's and, "
        "with `--colocated` calibration, the Ceph daemons') that the calibrated profile charges per request.",
        "",
        "| scenario | workload CPU ms/sample | Ceph daemons CPU ms/sample | cores busy "
        "| projected storage CPU ms/sample | CPU probe ms |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {s['name']} | {s['cpu_ms_per_sample']['workload']:.2f} | {s['cpu_ms_per_sample']['ceph']:.2f} | "
            f"{100 * s['cpu_ms_per_sample']['cores_busy']:.0f}% | "
            f"{s['projection']['storage_cpu_ms_per_sample']:.2f} | {s['cpu_ms_per_sample']['cpu_probe_ms']:.1f} |"
            for s in result["scenarios"]
        ),
        "",
        "CPU probe (`cpu_probe_ms`: one core's time for a fixed piece of Python work; larger = a slower "
        "machine at that moment) before each calibration: "
        + (
            "; ".join(
                ", ".join(f"{name} {p['cpu_probe_ms']:.1f} ms" for name, p in profiles.items() if "cpu_probe_ms" in p)
                for profiles in result["profiles_rounds"]
                if any("cpu_probe_ms" in p for p in profiles.values())
            )
            or "not measured (no calibration)"
        )
        + ".",
    ]
    separate = [s for s in result["scenarios"] if "projected_separate_nodes_s" in s]
    if separate:
        lines += [
            "",
            "Nodes are processes on this one host, projected as one node with N ranks; projected as N separate "
            "nodes, each with the captured host's cores: "
            + "; ".join(
                f"{s['name']} {s['projected_separate_nodes_s']:.2f} s ({s['error_separate_nodes_pct']:+.1f}%)"
                for s in separate
            )
            + ".",
        ]
    lines += [
        "",
        f"Median |error| {result['median_abs_error_pct']:.1f}%, max {result['max_abs_error_pct']:.1f}% "
        f"(exact mode: {result['median_abs_error_exact_pct']:.1f}%, {result['max_abs_error_exact_pct']:.1f}%); "
        f"target median <= {TARGET_MEDIAN_PCT:.0f}%, max <= {TARGET_MAX_PCT:.0f}%. One round's projection against "
        f"its own run: median |error| {result['median_abs_round_error_pct']:.1f}%, "
        f"max {result['max_abs_round_error_pct']:.1f}%.",
        "",
        *(f"- {note}" for note in result["notes"]),
    ]
    return "\n".join(lines) + "\n"
