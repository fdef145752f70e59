"""``tracer finalize TRACE_DIR``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.tracer.cli import main


@main.command()
@click.argument("trace_dir", type=click.Path(path_type=Path))
def finalize(trace_dir: Path) -> None:
    """Turn the spool of a trace whose capture was killed into Parquet, keeping every readable record.

    Refuses (exit 2) while traced processes still run; the spool is deleted only after the Parquet
    files that replace it are written and checked.
    """
    from trainio.tracer.finalize import finalize as finalize_trace  # pyarrow: loaded when needed

    manifest = finalize_trace(trace_dir).manifest
    for line in manifest["lost"]:
        click.echo(f"tracer: lost: {line}", err=True)
    click.echo(f"finalized {trace_dir}\nnext: tracer summary {trace_dir}")
