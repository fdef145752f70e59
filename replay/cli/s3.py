"""``replay s3``"""

from __future__ import annotations

import json
from pathlib import Path

import click

from trainio.replay.cli import main
from trainio.replay.cli.options import (
    load_trace,
    nodes_option,
    overwrite_option,
    time_scale_option,
    timeout_options,
    timeouts_of,
)
from trainio.replay.real.result import ReplayResult
from trainio.replay.real.s3replay import replay_s3
from trainio.replay.real.summary import replay_summary
from trainio.replay.storage.layout import DATA_PREFIX
from trainio.tracefile.cli import UserError


def summary(result: ReplayResult) -> str:
    """The shared replay summary, with whole vs ranged GETs and time to first byte."""
    d = result.details
    gets = f"{d.get('whole_object_gets', 0):,} whole, {d.get('ranged_gets', 0):,} ranged"
    moved = f" ({gets}; {d.get('objects', 0):,} objects)"
    extra = (f"  first byte   p50 {d.get('first_byte_p50_ms', 0):.2f} ms (latency above is to the end of the body)",)
    return replay_summary(result, "GETs", moved, extra)


@main.command("s3")
@click.option("--trace", "trace_dir", required=True, type=click.Path(path_type=Path), help="Trace directory.")
@click.option(
    "--endpoint",
    required=True,
    envvar="TRAINIO_S3_ENDPOINT",
    help="S3 endpoint URL, e.g. http://127.0.0.1:7480 [env TRAINIO_S3_ENDPOINT].",
)
@click.option(
    "--bucket", required=True, help=f"Bucket to lay the data set out in, under {DATA_PREFIX} (created if missing)."
)
@nodes_option("Nodes replaying at once")
@click.option("--no-stall", is_flag=True, help="Ignore the traced timing: every worker issues GETs back to back.")
@time_scale_option
@timeout_options
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (the stable ReplayResult keys).")
def s3(
    trace_dir: Path,
    endpoint: str,
    bucket: str,
    nodes: int,
    no_stall: bool,
    time_scale: float,
    connect_timeout: float,
    read_timeout: float,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Replay a trace's data reads as S3 GETs against a real endpoint (Ceph RGW, MinIO, S3).

    Uploads the data set first, under the key prefix trainio-data/ of the bucket (one object per
    traced file, key = trainio-data/ + its path under the data root), marked by trainio's manifest
    (trainio-data/.trainio-layout.json): objects trainio wrote with the right size are kept; a
    prefix holding objects trainio did not write is refused unless --overwrite. Then it issues one
    GET per run of contiguous traced reads -- a whole small file is one GET, partial reads are
    ranged GETs -- with one worker per traced process, at the traced pace unless --no-stall.
    --nodes N runs N copies at once, each reading its DistributedSampler share (every N-th file of
    each process) at the traced per-sample pace: the schedule `replay fio` replays. Each request
    waits at most --connect-timeout and --read-timeout and is retried once. Credentials come from
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Checks that the bytes moved are the bytes the
    trace read.
    """
    trace = load_trace(trace_dir, "replay s3")
    try:
        result = replay_s3(
            trace,
            endpoint,
            bucket,
            nodes=nodes,
            no_stall=no_stall,
            time_scale=time_scale,
            overwrite=overwrite,
            timeouts=timeouts_of(connect_timeout, read_timeout),
            progress=lambda message: click.echo(f"replay s3: {message}", err=True),
        )
    except ValueError as exc:  # an endpoint that is no URL, more workers than the bound
        raise UserError(str(exc)) from exc
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else summary(result))
