"""Human-readable renderings of the summary dictionary (the JSON rendering is json.dumps)."""

from __future__ import annotations

from pathlib import Path

from trainio.tracefile.busyhost import is_busy


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f} MB"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _s(x: float | None) -> str:
    return "-" if x is None else (f"{x * 1e3:.2f} ms" if x < 1 else f"{x:.2f} s")


def host_cpu_line(host_cpu: dict | None) -> str:
    """How much of the host's CPU other processes took during the capture, in one line."""
    if not isinstance(host_cpu, dict):
        return "not recorded (trace format 1.0, or finalized after a kill)"
    busy = " -- busy host: per-sample CPU times may be inflated" if is_busy(host_cpu) else ""
    storage = ""
    if host_cpu.get("storage_daemons"):
        storage = f", of which storage daemons {host_cpu.get('storage_cpu_s')} CPU-s"
    return (
        f"others used {_pct(host_cpu.get('other_fraction'))} of {host_cpu.get('cpus')} cores during the capture"
        f" ({host_cpu.get('other_cpu_s')} CPU-s{storage}; the command {host_cpu.get('traced_cpu_s')} CPU-s"
        f" in {host_cpu.get('window_s')} s){busy}"
    )


def node_cpu_line(cpu: dict | None) -> str:
    """The node's CPU as the job saw it: cores, SMT, affinity, cgroup quota, usable cores."""
    if not isinstance(cpu, dict):
        return "not recorded (traces before format 1.3)"
    quota = (cpu.get("cgroup") or {}).get("quota_cores")
    return (
        f"{cpu.get('online_cpus')} online CPUs ({cpu.get('physical_cores')} cores x {cpu.get('threads_per_core')}"
        f" threads), affinity {len(cpu.get('affinity') or [])} CPUs, cgroup quota"
        f" {'none' if quota is None else f'{quota:g} cores'}: {cpu.get('usable_cores'):g} usable cores"
    )


def loop_cpu_line(d: dict) -> str:
    """The training loop's own CPU per step and what a sample took, next to their wall times."""
    cpu = d.get("cpu") or {}
    if cpu.get("mean_step_cpu_s") is None and cpu.get("mean_sample_cpu_s") is None:
        return "not recorded (traces before format 1.3, or no DataLoader events)"
    parts = []
    if cpu.get("mean_step_cpu_s") is not None:
        parts.append(f"training loop {_s(cpu['mean_step_cpu_s'])} of CPU per step ({_s(d.get('mean_step_s'))} wall)")
    if cpu.get("mean_sample_cpu_s") is not None:
        parts.append(
            f"a sample {_s(cpu['mean_sample_cpu_s'])} of CPU ({_s(cpu.get('mean_sample_wall_s'))} wall,"
            f" {cpu.get('samples_measured'):,} samples measured)"
        )
    return "; ".join(parts)


def mapped_line(mapped: dict) -> str:
    """What a run read through memory mappings of its data files, in one line."""
    per_fault = mapped.get("bytes_per_fault")
    per_sample = mapped.get("bytes_per_sample")
    return (
        f"{_mb(mapped['mapped_bytes'])} of {mapped['files']:,} data files memory-mapped;"
        f" the fetches faulted {_mb(mapped['fetch_read_bytes'])} in from storage in {mapped['major_faults']:,}"
        f" major faults ({_mb(per_fault)} each), {'-' if per_sample is None else f'{per_sample / 1024:,.1f} KiB'}"
        " mapped per sample"
    )


def format_words(fmt: dict | None) -> str:
    """The record format after the pattern, when the run read packed records."""
    if not fmt or fmt.get("kind") != "shards":
        return ""
    return (
        f"   format shards: {fmt['shards']:,} of {_mb(fmt['shard_bytes'])},"
        f" {fmt['samples_per_shard']:,} samples each per epoch"
    )


def short_summary(d: dict) -> str:
    """Eight lines printed at the end of a capture, then one per warning."""
    cov = d["coverage"]
    lines = [
        f"  data read      {_mb(d['bytes_read'])} in {d['read_ops']:,} reads"
        f" from {d['distinct_files']:,} files/objects ({', '.join(d['data_roots'][:2]) or 'no data roots'})",
        *([f"  mapped         {mapped_line(d['mapped'])}"] if d.get("mapped") else []),
        f"  pattern        {d['pattern']}   re-read {_pct(d['reread_fraction'])} of bytes across epochs"
        + format_words(d.get("record_format")),
        f"  loader         {d['epochs']} epochs, {d['batches']:,} batches, {d['samples']:,} samples,"
        f" mean step {_s(d['mean_step_s'])}, mean fetch {_s(d['mean_fetch_s'])}",
        f"  data stall     {_pct(d['data_stall_fraction'])} of the training loop waited on data"
        f"   (run took {_s(d['duration_s'])}, exit code {d['exit_code']})",
        f"  coverage       {_pct(cov['ratio'])} of the kernel's rchar over {d['processes']} processes"
        + ("" if cov["c_level"] else "   (file reads NOT traced: the interposer was not loaded)"),
        f"  host CPU       {host_cpu_line(d.get('host_cpu'))}",
        f"  node CPU       {node_cpu_line(d.get('node_cpu'))}",
        f"  loop CPU       {loop_cpu_line(d)}",
    ] + [f"  WARNING        {warning}" for warning in d["warnings"]]
    return "\n".join(lines)


def full_summary(d: dict, trace_dir: Path) -> str:
    lines = [
        f"trace {trace_dir}",
        short_summary({**d, "warnings": []}),
        f"  runtime reads  {_mb(d['runtime_bytes_read'])} (modules, libraries, /proc)",
    ]
    if d["read_size_histogram"]:
        lines.append("  read sizes     " + "  ".join(f"{k}: {v:,}" for k, v in d["read_size_histogram"].items()))
    evidence = ", ".join(f"{k}={v}" for k, v in d["pattern_evidence"].items())
    lines.append(f"  evidence       {evidence}")
    lines += [f"  warning        {warning}" for warning in d["warnings"]]
    return "\n".join(lines)
