"""``tracer summary TRACE_DIR``"""

from __future__ import annotations

import json
from pathlib import Path

import click

from trainio.tracer.cli import main


@main.command()
@click.argument("trace_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON contract instead of a table.")
def summary(trace_dir: Path, as_json: bool) -> None:
    """Summarise a trace: bytes and operations, access pattern, data stall, coverage.

    `--json` prints the stable keys documented in docs/trace-format.md (bytes_read,
    runtime_bytes_read, data_roots, read_ops, ..., pattern, coverage).
    """
    from trainio.tracefile.reader import open_trace  # pyarrow, loaded by the commands that need it
    from trainio.tracefile.summary import summarize
    from trainio.tracer.report import full_summary

    trace = open_trace(trace_dir)
    for warning in trace.warnings:
        click.echo(f"tracer: warning: {warning}", err=True)
    digest = summarize(trace)
    click.echo(json.dumps(digest, indent=2) if as_json else full_summary(digest, trace_dir))
