"""The summary's classification, pattern detection, stall and coverage arithmetic on known inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.synthetic import event_row, io_row, make_trace
from trainio.tracefile import open_trace
from trainio.tracefile.classify import classify_path, data_roots
from trainio.tracefile.summary import own_rchar, size_histogram, summarize

S = 1_000_000_000


def _loop(steps: int, t0: int, wait: int, compute: int) -> list[dict]:
    """A training loop: each step waits ``wait`` ns for its batch then computes ``compute`` ns."""
    rows, t = [event_row(1, "epoch_start", t0, t0)], t0
    for b in range(steps):
        rows.append(event_row(1, "batch", t, t + wait, batch=b))
        rows.append(event_row(1, "step", t + wait, t + wait + compute, batch=b))
        t += wait + compute
    return rows


def test_preload_reads_everything_before_the_first_step(tmp_path):
    reads = [io_row(1, f"/data/coco/img{i}.jpg", 1000, i * 1000) for i in range(100)]
    root = make_trace(tmp_path / "t", [], events=_loop(10, 1 * S, 1000, S), io_rows=reads)
    digest = summarize(open_trace(root))
    assert digest["pattern"] == "preload"
    assert digest["pattern_evidence"]["bytes_before_first_step_fraction"] == 1.0
    assert digest["bytes_read"] == 100_000 and digest["read_ops"] == 100


def test_streaming_reads_spread_over_the_steps(tmp_path):
    reads = [io_row(1, f"/data/wmt/shard{i % 4}", 500, S + i * S // 10) for i in range(100)]
    root = make_trace(tmp_path / "t", [], events=_loop(10, S, 1000, S), io_rows=reads)
    digest = summarize(open_trace(root))
    assert digest["pattern"] == "streaming", digest["pattern_evidence"]
    assert digest["pattern_evidence"]["bytes_before_first_step_fraction"] < 0.02


def test_stall_fraction_and_mean_step_from_batch_and_step_events(tmp_path):
    reads = [io_row(1, "/data/x/a.bin", 10, 0)]
    root = make_trace(tmp_path / "t", [], events=_loop(8, S, S // 4, 3 * S // 4), io_rows=reads)
    digest = summarize(open_trace(root))
    assert digest["data_stall_fraction"] == pytest.approx(0.25)
    assert digest["mean_step_s"] == pytest.approx(0.75)
    assert digest["batches"] == 8 and digest["epochs"] == 1


def test_rereads_across_epochs_are_counted(tmp_path):
    reads = [io_row(1, f"/data/x/f{i}.bin", 100, e * S + i) for e in range(3) for i in range(5)]
    digest = summarize(open_trace(make_trace(tmp_path / "t", [], io_rows=reads)))
    assert digest["bytes_read"] == 1500
    assert digest["reread_bytes"] == 1000 and digest["reread_fraction"] == pytest.approx(2 / 3, abs=1e-3)


def test_runtime_and_ipc_reads_do_not_count_as_data(tmp_path):
    reads = [
        io_row(1, "/data/x/a.bin", 100, 1),
        io_row(1, "/usr/lib/python3.11/os.py", 5000, 2, io_class="runtime"),
        io_row(1, "pipe:[7]", 300, 3, io_class="ipc"),
    ]
    digest = summarize(open_trace(make_trace(tmp_path / "t", [], io_rows=reads)))
    assert (digest["bytes_read"], digest["runtime_bytes_read"], digest["ipc_bytes_read"]) == (100, 5000, 300)


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        ("/data/imagenet/train/n01/x.JPEG", "file", "data"),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", "file", "runtime"),
        ("/home/u/.venv/lib/python3.11/site-packages/torch/__init__.py", "file", "runtime"),
        ("/home/u/proj/model.py", "file", "runtime"),
        ("/proc/self/io", "file", "runtime"),
        ("pipe:[123]", "ipc", "ipc"),
        ("socket:[9]", "unknown", "ipc"),
        ("/tmp/trace/spool/io-1.arrows", "file", "trace"),
        ("s3://bucket/key", "object", "data"),
        ("/opt/myenv/share/thing.dat", "file", "runtime"),
        ("/root/.nv/ComputeCache/index", "file", "runtime"),
    ],
)
def test_classify_path(path, kind, expected):
    assert classify_path(path, kind, "/tmp/trace", prefixes=["/opt/myenv"]) == expected


def test_data_roots_collapse_class_folders_but_not_unrelated_sets():
    paths = {f"/data/imagenet/train/n0{i}/x.JPEG": 10 for i in range(5)}
    paths["/tmp/other/a.bin"] = 1
    paths["/tmp/second/b.bin"] = 1
    assert data_roots(paths) == ["/data/imagenet/train", "/tmp/other", "/tmp/second"]


def test_own_rchar_removes_reaped_children_and_pre_exec_reads():
    procs = [
        {"pid": 1, "ppid": 0, "rchar": 1000, "rchar_before_start": 50, "end_ns": 100},
        {"pid": 2, "ppid": 1, "rchar": 300, "end_ns": 50},
        {"pid": 3, "ppid": 1, "rchar": 200, "end_ns": 200},  # ended after the parent's reading: not reaped
        {"pid": 4, "ppid": 1, "rchar": None, "end_ns": None},  # killed: no counters
    ]
    assert own_rchar(procs) == {1: 650, 2: 300, 3: 200}


def test_size_histogram_buckets_by_power_of_two():
    import numpy as np

    assert size_histogram(np.array([1, 4096, 4097, 1 << 20])) == {"<=1B": 1, "<=4KiB": 1, "<=8KiB": 1, "<=1MiB": 1}


def test_a_config_file_in_a_hidden_home_folder_is_runtime_not_data():
    assert classify_path("/root/.keras/keras.json", "file", "/t", [], home="/root") == "runtime"
    assert classify_path("/root/datasets/train/a.jpg", "file", "/t", [], home="/root") == "data"
    assert classify_path("/root/.keras/keras.json", "file", "/t", [], home=None) == "data"


def test_data_roots_come_from_what_the_fetches_read(tmp_path):
    """The main process reads a config file outside any fetch; the data set is read inside fetches."""
    rows = [io_row(1, "/srv/conf/settings.json", 5_000_000, 5)]
    rows += [io_row(1, f"/mnt/ds/train/{i}.jpg", 100, 1000 + i) for i in range(10)]
    events = [{**event_row(1, "fetch", 900, 2000), "worker_id": None}]
    trace = open_trace(make_trace(tmp_path / "t", [], events=events, io_rows=rows))
    assert summarize(trace)["data_roots"] == ["/mnt/ds/train"]


def test_low_coverage_of_the_process_tree_warns(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    manifest = json.loads((root / "manifest.json").read_text())
    base = {"traced_bytes": 90, "rchar_bytes": 100, "processes": 1, "processes_with_counters": 1, "c_level": True}
    manifest["coverage"] = {**base, "ratio": 0.9, "basis": "process tree"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    [warning] = open_trace(root).warnings
    assert warning.startswith("LOW COVERAGE") and "10 bytes read but not traced" in warning
    manifest["coverage"] = {**base, "ratio": 0.9, "basis": "per process"}  # older traces: no alarm
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert open_trace(root).warnings == []


def test_coverage_counts_the_whole_process_tree_less_what_was_read_before_tracing(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 600), (2, 300)])
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["tree_io"] = {"rchar": 1100, "processes": 1}
    manifest["processes"][0]["rchar_before_start"] = 100
    (root / "manifest.json").write_text(json.dumps(manifest))
    cov = summarize(open_trace(root))["coverage"]
    assert (cov["traced_bytes"], cov["rchar_bytes"], cov["ratio"], cov["basis"]) == (900, 1000, 0.9, "process tree")


def _with_manifest(root, **changes):
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(changes)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _fetch(pid: int, start: int, end: int, read_bytes: int) -> dict:
    return {**event_row(pid, "fetch", start, end), "worker_id": 0, "read_bytes": read_bytes}


def test_storage_reads_of_a_fetch_are_explained_by_its_data_reads_or_a_recorded_mapping(tmp_path):
    """Three fetches read 1 MiB each from storage: the first made a data read, the third ran after a
    data file was mapped; the second shows neither (io_uring, raw syscalls): one third unexplained."""
    mib = 1 << 20
    rows = [io_row(1, "/d/a.bin", 100, 1500)]
    rows.append({**io_row(1, "/d/tokens.bin", 0, 5000, op="mmap"), "bytes_requested": 64 * mib, "result": 140000})
    events = [_fetch(1, 1000, 2000, mib), _fetch(1, 3000, 4000, mib), _fetch(1, 6000, 7000, mib)]
    root = _with_manifest(make_trace(tmp_path / "t", [], events=events, io_rows=rows), tree_io={"rchar": 100})
    cov = summarize(open_trace(root))["coverage"]
    assert cov["fetch_read_bytes"] == 3 * mib and cov["fetch_read_bytes_explained"] == 2 * mib
    assert cov["read_bytes_ratio"] == round(2 / 3, 4) and cov["mapped_bytes"] == 64 * mib


def test_low_storage_coverage_warns_even_when_the_read_calls_are_all_traced(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    base = {"traced_bytes": 100, "rchar_bytes": 100, "processes": 1, "processes_with_counters": 1, "c_level": True}
    cov = {**base, "ratio": 1.0, "basis": "process tree", "read_bytes_ratio": 0.5}
    _with_manifest(root, coverage={**cov, "fetch_read_bytes": 4 << 20, "fetch_read_bytes_explained": 2 << 20})
    [warning] = open_trace(root).warnings
    assert warning.startswith("LOW COVERAGE") and "50.0% of the bytes the kernel read from storage" in warning
    _with_manifest(root, coverage={**cov, "read_bytes_ratio": None})  # too little evidence: no alarm
    assert open_trace(root).warnings == []


def test_an_unhooked_object_client_counts_its_network_bytes_against_the_coverage(tmp_path):
    get = {**io_row(1, "s3://b/k", 1000, 10, op="get"), "kind": "object"}
    root = make_trace(tmp_path / "t", [], io_rows=[get, io_row(2, "socket:[77]", 500, 20, io_class="ipc")])
    boto3, minio = {"client": "boto3", "hooked": True}, {"client": "minio", "hooked": False}
    procs = [
        {"pid": 1, "role": "main", "object_clients": [boto3], "socket_recv_bytes": 1200},
        {"pid": 2, "role": "worker", "object_clients": [minio], "socket_recv_bytes": 2500},
    ]
    cov = summarize(open_trace(_with_manifest(root, processes=procs)))["coverage"]
    assert cov["unhooked_clients"] == ["minio"] and cov["unhooked_network_bytes"] == 3000
    assert cov["object_bytes"] == 1000 and cov["object_ratio"] == 0.25
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["coverage"] = {**cov, "basis": "process tree", "ratio": 1.0}
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert any("minio" in w and w.startswith("LOW COVERAGE") for w in open_trace(root).warnings)


def test_cpu_next_to_wall_time_per_step_and_measured_sample(tmp_path):
    events = [
        {**event_row(1, "step", 0, 10_000_000, batch=0), "cpu_ns": 4_000_000},
        {**event_row(1, "step", 20_000_000, 30_000_000, batch=1), "cpu_ns": 6_000_000},
        {**event_row(1, "sample", 0, 2_000_000), "cpu_ns": 1_000_000},
        {**event_row(1, "sample", 2_000_000, 3_000_000), "cpu_ns": None},
    ]
    root = make_trace(tmp_path / "t", [(1, 100)], events=events)
    procs = [{"pid": 1, "role": "main", "utime_s": 1.5, "stime_s": 0.5}, {"pid": 2, "role": "worker"}]
    cpu = summarize(open_trace(_with_manifest(root, processes=procs)))["cpu"]
    assert cpu["mean_step_cpu_s"] == 0.005 and cpu["mean_sample_cpu_s"] == 0.001
    assert cpu["mean_sample_wall_s"] == 0.002 and cpu["samples_measured"] == 1
    assert cpu["process_cpu_s"] == {"main": 2.0}


def test_traces_before_format_1_3_summarise_without_cpu_or_storage_coverage():
    trace = open_trace(Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu")
    digest = summarize(trace)
    assert digest["cpu"]["mean_step_cpu_s"] is None and digest["node_cpu"] is None
    assert digest["coverage"]["read_bytes_ratio"] is None and digest["coverage"]["object_ratio"] is None


@pytest.mark.parametrize("shuffled, pattern", [(False, "mmap-sequential"), (True, "mmap-random")])
def test_a_memory_mapped_run_has_its_mapping_as_data_and_an_mmap_pattern(tmp_path, shuffled, pattern):
    """No data reads, one mapped data file: the summary names its folder, what the fetches faulted in,
    and whether the workers asked for the samples in order."""
    mapping = {**io_row(1, "/data/tokens/train.bin", 0, 10, op="mmap"), "bytes_requested": 64 << 20, "result": 1 << 40}
    order = list(range(64))
    if shuffled:
        order = [int(i) for i in np.random.default_rng(0).permutation(64)]
    fetches = [
        {
            **event_row(1, "fetch", S + b * 1000, S + b * 1000 + 500),
            "indices": order[b * 8 : b * 8 + 8],
            "read_bytes": 8 << 20,
            "majflt": 1,
        }
        for b in range(8)
    ]
    root = make_trace(tmp_path / "t", [], events=fetches, io_rows=[mapping])
    digest = summarize(open_trace(root))
    assert digest["pattern"] == pattern
    assert digest["data_roots"] == ["/data/tokens"]
    assert digest["mapped"] == {
        "files": 1,
        "mapped_bytes": 64 << 20,
        "fetch_read_bytes": 64 << 20,
        "major_faults": 8,
        "bytes_per_fault": 8 << 20,
        "bytes_per_sample": 1 << 20,
    }
