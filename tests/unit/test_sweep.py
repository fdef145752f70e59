"""Sweeps through the Python API: the grid, the sweep file, reuse of finished rows, failures recorded."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import trainio
from trainio.models.backend import ProfileError
from trainio.models.formats import FormatError
from trainio.models.stagein import StageInError
from trainio.models.timeline import Recorder
from trainio.replay.cli.progress import Progress
from trainio.replay.projection.engines import LocalPool, RayCluster, RayUnavailableError
from trainio.replay.projection.grid import Grid, GridError, key
from trainio.replay.projection.scenario import Scenario, ScenarioError, project_trace
from trainio.replay.projection.sweep import SweepError, run_sweep
from trainio.replay.projection.sweepfile import (
    SweepFileError,
    SweepTable,
    SweepVersionError,
    read_sweep,
    write_sweep,
)

TRACES = Path(__file__).resolve().parents[2] / "traces"
TRACE = TRACES / "imagenet_jpeg-cpu"


def test_the_grid_is_the_product_of_the_lists_and_backends_and_profiles_are_one_axis(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text((Path(__file__).resolve().parents[2] / "models/profiles/rgw.toml").read_text())
    grid = Grid.parse({"nodes": "1,2,4", "backend": "cephfs,rgw", "profile": str(profile), "workers": "0,2"})
    configs = grid.configurations()
    assert len(configs) == 3 * 3 * 2
    storages = {(c["backend"], c["profile"]) for c in configs}
    assert storages == {("cephfs", None), ("rgw", None), ("as-captured", str(profile))}
    assert {c["nodes"] for c in configs} == {1, 2, 4} and {c["workers"] for c in configs} == {0, 2}


@pytest.mark.parametrize(
    ("lists", "error", "says"),
    [
        ({"nodes": ""}, GridError, "--nodes '' lists no value"),
        ({"nodes": " , "}, GridError, "lists no value"),
        ({"nodes": "1,0"}, GridError, "--nodes: 0 must be >= 1"),
        ({"nodes": "two"}, GridError, "'two' is not a whole number"),
        ({"backend": "rgw,lustre"}, GridError, "'lustre' is not a known backend"),
        ({"format": "files,tar"}, FormatError, "format 'tar'"),
        ({"profile": "/nonexistent.toml"}, ProfileError, "/nonexistent.toml"),
        ({"compute_scale": "0.5,-1"}, GridError, "must be a number > 0"),
        ({"stage_in": "none,nfs"}, StageInError, "cannot stage in to nfs: it is shared storage"),
        ({"stage_in": "lustre"}, ScenarioError, "neither a built-in profile nor a profile file"),
        ({"nodes_with_space": "0.5,2"}, GridError, "--nodes-with-space: 2.0 must be a fraction from 0 to 1"),
        ({"epochs": "2,1001"}, GridError, "--epochs: 1001 must be <= 1,000"),
        ({"gpus_per_node": "8,257"}, GridError, "--gpus-per-node: 257 must be <= 256"),
        ({"dataset_samples": "1000000001"}, GridError, "--dataset-samples: 1000000001 must be <= 1,000,000,000"),
    ],
)
def test_bad_lists_are_named_errors(lists, error, says):
    with pytest.raises(error, match=says.replace("(", r"\(")):
        Grid.parse(lists)


def test_stage_in_is_one_more_axis_and_the_copy_parameters_only_multiply_the_copies():
    grid = Grid.parse(
        {"nodes": "1,2", "backend": "cephfs", "stage_in": "none,local-nvme", "local_capacity_bytes": "1TB,2TB"},
        {"stage_in_shard": True},
    )
    configs = grid.configurations()
    straight = [c for c in configs if c["stage_in"] is None]
    copied = [c for c in configs if c["stage_in"] == "local-nvme"]
    assert len(straight) == 2 and len(copied) == 2 * 2 and len(grid) == 6
    assert all(c["local_capacity_bytes"] is None and c["stage_in_shard"] is False for c in straight)
    assert {c["local_capacity_bytes"] for c in copied} == {1e12, 2e12} and all(c["stage_in_shard"] for c in copied)


def test_the_reuse_key_holds_the_trainio_version(monkeypatch):
    config = Grid.parse({"nodes": "2", "backend": "rgw"}).configurations()[0]
    now = key(config, "digest", {"rgw": "profile"})
    assert key(config, "digest", {"rgw": "profile"}) == now
    monkeypatch.setattr(trainio, "__version__", "99.0.0")
    assert key(config, "digest", {"rgw": "profile"}) != now


def test_after_an_upgrade_no_row_is_reused_and_the_older_rows_are_dropped(tmp_path, monkeypatch):
    out = tmp_path / "sweep.parquet"
    grid = Grid.parse({"nodes": "1,2", "backend": "rgw", "epochs": "1"})
    first = run_sweep(TRACE, grid, out, LocalPool(1))
    assert (first.ran, first.stale) == (2, 0)
    assert run_sweep(TRACE, grid, out, LocalPool(1)).reused == 2
    monkeypatch.setattr(trainio, "__version__", "99.0.0")
    upgraded = run_sweep(TRACE, grid, out, LocalPool(1))
    assert (upgraded.ran, upgraded.reused, upgraded.stale) == (2, 0, 2)
    rows = read_sweep(out).rows
    assert len(rows) == 2 and {row["tool_version"] for row in rows} == {"99.0.0"}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A small sweep of the bundled ImageNet trace, one configuration of which cannot run."""
    out = tmp_path_factory.mktemp("sweep") / "sweep.parquet"
    grid = Grid.parse({"nodes": "1,4", "backend": "local-nvme,rgw", "format": "files,shards:256MiB"})
    bad = Grid.parse({"nodes": "4", "backend": "rgw", "nic_bandwidth": "0MB/s"})
    seen = []
    summary = run_sweep(TRACE, grid, out, LocalPool(1), progress=lambda done, total: seen.append((done, total)))
    failing = run_sweep(TRACE, bad, out, LocalPool(1))
    return out, summary, failing, seen


