"""The Markdown beside the result JSON."""

from __future__ import annotations

from .conditions import TARGET_MAX_PCT, TARGET_MEDIAN_PCT

HELD_OUT_TITLES = {
    "held_out": "Held-out set (a workload the model is never adjusted against)",
    "held_out_formats": "Held-out record formats (the held-out workload captured reading tar shards, projected "
    "onto one file per sample)",
    "held_out_memmap": "Held-out memory mapping (the held-out workload read through a mapped file, captured on "
    "local disk, projected onto CephFS)",
}


def markdown(result: dict) -> str:
    development = result
    held_out = [(title, result[key]) for key, title in HELD_OUT_TITLES.items() if result.get(key)]
    lines = [
        "# Projection accuracy (`bench/accuracy.py`)",
        "",
        f"{result['date']}, {result['machine']}, load average at the end "
        f"{' / '.join(f'{x:.2f}' for x in result.get('load_average', []))}. Profiles: {result['profiles_from']}.",
        f"{len(development['baselines'])} round(s), each: capture each set's baseline, probe the host's CPU, "
        "calibrate the backends paced as the baseline's loaders, project every condition from its set's trace "
        "and those profiles, run every condition once. Measured: the median of the rounds' runs; projected: the "
        "median of the rounds' projections (`replay what-if`, fast mode; exact mode beside it); round errors: "
        "each round's projection against its own run.",
        "",
        "| set | conditions | median abs error | max abs error | exact mode | single rounds |",
        "|---|---:|---:|---:|---|---|",
        *(_summary_row(part) for part in (development, *(part for _, part in held_out))),
        "",
        f"Target on the held-out set: median <= {TARGET_MEDIAN_PCT:.0f}%, max <= {TARGET_MAX_PCT:.0f}%.",
    ]
    for title, part in (
        ("Development set (the model has been adjusted against these conditions)", development),
        *held_out,
    ):
        lines += ["", f"## {title}", "", *_set_section(part)]
    lines += ["", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines) + "\n"


def _summary_row(part: dict) -> str:
    return (
        f"| {part.get('set', 'development')} | {len(part['scenarios'])} | {part['median_abs_error_pct']:.1f}% | "
        f"{part['max_abs_error_pct']:.1f}% | {part['median_abs_error_exact_pct']:.1f}% / "
        f"{part['max_abs_error_exact_pct']:.1f}% | {part['median_abs_round_error_pct']:.1f}% / "
        f"{part['max_abs_round_error_pct']:.1f}% |"
    )


def _set_section(part: dict) -> list[str]:
    baseline = part["baseline"]
    lines = [
        f"Baseline: {baseline['command']} (local disk, 1 node).",
        "",
        "| scenario | measured s | projected s | error | bottleneck | exact s | exact error | run spread "
        "| round errors |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for s in part["scenarios"]:
        lines.append(
            f"| {s['name']} | {s['measured_s']:.2f} | {s['projected_s']:.2f} | {s['error_pct']:+.1f}% | "
            f"{s['bottleneck']} | {s['projected_exact_s']:.2f} | {s['error_exact_pct']:+.1f}% | "
            f"{s['spread_pct']:.1f}% | {' '.join(f'{e:+.0f}%' for e in s['round_error_pct'])} |"
        )
    lines += [
        "",
        "Where the CPU went in the real runs (per sample, median of the runs counted), next to the "
        "projection's: the baselines' per-sample CPU, "
        + " / ".join(f"{b['mean_sample_cpu_ms']:.2f}" for b in part["baselines"])
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
            for s in part["scenarios"]
        ),
    ]
    separate = [s for s in part["scenarios"] if "projected_separate_nodes_s" in s]
    if separate:
        lines += [
            "",
            "Several processes on this one host are projected as one node with N ranks; projected as N separate "
            "nodes, each with the captured host's cores: "
            + "; ".join(
                f"{s['name']} {s['projected_separate_nodes_s']:.2f} s ({s['error_separate_nodes_pct']:+.1f}%)"
                for s in separate
            )
            + ".",
        ]
    return lines
