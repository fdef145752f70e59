"""Options, option checks and the trace loader shared by the replay subcommands (click callbacks)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from trainio.models.cpu import CpuProfileError, load_cpu_profile
from trainio.replay.real.schedule import MAX_NODES
from trainio.replay.storage.s3 import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, Timeouts
from trainio.tracefile import Trace, open_trace


def positive_int(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter(f"must be >= 1 (got {value})")
    return value


def positive_float(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise click.BadParameter(f"must be a number > 0 (got {value})")
    return value


time_scale_option = click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=float,
    callback=positive_float,
    help="Multiply the traced gaps: 2 replays at half the traced pace, 0.5 at double.",
)


def compute_scale_option(help_text: str):
    """``--compute-scale X``: a number > 0, default 1 (what it multiplies is the command's to say)."""
    return click.option(
        "--compute-scale", default=1.0, show_default=True, type=float, callback=positive_float, help=help_text
    )


overwrite_option = click.option(
    "--overwrite",
    is_flag=True,
    help="Let trainio write where data it did not write lies (by default such a target, or work folder, "
    "is refused; trainio never writes through a symbolic link either way).",
)


def nodes_option(help_text: str):
    """``--nodes N``: 1 to MAX_NODES (N nodes all run on this host)."""
    return click.option(
        "--nodes",
        default=1,
        show_default=True,
        type=click.IntRange(1, MAX_NODES),
        help=f"{help_text} (at most {MAX_NODES}: they all run on this host).",
    )


def timeout_options(command):
    """``--connect-timeout`` and ``--read-timeout`` of an S3 endpoint, as ``timeouts`` (a Timeouts)."""
    for name, default, what in (
        ("--read-timeout", READ_TIMEOUT_S, "to answer a request (between bytes)"),
        ("--connect-timeout", CONNECT_TIMEOUT_S, "to accept a connection"),
    ):
        command = click.option(
            name,
            default=default,
            show_default=True,
            type=float,
            callback=positive_float,
            help=f"Seconds to wait for the S3 endpoint {what}; each request is retried once.",
        )(command)
    return command


def timeouts_of(connect_timeout: float, read_timeout: float) -> Timeouts:
    return Timeouts(connect_s=connect_timeout, read_s=read_timeout)


def load_trace(path: Path, command: str) -> Trace:
    """The trace, its reader's warnings printed on stderr (a damaged per-process file, a busy host)."""
    trace = open_trace(path)
    for warning in trace.warnings:
        click.echo(f"{command}: warning: {warning}", err=True)
    return trace


def _cpu_profile(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None:
        try:
            load_cpu_profile(value)
        except CpuProfileError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


cpu_profile_option = click.option(
    "--cpu-profile",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_cpu_profile,
    help="A CPU profile (replay calibrate --cpu): how the nodes' per-sample and per-step CPU grows with "
    "loader processes per core [not measured: the captured CPU times hold at any load].",
)
