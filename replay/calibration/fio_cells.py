"""Calibration cells measured with fio (RADOS pools, directories), with the CPU of fio's job processes.

fio's own ``usr_cpu`` / ``sys_cpu`` hold the job's own thread only, not librados' messenger threads,
so a small shell script that fio runs as ``exec_prerun`` and ``exec_postrun`` snapshots the job
process's CPU (all threads) and the host's /proc/stat ``cpu`` line, raw; Python reads them
(docs/calibration.md).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from trainio.replay.calibration.measurement import CalibrationError, Cell, CpuFields, Measurement, cpu_fields
from trainio.replay.storage.errors import tail
from trainio.replay.storage.fio import FioJob, run_fio
from trainio.tracefile.hostcpu import CLOCK_TICK_S, cpu_ticks

FIO_PER_CELL_S = {"rados": 0.4, "directory": 0.15}
"""fio's own time per measurement (a rados job connects to the cluster)."""
SNAPSHOT_SCRIPT = """#!/bin/sh
# replay calibrate: run by fio as exec_prerun / exec_postrun. Appends to $2 one line
#   EVENT JOB_PID JOB_UTIME JOB_STIME MAIN_UTIME MAIN_STIME cpu USER NICE SYSTEM IDLE ...
# (clock ticks) for the fio job process that runs this -- the nearest ancestor named fio, all of
# its threads -- and its parent (fio's main process when jobs are forked), with the host's
# /proc/stat cpu line.
set -f
event=$1 out=$2 p=$PPID
while :; do
    read -r line < "/proc/$p/stat" || exit 1
    set -- $line
    [ "$2" = "(fio)" ] && break
    [ "$4" -gt 1 ] || exit 1
    p=$4
done
job="$p ${14} ${15}" main=$4
read -r line < "/proc/$main/stat" || exit 1
set -- $line
read -r host < /proc/stat
echo "$event $job ${14} ${15} $host" >> "$out"
"""


def _snapshot_lines(scratch: Path, index: int) -> list[str]:
    """The exec_prerun / exec_postrun lines of cell ``index``'s jobs."""
    script, out = shlex.quote(str(scratch / "snapshot.sh")), shlex.quote(str(scratch / f"c{index}.cpu"))
    return [f"exec_prerun={script} pre {out}", f"exec_postrun={script} post {out}"]


def job_file(
    global_lines: list[str], cells: list[Cell], seconds: float, engine: Callable[[Cell], str], scratch: Path
) -> str:
    """Each cell a stonewalled job of ``threads`` processes (fio's default; the rados engine makes them
    threads), with the CPU snapshots of ``_snapshot_lines``."""
    (scratch / "snapshot.sh").write_text(SNAPSHOT_SCRIPT, encoding="utf-8")
    (scratch / "snapshot.sh").chmod(0o755)
    lines = ["[global]", *global_lines, "time_based=1", f"runtime={max(1, round(seconds * 1000))}ms"]
    for i, cell in enumerate(cells):
        lines += [
            "",
            f"[c{i}]",
            "stonewall",
            f"rw={cell.pattern}",
            f"bs={cell.size}",
            f"numjobs={cell.threads}",
            f"iodepth={cell.depth}",
            f"ioengine={engine(cell)}",
            *([f"thinktime={round(cell.pause_s * 1e6)}"] if cell.pause_s > 0 else []),
            *_snapshot_lines(scratch, i),
        ]
    return "\n".join(lines) + "\n"


