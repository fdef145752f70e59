"""Options and option checks shared by the replay subcommands (click callbacks)."""

from __future__ import annotations

import math

import click


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
