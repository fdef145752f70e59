"""``replay fio``"""

from __future__ import annotations

import json
from pathlib import Path

import click

from trainio.replay.cli import main
from trainio.replay.cli.options import load_trace, nodes_option, overwrite_option, time_scale_option
from trainio.replay.real.fioreplay import replay_fio, target_of
from trainio.replay.real.result import ReplayResult
from trainio.replay.real.summary import replay_summary
from trainio.replay.storage.target import TargetError
from trainio.tracefile.cli import UserError


def _target(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        target_of(value)
    except TargetError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def summary(result: ReplayResult) -> str:
    """The shared replay summary, plus how to rerun fio (or the CephFS helper) by hand."""
    d = result.details
    if "job_file" in d:
        extra = (
            f"  fio          {d['fio_version']}, report {d['result_file']}",
            f"  rerun        fio --readonly --output-format=json --output=result.json {d['job_file']}",
        )
    else:
        extra = (f"  helper       report {d['result_file']}", f"  rerun        {d['helper']} cephfs {d['plan_file']}")
    return replay_summary(result, "reads", extra=extra)


@main.command("fio")
@click.option("--trace", "trace_dir", required=True, type=click.Path(path_type=Path), help="Trace directory.")
@click.option(
    "--target", required=True, callback=_target, help="DIR, rbd:POOL/IMAGE, rados:POOL or cephfs:/PATH (see above)."
)
@nodes_option("Nodes reading shares at once")
@click.option("--no-stall", is_flag=True, help="Replay as fast as possible, in the traced order.")
@time_scale_option
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    help="Folder for iologs, job files, plans and reports: new, empty, or a previous --workdir "
    "[a new temporary folder].",
)
@click.option(
    "--format",
    "fmt",
    default="files",
    show_default=True,
    help="Record format to replay: files (as traced) or shards:SIZE (e.g. shards:64MiB): the traced files "
    "packed into tar shards of that size, read as a shard reader reads them.",
)
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (the stable keys).")
def fio_command(
    trace_dir: Path,
    target: str,
    nodes: int,
    no_stall: bool,
    time_scale: float,
    workdir: Path | None,
    fmt: str,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Replay a trace's data reads on real storage and compare with the traced run.

    \b
      replay fio --trace TRACE --target /mnt/nvme/replay         a directory (mounted file system)
      replay fio --trace TRACE --target rbd:rbd/trainio          an RBD image (fio's rbd engine)
      replay fio --trace TRACE --target rados:trainpool          one RADOS object per file (fio's rados engine)
      replay fio --trace TRACE --target cephfs:/trainio --nodes 4   CephFS through libcephfs

    The data set is laid out on the target first (once; sizes from the trace, random bytes), in a
    place of trainio's own marked by its manifest (.trainio-layout.json): the target directory or
    CephFS folder itself, which must be new, empty or trainio's; the objects trainio-data/... of a
    pool; an RBD image trainio created. A target holding data trainio did not write is refused
    unless --overwrite. Then every traced process's reads run in order at their offsets and sizes,
    at the traced pace or with --no-stall as fast as possible. --nodes N runs N copies at once, each
    reading its DistributedSampler share. --format shards:SIZE lays the files out packed into tar
    shards of SIZE and replays each process's reads as a shard reader issues them: sequential within
    a shard, in requests of up to 4 MiB, ahead of a 1,000-sample shuffle buffer, each at the traced
    time of the first sample that needs it. Ceph targets read CEPH_CONF (default /etc/ceph/ceph.conf)
    and use client.admin. Progress goes to stderr; the summary shows replayed vs traced time
    (fidelity), throughput, latency p50/p99 and errors; --json prints target, nodes, bytes, ops,
    duration_s, traced_duration_s, fidelity, read_MBps, ops_per_s, lat_p50_ms, lat_p99_ms, errors,
    mode, expected_bytes, expected_ops, details. A replay that read other bytes or reads than the
    trace fails (exit 1).
    """
    trace = load_trace(trace_dir, "replay fio")
    try:
        result = replay_fio(
            trace,
            target,
            workdir,
            nodes=nodes,
            no_stall=no_stall,
            time_scale=time_scale,
            fmt=fmt,
            overwrite=overwrite,
            progress=lambda line: click.echo(f"replay fio: {line}", err=True),
        )
    except TargetError as exc:
        raise UserError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(summary(result))