def test_a_sweep_writes_one_row_per_configuration_with_the_what_if_keys(swept):
    out, summary, _, seen = swept
    assert (summary.configurations, summary.ran, summary.reused, summary.failed) == (8, 8, 0, 0)
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    table = read_sweep(out)
    assert table.meta["format"] == "trainio-sweep" and table.meta["trace_digest"]
    row = next(r for r in table.rows if r["nodes"] == 4 and r["backend"] == "rgw" and r["format"] == "files")
    expected, _, _ = project_trace(TRACE, Scenario(nodes=4, backend="rgw", format="files"))
    assert row["time_to_train_s"] == pytest.approx(expected.time_to_train_s)
    assert row["bottleneck"] == expected.bottleneck
    assert row["backend_capacity.iops"] == expected.backend_capacity["iops"]
    assert row["bottleneck_evidence.loader_time_share.cpu"] is not None
    assert row["wall_s"] > 0 and row["error"] is None and len(row["key"]) == 32


def test_a_failed_configuration_is_recorded_and_the_others_stay(swept):
    out, _, failing, _ = swept
    assert (failing.ran, failing.failed) == (1, 1)
    rows = read_sweep(out).rows
    assert len(rows) == 9  # the first grid's 8 rows stay beside the new one
    error = next(r for r in rows if r["error"] is not None)
    assert error["nic_bandwidth"] == 0 and error["error"] == "ClusterError: nic_bandwidth(=0.0) must be > 0"
    assert error["time_to_train_s"] is None


def test_rerunning_reuses_finished_rows_and_retries_failed_ones(swept):
    out, _, _, _ = swept
    grid = Grid.parse({"nodes": "1,4,8", "backend": "local-nvme,rgw", "format": "files,shards:256MiB"})
    again = run_sweep(TRACE, grid, out, LocalPool(1))
    assert (again.configurations, again.reused, again.ran) == (12, 8, 4)
    bad = Grid.parse({"nodes": "4", "backend": "rgw", "nic_bandwidth": "0MB/s"})
    assert run_sweep(TRACE, bad, out, LocalPool(1)).ran == 1


def test_a_sweep_of_another_trace_is_not_overwritten(swept):
    out, _, _, _ = swept
    before = out.read_bytes()
    with pytest.raises(SweepError, match="holds a sweep of another trace"):
        run_sweep(TRACES / "translation_streaming-cpu", Grid.parse({"nodes": "1"}), out, LocalPool(1))
    assert out.read_bytes() == before


