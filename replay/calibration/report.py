"""The text a calibration prints: its measurements, the fit with its residuals, the notes."""

from __future__ import annotations

from trainio.models.units import bandwidth_text, duration_text, rate_text
from trainio.replay.calibration.calibrate import Calibration
from trainio.replay.calibration.measurement import ms_text
from trainio.replay.storage.target import RGW


def render_calibration(cal: Calibration) -> str:
    """The measurements (with the client's CPU per request, the servers' when co-located, and how busy
    the host's cores were), the fit and its residuals as a short table."""
    f = cal.fitted
    server = f"{'srv ms':>7} " if cal.colocated else ""
    header = (
        f"  {'measurement':<26} {'ops':>8} {'MB/s':>9} {'ops/s':>9} {'mean ms':>9} {'fit ms':>8} {'resid.':>7} "
        f"{'cpu ms':>7} {server}{'busy':>5}"
    )
    lines = [
        f"calibration  {cal.target} ({cal.tool}), {len(cal.measurements)} measurements in {cal.elapsed_s:.1f} s",
        header,
        "  " + "-" * (len(header) - 2),
    ]
    for m in cal.measurements:
        fit = resid = ""
        if m.name in f.residuals:
            fit = f"{(f.latency_s + m.size / f.stream_bandwidth) * 1e3:.3f}"
            resid = f"{100 * f.residuals[m.name]:+.1f}%"
        busy = "" if m.busy is None else f"{100 * m.busy:.0f}%"
        srv = f"{ms_text(m.server_cpu_s):>7} " if cal.colocated else ""
        lines.append(
            f"  {m.name:<26} {m.ops:>8,} {m.bytes_per_s / 1e6:>9.1f} {m.ops_per_s:>9,.0f} "
            f"{m.latency_s * 1e3:>9.3f} {fit:>8} {resid:>7} {ms_text(m.cpu_s):>7} {srv}{busy:>5}"
        )
    kind = "GET" if cal.kind == RGW else "read"
    rate = f"{rate_text(f.iops)} ({f.iops_from})"
    if f.iops_busy is not None:
        rate = f"{rate} at {100 * f.iops_busy:.0f}% busy" + (
            ": CPU-bound, unlimited in the profile" if f.cpu_bound else ""
        )
    lines.append(
        f"  fitted       {kind} latency {duration_text(f.latency_s)}, stream {bandwidth_text(f.stream_bandwidth)}, "
        f"aggregate {bandwidth_text(f.aggregate_bandwidth)} ({f.aggregate_from}), {rate}"
    )
    if f.request_cpu_s is not None or f.colocated_cpu_s is not None:
        colocated = (
            f"co-located servers' CPU {duration_text(f.colocated_cpu_s)} per request"
            if f.colocated_cpu_s is not None
            else "servers not co-located"
        )
        lines.append(
            f"  cpu          client CPU {duration_text(f.request_cpu_s or 0.0)} per request, {colocated}; "
            f"{kind} latency less the client's {duration_text(f.wait_latency_s)}"
        )
    if f.crowding is not None:
        lines.append(
            "  crowding     CPU per request x "
            + ", ".join(
                f"{factor:.2f} at {m.threads}"
                for m, (_, factor) in zip(f.crowding.cells, f.crowding.points, strict=True)
            )
            + " client processes (cpu_crowding_curve)"
        )
    if f.open_latency_s is not None:
        lines.append(
            f"  metadata     open {duration_text(f.open_latency_s)}, stat {duration_text(f.stat_latency_s or 0.0)}"
            + (f"; open and close CPU {duration_text(f.open_cpu_s)}" if f.open_cpu_s is not None else "")
            + (f", servers' {duration_text(f.colocated_open_cpu_s)}" if f.colocated_open_cpu_s is not None else "")
        )
    lines += [f"  note         {note}" for note in cal.notes]
    return "\n".join(lines)
