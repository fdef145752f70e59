"""replay/real/s3replay.py: traced file reads replayed as GETs against a real Ceph RGW (the ``ceph`` fixture)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.helpers import run_cli
from tests.unit.synthetic import io_row, make_trace
from trainio.replay.real.s3replay import plan_gets, replay_s3
from trainio.tracefile import open_trace

BUNDLED = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"
READ_OPS = ["read", "pread", "readv", "preadv", "fread"]
MS = 1_000_000


def _implied_by_trace(trace_dir: Path) -> tuple[int, int, int]:
    """(bytes, GETs, objects) the bundled trace implies, counted from its rows directly: every file
    there is opened, read whole and closed, so one GET per open that read data."""
    io = open_trace(trace_dir).io
    rows = io.filter(pc.and_(pc.equal(io["io_class"], "data"), pc.equal(io["kind"], "file"))).to_pylist()
    rows.sort(key=lambda r: (r["pid"], r["start_ns"]))
    opened, gets, paths, nbytes = set(), 0, set(), 0
    for row in rows:
        key = (row["pid"], row["fd"])
        if row["op"] == "open":
            opened.add(key)
        elif row["op"] in READ_OPS and (row["bytes_returned"] or 0) > 0:
            nbytes += row["bytes_returned"]
            paths.add(row["path"])
            if key in opened:
                opened.discard(key)
                gets += 1
    return nbytes, gets, len(paths)


@pytest.fixture(scope="module")
def rgw(ceph) -> dict:
    _, env = ceph
    return {
        "endpoint": env["TRAINIO_S3_ENDPOINT"],
        "access_key": env["AWS_ACCESS_KEY_ID"],
        "secret_key": env["AWS_SECRET_ACCESS_KEY"],
        "env": env,
    }


@pytest.mark.slow
def test_the_bundled_trace_replays_as_one_get_per_file_with_the_traced_bytes(rgw):
    want_bytes, want_gets, want_objects = _implied_by_trace(BUNDLED)
    messages = []
    result = replay_s3(
        BUNDLED,
        rgw["endpoint"],
        "trainio-replay",
        no_stall=True,
        access_key=rgw["access_key"],
        secret_key=rgw["secret_key"],
        progress=messages.append,
    )
    assert (result.bytes, result.ops, result.errors) == (want_bytes, want_gets, 0)
    assert (result.expected_bytes, result.expected_ops) == (want_bytes, want_gets)
    assert result.details["objects"] == want_objects and result.details["ranged_gets"] == 0
    assert result.mode == "no-stall" and result.target == f"s3:{rgw['endpoint']}/trainio-replay"
    assert 0 < result.lat_p50_ms <= result.lat_p99_ms
    assert result.details["first_byte_p50_ms"] <= result.lat_p50_ms
    assert any("GETs" in message for message in messages)
    # A second replay finds the objects in place (its manifest matches) and uploads nothing.
    again = replay_s3(
        BUNDLED,
        rgw["endpoint"],
        "trainio-replay",
        no_stall=True,
        access_key=rgw["access_key"],
        secret_key=rgw["secret_key"],
    )
    assert (again.bytes, again.details["objects_uploaded"], again.details["layout"]["reused"]) == (want_bytes, 0, True)


@pytest.mark.slow
def test_two_nodes_share_the_gets_and_keep_the_traced_pace(rgw):
    want_bytes, want_gets, _ = _implied_by_trace(BUNDLED)
    result = replay_s3(
        BUNDLED, rgw["endpoint"], "trainio-replay", nodes=2, access_key=rgw["access_key"], secret_key=rgw["secret_key"]
    )
    assert (result.nodes, result.bytes, result.ops, result.errors) == (2, want_bytes, want_gets, 0)
    per_node = result.details["per_node"]
    assert [n["node"] for n in per_node] == [0, 1]
    assert sum(n["ops"] for n in per_node) == want_gets and sum(n["bytes"] for n in per_node) == want_bytes
    # Interleaved shares: each node gets half of every process's GETs (one process read 1 file).
    assert abs(per_node[0]["ops"] - per_node[1]["ops"]) <= len(plan_gets(BUNDLED).jobs)
    # As traced: no GET goes out before its time, so the replay cannot beat the two-node schedule,
    # which is shorter than the traced run: each node reads half the samples at the traced pace.
    planned = result.details["planned_duration_s"]
    assert result.mode == "as-traced" and result.duration_s >= 0.9 * planned
    assert planned < 0.75 * result.traced_duration_s


def _ranged_trace(root: Path) -> Path:
    def row(op, path, ns, *, fd=3, nbytes=None, offset=None):
        base = io_row(100, path, nbytes or 0, ns, op=op)
        result = fd if nbytes is None else nbytes
        base.update(fd=fd, offset=offset, bytes_requested=nbytes, bytes_returned=nbytes, result=result)
        return base

    a, b = "/data/set/a.bin", "/data/set/shards/b.bin"
    rows = [
        # a.bin: read whole in two reads and an EOF probe -> one GET without a range
        row("open", a, 1 * MS),
        row("read", a, 2 * MS, nbytes=4096),
        row("read", a, 3 * MS, nbytes=1000),
        row("read", a, 4 * MS, nbytes=0),
        row("close", a, 5 * MS),
        # b.bin: two contiguous preads, a jump, one more -> two ranged GETs; then a partial plain read
        row("open", b, 6 * MS, fd=4),
        row("pread", b, 7 * MS, fd=4, nbytes=1000, offset=10_000),
        row("pread", b, 8 * MS, fd=4, nbytes=500, offset=11_000),
        row("pread", b, 9 * MS, fd=4, nbytes=300, offset=50_000),
        row("close", b, 10 * MS, fd=4),
        row("open", b, 11 * MS, fd=4),
        row("read", b, 12 * MS, fd=4, nbytes=2048),
        row("close", b, 13 * MS, fd=4),
    ]
    trace = make_trace(root, [], io_rows=rows)
    manifest = json.loads((trace / "manifest.json").read_text())
    manifest.update(cwd="/work", data_roots=["/data/set"])
    (trace / "manifest.json").write_text(json.dumps(manifest))
    return trace


@pytest.mark.slow
def test_partial_reads_replay_as_ranged_gets_of_exactly_their_bytes(rgw, tmp_path):
    trace = _ranged_trace(tmp_path / "trace")
    plan = plan_gets(trace)
    assert plan.objects == {"a.bin": 5096, "shards/b.bin": 50_300}
    assert [(get.key, get.range_header) for get in plan.jobs[0].gets] == [
        ("a.bin", None),
        ("shards/b.bin", "bytes=10000-11499"),
        ("shards/b.bin", "bytes=50000-50299"),
        ("shards/b.bin", "bytes=0-2047"),
    ]
    result = replay_s3(
        trace, rgw["endpoint"], "trainio-ranged", access_key=rgw["access_key"], secret_key=rgw["secret_key"]
    )
    assert (result.bytes, result.ops, result.errors) == (5096 + 1500 + 300 + 2048, 4, 0)
    assert result.details["ranged_gets"] == 3
    # Paced: the last GET is due 10 ms after the first.
    assert result.duration_s >= 0.009


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_endpoint_fails_in_one_line_naming_it():
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    proc = run_cli(
        "replay",
        "s3",
        "--trace",
        BUNDLED,
        "--endpoint",
        endpoint,
        "--bucket",
        "b",
        timeout=60,
        env={"AWS_ACCESS_KEY_ID": "TRAINIOTESTKEY", "AWS_SECRET_ACCESS_KEY": "trainio-test-secret"},
    )
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 30
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("replay s3: ")]
    assert len(errors) == 1 and endpoint in errors[0] and "failed" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert "trainio-test-secret" not in proc.stderr and "TRAINIOTESTKEY" not in proc.stderr


@pytest.mark.slow
def test_the_cli_prints_the_result_as_json_without_the_credentials(rgw):
    want_bytes, want_gets, _ = _implied_by_trace(BUNDLED)
    proc = run_cli(
        "replay",
        "s3",
        "--trace",
        BUNDLED,
        "--endpoint",
        rgw["endpoint"],
        "--bucket",
        "trainio-replay",
        "--no-stall",
        "--json",
        timeout=80,
        env=rgw["env"],
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in ("target", "nodes", "bytes", "ops", "duration_s", "traced_duration_s", "fidelity", "read_MBps"):
        assert key in result
    assert (result["bytes"], result["ops"], result["errors"]) == (want_bytes, want_gets, 0)
    for secret in (rgw["access_key"], rgw["secret_key"]):
        assert secret not in proc.stdout and secret not in proc.stderr
    # Without --json: the short summary.
    text = run_cli(
        "replay", "s3", "--trace", BUNDLED, "--bucket", "trainio-replay", "--no-stall", timeout=80, env=rgw["env"]
    )
    assert text.returncode == 0, text.stderr
    assert "fidelity" in text.stdout and "p99" in text.stdout and f"{want_gets:,} GETs" in text.stdout


def test_the_plan_of_the_bundled_trace_is_one_whole_object_get_per_traced_file_read():
    plan = plan_gets(BUNDLED)
    want_bytes, want_gets, want_objects = _implied_by_trace(BUNDLED)
    assert (plan.bytes, plan.ops, len(plan.objects), plan.ranged_ops) == (want_bytes, want_gets, want_objects, 0)
    assert plan.data_root == "/tmp/trainio-examples/imagenet_jpeg"
    assert "train/class_000/img_000820.jpg" in plan.objects
    # Two nodes: every GET exactly once, node 0 with the process's 1st, 3rd, ... file, each at the
    # time of the process's first files (their opens; the open-to-read gap of its own file kept).
    two = plan_gets(BUNDLED, nodes=2)
    assert (two.ops, two.bytes) == (plan.ops, plan.bytes)
    one = {job.name: job.gets for job in plan.jobs}
    for job in two.jobs:
        traced = one[job.name.split("-", 1)[1]]
        assert sorted(get.key for get in job.gets) == sorted(get.key for get in traced[job.node :: 2])
        gaps = [abs(get.stamp_us - slot.stamp_us) for get, slot in zip(job.gets, traced, strict=False)]
        assert max(gaps) < 10_000
