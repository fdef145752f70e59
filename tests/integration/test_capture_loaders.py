"""Every way training reads data is in the trace (issue 14): memory-mapped rows, a Hugging Face Arrow
file, WebDataset shards batched inside the pipeline, and objects through s3fs and the S3 Connector
for PyTorch against a real Ceph RGW; a kind of read the trace cannot see lowers the coverage.

Each run is a real DataLoader in tests/workloads/loaders.py, whose own count is the ground truth.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.helpers import WORKLOADS, run_cli
from trainio.tracefile import open_trace
from trainio.tracefile.summary import summarize

LOADERS = WORKLOADS / "loaders.py"


def capture(tmp_path: Path, kind: str, where: str, *options: str, env: dict | None = None) -> tuple[dict, Path]:
    trace = tmp_path / f"trace-{kind}"
    cmd = ("tracer", "capture", "--out", trace, *options, "--", sys.executable, LOADERS, kind, where)
    proc = run_cli(*cmd, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), trace


def rows(table, event: str) -> list[dict]:
    return table.filter(pc.equal(table["event"], event)).to_pylist()


def test_memory_mapped_rows_are_mapped_faulted_and_covered(tmp_path):
    """np.memmap rows, cold in the page cache, 2 workers: the mapping (path, length) is recorded,
    every sample is an event, the fetches' storage reads add up to the file (each page is read from
    storage once), samples that were measured show their page faults, and coverage holds."""
    truth, trace = capture(tmp_path, "memmap", str(tmp_path / "data"))
    t = open_trace(trace)
    of_file = t.io.filter(pc.equal(t.io["path"], truth["file"]))
    maps = of_file.filter(pc.is_in(of_file["op"], pa.array(["mmap", "munmap"]))).sort_by("start_ns").to_pylist()
    assert [(m["op"], m["offset"], m["bytes_requested"], m["io_class"]) for m in maps] == [
        ("mmap", 0, truth["file_bytes"], "data"),
        ("munmap", None, truth["file_bytes"], "data"),
    ]
    samples = rows(t.events, "sample")
    assert len(samples) == truth["samples"] == 1024
    fetched = sum(f["read_bytes"] for f in rows(t.events, "fetch"))
    assert abs(fetched - truth["file_bytes"]) <= 0.02 * truth["file_bytes"], fetched
    measured = [s for s in samples if s["cpu_ns"] is not None]
    assert measured and sum(s["majflt"] for s in measured) > 0 and sum(s["read_bytes"] for s in measured) > 0
    cov = t.manifest["coverage"]
    assert cov["mapped_bytes"] == truth["file_bytes"]
    assert cov["read_bytes_ratio"] >= 0.98 and cov["ratio"] >= 0.98, cov
    assert not any("LOW COVERAGE" in w for w in t.warnings)


def test_memory_mapped_reads_without_the_interposer_lower_the_storage_coverage(tmp_path):
    """Without the interposer the mapping is not recorded: the storage the fetches read is unexplained."""
    truth, trace = capture(tmp_path, "memmap", str(tmp_path / "data"), "--no-interposer")
    t = open_trace(trace)
    cov = t.manifest["coverage"]
    assert cov["fetch_read_bytes"] >= 0.98 * truth["file_bytes"]
    assert cov["read_bytes_ratio"] < 0.98, cov
    assert any("LOW COVERAGE" in w for w in t.warnings)


def test_a_hugging_face_arrow_file_read_through_getitems_counts_every_sample(tmp_path):
    """`datasets` reads a batch in one __getitems__ call over its memory-mapped Arrow file: the
    fetches carry the sample indices, the mapping is recorded, and coverage holds."""
    truth, trace = capture(tmp_path, "arrow", str(tmp_path / "data"))
    t = open_trace(trace)
    digest = summarize(t)
    assert digest["samples"] == truth["samples"] == 512
    [arrow] = truth["files"]
    maps = t.io.filter(pc.and_(pc.equal(t.io["op"], "mmap"), pc.equal(t.io["path"], arrow))).to_pylist()
    assert maps and {m["io_class"] for m in maps} == {"data"}
    cov = t.manifest["coverage"]
    # The whole file came from storage (`datasets` pages it in when it loads it, in the main process).
    assert cov["read_bytes"] >= 0.98 * truth["file_bytes"] and cov["mapped_bytes"] >= truth["file_bytes"]
    assert cov["ratio"] >= 0.98 and cov["read_bytes_ratio"] in (None, 1.0), cov


def test_webdataset_items_batched_inside_the_pipeline_are_sample_events(tmp_path):
    """WebDataset over 4 tar shards, `.batched(10)` inside the pipeline, WebLoader(batch_size=None),
    2 workers, 2 epochs: one sample event per item each worker's iterator yields, numbered along its
    stream, carrying the batch size; the shards' bytes are all read, twice."""
    truth, trace = capture(tmp_path, "wds", str(tmp_path / "data"))
    t = open_trace(trace)
    samples = rows(t.events, "sample")
    assert len(samples) == truth["items"] == 40
    assert {s["info"] for s in samples} == {'{"batched": 10}'}
    assert 10 * len(samples) == truth["samples"]
    for worker in (0, 1):
        mine = sorted(s["sample"] for s in samples if s["worker_id"] == worker)
        assert mine == sorted(list(range(10)) * 2), mine  # 10 items per worker and epoch, from 0 each epoch
    digest = summarize(t)
    expected = truth["epochs"] * truth["shard_bytes"]
    assert abs(digest["bytes_read"] - expected) <= 0.02 * expected, digest["bytes_read"]
    assert t.manifest["coverage"]["ratio"] >= 0.98


@pytest.mark.parametrize("kind", ["s3fs", "s3conn"])
def test_object_reads_through_s3fs_and_the_s3_connector_are_gets(tmp_path, ceph, kind):
    """Every object read through the client is a GET with bucket, key and bytes; the process names
    its client; the bytes match what the samples read."""
    _, env = ceph
    truth, trace = capture(tmp_path, kind, f"loaders-{kind}", env=env)
    t = open_trace(trace)
    gets = [r for r in t.io.to_pylist() if r["op"] == "get" and r["bytes_returned"]]
    by_key = {}
    for g in gets:
        by_key[g["key"]] = by_key.get(g["key"], 0) + g["bytes_returned"]
    assert set(by_key) == set(truth["keys"]) and {g["bucket"] for g in gets} == {truth["bucket"]}
    assert sum(by_key.values()) == truth["bytes"]
    assert all(g["duration_ns"] > 0 and g["kind"] == "object" for g in gets)
    clients = {c["client"] for p in t.processes for c in p.get("object_clients", [])}
    assert ("s3fs" if kind == "s3fs" else "s3torchconnector") in clients
    assert summarize(t)["bytes_read"] == truth["bytes"]
    assert t.manifest["coverage"]["object_ratio"] is None


def test_an_object_client_trainio_does_not_hook_lowers_the_coverage(tmp_path, ceph):
    """MinIO's client is not hooked: the trace names it, and its network bytes make the coverage low."""
    _, env = ceph
    truth, trace = capture(tmp_path, "minio", "loaders-minio", env=env)
    t = open_trace(trace)
    cov = t.manifest["coverage"]
    assert cov["unhooked_clients"] == ["minio"]
    assert cov["unhooked_network_bytes"] >= truth["bytes"]
    assert cov["object_ratio"] < 0.98, cov
    assert any("minio" in line for line in t.manifest["lost"])
    assert any("LOW COVERAGE" in w and "minio" in w for w in t.warnings)
