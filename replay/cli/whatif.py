"""``replay what-if``"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from trainio.models.captured import NAME as AS_CAPTURED
from trainio.models.stagein import COPY_STREAMS
from trainio.models.timeline import Recorder
from trainio.models.units import parse_bandwidth, parse_size
from trainio.replay.cli import main
from trainio.replay.cli.options import compute_scale_option, cpu_profile_option, positive_int
from trainio.replay.projection.grid import NO_STAGE_IN
from trainio.replay.projection.render import whatif_table
from trainio.replay.projection.scenario import MAX_EPOCHS, MAX_GPUS_PER_NODE, MAX_SAMPLES, Scenario, project_trace
from trainio.replay.projection.timeline import write_timeline


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return None if value is None else parse_size(value, f"--{param.name.replace('_', '-')}")


def _bytes(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A size that is a count of bytes: finite."""
    size = _size(ctx, param, value)
    if size is not None and not math.isfinite(size):
        raise click.BadParameter(f"must be a finite size (got {value!r})")
    return None if size is None else int(size)


def _bandwidth(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    return None if value is None else parse_bandwidth(value, f"--{param.name.replace('_', '-')}")


@main.command("what-if")
@click.option("--trace", "trace_dir", required=True, type=click.Path(path_type=Path), help="Trace directory.")
@click.option("--nodes", default=1, show_default=True, type=int, callback=positive_int, help="Nodes in the job.")
@click.option(
    "--gpus-per-node", type=click.IntRange(1, MAX_GPUS_PER_NODE), help="Training processes per node [captured]."
)
@click.option(
    "--backend",
    default=AS_CAPTURED,
    show_default=True,
    help="Built-in storage profile (see `replay backends`), or as-captured: fitted from the trace.",
)
@click.option(
    "--profile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A storage profile TOML file (e.g. written by `replay calibrate`); overrides --backend.",
)
@click.option("--format", "fmt", help="Record format: files, shards:SIZE (e.g. shards:256MiB) or preload [captured].")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), help="Epochs [captured].")
@click.option(
    "--dataset-samples",
    type=click.IntRange(1, MAX_SAMPLES),
    help="Scale the data set to N samples, keeping the per-sample distributions [captured].",
)
@click.option("--workers", type=int, help="DataLoader workers per process [captured].")
@click.option("--batch-size", type=int, callback=positive_int, help="Batch size per process [captured].")
@compute_scale_option(
    "Multiply the accelerator's share of each step (the step less the training process's own CPU, "
    "which stays): 0.5 = an accelerator twice as fast."
)
@click.option("--model-bytes", callback=_bytes, help="Gradient bytes all-reduced per step, e.g. 100MB [none].")
@click.option("--cpus-per-node", type=int, callback=positive_int, help="CPU cores per node [captured host].")
@cpu_profile_option
@click.option("--node-memory", callback=_size, help="Page-cache memory per node, e.g. 256GiB [captured host].")
@click.option(
    "--page-cache/--no-page-cache",
    default=None,
    help="Whether the nodes' reads go through the Linux page cache [the backend's]. --no-page-cache for "
    "loaders that read through a user-space client (librados, libcephfs, an S3 SDK) or with O_DIRECT.",
)
@click.option(
    "--readahead",
    callback=_size,
    help="Memory-mapped data sets: bytes one page fault reads from storage (the kernel's readahead window, "
    "read_ahead_kb of the device or the mount), e.g. 128KiB [as the capture measured it, else 128KiB].",
)
@click.option("--nic", callback=_bandwidth, help="Storage NIC per node, e.g. '25 Gbit/s' [unlimited].")
@click.option("--interconnect", callback=_bandwidth, help="All-reduce link per rank [100 Gbit/s].")
@click.option("--no-overlap", is_flag=True, help="Do not overlap the all-reduce with compute.")
@click.option("--exact", is_flag=True, help="Simulate every request (reference mode; slow on large cases).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--stage-in",
    metavar="TARGET",
    help="Before training, every node copies the data it reads from --backend to TARGET, node-local "
    "storage (local-nvme, local-ssd or a profile TOML), and trains from there. With per-epoch "
    "reshuffling across the whole data set every node copies all of it [none: train from --backend itself].",
)
@click.option(
    "--stage-in-shard",
    is_flag=True,
    help="With --stage-in: each node keeps a fixed shard (the sampler never crosses shards), so copies 1/nodes.",
)
@click.option(
    "--stage-in-streams",
    default=COPY_STREAMS,
    show_default=True,
    type=int,
    callback=positive_int,
    help="With --stage-in: files each node copies at once.",
)
@click.option(
    "--local-capacity",
    callback=_size,
    help="With --stage-in: node-local disk for the data set, e.g. 7.68TB [the target profile's local_capacity_bytes].",
)
@click.option(
    "--nodes-with-space",
    type=click.FloatRange(0, 1),
    help="With --stage-in: fraction of the GPU nodes with that much local disk free, 0-1 [all].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (the stable keys).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the run's timeline into this PNG: accelerator busy vs stalled, storage reads, "
    "epoch boundaries, preload.",
)
def whatif(
    trace_dir: Path,
    nodes: int,
    gpus_per_node: int | None,
    backend: str,
    profile: Path | None,
    fmt: str | None,
    epochs: int | None,
    dataset_samples: int | None,
    workers: int | None,
    batch_size: int | None,
    compute_scale: float,
    model_bytes: int | None,
    cpus_per_node: int | None,
    cpu_profile: Path | None,
    node_memory: float | None,
    page_cache: bool | None,
    readahead: float | None,
    nic: float | None,
    interconnect: float | None,
    no_overlap: bool,
    exact: bool,
    seed: int,
    stage_in: str | None,
    stage_in_shard: bool,
    stage_in_streams: int,
    local_capacity: float | None,
    nodes_with_space: float | None,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Project the time-to-train of a captured run under other conditions.

    Everything not given stays as captured. The result names the bottleneck (compute,
    storage-bandwidth, storage-latency, storage-iops, network, cpu-preprocessing, storage-cpu:
    cores busy mostly with storage requests' CPU, preload, host-cpu: the training processes
    waiting for a core for their own step work) and
    the numbers behind it; --json prints time_to_train_s, per_epoch_s, accelerator_utilization,
    stall_fraction, read_MBps, read_ops_per_s, backend_capacity, bottleneck, bottleneck_evidence,
    stage_in_s, time_to_value_s (stage-in + time to train; null when the data cannot be staged),
    local_reserved_bytes, eligible_node_fraction and staging (the copy's details).
    """
    if workers is not None and workers < 0:
        raise click.BadParameter(f"must be >= 0 (got {workers})", param_hint="--workers")
    stage_in = None if stage_in == NO_STAGE_IN else stage_in
    if stage_in is None and (stage_in_shard or local_capacity is not None or nodes_with_space is not None):
        raise click.UsageError("--stage-in-shard, --local-capacity and --nodes-with-space apply only with --stage-in")
    scenario = Scenario(
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        backend=backend,
        profile=profile,
        format=fmt,
        epochs=epochs,
        dataset_samples=dataset_samples,
        workers=workers,
        batch_size=batch_size,
        compute_scale=compute_scale,
        model_bytes=model_bytes,
        cpus_per_node=cpus_per_node,
        cpu_profile=cpu_profile,
        node_memory_bytes=node_memory,
        page_cache=page_cache,
        readahead_bytes=readahead,
        nic_bandwidth=nic,
        interconnect_bandwidth=interconnect,
        overlap_allreduce=not no_overlap,
        exact=exact,
        seed=seed,
        stage_in=stage_in,
        stage_in_shard=stage_in_shard,
        stage_in_streams=stage_in_streams,
        local_capacity_bytes=local_capacity,
        nodes_with_space=nodes_with_space,
    )
    recorder = Recorder() if plot is not None else None
    result, workload, warnings = project_trace(trace_dir, scenario, recorder)
    for warning in warnings:
        click.echo(f"replay: warning: {warning}", err=True)
    if as_json:
        payload = result.to_dict()
        payload["captured_duration_s"] = workload.captured_duration_s
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(whatif_table(result, workload))
    if recorder is not None and plot is not None:
        write_timeline(plot, result, recorder)
        click.echo(f"  timeline           {plot}", err=as_json)
