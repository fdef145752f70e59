"""``tracer capture -- CMD ...``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.tracer import capture as capture_api
from trainio.tracer.cli import main
from trainio.tracer.errors import CommandError
from trainio.tracer.messages import tell
from trainio.tracer.report import short_summary
from trainio.tracer.signals import end_like


@main.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    help="Trace directory to create (default: ./trainio-trace-DATE-TIME, with -2, -3... if that is taken).",
)
@click.option(
    "--no-interposer",
    is_flag=True,
    help="Do not preload the C interposer (e.g. when LD_PRELOAD conflicts): file reads are then not traced, "
    "only DataLoader events and boto3 object reads.",
)
@click.option(
    "--redact",
    "redact",
    metavar="NAME",
    multiple=True,
    help="Also treat NAME as secret (repeatable): the value of environment variable NAME and of option "
    "--NAME / NAME=... in any traced command line is written as <redacted>.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def capture(out: Path | None, no_interposer: bool, redact: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Run COMMAND unchanged and record the I/O of every Python process it starts.

    Everything after `--` is the training command, passed through untouched (its own options too):

    \b
      tracer capture -- python train.py --epochs 2
      tracer capture --out traces/run1 -- torchrun --nproc_per_node 2 train.py

    The command's exit code is tracer's exit code (127 / 126 when it cannot be found / run, as in a
    shell), and a command killed by a signal leaves tracer killed by the same signal. A Ctrl-C or a
    SIGTERM sent to the process group reaches the command once; one sent to tracer's pid alone is
    forwarded to it. Secrets in the command line and the environment (passwords, tokens, keys,
    credentials in URLs) are written as <redacted>. If the trace cannot be written, the command
    still runs and the problem is reported once; tracer's own messages never change the exit code.
    """
    try:
        result = capture_api.capture(list(command), out, interposer=not no_interposer, redact=redact)
    except CommandError as exc:
        tell(f"tracer capture: {exc}")
        raise SystemExit(exc.exit_code) from None
    if result.trace_dir is not None and result.summary is not None:
        tell(f"\ntrainio: trace written to {result.trace_dir}")
        tell(short_summary(result.summary))
        tell(f"next: tracer summary {result.trace_dir}   |   replay what-if --trace {result.trace_dir}")
    end_like(result.exit_code, result.killed_by)