def test_ctrl_c_keeps_what_finished(tmp_path):
    class Interrupted(LocalPool):
        def run(self, loaded, configs):
            runs = super().run(loaded, configs)
            yield next(runs)
            raise KeyboardInterrupt

    out = tmp_path / "sweep.parquet"
    summary = run_sweep(TRACE, Grid.parse({"nodes": "1,2,4"}), out, Interrupted(1))
    assert not summary.complete and summary.ran == 1
    assert len(read_sweep(out).rows) == 1


def _parquet(path: Path, metadata: dict[bytes, bytes] | None) -> Path:
    table = pa.table({"key": ["x"], "nodes": [1]})
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


@pytest.mark.parametrize(
    ("make", "error", "says"),
    [
        (lambda p: p.write_bytes(b""), SweepFileError, "not a Parquet file"),
        (lambda p: p.write_bytes(b"nodes,time\n1,2\n"), SweepFileError, "not a Parquet file"),
        (lambda p: _parquet(p, None), SweepFileError, "not a sweep file \\(a Parquet file without"),
        (
            lambda p: _parquet(p, {b"trainio.format": b"trainio-trace", b"trainio.format_version": b"1.1"}),
            SweepFileError,
            "not a sweep file \\(a trainio-trace file\\)",
        ),
        (
            lambda p: _parquet(p, {b"trainio.format": b"trainio-sweep", b"trainio.format_version": b"2.0"}),
            SweepVersionError,
            "sweep format version 2.0",
        ),
    ],
)
def test_the_reader_refuses_what_is_not_a_sweep_file_of_its_version(tmp_path, make, error, says):
    path = tmp_path / "bad.parquet"
    make(path)
    with pytest.raises(error, match=says) as info:
        read_sweep(path)
    assert str(path) in str(info.value)


def test_a_truncated_sweep_file_is_refused(tmp_path):
    path = tmp_path / "sweep.parquet"
    write_sweep(path, SweepTable([{"key": "k", "nodes": 1, "error": None}], {"trace": "t"}))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SweepFileError, match="cannot read sweep"):
        read_sweep(path)


def test_the_timeline_accounts_for_the_projected_compute_and_reads():
    recorder = Recorder()
    result, _, _ = project_trace(TRACE, Scenario(nodes=2, backend="rgw", epochs=3), recorder)
    binned = recorder.binned(result.time_to_train_s, bins=200)
    width = binned.edges_s[1] - binned.edges_s[0]
    assert (binned.compute.sum() * width) / result.time_to_train_s == pytest.approx(
        result.accelerator_utilization, rel=0.02
    )
    read_bytes = binned.read_MBps.sum() * width * 1e6 * result.nodes
    assert read_bytes / result.time_to_train_s / 1e6 == pytest.approx(result.read_MBps, rel=0.02)


def test_fast_mode_marks_the_extrapolated_middle_of_long_epochs():
    recorder = Recorder()
    result, _, _ = project_trace(TRACE, Scenario(backend="rgw", dataset_samples=50_000, epochs=2), recorder)
    binned = recorder.binned(result.time_to_train_s)
    assert len(binned.extrapolated) == 2
    width = binned.edges_s[1] - binned.edges_s[0]
    assert binned.compute.sum() * width == pytest.approx(result.compute_s, rel=0.02)


def test_progress_shows_done_total_rate_and_eta_on_a_terminal_only():
    now = [0.0]
    stream = io.StringIO()
    bar = Progress("sweep", "configs", stream, enabled=True, clock=lambda: now[0])
    now[0] = 3.0
    bar.update(0, 20)  # the work starts: the rate counts from here
    now[0] = 13.0
    bar.update(5, 20)
    assert "5/20" in stream.getvalue() and "0.50 configs/s" in stream.getvalue() and "ETA 0:00:30" in stream.getvalue()
    quiet = io.StringIO()
    Progress("sweep", "configs", quiet).update(1, 2)  # StringIO is not a terminal
    assert quiet.getvalue() == ""


def test_without_ray_installed_the_ray_engine_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    with pytest.raises(RayUnavailableError, match=r"pip install 'trainio\[ray\]'"):
        RayCluster("127.0.0.1:6379")
