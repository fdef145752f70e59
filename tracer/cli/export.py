"""``tracer export TRACE_DIR --chrome FILE`` / ``--anonymize --out DIR``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.tracefile.cli import UserError
from trainio.tracer.cli import main


@main.command()
@click.argument("trace_dir", type=click.Path(path_type=Path))
@click.option(
    "--chrome",
    "chrome",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a Chrome trace-event JSON file (open in Perfetto or chrome://tracing).",
)
@click.option("--all-io", is_flag=True, help="Include runtime reads (Python modules, libraries), not only data.")
@click.option(
    "--anonymize",
    is_flag=True,
    help="For sharing: hash every path component, bucket and object key (salted, stable within this export), "
    "drop the command lines and the environment; sizes, offsets, timings and the directory shape are kept.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --anonymize: write an anonymized copy of the trace into this new directory.",
)
def export(trace_dir: Path, chrome: Path | None, all_io: bool, anonymize: bool, out: Path | None) -> None:
    """Export a trace: for a timeline viewer (--chrome, one track per process and thread), or an
    anonymized copy to share (--anonymize --out DIR), which `tracer summary` and `replay` read as
    they read the original.

    \b
      tracer export run1 --chrome run1.json
      tracer export run1 --anonymize --out run1-shared [--chrome run1-shared.json]
    """
    if chrome is None and out is None:
        raise UserError("nothing to export: give --chrome FILE and/or --anonymize --out DIR")
    if out is not None and not anonymize:
        raise UserError("--out writes an anonymized copy: add --anonymize")
    from trainio.tracefile.reader import open_trace  # pyarrow, loaded by the commands that need it
    from trainio.tracer.anonymize import Anonymizer, anonymize_trace, describe
    from trainio.tracer.chrome import write_chrome_trace

    anon = Anonymizer() if anonymize else None
    trace = open_trace(trace_dir)
    if out is not None and anon is not None:
        anonymize_trace(trace_dir, out, anon)
        click.echo(f"wrote an anonymized copy of {trace_dir} to {out}")
    if chrome is not None:
        shown = (lambda path: anon.path(path) or "") if anon is not None else None
        count = write_chrome_trace(trace, chrome, data_only=not all_io, shown=shown)
        click.echo(f"wrote {count} events to {chrome}")
    if anon is not None:
        click.echo(describe())
    click.echo(f"next: tracer summary {out}" if out is not None else "next: open it in https://ui.perfetto.dev")
