"""The profile a calibration writes: the TOML file ``replay what-if --profile`` loads, its values in unit
strings (``trainio.models.units``' formatters), a comment on each saying where it comes from."""

from __future__ import annotations

import math
import os
import re

from trainio.models.backend import CELLS_TABLE, builtin_profile
from trainio.models.units import bandwidth_text, duration_text, format_size, rate_text
from trainio.replay.calibration.fit import Fitted
from trainio.replay.calibration.measurement import SAMPLE_FILES, Measurement, ms_text
from trainio.replay.storage.directory import NETWORK_FILE_SYSTEMS
from trainio.replay.storage.target import CEPHFS, DIRECTORY, RADOS, RGW, Target

CLIENT_CPU = {
    RGW: "the boto3 client processes (time.process_time over the GETs)",
    RADOS: "fio's job processes, all threads (librados' included; /proc/PID/stat at exec_prerun/postrun)",
    DIRECTORY: "fio's job processes (/proc/PID/stat at exec_prerun/postrun)",
    CEPHFS: "the libcephfs client process, all threads (time.process_time over the timed phase)",
}
"""What a calibration's client CPU is, by target kind (the profile's comment)."""


def _count_text(count: float) -> str:
    return "unlimited" if math.isinf(count) else str(round(count))


def _cpu_columns(m: Measurement) -> str:
    if m.cpu_s is None:
        return ""
    busy = "-" if m.busy is None else f"{100 * m.busy:.0f}%"
    return f" cpu {ms_text(m.cpu_s):>7} ms host {ms_text(m.host_cpu_s):>7} ms busy {busy:>4}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile_toml(
    name: str,
    target: Target,
    fitted: Fitted,
    measurements: list[Measurement] | tuple[Measurement, ...],
    *,
    source: str,
    fstype: str = "",
    cores: int | None = None,
) -> str:
    """The profile file: ``[meta]`` and ``[backend]`` with unit strings, a comment on each value, and the
    measurements as ``[[cells]]`` (``cores``: this host's usable cores, where they were measured)."""
    pause_s = next((m.pause_s for m in measurements if m.single_stream), 0.0)
    worst = max((abs(r) for r in fitted.residuals.values()), default=0.0)
    fit_note = (
        f"fitted: time = latency + size / bandwidth over {len(fitted.residuals)} single-stream sizes "
        f"{format_size(min(m.size for m in measurements if m.name in fitted.residuals))}-"
        f"{format_size(max(m.size for m in measurements if m.name in fitted.residuals))}, worst residual "
        f"{100 * worst:.1f}%"
    )
    if fitted.request_cpu_s is None and fitted.colocated_cpu_s is None:
        latency = (duration_text(fitted.latency_s), f"{fit_note} (intercept)")
    else:
        floored = (
            ", 0: a free line's intercept fell below request_cpu, so the line was fitted through request_cpu"
            if fitted.wait_latency_s == 0
            else ""
        )
        latency = (
            duration_text(fitted.wait_latency_s),
            f"{fit_note}: intercept {duration_text(fitted.latency_s)} less request_cpu "
            f"(the model charges it on the node's cores){floored}",
        )
    stream = (bandwidth_text(fitted.stream_bandwidth), f"{fit_note} (1 / slope)")
    aggregate = (bandwidth_text(fitted.aggregate_bandwidth), f"measured: best throughput, {fitted.aggregate_from}")
    busy = "" if fitted.iops_busy is None else f", this host's cores {100 * fitted.iops_busy:.0f}% busy"
    if fitted.cpu_bound:
        iops = (
            "unlimited",
            f"measured {rate_text(fitted.iops)} ({fitted.iops_from}){busy}: the rate was this host's CPU limit, "
            "which request_cpu and colocated_cpu charge",
        )
    else:
        iops = (rate_text(fitted.iops), f"measured: best request rate, {fitted.iops_from}{busy}")
    smallest = "of the smallest single-stream requests, where CPU per byte is nil"
    if fitted.request_cpu_s is None:
        request_cpu = ("0 s", "not measured")
    else:
        request_cpu = (
            duration_text(fitted.request_cpu_s),
            f"measured: CPU of {CLIENT_CPU[target.kind]} per request {smallest} (larger requests' CPU per byte "
            "stays in stream_bandwidth)",
        )
    if fitted.colocated_cpu_s is None:
        colocated_cpu = ("0 s", "not co-located (no --colocated): the storage servers' CPU is inside the latency")
    else:
        colocated_cpu = (
            duration_text(fitted.colocated_cpu_s),
            "measured (--colocated: the storage daemons share this machine's cores): the host's busy CPU "
            f"(/proc/stat user+nice+system+steal) less the client's, per request {smallest}",
        )
    per_file = "the open-read-close cell's CPU per file less the read's"
    if fitted.open_cpu_s is None:
        open_cpu = ("0 s", "not measured")
    else:
        open_cpu = (duration_text(fitted.open_cpu_s), f"measured: client CPU of each open and close: {per_file}")
    if fitted.colocated_open_cpu_s is None:
        colocated_open_cpu = ("0 s", "not measured or not co-located: inside the open latency")
    else:
        colocated_open_cpu = (
            duration_text(fitted.colocated_open_cpu_s),
            f"measured (--colocated): the servers' CPU of each open and close: {per_file}",
        )
    cores = cores or len(os.sched_getaffinity(0))
    crowding = fitted.crowding
    crowding_rows: dict[str, tuple[str, str]] = {}
    if crowding is None:
        crowding_rows["cpu_crowding"] = (
            "0",
            "not measured: no small-request cells from several client processes paced as the single stream",
        )
    else:
        whose = "the host's" if fitted.colocated_cpu_s is not None else "the client's"
        crowding_rows["cpu_crowding_curve"] = (
            "[" + ", ".join(f"[{p:.6g}, {f:.6g}]" for p, f in crowding.points) + "]",
            f"measured: [client processes per core, {whose} CPU per request / (request_cpu"
            + (" + colocated_cpu" if fitted.colocated_cpu_s is not None else "")
            + ")] of "
            + ", ".join(f"{m.name} ({ms_text(cpu)} ms)" for m, cpu in zip(crowding.cells, crowding.cpu_s, strict=True))
            + f" on this host's {crowding.cores} cores: what-if multiplies the request CPU by it at the "
            "projected node's processes per core (interpolated, held beyond the ends)",
        )
    less_open_cpu = "" if fitted.open_cpu_s is None else " less open_cpu"
    na = ("n/a", "does not apply")
    unlimited_nic = ("unlimited", "not measured: the aggregate figure was measured through this client's link")
    if target.kind == RGW:
        flags = {"access": "object", "shared": True, "page_cache": False}
        rows = {
            "open_latency": na,
            "stat_latency": na,
            "read_latency": na,
            "get_latency": latency,
            "client_nic_bandwidth": unlimited_nic,
            "max_outstanding": ("unlimited", "each loader process has its own HTTP connection pool"),
        }
        comments = {"access": "every sample file is one GET", "page_cache": "S3 clients do not read through it"}
    elif target.kind == RADOS:
        rbd = builtin_profile("rbd")
        flags = {"access": "block", "shared": True, "page_cache": True}
        rows = {
            "open_latency": (duration_text(rbd.open_latency_s or 0.0), "not measured: as the built-in rbd profile"),
            "stat_latency": (duration_text(rbd.stat_latency_s or 0.0), "not measured: as the built-in rbd profile"),
            "read_latency": latency,
            "get_latency": na,
            "client_nic_bandwidth": unlimited_nic,
            "max_outstanding": (_count_text(rbd.max_outstanding), "not measured: as the built-in rbd profile"),
        }
        comments = {
            "access": "a local file system on an RBD image over this pool (RADOS reads measured)",
            "page_cache": "a file system on a mapped image reads through it",
        }
    elif target.kind == CEPHFS:
        flags = {"access": "posix", "shared": True, "page_cache": True}
        cold = f"each of up to {SAMPLE_FILES} files once, on a fresh libcephfs mount (an MDS round trip)"
        rows = {
            "open_latency": (duration_text(fitted.open_wait_s or 0.0), f"measured: mean open{less_open_cpu}, {cold}"),
            "stat_latency": (duration_text(fitted.stat_latency_s or 0.0), f"measured: mean stat, {cold}"),
            "read_latency": latency,
            "get_latency": na,
            "client_nic_bandwidth": ("unlimited", "not measured: measured through this client's link (loopback)"),
            "max_outstanding": ("unlimited", "not measured"),
        }
        comments = {
            "access": "CephFS, measured through libcephfs",
            "page_cache": "the kernel client reads through it (libcephfs has its own object cache, client_oc; "
            "it was off for the measurement)",
        }
    else:
        shared = fstype in NETWORK_FILE_SYSTEMS
        flags = {"access": "posix", "shared": shared, "page_cache": True}
        rows = {
            "open_latency": (
                duration_text(fitted.open_wait_s or 0.0),
                f"measured: mean open(2){less_open_cpu}, metadata warm",
            ),
            "stat_latency": (duration_text(fitted.stat_latency_s or 0.0), "measured: mean stat(2), metadata warm"),
            "read_latency": latency,
            "get_latency": na,
            "client_nic_bandwidth": unlimited_nic if shared else na,
            "max_outstanding": ("unlimited", "not measured"),
        }
        comments = {
            "access": f"file system {fstype or 'unknown'}",
            "shared": "a network file system" if shared else "node-local: every node has its own",
            "page_cache": "buffered reads go through the Linux page cache",
        }
    backend = {**rows}
    backend["stream_bandwidth"] = stream
    backend["aggregate_bandwidth"] = aggregate
    backend["iops"] = iops
    backend["request_cpu"] = request_cpu
    backend["colocated_cpu"] = colocated_cpu
    backend.update(crowding_rows)
    if target.kind != RGW:
        backend["open_cpu"] = open_cpu
        backend["colocated_open_cpu"] = colocated_open_cpu
    order = [
        "open_latency",
        "stat_latency",
        "read_latency",
        "get_latency",
        "stream_bandwidth",
        "aggregate_bandwidth",
        "iops",
        "client_nic_bandwidth",
        "max_outstanding",
        "request_cpu",
        "colocated_cpu",
        "cpu_crowding",
        "cpu_crowding_curve",
        "open_cpu",
        "colocated_open_cpu",
    ]
    lines = [
        f"# Measured by `replay calibrate` against {target.text}. The measurements (mean time, client CPU and",
        "# host CPU per request; the host's cores busy):",
        *(
            f"#   {m.name:<26} {m.ops:>8} ops {m.bytes_per_s / 1e6:>9.1f} MB/s {m.ops_per_s:>9.0f} ops/s "
            f"{m.latency_s * 1e3:>8.3f} ms{_cpu_columns(m)}"
            for m in measurements
        ),
        "",
        "[meta]",
        f"name = {_quote(name)}",
        f"description = {_quote(f'calibrated {target.kind}: {target.text}')}",
        f"source = {_quote(source)}",
        f"colocated = {'true' if fitted.colocated_cpu_s is not None else 'false'}  # the servers' CPU counted",
        f"pause = {_quote(duration_text(pause_s))}  # idle after each request of a stream, as a loader decodes",
        "",
        "[backend]",
    ]
    for key, value in flags.items():
        text = ("true" if value else "false") if isinstance(value, bool) else _quote(str(value))
        lines.append(f"{key} = {text}" + (f"  # {comments[key]}" if key in comments else ""))
    for key in (key for key in order if key in backend):
        value, comment = backend[key]
        text = value if re.fullmatch(r"\d+(\.\d+)?(e-?\d+)?|\[.*\]", value) else _quote(value)
        lines.append(f"{key} = {text}  # {comment}")
    for m in measurements:
        lines += ["", f"[[{CELLS_TABLE}]]", *cell_lines(m, cores)]
    return "\n".join(lines) + "\n"


def cell_lines(m: Measurement, cores: int) -> list[str]:
    """One measurement as the keys of a ``[[cells]]`` table: what it ran, at how many client processes
    per core, and what it measured (seconds per request)."""
    values = {
        "name": m.name,
        "pattern": m.pattern,
        "size": m.size,
        "threads": m.threads,
        "depth": m.depth,
        "per_core": m.threads / cores,
        "pause_s": m.pause_s,
        "ops": m.ops,
        "seconds": m.seconds,
        "latency_s": m.latency_s,
        "cpu_s": m.cpu_s,
        "host_cpu_s": m.host_cpu_s,
        "busy": m.busy,
    }
    return [
        f"{key} = {_quote(value) if isinstance(value, str) else repr(value)}"
        for key, value in values.items()
        if value is not None
    ]
