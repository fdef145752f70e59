"""``tracer capture -- CMD ...``"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trainio.tracer import capture as capture_api
from trainio.tracer.cli import main
from trainio.tracer.report import short_summary


@main.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Trace directory to create (default: ./trainio-trace-DATE-TIME).",
)
@click.option(
    "--no-interposer",
    is_flag=True,
    help="Do not preload the C interposer (e.g. when LD_PRELOAD conflicts): file reads are then not traced, "
    "only DataLoader events and boto3 object reads.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def capture(out: Path | None, no_interposer: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND unchanged and record the I/O of every Python process it starts.

    Everything after `--` is the training command, passed through untouched (its own options too):

    \b
      tracer capture -- python train.py --epochs 2
      tracer capture --out traces/run1 -- torchrun --nproc_per_node 2 train.py

    The command's exit code is tracer's exit code; SIGINT and SIGTERM are forwarded to it. If the
    trace cannot be written, the command still runs and the problem is reported once.
    """
    result = capture_api.capture(list(command), out, interposer=not no_interposer)
    if result.trace_dir is not None and result.summary is not None:
        click.echo(f"\ntrainio: trace written to {result.trace_dir}", err=True)
        click.echo(short_summary(result.summary), err=True)
        click.echo(f"next: tracer summary {result.trace_dir}   |   replay what-if --trace {result.trace_dir}", err=True)
    sys.exit(result.exit_code)
