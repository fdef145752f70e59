"""``replay emulate``"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from trainio.models.captured import NAME as AS_CAPTURED
from trainio.replay.cli import main
from trainio.replay.cli.options import (
    compute_scale_option,
    load_trace,
    nodes_option,
    overwrite_option,
    positive_int,
    timeout_options,
    timeouts_of,
)
from trainio.replay.projection.scenario import MAX_EPOCHS
from trainio.replay.real.emulate import EmulateOptions, EmulationResult, emulate, target_of
from trainio.replay.real.ranks import Snapshot
from trainio.replay.storage.target import TargetError
from trainio.tracefile.cli import UserError

INTERRUPTED = 130
"""The exit status of a run stopped by Ctrl-C (128 + SIGINT), after its partial result is printed."""
BAR = 24


def _target(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        target_of(value, ctx.params.get("endpoint"))
    except TargetError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


class _Progress:
    """A bar with live accelerator utilisation and throughput on a terminal; a line every few seconds
    elsewhere (a log, a pipe)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.said = -1.0
        self.drawn = False

    def __call__(self, snap: Snapshot) -> None:
        done = min(1.0, snap.steps / snap.total_steps) if snap.total_steps else 0.0
        text = (
            f"{done:4.0%} {snap.steps:,}/{snap.total_steps:,} steps  AU {snap.accelerator_utilization:.2f}  "
            f"{snap.bytes / 1e6 / snap.elapsed_s:,.1f} MB/s  {snap.ops / snap.elapsed_s:,.0f} req/s  "
            f"{snap.elapsed_s:.1f} s"
        )
        if self.tty:
            filled = int(BAR * done)
            click.echo(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {text}\033[K", err=True, nl=False)
            self.drawn = True
        elif snap.elapsed_s - self.said >= 5:
            self.said = snap.elapsed_s
            click.echo(f"replay emulate: {text}", err=True)

    def end(self) -> None:
        if self.drawn:
            click.echo("", err=True)


def summary(result: EmulationResult) -> str:
    """Measured next to projected, throughput, latency, the client's CPU."""
    d = result.details
    epochs = ", ".join(f"{s:.2f}" for s in result.per_epoch_s)
    lines = [
        f"  emulated     {result.ranks} rank(s) on {result.nodes} node(s), {d['workers']} worker(s) each, "
        f"batch {d['batch_size']}, {result.format}, {d['shuffle']}, on {result.target}",
        f"  time         {result.time_to_train_s:.2f} s measured   (epochs {epochs} s)"
        + ("   INTERRUPTED: what ran until Ctrl-C" if result.interrupted else ""),
        f"  projected    {result.projected_time_to_train_s:.2f} s by what-if ({d['projection']['backend']}): "
        f"{result.projection_difference_pct:+.1f}%, bottleneck {result.projected_bottleneck}",
    ]
    if result.captured_time_to_train_s is not None:
        lines.append(f"  captured     {result.captured_time_to_train_s:.2f} s: the traced run itself")
    lines += [
        f"  AU           {result.accelerator_utilization:.3f} measured, {result.projected_accelerator_utilization:.3f} "
        f"projected   (stall {result.stall_fraction:.1%})",
        f"  read         {result.bytes / 1e6:,.1f} MB in {result.ops:,} requests "
        f"({result.read_MBps:,.1f} MB/s, {result.read_ops_per_s:,.0f}/s); plan {result.expected_bytes / 1e6:,.1f} MB "
        f"in {result.expected_ops:,}",
        f"  latency      p50 {result.lat_p50_ms:.3f} ms, p99 {result.lat_p99_ms:.3f} ms",
    ]
    if result.client_cpu_busy is not None and result.host_cpu_busy is not None:
        limit = {
            "client-cpu": "   the CLIENT's CPU was the limit, not the storage",
            "host-cpu": "   this host's CPU was the limit (the emulation and other work on it), not the storage",
        }.get(result.limited_by or "", "")
        lines.append(
            f"  client CPU   {result.client_cpu_busy:.0%} of this host's {d['host_cpus']} cores "
            f"({result.emulator_cpu_s:.1f} CPU-s); the host {result.host_cpu_busy:.0%} busy{limit}"
        )
    layout = d["layout"]
    lines.append(
        f"  layout       {layout['files']:,} files at {layout['root']}: "
        + ("reused (its manifest matched)" if layout["reused"] else f"{layout['written']:,} written")
    )
    return "\n".join(lines)


@main.command("emulate")
@click.option("--trace", "trace_dir", required=True, type=click.Path(path_type=Path), help="Trace directory.")
@click.option(
    "--endpoint",
    envvar="TRAINIO_S3_ENDPOINT",
    is_eager=True,
    help="S3 endpoint URL for --target s3://BUCKET/PREFIX [env TRAINIO_S3_ENDPOINT].",
)
@click.option(
    "--target",
    required=True,
    callback=_target,
    help="DIR, rados:POOL, rgw:http://HOST:PORT/BUCKET or s3://BUCKET/PREFIX (with --endpoint).",
)
@nodes_option("Nodes emulated at once, each a group of processes")
@click.option("--format", "fmt", default="files", show_default=True, help="files (as traced) or shards:SIZE.")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), help="Epochs [traced].")
@compute_scale_option("Multiply the traced step compute time: 0.5 = an accelerator twice as fast.")
@click.option("--workers", type=click.IntRange(0, 64), help="Loader workers per rank [traced].")
@click.option("--batch-size", type=int, callback=positive_int, help="Samples per batch [traced].")
@click.option("--shuffle", is_flag=True, help="A fresh seeded shuffle every epoch instead of the traced order.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option(
    "--backend", default=AS_CAPTURED, show_default=True, help="Profile of the what-if projection to compare with."
)
@click.option(
    "--profile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A storage profile TOML for that projection (e.g. from `replay calibrate`); overrides --backend.",
)
@timeout_options
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def emulate_command(
    trace_dir: Path,
    endpoint: str | None,
    target: str,
    nodes: int,
    fmt: str,
    epochs: int | None,
    compute_scale: float,
    workers: int | None,
    batch_size: int | None,
    shuffle: bool,
    seed: int,
    backend: str,
    profile: Path | None,
    connect_timeout: float,
    read_timeout: float,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Measure time to train on real storage from a trace, without the training code or a GPU.

    \b
      replay emulate --trace TRACE --target /mnt/cephfs/ds                  a directory
      replay emulate --trace TRACE --target s3://train/ds --endpoint URL --nodes 2
      replay emulate --trace TRACE --target rados:trainpool --format shards:64MiB

    Rebuilds the traced pipeline: per rank the traced loader workers (processes), prefetch depth and
    batches (the traced sample order, or --shuffle), and a loop that waits for each batch and sleeps
    the traced step time (x --compute-scale), as MLPerf Storage emulates an accelerator. Every sample's
    reads are issued for real against the target with the traced sizes and offsets; the traced time
    outside I/O of each sample (decode, transforms) is slept, not burnt as CPU. --nodes N runs N
    emulated nodes as N process groups on THIS host, sharing its CPU and NIC; the result says when the
    client (its cores 90% busy), not the storage, was the limit. The data set is laid out first (files,
    or tar shards with --format shards:SIZE) in a place of trainio's own and reused while its manifest
    matches. Prints time to train, per-epoch times, accelerator utilisation, stall, read MB/s,
    requests/s and latency, measured, next to `replay what-if` for the same configuration (--backend /
    --profile); --json prints time_to_train_s, per_epoch_s, accelerator_utilization, stall_fraction,
    read_MBps, read_ops_per_s, lat_p50_ms, lat_p99_ms, projected_time_to_train_s,
    projection_difference_s, projection_difference_pct and more. Ctrl-C stops it and prints what was
    measured (exit 130).
    """
    trace = load_trace(trace_dir, "replay emulate")
    options = EmulateOptions(
        nodes=nodes,
        fmt=fmt,
        epochs=epochs,
        compute_scale=compute_scale,
        workers=workers,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        backend=backend,
        profile=profile,
        endpoint=endpoint,
        overwrite=overwrite,
        timeouts=timeouts_of(connect_timeout, read_timeout),
    )
    bar = _Progress()
    try:
        result = emulate(
            trace,
            target,
            options,
            progress=bar,
            say=lambda line: click.echo(f"replay emulate: {line}", err=True),
        )
    except (TargetError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    finally:
        bar.end()
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else summary(result))
    if result.interrupted:
        sys.exit(INTERRUPTED)
