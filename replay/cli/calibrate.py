"""``replay calibrate``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.replay.calibration.calibrate import calibrate
from trainio.replay.calibration.measurement import MAX_BUDGET_S, MIN_BUDGET_S
from trainio.replay.calibration.place import Placement
from trainio.replay.calibration.report import render_calibration
from trainio.replay.cli import main
from trainio.replay.cli.options import overwrite_option, timeout_options, timeouts_of
from trainio.replay.storage.target import TargetError
from trainio.tracefile.cli import UserError


def _budget(value: float) -> float:
    if not MIN_BUDGET_S <= value <= MAX_BUDGET_S:  # NaN is neither
        raise click.BadParameter(f"must be {MIN_BUDGET_S:g} to {MAX_BUDGET_S:g} seconds (got {value})")
    return value


@main.command("calibrate")
@click.option(
    "--target",
    required=True,
    help="rgw:http://HOST:PORT/BUCKET (or s3:...), rados:POOL, cephfs:/PATH (a folder inside the file system), "
    "or a directory on the storage to measure.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Profile file to write (TOML), e.g. my-ceph.toml.",
)
@click.option(
    "--budget-s",
    default=60.0,
    show_default=True,
    type=float,
    callback=lambda ctx, param, value: _budget(value),
    help="Seconds the measurements may take, set-up included.",
)
@click.option(
    "--colocated",
    is_flag=True,
    help="The storage daemons run on this machine and share its cores with training (hyperconverged, "
    "or a dev cluster): write their CPU per request as colocated_cpu.",
)
@click.option("--keep", is_flag=True, help="Keep the calibration files at the target for the next run.")
@overwrite_option
@timeout_options
def calibrate_command(
    target: str,
    out: Path,
    budget_s: float,
    colocated: bool,
    keep: bool,
    overwrite: bool,
    connect_timeout: float,
    read_timeout: float,
) -> None:
    """Measure real storage and write a profile for `replay what-if --profile`.

    Runs a small matrix -- request sizes 4 KiB to 4 MiB from one stream, small and large
    requests from several threads or queue depths, open and stat for directories and CephFS --
    with fio (rados:POOL, directories), boto3 GETs (rgw:, s3:; credentials from AWS_ACCESS_KEY_ID
    and AWS_SECRET_ACCESS_KEY) or libcephfs (cephfs:/PATH). Ceph targets read CEPH_CONF (default
    /etc/ceph/ceph.conf). Fits request latency and per-stream bandwidth (time = latency + size /
    bandwidth), takes the best aggregate throughput and request rate, prints the fit with its
    residuals and writes the profile with a comment on every value.

    Its files go only where trainio owns them, marked by its manifest (.trainio-layout.json): keys
    and objects under trainio-calibrate/ of a bucket or pool, the sub-folder trainio-calibrate of a
    directory, the cephfs:/PATH folder itself (new, empty or trainio's). It says where, and removes
    them at the end unless --keep. A place holding data trainio did not write is refused unless
    --overwrite. Give calibration a bucket of its own: a training that lists its bucket would
    otherwise see trainio-calibrate/ while it is there.

    CPU per request: request_cpu is the client's CPU per request on this machine (the intercept
    over the single-stream sizes); with --colocated, colocated_cpu is the rest of this machine's
    busy CPU per request (the storage daemons'). The profile's latency excludes both: the model
    charges them on the training node's cores. A request rate measured with this machine's cores
    at least 90% busy was its CPU limit: iops is then written as unlimited. cpu_crowding (RGW:
    4 KiB GETs from 4 vs 16 client processes) is how that CPU grows with processes per core;
    what-if applies it at the projected node's ranks x workers per core.
    """
    try:
        result = calibrate(
            target,
            out,
            budget_s=budget_s,
            colocated=colocated,
            placement=Placement(keep=keep, overwrite=overwrite, timeouts=timeouts_of(connect_timeout, read_timeout)),
            progress=lambda message: click.echo(f"replay calibrate: {message}", err=True),
        )
    except (TargetError, ValueError) as exc:  # a target it does not take, an --out it cannot write
        raise UserError(str(exc)) from exc
    click.echo(render_calibration(result))
    click.echo(f"wrote {result.profile_path}")
    click.echo(f"next: replay what-if --trace TRACE --profile {result.profile_path}")
