"""The ``tracer`` command: capture a training run's I/O, then summarise or export the trace."""

from __future__ import annotations

import click

from trainio import __version__
from trainio.tracefile.cli import OneLineErrors, UserError
from trainio.tracefile.errors import TraceError
from trainio.tracer.errors import CaptureError, FinalizeError, LiveProcessesError


class TracerGroup(OneLineErrors):
    bad_input = (UserError, TraceError, CaptureError, LiveProcessesError)
    failures = (FinalizeError,)


@click.group(cls=TracerGroup, name="tracer")
@click.version_option(__version__, prog_name="tracer")
def main() -> None:
    """Capture the real I/O of a training run into a trace directory, then inspect it.

    \b
      tracer capture -- python train.py --epochs 2
      tracer summary TRACE_DIR [--json]
      tracer export TRACE_DIR --chrome run.json
      tracer export TRACE_DIR --anonymize --out SHARED_DIR   (names hashed, for sharing)
      tracer finalize TRACE_DIR        (a trace whose run was killed)
    """


from trainio.tracer.cli import capture, export, finalize, summary  # noqa: E402 - subcommands register on main

__all__ = ["main", "capture", "export", "finalize", "summary"]
