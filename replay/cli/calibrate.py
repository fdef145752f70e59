"""``replay calibrate``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.replay.calibration.calibrate import calibrate, request_gap_s, writable
from trainio.replay.calibration.cpu import calibrate_cpu, render_cpu_calibration
from trainio.replay.calibration.honesty import LINE_FIT, CellCheck, check_profile
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
    help="rgw:http://HOST:PORT/BUCKET (or s3:...), rados:POOL, cephfs:/PATH (a folder inside the file system), "
    "or a directory on the storage to measure.",
)
@click.option(
    "--cpu",
    "cpu_probe",
    is_flag=True,
    help="Measure this host's CPU instead of a storage target: how a unit of data-loading work's CPU time "
    "grows with busy processes per core; writes a CPU profile for what-if --cpu-profile.",
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
@click.option(
    "--trace",
    "trace_dir",
    type=click.Path(path_type=Path),
    help="A trace of the training to project: each stream pauses after each request as long as its loaders "
    "spent between requests (decoding) [no pause: back to back].",
)
@click.option("--keep", is_flag=True, help="Keep the calibration files at the target for the next run.")
@overwrite_option
@timeout_options
def calibrate_command(
    target: str | None,
    cpu_probe: bool,
    out: Path,
    budget_s: float,
    colocated: bool,
    trace_dir: Path | None,
    keep: bool,
    overwrite: bool,
    connect_timeout: float,
    read_timeout: float,
) -> None:
    """Measure real storage (or this host's CPU) and write a profile for `replay what-if`.

    Runs a small matrix -- request sizes 4 KiB to 4 MiB from one stream, small and large
    requests from several threads or queue depths, open and stat for directories and CephFS --
    with fio (rados:POOL, directories), boto3 GETs (rgw:, s3:; credentials from AWS_ACCESS_KEY_ID
    and AWS_SECRET_ACCESS_KEY) or libcephfs (cephfs:/PATH). Ceph targets read CEPH_CONF (default
    /etc/ceph/ceph.conf). Fits request latency and per-stream bandwidth (time = latency + size /
    bandwidth), takes the best aggregate throughput and request rate, prints the fit with its
    residuals and writes the profile with a comment on every value and the measurements as
    [[cells]].

    Its files go only where trainio owns them, marked by its manifest (.trainio-layout.json): keys
    and objects under trainio-calibrate/ of a bucket or pool, the sub-folder trainio-calibrate of a
    directory, the cephfs:/PATH folder itself (new, empty or trainio's). It says where, and removes
    them at the end unless --keep. A place holding data trainio did not write is refused unless
    --overwrite. Give calibration a bucket of its own: a training that lists its bucket would
    otherwise see trainio-calibrate/ while it is there.

    CPU per request: request_cpu is the client's CPU per request on this machine (of the smallest
    single-stream requests); with --colocated, colocated_cpu is the rest of this machine's
    busy CPU per request (the storage daemons'). The profile's latency excludes both: the model
    charges them on the training node's cores. A request rate measured with this machine's cores
    at least 90% busy was its CPU limit: iops is then written as unlimited. cpu_crowding_curve (RGW:
    4 KiB GETs from 1, 4 and 16 client processes, paced alike) is that CPU at each client processes
    per core; what-if applies it at the projected node's ranks x workers per core. With --trace the
    paced cells pause as long as the trace's loaders spent between requests.

    --cpu measures this host instead: one to four busy processes per core repeating a unit of
    data-loading work; the CPU profile it writes (what-if --cpu-profile) scales the captured
    per-sample and per-step CPU from the capture's processes per core to the projection's.
    """
    say = lambda message: click.echo(f"replay calibrate: {message}", err=True)  # noqa: E731
    if cpu_probe == (target is not None):
        raise UserError("give --target TARGET (storage) or --cpu (this host's CPU), one of them")
    if cpu_probe:
        if colocated or trace_dir is not None or keep or overwrite:
            raise UserError("--colocated, --trace, --keep and --overwrite apply to a storage --target, not to --cpu")
        try:
            writable(out)
        except ValueError as exc:  # an --out it cannot write, refused before measuring
            raise UserError(str(exc)) from exc
        cpu = calibrate_cpu(out, budget_s=budget_s, progress=say)
        click.echo(render_cpu_calibration(cpu))
        _honesty(out)
        click.echo(f"wrote {cpu.profile_path}")
        click.echo(f"next: replay what-if --trace TRACE --cpu-profile {cpu.profile_path}")
        return
    assert target is not None
    pause_s = request_gap_s(trace_dir) if trace_dir is not None else 0.0
    try:
        result = calibrate(
            target,
            out,
            budget_s=budget_s,
            colocated=colocated,
            placement=Placement(keep=keep, overwrite=overwrite, timeouts=timeouts_of(connect_timeout, read_timeout)),
            pause_s=pause_s,
            progress=say,
        )
    except (TargetError, ValueError) as exc:  # a target it does not take, an --out it cannot write
        raise UserError(str(exc)) from exc
    click.echo(render_calibration(result))
    _honesty(out)
    click.echo(f"wrote {result.profile_path}")
    click.echo(f"next: replay what-if --trace TRACE --profile {result.profile_path}")


def _honesty(path: Path) -> None:
    """The profile at its own cells: the largest error of each term, and what is wrong with it."""
    worst: dict[str, CellCheck] = {}
    for check in check_profile(path):
        if check.term not in worst or abs(check.error) > abs(worst[check.term].error):
            worst[check.term] = check
    for check in worst.values():
        state = ""
        if not check.honest:
            state = "  (the profile does not charge what the term was fitted to give there)"
        elif not check.plausible:
            state = f"  (beyond {100 * LINE_FIT:.0f}%: disturbed measurements? calibrate on a quiet machine)"
        click.echo(f"  at its cells {check.term}: worst {100 * check.error:+.1f}% ({check.cell}){state}")
