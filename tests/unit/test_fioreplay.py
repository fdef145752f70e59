"""replay/real: the schedule, node shares, target mappings, latency merging and pre-flight checks, without storage."""

from __future__ import annotations

import math
import re
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from tests.unit.synthetic import io_row, make_trace
from trainio.replay.real import fioreplay
from trainio.replay.real.fioreplay import mixed_percentile, rbd_layout, replay_fio
from trainio.replay.real.iolog import IologError
from trainio.replay.real.result import ReplayVerificationError
from trainio.replay.real.s3replay import plan_gets
from trainio.replay.real.schedule import Op, build_schedule, node_start_delays, split_shares
from trainio.replay.storage.ceph import rados_object_name
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import ForeignDataError

BUNDLED = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"
BUNDLED_BYTES, BUNDLED_READS, BUNDLED_FILE_BYTES = 14_044_054, 4_097, 7_022_041


def units(*opens: int, gap: int = 10) -> list[Op]:
    """One file per unit: opened at each stamp, read twice, closed."""
    ops = []
    for i, t in enumerate(opens):
        path = f"f{i}.bin"
        ops += [
            Op(t, path, "open"),
            Op(t + gap, path, "read", 0, 100),
            Op(t + 2 * gap, path, "read", 100, 50),
            Op(t + 3 * gap, path, "close"),
        ]
    return ops


def test_one_node_replays_every_op_unchanged():
    ops = units(1, 101, 201)
    assert split_shares(ops, 1) == [ops]


def test_shares_deal_units_round_robin_and_move_them_to_the_earlier_slots():
    ops = units(1, 101, 201, 301, 401)
    shares = split_shares(ops, 2)
    # Node 0 reads samples 0, 2, 4 and node 1 samples 1, 3, each at the traced per-sample pace.
    assert [[(op.stamp_us, op.path, op.action) for op in share if op.action == "open"] for share in shares] == [
        [(1, "f0.bin", "open"), (101, "f2.bin", "open"), (201, "f4.bin", "open")],
        [(1, "f1.bin", "open"), (101, "f3.bin", "open")],
    ]
    f2 = [(op.stamp_us, op.action, op.offset) for op in shares[0] if op.path == "f2.bin"]
    assert f2 == [(101, "open", 0), (111, "read", 0), (121, "read", 100), (131, "close", 0)]  # gaps kept
    reads = sorted((op.path, op.offset, op.length) for share in shares for op in share if op.action == "read")
    assert reads == sorted((op.path, op.offset, op.length) for op in ops if op.action == "read")


def test_more_nodes_than_units_leave_shares_empty():
    shares = split_shares(units(1, 101), 3)
    assert [len(share) for share in shares] == [4, 4, 0]


def test_a_nodes_count_below_one_is_refused_with_its_value():
    with pytest.raises(ValueError, match=r"nodes\(=0\) must be >= 1"):
        split_shares(units(1), 0)


def test_processes_that_followed_others_start_as_much_earlier_as_those_ended():
    # "a" runs 0..1000 us, on two nodes 0..500; "b" starts at 1200 after "a" ended, "c" overlaps "a".
    starts = node_start_delays({"a": (0, 1000, 500), "b": (1200, 1000, 500), "c": (300, 100, 100)})
    assert starts == {"a": 0, "b": 700, "c": 300}
    assert node_start_delays({"a": (0, 1000, 1000), "b": (1200, 10, 10)}) == {"a": 0, "b": 1200}


def test_rbd_layout_packs_files_in_path_order_at_4k_aligned_offsets():
    offsets, needed = rbd_layout({"b/x.jpg": 5000, "a.jpg": 4096, "b/a.jpg": 1})
    assert offsets == {"a.jpg": 0, "b/a.jpg": 4096, "b/x.jpg": 8192}
    assert needed == 8192 + 8192


def test_rados_object_names_keep_paths_apart_without_slashes():
    names = [rados_object_name(p) for p in ("train/a.jpg", "train%2Fa.jpg", "train_a.jpg")]
    assert names == ["train%2Fa.jpg", "train%252Fa.jpg", "train_a.jpg"]
    assert all("/" not in name for name in names)


def test_one_job_percentiles_come_back_as_fio_reported_them():
    table = {1.0: 10.0, 50.0: 100.0, 99.0: 900.0, 99.99: 1000.0}
    assert mixed_percentile([(500, table)], 50.0) == 100.0
    assert mixed_percentile([(500, table)], 99.0) == 900.0


