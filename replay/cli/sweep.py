"""``replay sweep``"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

import trainio
from trainio.replay.cli import main
from trainio.replay.cli.options import cpu_profile_option, positive_int
from trainio.replay.cli.progress import Progress
from trainio.replay.projection.engines import Engine, LocalPool, RayCluster, usable_cores
from trainio.replay.projection.grid import AXES, Grid
from trainio.replay.projection.sweep import run_sweep

INTERRUPTED = 130


def _grid_options(command):
    for axis in reversed(AXES):
        default = "1" if axis.field == "nodes" else None
        command = click.option(
            axis.option, axis.field, default=default, show_default=default is not None, help=f"{axis.help}."
        )(command)
    return command


@main.command("sweep")
@click.option("--trace", "trace_dir", required=True, type=click.Path(path_type=Path), help="Trace directory.")
@_grid_options
@click.option("--page-cache/--no-page-cache", default=None, help="As in what-if, for every configuration.")
@click.option("--no-overlap", is_flag=True, help="Do not overlap the all-reduce with compute.")
@click.option("--exact", is_flag=True, help="Simulate every request (slow; fast mode is the default).")
@cpu_profile_option
@click.option(
    "--stage-in-shard",
    is_flag=True,
    help="As in what-if: with a --stage-in, each node copies only its fixed shard of the data set.",
)
@click.option(
    "--out",
    default="sweep.parquet",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Sweep file (Parquet). An existing one of the same trace is reused and extended.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Also write the table as CSV beside --out (same name, .csv).")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: a process pool on this machine; ray: tasks on a Ray cluster (pip install 'trainio[ray]').",
)
@click.option(
    "--address",
    help="Ray cluster to use with --engine ray: HOST:PORT, ray://HOST:PORT or auto (the one `ray start` "
    "runs here) [start a Ray on this machine].",
)
@click.option(
    "--jobs",
    type=int,
    callback=positive_int,
    help="Configurations run at once [local: the usable cores; ray: the cluster's CPUs].",
)
def sweep(
    trace_dir: Path,
    page_cache: bool | None,
    no_overlap: bool,
    exact: bool,
    cpu_profile: Path | None,
    stage_in_shard: bool,
    out: Path,
    as_csv: bool,
    engine: str,
    address: str | None,
    jobs: int | None,
    **lists: str | None,
) -> None:
    """Project a trace over a grid of configurations into one table.

    Every value option takes a comma list and the grid is their product, e.g.

    \b
      replay sweep --trace TRACE --nodes 1,2,4,8,16,32,64 --backend local-nvme,cephfs,rgw \\
                   --format files,shards:256MiB --profile my-rgw.toml --out sweep.parquet
      replay sweep ... --engine ray --address auto

    Backends and --profile files are one storage axis; --stage-in none,local-nvme sets training
    straight from the storage beside copying the data to local NVMe first. One row per
    configuration: the parameters, every `what-if --json` key (nested ones as dotted columns), the
    projection's wall time (wall_s), an error column and time_to_value_winner (with several
    --stage-in choices: the one that delivers the model first at that configuration). A configuration
    that fails is recorded and the others go on. Ctrl-C keeps what finished; the same command again
    reuses finished rows (keyed by the trainio version, the trace's digest, the profiles' contents and
    the parameters) and runs the rest. Then: replay report --sweep FILE.
    """
    if address is not None and engine != "ray":
        raise click.BadParameter("only applies with --engine ray", param_hint="--address")
    if jobs is None and engine == "local":
        jobs = usable_cores()
    flags = {
        "page_cache": page_cache,
        "overlap_allreduce": not no_overlap,
        "exact": exact,
        "cpu_profile": cpu_profile,
        "stage_in_shard": stage_in_shard,
    }
    grid = Grid.parse(lists, flags)
    total = len(grid)
    runner: Engine = RayCluster(address, jobs) if engine == "ray" else LocalPool(jobs)
    where = f"{'Ray' if engine == 'ray' else 'local pool'}, {runner.workers} at once"
    click.echo(f"sweep  {total} configuration{'s' if total != 1 else ''} of {trace_dir} ({where})", err=True)
    progress = Progress("  sweep", "configs")
    started = time.monotonic()
    try:
        summary = run_sweep(trace_dir, grid, out, runner, csv=as_csv, progress=progress.update)
    finally:
        progress.close()
        runner.close()
    if summary.stale:
        click.echo(f"  dropped {summary.stale} rows another trainio version computed (not {trainio.__version__})")
    written = f"{out}" + (f" and {out.with_suffix('.csv')}" if as_csv else "")
    if not summary.complete:
        kept = summary.reused + summary.ran
        click.echo(
            f"replay sweep: interrupted: {kept} of {total} configurations kept in {out}; "
            "rerun the same command to finish",
            err=True,
        )
        sys.exit(INTERRUPTED)
    click.echo(
        f"  {summary.ran} ran, {summary.reused} reused, {summary.failed} failed"
        f" (see the error column) in {time.monotonic() - started:.1f} s"
        if summary.failed
        else f"  {summary.ran} ran, {summary.reused} reused in {time.monotonic() - started:.1f} s"
    )
    click.echo(f"  wrote {written}")
    click.echo(f"  next: replay report --sweep {out} --out report/")
