"""Runs that read packed records (issue 14): an iterable dataset over tar shards is read as format
``shards``, with its pipeline's own batches counted as samples; it projects onto one file per sample
and a files run onto shards, both reading the same bytes."""

from __future__ import annotations

import json

import pytest

from tests.unit.synthetic import MAIN, event_row, io_row, make_trace, small_workload, write_part
from trainio.models.backend import BackendProfile
from trainio.models.cluster import Cluster
from trainio.models.formats import parse_format
from trainio.models.workload import from_trace
from trainio.replay.projection.scenario import captured_format
from trainio.replay.projection.whatif import project
from trainio.tracefile import open_trace
from trainio.tracefile.format import EVENTS_SCHEMA
from trainio.tracefile.summary import summarize

SHARD, RECORD, BATCHED, SHARDS = 4 << 20, 40_000, 8, 2


def webdataset_trace(root, epochs: int = 2):
    """One worker streams 2 shards of 100 records per epoch, in 64 KiB reads, yielding items of 8
    records (`.batched(8)`); the loader itself does not batch (`batch_size=None`), no dataset length."""
    info = {"dataset_length": None, "batch_size": None, "num_workers": 1, "shuffle": False}
    events, reads, clock = [], [], 1_000_000
    items = SHARDS * (SHARD // RECORD) // BATCHED
    for epoch in range(epochs):
        events.append({**event_row(MAIN, "epoch_start", clock, clock, epoch=epoch), "info": json.dumps(info)})
        for item in range(items):
            start = clock
            if item % (items // SHARDS) == 0:  # a new shard: read it whole, in 64 KiB reads
                shard = item // (items // SHARDS)
                for k in range(SHARD // (64 << 10)):
                    reads.append({**io_row(300, f"/data/wds/shard-{shard}.tar", 64 << 10, clock + k), "role": "worker"})
            sample = event_row(300, "sample", start, start + 800_000, cpu_ns=700_000)
            events.append({**sample, "sample": item, "worker_id": 0, "loader_id": None, "info": '{"batched": 8}'})
            fetch = event_row(300, "fetch", start, start + 900_000, cpu_ns=750_000)
            events.append({**fetch, "worker_id": 0, "loader_id": None, "role": "worker"})
            events.append(event_row(MAIN, "batch", start, start + 1_000_000, batch=item, epoch=epoch))
            events.append(event_row(MAIN, "step", start + 1_000_000, start + 2_000_000, batch=item, epoch=epoch))
            clock += 2_000_000
    processes = [
        {"pid": MAIN, "ppid": 1, "role": "main", "end_ns": 1},
        {"pid": 300, "ppid": MAIN, "role": "worker", "worker_id": 0, "end_ns": 1},
    ]
    return make_trace(root, [], io_rows=reads, events=events, processes=processes)


def test_an_iterable_dataset_over_tar_shards_is_read_as_shards_with_its_batches_counted(tmp_path):
    trace = open_trace(webdataset_trace(tmp_path / "t"))
    digest = summarize(trace)
    records = SHARDS * (SHARD // RECORD) // BATCHED * BATCHED  # whole items of 8 records
    assert digest["samples"] == 2 * records
    assert digest["record_format"] == {
        "kind": "shards",
        "shards": SHARDS,
        "shard_bytes": SHARD,
        "samples_per_shard": records / SHARDS,
    }
    workload = from_trace(trace)
    assert workload.samples == records and workload.batch_size == BATCHED and workload.epochs == 2
    assert workload.sample_bytes.mean() == pytest.approx(SHARDS * SHARD / records)
    assert workload.shard_bytes == SHARD
    # each epoch's first item waited for its whole first shard: a shuffle buffer of the rest of it
    assert workload.shuffle_buffer == round(SHARD / workload.sample_bytes.mean()) - BATCHED
    assert str(captured_format(workload)) == "shards:4MiB"


def test_a_map_style_run_over_few_files_stays_files(tmp_path):
    """A map-style data set (it has a length) reading one big file is not streaming shards."""
    trace = webdataset_trace(tmp_path / "t")
    events = open_trace(trace).events.to_pylist()
    for row in events:
        if row["event"] == "epoch_start":
            row["info"] = json.dumps({"dataset_length": 96, "batch_size": None, "num_workers": 1})
    write_part(trace / "events", "1-0", events, EVENTS_SCHEMA, "events")
    assert summarize(open_trace(trace))["record_format"] == {"kind": "files"}
    assert from_trace(open_trace(trace)).shard_bytes is None


STORAGE = BackendProfile.unlimited(name="t", open_latency_s=1e-4, read_latency_s=1e-4)


@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
def test_a_shards_run_projected_onto_files_opens_every_sample_and_reads_the_same_bytes(exact):
    sharded = small_workload(shard_bytes=64 << 20, files_per_sample=0.02, reads_per_sample=1.0)
    as_captured = project(sharded, STORAGE, Cluster(), captured_format(sharded), exact=exact)
    as_files = project(sharded, STORAGE, Cluster(), parse_format("files"), exact=exact)
    assert as_files.metadata_ops_per_s * as_files.time_to_train_s == pytest.approx(4096)
    assert as_files.read_ops_per_s * as_files.time_to_train_s == pytest.approx(4096)
    assert as_captured.read_ops_per_s * as_captured.time_to_train_s < 0.05 * 4096  # 4 MiB requests
    assert as_captured.read_MBps * as_captured.time_to_train_s == pytest.approx(
        as_files.read_MBps * as_files.time_to_train_s, rel=1e-3
    )
    assert as_files.time_to_train_s > as_captured.time_to_train_s  # a latency per file


def test_a_files_run_projected_onto_shards_reads_the_same_bytes_in_few_requests():
    files = small_workload(files_per_sample=1.0, reads_per_sample=1.0)
    assert str(captured_format(files)) == "files"
    as_files = project(files, STORAGE, Cluster(), captured_format(files))
    as_shards = project(files, STORAGE, Cluster(), parse_format("shards:64MiB"))
    assert as_files.read_ops_per_s * as_files.time_to_train_s == pytest.approx(4096)
    assert as_shards.read_ops_per_s * as_shards.time_to_train_s == pytest.approx(4096 * 100e3 / (4 << 20), rel=0.05)
    assert as_shards.read_MBps * as_shards.time_to_train_s == pytest.approx(
        as_files.read_MBps * as_files.time_to_train_s, rel=1e-3
    )
