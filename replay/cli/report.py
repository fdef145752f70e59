"""``replay report``"""

from __future__ import annotations

from pathlib import Path

import click

from trainio.models.units import parse_duration
from trainio.replay.cli import main
from trainio.replay.projection.pages import write_report
from trainio.replay.projection.report import BUSY, Target, build_report
from trainio.replay.projection.sweepfile import read_sweep


@main.command("report")
@click.option(
    "--sweep", "sweep_file", required=True, type=click.Path(path_type=Path), help="A sweep file (replay sweep --out)."
)
@click.option(
    "--out",
    "out_dir",
    default="report",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for index.html, report.md and the figures (PNG).",
)
@click.option("--deadline", help="Time to train to meet, e.g. 12h, 90min.")
@click.option("--target-au", type=float, help=f"Accelerator utilisation to meet, 0-1 [{BUSY} unless --deadline].")
def report(sweep_file: Path, out_dir: Path, deadline: str | None, target_au: float | None) -> None:
    """Answer the capacity questions of a sweep in a page with figures.

    Writes OUT/index.html (self-contained: views offline), the same as OUT/report.md, and the figures:
    time to train vs nodes (log-log, with the ideal linear speedup), accelerator utilisation per
    configuration (the 90% line marked), storage demand next to each storage's capacity, and each
    configuration's bottleneck. The answers, computed from the table: the fewest nodes that meet the
    target on each storage (or the closest miss), the most GPUs each keeps at least 90% busy, what
    packing files into shards gains, the bandwidth and request rate the target needs, and where the
    network or host CPU, not storage, limits.
    """
    deadline_s = parse_duration(deadline, "--deadline") if deadline is not None else None
    target = Target(deadline_s, target_au if target_au is not None or deadline_s is not None else BUSY)
    made = build_report(read_sweep(sweep_file), target)
    written = write_report(made, out_dir)
    click.echo(made.sections[0].sentences[0])
    click.echo(f"  wrote {', '.join(str(p) for p in written)}")
    click.echo(f"  open {out_dir / 'index.html'} in a browser (or read {out_dir / 'report.md'})")
