"""replay emulate's pieces without storage: the traced pipeline of the bundled traces, recipes compiled for each
kind of storage, the ranks' shares, shards and the shard reader's requests, and replay fio's measured part."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.unit.synthetic import event_row, io_row, make_trace
from trainio.models.formats import LARGE_REQUEST_BYTES, parse_format
from trainio.replay.real.emulate import EmulateOptions, rank_plans, target_of
from trainio.replay.real.fioreplay import _Span, measured_part
from trainio.replay.real.loader import Compiled, LoaderConfig, compile_recipe, rank_batches
from trainio.replay.real.pipeline import PipelineError, Recipe, Step, traced_pipeline
from trainio.replay.real.schedule import build_schedule, traced_reads
from trainio.replay.real.shards import TAR_BLOCK, member_bytes, pack, packed_schedule, shard_requests
from trainio.replay.storage.target import TargetError
from trainio.tracefile import open_trace

TRACES = Path(__file__).resolve().parents[2] / "traces"


@pytest.mark.parametrize("name", ["imagenet_jpeg-cpu", "translation_streaming-cpu", "detection_preload-cpu"])
def test_the_traced_pipeline_reads_exactly_what_the_trace_read(name):
    trace = open_trace(TRACES / name)
    pipeline = traced_pipeline(trace)
    (rank,) = pipeline.ranks
    samples = sum(len(batch) for epoch in rank.batches for batch in epoch)
    nbytes = sum(pipeline.recipe(e, s).bytes for e, epoch in enumerate(rank.batches) for b in epoch for s in b)
    reads = sum(pipeline.recipe(e, s).reads for e, epoch in enumerate(rank.batches) for b in epoch for s in b)
    startup = [step for thread in rank.startup for step in thread if step.action == "read"]
    assert (nbytes + sum(s.length for s in startup), reads + len(startup)) == traced_reads(trace)[:2]
    assert pipeline.unplaced_reads == 0 and samples == pipeline.epochs * pipeline.workload.samples
    for epoch in rank.batches:  # every sample once an epoch, in batches of the traced size
        assert sorted(s for batch in epoch for s in batch) == pipeline.samples
        assert {len(batch) for batch in epoch[:-1]} == {pipeline.workload.batch_size}
    assert len(rank.steps_s[0]) == len(rank.batches[0]) and all(s > 0 for s in rank.steps_s[0])
    assert pipeline.preload == (name == "detection_preload-cpu")


def test_a_sample_keeps_its_traced_time_outside_io():
    pipeline = traced_pipeline(open_trace(TRACES / "imagenet_jpeg-cpu"))
    recipe = pipeline.recipe(0, pipeline.ranks[0].batches[0][0][0])
    assert [step.action for step in recipe.steps] == ["open", "read", "read", "close"]
    assert 0.001 < recipe.cpu_s < 0.1 and recipe.bytes == sum(s.length for s in recipe.steps)


def test_a_trace_without_a_training_loop_is_refused(tmp_path):
    trace = make_trace(tmp_path / "t", [(1, 100)])
    with pytest.raises(PipelineError, match="no DataLoader batches"):
        traced_pipeline(open_trace(trace))


def test_a_loop_without_sample_events_is_refused(tmp_path):
    events = [event_row(1, "batch", 10, 20, batch=0)]
    trace = make_trace(tmp_path / "t", [], events=events, io_rows=[io_row(1, "/data/a.bin", 10, 15)])
    with pytest.raises(PipelineError, match="no per-sample events"):
        traced_pipeline(open_trace(trace))


RECIPE = Recipe(
    (
        Step(0.001, "open", "a.jpg"),
        Step(0.002, "read", "a.jpg", 0, 4096),
        Step(0.003, "read", "a.jpg", 4096, 100),
        Step(0.004, "close", "a.jpg"),
        Step(0.005, "read", "b.bin", 8192, 512),
    ),
    0.006,
)


@pytest.mark.parametrize(
    ("kind", "requests"),
    [
        ("directory", [("open", 0, 0), ("read", 0, 4096), ("read", 4096, 100), ("close", 0, 0), ("read", 8192, 512)]),
        ("rados", [("read", 0, 4096), ("read", 4096, 100), ("read", 8192, 512)]),
        ("rgw", [("get", 0, 4196), ("get", 8192, 512)]),
    ],
)
def test_a_recipe_compiles_to_the_requests_of_each_storage_keeping_its_time(kind, requests):
    ios, tail = compile_recipe(RECIPE, kind, {"a.jpg": 4196, "b.bin": 9000})
    assert [(io.action, io.offset, io.length) for io in ios] == requests
    assert sum(io.cpu_s for io in ios) + tail == pytest.approx(RECIPE.cpu_s)
    if kind == "rgw":  # a.jpg read whole: no Range; b.bin in part
        assert [io.whole for io in ios] == [True, False] and ios[0].cpu_s == pytest.approx(0.003)


def _compiled(pipeline, **config) -> Compiled:
    values = dict(kind="directory", workers=2, prefetch_factor=2, batch_size=32, drop_last=False, compute_scale=1.0)
    values |= dict(worker_start_s=0.0, epoch_gap_s=0.0, batch_receive_s=0.0, collate_scale=1.0, preload=False)
    return Compiled(pipeline, LoaderConfig(**(values | config)), dict(pipeline.sizes))


def test_nodes_share_every_epoch_like_a_distributed_sampler():
    pipeline = traced_pipeline(open_trace(TRACES / "imagenet_jpeg-cpu"))
    plans = rank_plans(pipeline, EmulateOptions(nodes=3))
    compiled = _compiled(pipeline)
    for epoch in range(2):
        shares = [[s for batch in rank_batches(compiled, plan, epoch) for s in batch] for plan in plans]
        assert sorted(s for share in shares for s in share) == pipeline.samples
        traced = [s for batch in pipeline.ranks[0].batches[epoch] for s in batch]
        assert shares[1] == traced[1::3]
    assert [plan.node for plan in plans] == [0, 1, 2]
    startup = [step.action for plan in plans for thread in plan.startup for step in thread]
    assert startup == ["open", "read", "close"]  # the one start-up file, on one node
    fresh = _compiled(pipeline, shuffle=True, seed=5, batch_size=64)
    (plan,) = rank_plans(pipeline, EmulateOptions(epochs=3))
    epochs = [rank_batches(fresh, plan, epoch) for epoch in range(3)]
    assert epochs[0] != epochs[1] and len(epochs[0][0]) == 64 and epochs[2] == rank_batches(fresh, plan, 2)
    assert len(rank_batches(_compiled(pipeline, batch_size=100, drop_last=True), plan, 0)) == 10  # 1,024 // 100


def test_samples_pack_into_tar_shards_and_a_reader_reads_them_front_to_back():
    layout = pack([(i, 1000 + i) for i in range(100)], 20_000)
    assert all(size <= 20_000 for size in layout.sizes) and len(layout.names) == 11  # 9 or 10 members of 1.5-2 KiB
    assert member_bytes(1000) == TAR_BLOCK + 1024 and layout.members[0].start == 0
    stream = [layout.members[i] for i in range(100)]
    requests = shard_requests(stream, 8192)
    assert sum(r.length for r in requests) == sum(m.end - m.start for m in stream)
    assert all(r.length <= 8192 and r.offset + r.length <= layout.sizes[r.shard] for r in requests)
    assert [r.first for r in requests] == sorted(r.first for r in requests)


def test_replay_fio_in_shards_reads_the_packed_data_set_every_epoch_in_large_requests():
    schedule = build_schedule(TRACES / "imagenet_jpeg-cpu")
    packed = packed_schedule(schedule, parse_format("shards:4MiB"))
    assert set(packed.sizes) == {"shards/shard-000000.tar", "shards/shard-000001.tar"}
    members = [member_bytes(size) for size in schedule.sizes.values()]
    # 2,049 traced opens: each sample twice, the start-up file once; one member short of two whole passes
    assert 2 * sum(members) - max(members) <= packed.expected_bytes < 2 * sum(members)
    reads = [op for job in packed.jobs for op in job.ops if op.action == "read"]
    assert all(op.length <= LARGE_REQUEST_BYTES for op in reads) and packed.expected_ops == len(reads)
    for job in packed.jobs:
        stamps = [op.stamp_us for op in job.ops]
        assert stamps == sorted(stamps) and job.ops[0].action == "open" and job.ops[-1].action == "close"


def test_the_measured_part_leaves_the_planned_start_delays_out():
    schedule = build_schedule(TRACES / "imagenet_jpeg-cpu")
    first, second = schedule.jobs[1], schedule.jobs[3]
    plan = {job.name: [op.stamp_us for op in job.ops if op.action == "read"] for job in (first, second)}
    spans = {
        first.name: _Span(100.0, 100.0 + 1.1 * (plan[first.name][-1] - plan[first.name][0]) / 1e6, 102.0),
        second.name: _Span(103.0, 103.0 + 1.1 * (plan[second.name][-1] - plan[second.name][0]) / 1e6, 105.5),
    }
    duration, fidelity, rows = measured_part(schedule, spans, no_stall=False)
    assert duration == pytest.approx(5.5) and fidelity == pytest.approx(1.1)
    assert [row["job"] for row in rows] == [first.name, second.name]
    assert math.isnan(measured_part(schedule, spans, no_stall=True)[1])  # no pace, nothing to compare with


@pytest.mark.parametrize(
    ("text", "endpoint", "found"),
    [
        ("s3://train/ds", "http://h:1", ("http://h:1", "train", "ds/")),
        ("s3://train", "https://h", ("https://h", "train", "")),
        ("rgw:http://h:2/b", None, ("http://h:2", "b", "")),
    ],
)
def test_emulate_takes_s3_uris_with_an_endpoint(text, endpoint, found):
    target = target_of(text, endpoint)
    assert (target.endpoint, target.bucket, target.prefix) == found


@pytest.mark.parametrize(
    ("text", "endpoint", "message"),
    [
        ("s3://train/ds", None, "needs --endpoint"),
        ("s3://", "http://h", "expected s3://BUCKET"),
        ("s3://b/../x", "http://h", "expected s3://BUCKET"),
        ("rgw:http://h:2/b", "http://other", "names its endpoint"),
        ("rbd:p/i", None, "replay emulate does not take"),
        ("cephfs:/x", None, "replay emulate does not take"),
    ],
)
def test_emulate_refuses_targets_it_cannot_use(text, endpoint, message):
    with pytest.raises(TargetError, match=message):
        target_of(text, endpoint)
