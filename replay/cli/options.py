"""Options and option checks shared by the replay subcommands (click callbacks)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from trainio.models.cpu import CpuProfileError, load_cpu_profile


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
