"""``replay calibrate``"""

from __future__ import annotations

from pathlib import Path

import click

from replay.calibrate import MIN_BUDGET_S, TargetError, calibrate, render_calibration
from replay.cli import main
from tracefile.cli import UserError


@main.command("calibrate")
@click.option(
    "--target",
    required=True,
    help="rgw:http://HOST:PORT/BUCKET (or s3:...), rados:POOL, or a directory on the storage to measure.",
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
    type=click.FloatRange(min=MIN_BUDGET_S),
    help="Seconds the measurements may take, set-up included.",
)
def calibrate_command(target: str, out: Path, budget_s: float) -> None:
    """Measure real storage and write a profile for `replay what-if --profile`.

    Runs a small matrix -- request sizes 4 KiB to 4 MiB from one stream, small and large
    requests from several threads or queue depths, open and stat for directories -- with fio
    (rados:POOL through CEPH_CONF, directories) or boto3 GETs (rgw:, s3:; credentials from
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). Fits request latency and per-stream bandwidth
    (time = latency + size / bandwidth), takes the best aggregate throughput and request rate,
    prints the fit with its residuals and writes the profile with a comment on every value.
    """
    try:
        result = calibrate(
            target,
            out,
            budget_s=budget_s,
            progress=lambda message: click.echo(f"replay calibrate: {message}", err=True),
        )
    except TargetError as exc:
        raise UserError(str(exc)) from exc
    click.echo(render_calibration(result))
    click.echo(f"wrote {result.profile_path}")
    click.echo(f"next: replay what-if --trace TRACE --profile {result.profile_path}")
