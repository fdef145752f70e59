"""``tracer finalize TRACE_DIR``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.tracer.cli import main
from trainio.tracer.finalize import finalize as finalize_trace


@main.command()
@click.argument("trace_dir", type=click.Path(path_type=Path))
def finalize(trace_dir: Path) -> None:
    """Compact the spool of a trace whose run was killed into Parquet (keeps every complete batch)."""
    manifest = finalize_trace(trace_dir)
    for line in manifest["lost"]:
        click.echo(f"tracer: lost: {line}", err=True)
    click.echo(f"finalized {trace_dir}\nnext: tracer summary {trace_dir}")