def test_jobs_weigh_into_merged_percentiles_by_their_reads():
    fast = {50.0: 1.0, 99.0: 1.0, 99.99: 1.0}
    slow = {50.0: 100.0, 99.0: 100.0, 99.99: 100.0}
    assert mixed_percentile([(990, fast), (10, slow)], 99.0) == 1.0  # 99% of reads took 1
    assert mixed_percentile([(980, fast), (20, slow)], 99.0) == 100.0
    assert mixed_percentile([(10, fast), (990, slow)], 50.0) == 100.0
    assert math.isnan(mixed_percentile([(0, fast)], 50.0))  # no reads


def test_the_bundled_trace_schedules_exactly_its_data_reads_on_any_node_count():
    for nodes in (1, 3):
        plan = build_schedule(BUNDLED, nodes=nodes)
        reads = [op for job in plan.jobs for op in job.ops if op.action == "read"]
        assert (plan.expected_bytes, plan.expected_ops) == (BUNDLED_BYTES, BUNDLED_READS)
        assert (sum(op.length for op in reads), len(reads)) == (BUNDLED_BYTES, BUNDLED_READS)
        assert len(plan.sizes) == 1025 and sum(plan.sizes.values()) == BUNDLED_FILE_BYTES
        assert {job.node for job in plan.jobs} == set(range(nodes))
    assert 4.7 < plan.traced_duration_s < 4.9
    assert plan.planned_duration_s < 0.8 * build_schedule(BUNDLED).planned_duration_s


def test_a_directory_without_room_is_refused_saying_how_much_is_needed(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10_000_000, 9_000_000, 1_000_000))
    target = tmp_path / "target"
    with pytest.raises(ReplayError, match=rf"needs {BUNDLED_FILE_BYTES} bytes \(7.0 MB\) more, 1000000 bytes"):
        replay_fio(BUNDLED, str(target), tmp_path / "work")
    assert not target.exists()


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_a_users_file_where_the_layout_goes_is_never_overwritten_whatever_its_size(tmp_path, extra):
    plan = build_schedule(BUNDLED)
    rel, size = next(iter(plan.sizes.items()))
    theirs = tmp_path / "target" / rel
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"x" * (size + extra))
    with pytest.raises(ForeignDataError, match="holds data trainio did not write"):
        replay_fio(BUNDLED, str(tmp_path / "target"), tmp_path / "work")
    assert theirs.read_bytes() == b"x" * (size + extra)


def test_a_trace_without_data_reads_is_refused(tmp_path):
    rows = [io_row(1, "/usr/lib/python3/os.py", 100, 1, io_class="runtime"), io_row(1, "pipe:[3]", 10, 2)]
    rows[1]["kind"] = "ipc"
    trace = make_trace(tmp_path / "trace", [], io_rows=rows)
    with pytest.raises(ReplayError, match="no data reads from files"):
        replay_fio(trace, str(tmp_path / "target"), tmp_path / "work")


def test_a_file_over_the_rados_object_limit_is_refused_before_touching_ceph(tmp_path):
    big = io_row(1, "/data/set/big.bin", 4096, 1)
    big.update(op="pread", offset=200 * 2**20)
    trace = make_trace(tmp_path / "trace", [], io_rows=[big])
    with pytest.raises(ReplayError, match=r"big.bin needs an object of 209719296 bytes, over RADOS's 134217728"):
        replay_fio(trace, "rados:pool", tmp_path / "work")


def test_a_replay_that_read_other_bytes_than_the_trace_fails_naming_both(tmp_path, monkeypatch):
    def short_runner(schedule, target, workdir, no_stall, overwrite, say):  # fault injection: a target losing reads
        return fioreplay._Measured(BUNDLED_BYTES - 100, BUNDLED_READS - 1, 1.0, 0.1, 0.2, 1, messages=("job: error 5",))

    monkeypatch.setitem(fioreplay.RUNNERS, "directory", short_runner)
    message = (
        f"read {BUNDLED_BYTES - 100} bytes in {BUNDLED_READS - 1} reads, "
        f"the trace {BUNDLED_BYTES} bytes in {BUNDLED_READS} reads: job: error 5"
    )
    with pytest.raises(ReplayVerificationError, match=re.escape(message)):
        replay_fio(BUNDLED, str(tmp_path / "target"), tmp_path / "work")


def test_names_fio_cannot_express_are_refused_by_fio_alone(tmp_path):
    # fio's iolog reads a name as one word: the fio replay refuses it before writing; S3 has no such limit
    trace = make_trace(tmp_path / "trace", [], io_rows=[io_row(1, "/data/set/my file.bin", 4096, 1)])
    with pytest.raises(IologError, match="it contains whitespace"):
        replay_fio(trace, str(tmp_path / "target"), tmp_path / "work")
    assert not (tmp_path / "target").exists()
    assert plan_gets(trace).objects == {"my file.bin": 4096}
