"""The spool formats: what the recorders write reads back, and damaged spools cost only their damage."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from trainio.tracefile.format import SPOOL_DIR
from trainio.tracer import recorder
from trainio.tracer import spool as sp
from trainio.tracer.spoolread import (
    C_HEADER,
    C_MAGIC,
    RECORD_DTYPE,
    SEGMENT,
    SEGMENT_MAGIC,
    SpoolError,
    c_records,
    read_c_spool,
    read_py_spool,
)


def test_the_recorder_and_the_trace_layout_agree_on_the_spool_folder():
    assert recorder.SPOOL_DIR == SPOOL_DIR  # the recorder may not import the (pyarrow) format module


def _packed(samples: list[tuple]) -> bytes:
    return b"".join(sp.SAMPLE.pack(*s) for s in samples)


def _py_spool(path):
    spool = sp.PySpool(str(path), pid=11, ppid=10, start_ns=5)
    spool.facts(role="main", argv=["train.py"])
    spool.event(7, sp.EVENT_CODES["epoch_start"], 0, 0, None, None, None, 100, 100, None, '{"batch_size": 4}')
    unmeasured = (-1,) * 4
    samples = [(3, 1, 11, 9, 2, 1, 4096), (4, 12, 21, *unmeasured)]  # times from the fetch's start (199)
    spool.fetch(8, 1, 199, 221, (20, 3, 1, 4096), _packed(samples), None, indices_are_samples=True)
    spool.batch(7, 0, 0, 1, 150, 222, 230, 60, 5)
    spool.object_op(7, "get", "s3://b/k", "b", "k", None, None, 42, 0, 300, 5)
    spool.facts(role="worker", worker_id=1, errors=["e1"])
    spool.facts(exit_via="exit", errors=["e2"])
    return spool


def test_python_spool_round_trip(tmp_path):
    _py_spool(tmp_path / "py.spool")
    read = read_py_spool(tmp_path / "py.spool")
    assert read.header["pid"] == 11 and read.header["ppid"] == 10 and read.lost == []
    assert read.facts == {
        "role": "worker",
        "argv": ["train.py"],
        "worker_id": 1,
        "exit_via": "exit",
        "errors": ["e1", "e2"],
    }
    rows = read.events.to_pylist()
    assert [r["event"] for r in rows] == ["epoch_start", "fetch", "step", "batch", "sample", "sample"]
    assert rows[0]["info"] == '{"batch_size": 4}' and rows[0]["batch"] is None
    assert (rows[1]["indices"], rows[1]["worker_id"], rows[1]["start_ns"], rows[1]["end_ns"]) == ([3, 4], 1, 199, 221)
    assert [(r["batch"], r["start_ns"], r["end_ns"]) for r in rows[2:4]] == [(0, 150, 222), (1, 222, 230)]
    assert [(r["sample"], r["start_ns"], r["end_ns"], r["tid"]) for r in rows[4:]] == [
        (3, 200, 210, 8),
        (4, 211, 220, 8),
    ]
    usage = ("cpu_ns", "minflt", "majflt", "read_bytes")
    assert [tuple(r[k] for k in usage) for r in rows] == [
        (None,) * 4,
        (20, 3, 1, 4096),  # the fetch
        (60, None, None, None),  # the step before batch 1
        (5, None, None, None),  # the wait for batch 1
        (9, 2, 1, 4096),  # a measured sample
        (None,) * 4,  # one that was not measured
    ]
    [obj] = read.objects.to_pylist()
    assert (obj["op"], obj["path"], obj["bytes_returned"], obj["offset"], obj["kind"]) == (
        "get",
        "s3://b/k",
        42,
        None,
        "object",
    )


def test_an_iterable_fetch_numbers_its_items_and_says_the_batch_inside_the_dataset(tmp_path):
    spool = sp.PySpool(str(tmp_path / "py.spool"), 1, 0, 0)
    items = [(7, 10, 20, -1, -1, -1, -1), (8, 21, 30, 5, 0, 0, 0)]
    spool.fetch(3, 1, 5, 31, (40, 1, 0, 0), _packed(items), None, indices_are_samples=False, batched=16)
    spool.fetch(3, 1, 40, 50, (9, 0, 0, 0), b"", [5, 6, 7], indices_are_samples=False)  # __getitems__
    rows = read_py_spool(tmp_path / "py.spool").events.to_pylist()
    fetches = [r for r in rows if r["event"] == "fetch"]
    assert [f["indices"] for f in fetches] == [None, [5, 6, 7]]
    samples = [r for r in rows if r["event"] == "sample"]
    assert [(r["sample"], r["info"], r["cpu_ns"]) for r in samples] == [
        (7, '{"batched": 16}', None),
        (8, '{"batched": 16}', 5),
    ]


def test_a_fetch_larger_than_a_frame_keeps_every_sample(tmp_path):
    spool = sp.PySpool(str(tmp_path / "py.spool"), 1, 0, 0)
    n = sp.MAX_SAMPLES_PER_FRAME + 5
    samples = [(i, i, i + 1, -1, -1, -1, -1) for i in range(n)]
    spool.fetch(3, None, 10, 20, (1, 2, 3, 4), _packed(samples), None, indices_are_samples=True)
    rows = read_py_spool(tmp_path / "py.spool").events.to_pylist()
    fetches = [r for r in rows if r["event"] == "fetch"]
    assert len(fetches) == 1 and fetches[0]["indices"] is None  # not only the last frame's
    assert [r["sample"] for r in rows if r["event"] == "sample"] == list(range(n))


def test_a_frame_cut_by_a_kill_ends_the_data_before_it(tmp_path):
    path = tmp_path / "py.spool"
    spool = _py_spool(path)
    size_offset = sp.HEADER_SIZE + spool._pos  # the next frame's size field
    spool.facts(exit_via="never committed")
    data = bytearray(path.read_bytes())
    data[size_offset : size_offset + 4] = bytes(4)  # its size was the last thing to be written
    path.write_bytes(bytes(data))
    read = read_py_spool(path)
    assert read.facts["exit_via"] == "exit"


def test_a_full_disk_keeps_the_frames_before_it_and_the_exit_facts(tmp_path):
    spool = sp.PySpool(str(tmp_path / "py.spool"), 1, 0, 0)

    def no_room(offset, length):
        raise sp.SpoolFullError(28, "No space left on device")

    spool._reserve = no_room
    big = b"x" * (sp.SEGMENT_SIZE // 4)
    written = [spool.write(ord("X"), big) for _ in range(5)]  # a frame type readers skip
    spool.facts(exit_via="exit")
    read = read_py_spool(tmp_path / "py.spool")
    assert written == [True, True, True, False, False]
    assert read.header["stopped"] and read.header["dropped"] == 2
    assert "No space left on device" in read.header["stop_reason"]
    assert read.facts["exit_via"] == "exit"  # the facts reserve


def test_a_garbled_frame_costs_that_frame(tmp_path):
    path = tmp_path / "py.spool"
    spool = _py_spool(path)
    spool.write(sp.EVENT, b"\xff" * 40)  # a frame whose body does not parse
    spool.facts(exit_via="os._exit")
    read = read_py_spool(path)
    assert read.facts["exit_via"] == "os._exit" and len(read.events) == 6
    assert len(read.lost) == 1 and "unreadable frame" in read.lost[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"garbage" * 1000, "not a Python recorder spool"),
        (b"TRAINIOP" + struct.pack("<I", 99) + bytes(5000), "version 99"),
    ],
)
def test_unreadable_python_spools_are_named_errors(tmp_path, content, message):
    path = tmp_path / "py.spool"
    path.write_bytes(content)
    with pytest.raises(SpoolError, match=message):
        read_py_spool(path)


def _c_spool(path, records, version=2, paths=b""):
    header = C_HEADER.pack(
        C_MAGIC, version, 4096, 64, 64, 21, 20, 1000, 777, 0, 0, 1, 9, 1, b"", b"/bin/cat", b"cat\0/a/b\0", 5000
    )
    recs = np.zeros(len(records), RECORD_DTYPE)
    for i, fields in enumerate(records):
        for key, value in fields.items():
            recs[i][key] = value
    seg = SEGMENT.pack(SEGMENT_MAGIC, 1, 64 + recs.nbytes, len(records)).ljust(64, b"\0") + recs.tobytes()
    path_seg = SEGMENT.pack(SEGMENT_MAGIC, 2, 64 + len(paths), len(paths)).ljust(64, b"\0") + paths
    path.write_bytes(header.ljust(4096, b"\0") + seg + path_seg)


def test_c_spool_skips_a_half_written_record_and_resolves_paths(tmp_path):
    path = tmp_path / "io.spool"
    path_off = 4096 + 64 + 3 * 64 + 64  # the path segment's data
    _c_spool(
        path,
        [
            {"op": 1, "kind": 1, "fd": 3, "returned": 3, "file_id": 1, "path_off": path_off, "path_len": 4},
            {"op": 0, "kind": 1, "fd": 3, "returned": 99},  # reserved, never committed
            {"op": 2, "kind": 1, "fd": 3, "requested": 10, "returned": 10, "file_id": 1},
        ],
        paths=b"/a/b",
    )
    header, recs, _, lost = c_records(path)
    assert header["argv"] == ["cat", "/a/b"] and header["exe"] == "/bin/cat" and header["untraced_rchar"] == 777
    assert header["forked"] and len(recs) == 2 and header["socket_bytes"] == 5000
    assert header["time_stamps"] == "tsc"
    assert lost == [f"{path}: 1 records half-written when the process ended"]
    io = read_c_spool(path).io.to_pylist()
    assert [(r["op"], r["path"], r["bytes_returned"], r["pid"]) for r in io] == [
        ("open", "/a/b", None, 21),
        ("read", None, 10, 21),
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"\0" * 8192), "not an interposer spool"),
        (lambda p: _c_spool(p, [], version=7), "version 7"),
    ],
)
def test_unreadable_c_spools_are_named_errors(tmp_path, make, message):
    path = tmp_path / "io.spool"
    make(path)
    with pytest.raises(SpoolError, match=message):
        read_c_spool(path)