def run_cells(job_text: str, work: Path, timeout_s: float, what: str) -> tuple[list[FioJob], str]:
    """Run a job file of cells in ``work`` (its job file, report and exec_prerun files go there);
    fio's jobs and its version. Any failed job fails the calibration."""
    job = work / "calibrate.fio"
    job.write_text(job_text, encoding="utf-8")
    run = run_fio(job, work / "calibrate.json", readonly=True, timeout_s=timeout_s, cwd=work)
    failed = [j for j in run.result.jobs if j.error]
    if failed:
        message = "; ".join(run.result.messages) or tail(run.stderr, 1)
        raise CalibrationError(
            f"fio job {failed[0].jobname} against {what} failed with errno {failed[0].error}: {message}"
        )
    if run.returncode != 0:
        reason = f"killed by signal {-run.returncode}" if run.returncode < 0 else f"exit status {run.returncode}"
        raise CalibrationError(f"fio against {what} failed ({reason}): {tail(run.stderr, 1)}")
    return list(run.result.jobs), run.result.fio_version


def snapshot_cpu(scratch: Path, index: int, cell: Cell, ops: int, what: str) -> CpuFields:
    """``cpu_fields`` of cell ``index`` from its jobs' exec_prerun / exec_postrun snapshots. Each
    job process counts from its first start snapshot to its last end snapshot. Forked jobs have one
    each, and their parent's CPU (fio's main process: bookkeeping) is the tool's. Jobs run as
    threads of one process (the rados engine forces that) share it: its CPU over the cell, fio's
    bookkeeping included, is the client's."""
    path = scratch / f"c{index}.cpu"
    snaps: dict[str, list[tuple[int, int, int, int, int]]] = {"pre": [], "post": []}
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            event, pid, *numbers = line.split()
            busy, total = cpu_ticks(numbers[5:])
            snaps[event].append(
                (int(pid), int(numbers[0]) + int(numbers[1]), int(numbers[2]) + int(numbers[3]), busy, total)
            )
    except (OSError, KeyError, ValueError) as exc:
        raise CalibrationError(
            f"fio against {what}: cannot read the CPU snapshots of {cell.name} ({path}): {exc}"
        ) from exc
    pre, post = snaps["pre"], snaps["post"]
    if len(pre) != cell.threads or len(post) != cell.threads or {s[0] for s in pre} != {s[0] for s in post}:
        raise CalibrationError(
            f"fio against {what}: {len(pre)} start and {len(post)} end CPU snapshots of {cell.name}'s "
            f"{cell.threads} job(s) ({path})"
        )
    client = 0
    for job_pid in {snap[0] for snap in pre}:
        client += max(s[1] for s in post if s[0] == job_pid) - min(s[1] for s in pre if s[0] == job_pid)
    first = min(pre, key=lambda snap: snap[4])
    last = max(post, key=lambda snap: snap[4])
    tool = last[2] - first[2] if len({snap[0] for snap in pre}) > 1 else 0
    start, end = (first[3], first[4]), (last[3], last[4])
    return cpu_fields(ops, client * CLOCK_TICK_S, start, end, tool * CLOCK_TICK_S)


def fio_measurements(jobs: list[FioJob], cells: list[Cell], what: str, scratch: Path) -> list[Measurement]:
    """One measurement per cell from its fio jobs (``c0``, ``c1``, ...) and their CPU snapshots."""
    measurements = []
    for i, cell in enumerate(cells):
        mine = [job for job in jobs if job.jobname == f"c{i}"]
        ops = sum(job.read.total_ios for job in mine)
        if len(mine) != cell.threads or ops == 0:
            raise CalibrationError(f"fio against {what} reported {len(mine)} job(s) and {ops} reads for {cell.name}")
        latency_ns = sum(job.read.lat_ns.mean * job.read.total_ios for job in mine) / ops
        measurements.append(
            Measurement(
                name=cell.name,
                pattern=cell.pattern,
                size=cell.size,
                threads=cell.threads,
                depth=cell.depth,
                ops=ops,
                bytes=sum(job.read.io_bytes for job in mine),
                seconds=max(job.job_runtime_ms for job in mine) / 1e3,
                latency_s=latency_ns / 1e9,
                pause_s=cell.pause_s,
                **snapshot_cpu(scratch, i, cell, ops, what),
            )
        )
    return measurements
