"""Projections of the bundled real traces: the self-check and the motivating experiment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.synthetic import io_row, make_trace
from trainio.models.workload import WorkloadError
from trainio.replay.projection.scenario import Scenario, ScenarioError, project_trace

TRACES = Path(__file__).resolve().parents[2] / "traces"
BUNDLED = sorted(p.name for p in TRACES.iterdir() if (p / "manifest.json").exists())


def test_there_are_bundled_traces_of_both_patterns():
    assert {"detection_preload-cpu", "translation_streaming-cpu", "imagenet_jpeg-cpu"} <= set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_as_captured_reproduces_the_captured_run_within_5_percent(name):
    result, workload, _ = project_trace(TRACES / name, Scenario(backend="as-captured"))
    assert workload.captured_duration_s is not None
    error = result.time_to_train_s / workload.captured_duration_s - 1
    assert abs(error) < 0.05, (
        f"{name}: projected {result.time_to_train_s:.3f} s vs {workload.captured_duration_s:.3f} s"
    )


def _ttt(name: str, backend: str, **overrides) -> tuple[float, str]:
    result, _, _ = project_trace(TRACES / name, Scenario(backend=backend, **overrides))
    return result.time_to_train_s, result.bottleneck


def test_motivating_experiment_preload_is_indifferent_streaming_is_not():
    """SSD/COCO bulk-preloads: local SSD vs CephFS barely differ (< 2%). Transformer/WMT streams small
    reads every step, but at one node both stay compute-bound (MLPerf saw +4%; our example's tiny
    reads under long steps hide even that; where streaming does feel the backend is the next test).
    Runs are projected to 50 epochs, so the one-off preload is as small a part of the run as in MLPerf."""
    pre_ssd, pre_bottleneck = _ttt("detection_preload-cpu", "local-ssd", epochs=50)
    pre_ceph, _ = _ttt("detection_preload-cpu", "cephfs", epochs=50)
    stream_ssd, stream_bottleneck = _ttt("translation_streaming-cpu", "local-ssd", epochs=50)
    stream_ceph, _ = _ttt("translation_streaming-cpu", "cephfs", epochs=50)
    preload_diff = abs(pre_ceph / pre_ssd - 1)
    streaming_diff = stream_ceph / stream_ssd - 1
    assert preload_diff < 0.02
    assert 0 <= streaming_diff < 0.05
    assert pre_bottleneck == "compute" and stream_bottleneck == "compute"


def test_on_a_distant_object_store_streaming_becomes_storage_bound_and_preload_does_not():
    """The question the experiment left open: S3 (100 ms to first byte) at 16 nodes."""
    stream_ssd, _ = _ttt("translation_streaming-cpu", "local-ssd", nodes=16)
    stream_s3, stream_bottleneck = _ttt("translation_streaming-cpu", "s3", nodes=16)
    pre_ssd, _ = _ttt("detection_preload-cpu", "local-ssd", nodes=16, epochs=50)
    pre_s3, _ = _ttt("detection_preload-cpu", "s3", nodes=16, epochs=50)
    assert stream_bottleneck.startswith("storage-")
    assert stream_s3 / stream_ssd - 1 > 0.5
    assert pre_s3 / pre_ssd - 1 < stream_s3 / stream_ssd - 1


def test_a_trace_without_dataloader_events_is_modelled_from_io_with_a_warning(tmp_path):
    reads = [io_row(1, f"/data/set/f{i}.bin", 100_000, i * 1_000_000) for i in range(50)]
    root = make_trace(tmp_path / "t", [], io_rows=reads)
    result, workload, warnings = project_trace(root, Scenario(backend="local-ssd"))
    assert any("no DataLoader events" in w for w in warnings)
    assert workload.samples == 50 and workload.sample_bytes.mean() == 100_000
    # I/O only: 5 MB through one stream of local-ssd, ~500 MB/s, plus 50 request latencies.
    assert 0.005 < result.time_to_train_s < 0.05


def test_an_empty_trace_is_an_error(tmp_path):
    root = make_trace(tmp_path / "t", [], io_rows=[io_row(1, "/usr/lib/x.so", 10, 1, io_class="runtime")])
    with pytest.raises(WorkloadError, match="no data reads"):
        project_trace(root, Scenario())


def test_an_unknown_backend_lists_the_known_ones():
    with pytest.raises(ScenarioError, match="known: as-captured, cephfs"):
        project_trace(TRACES / "imagenet_jpeg-cpu", Scenario(backend="lustre"))


def test_overrides_scale_the_run():
    base, _ = _ttt("translation_streaming-cpu", "local-ssd")
    double, _ = _ttt("translation_streaming-cpu", "local-ssd", epochs=4)
    faster, _ = _ttt("translation_streaming-cpu", "local-ssd", compute_scale=0.5)
    assert double / base == pytest.approx(2.0, rel=0.05)
    assert faster / base == pytest.approx(0.5, rel=0.1)  # compute-bound: half the compute, about half the time


def test_no_page_cache_rereads_every_epoch_from_storage():
    # nfs reads through the page cache: the captured host's memory holds the small data set after
    # the first epoch. A loader reading through a user-space client (librados, libcephfs) does not.
    cached, _, _ = project_trace(TRACES / "imagenet_jpeg-cpu", Scenario(backend="nfs", epochs=3))
    uncached, _, _ = project_trace(TRACES / "imagenet_jpeg-cpu", Scenario(backend="nfs", epochs=3, page_cache=False))
    assert cached.page_cache_hit_ratio == (0.0, 1.0, 1.0)
    assert uncached.page_cache_hit_ratio == (0.0, 0.0, 0.0)
    assert uncached.time_to_train_s > cached.time_to_train_s
    forced, _, _ = project_trace(TRACES / "imagenet_jpeg-cpu", Scenario(backend="rgw", epochs=3, page_cache=True))
    assert forced.page_cache_hit_ratio == (0.0, 1.0, 1.0)  # an S3 client behind a caching layer


@pytest.mark.parametrize(
    ("name", "backend", "nodes"), [("imagenet_jpeg-cpu", "rgw", 4), ("translation_streaming-cpu", "nfs", 2)]
)
def test_fast_and_exact_modes_agree_on_bundled_traces(name, backend, nodes):
    fast, _, _ = project_trace(TRACES / name, Scenario(backend=backend, nodes=nodes))
    exact, _, _ = project_trace(TRACES / name, Scenario(backend=backend, nodes=nodes, exact=True))
    assert fast.time_to_train_s == pytest.approx(exact.time_to_train_s, rel=0.02)
    assert fast.bottleneck == exact.bottleneck
