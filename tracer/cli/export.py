"""``tracer export TRACE_DIR --chrome FILE``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.tracer.cli import main


@main.command()
@click.argument("trace_dir", type=click.Path(path_type=Path))
@click.option(
    "--chrome",
    "chrome",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write a Chrome trace-event JSON file (open in Perfetto or chrome://tracing).",
)
@click.option("--all-io", is_flag=True, help="Include runtime reads (Python modules, libraries), not only data.")
def export(trace_dir: Path, chrome: Path, all_io: bool) -> None:
    """Export a trace for a timeline viewer: one track per process and thread."""
    from trainio.tracefile.reader import open_trace  # pyarrow, loaded by the commands that need it
    from trainio.tracer.chrome import write_chrome_trace

    trace = open_trace(trace_dir)
    count = write_chrome_trace(trace, chrome, data_only=not all_io)
    click.echo(f"wrote {count} events to {chrome}\nnext: open it in https://ui.perfetto.dev")
