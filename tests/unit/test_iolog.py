"""replay/real/iolog.py: fio iolog v3 files and job files from a small synthetic trace, against golden files.

Regenerate the golden files after an intended change with ``TRAINIO_UPDATE_GOLDEN=1 pytest
tests/unit/test_iolog.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.unit.synthetic import io_row, make_trace
from trainio.replay.real.iolog import IOLOG_HEADER, JOB_FILE, IologError, layout_dataset, write_iologs
from trainio.replay.real.schedule import build_schedule
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import MANIFEST_NAME
from trainio.tracefile import open_trace

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "iolog"
BUNDLED = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"
TARGET = Path("/mnt/replay-target")
MS = 1_000_000


def row(pid, op, path, ns, *, fd=3, nbytes=None, offset=None, result=0, io_class="data", kind="file"):
    """One io row; read ops return ``nbytes`` (their ``result``), opens return their fd."""
    base = io_row(pid, path, nbytes or 0, ns, op=op, io_class=io_class)
    base.update(fd=fd, offset=offset, kind=kind, bytes_requested=None, bytes_returned=None, result=result)
    if op in ("open", "fopen"):
        base["result"] = fd
    if nbytes is not None:
        base.update(bytes_requested=max(nbytes, 4096), bytes_returned=nbytes, result=nbytes)
    return base


def synthetic_rows() -> list[dict]:
    a, b, c, d = "/data/set/a.bin", "/data/set/sub/b.bin", "/data/set/c.bin", "/data/set/d.bin"
    return [
        # pid 100: sequential reads with a short read and an EOF probe ...
        row(100, "open", a, 1 * MS, fd=3),
        row(100, "fstat", a, 1 * MS + 5_000, fd=3),
        row(100, "read", a, 1 * MS + 10_000, fd=3, nbytes=4096),
        row(100, "read", a, 2 * MS, fd=3, nbytes=100),
        row(100, "read", a, 2 * MS + 1_000, fd=3, nbytes=0),
        row(100, "close", a, 2 * MS + 500_000, fd=3),
        # ... a file open on two fds at once: a pread on one, sequential reads on the other ...
        row(100, "open", b, 3 * MS, fd=4),
        row(100, "pread", b, 3 * MS + 100_000, fd=4, nbytes=512, offset=8192),
        row(100, "open", b, 3 * MS + 200_000, fd=5),
        row(100, "read", b, 3 * MS + 300_000, fd=5, nbytes=1000),
        row(100, "close", b, 3 * MS + 400_000, fd=4),
        row(100, "read", b, 3 * MS + 450_000, fd=5, nbytes=24),
        row(100, "close", b, 3 * MS + 500_000, fd=5),
        # ... a file opened and never read, a failed open ...
        row(100, "open", c, 3 * MS + 600_000, fd=6),
        row(100, "close", c, 3 * MS + 700_000, fd=6),
        row(100, "open", "/data/set/missing.bin", 3 * MS + 800_000, fd=-1, result=-1),
        # ... freads on an fd whose open the tracer did not see, and a failed read ...
        row(100, "fdpath", d, 4 * MS, fd=7, result=-1),
        row(100, "fread", d, 4 * MS, fd=7, nbytes=64),
        row(100, "fread", d, 4 * MS + 100_000, fd=7, nbytes=64),
        {**row(100, "read", d, 4 * MS + 200_000, fd=7, nbytes=64), "bytes_returned": None, "result": -1},
        # ... and what is not replayed: runtime files, pipes, objects, mmap.
        row(100, "read", "/usr/lib/python3.11/os.py", 4 * MS + 300_000, fd=8, nbytes=999, io_class="runtime"),
        row(100, "read", "pipe:[42]", 4 * MS + 400_000, fd=9, nbytes=10, io_class="ipc", kind="ipc"),
        row(100, "get", "s3://bucket/key", 4 * MS + 500_000, fd=-1, nbytes=100, kind="object"),
        row(100, "mmap", a, 4 * MS + 600_000, fd=3, nbytes=4196, offset=0),
        # pid 200 starts 10 ms after pid 100 and re-reads a.bin.
        row(200, "open", a, 11 * MS, fd=3),
        row(200, "read", a, 11 * MS + 500_000, fd=3, nbytes=4096),
        row(200, "close", a, 12 * MS, fd=3),
        # pid 300 reads only runtime files: no iolog.
        row(300, "read", "/usr/lib/libc.so.6", 5 * MS, fd=3, nbytes=832, io_class="runtime"),
    ]


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    root = make_trace(tmp_path / "trace", [], io_rows=synthetic_rows())
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(cwd="/work", data_roots=["/data/set"])
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _normalised(path: Path, out: Path, trace: Path) -> str:
    return path.read_text().replace(str(out), "{OUT}").replace(str(trace), "{TRACE}")


@pytest.mark.parametrize(
    ("variant", "options"),
    [("paced", {}), ("no-stall-x2", {"no_stall": True, "time_scale": 2.0})],
)
def test_iologs_and_job_file_match_the_golden_files(tmp_path, trace_dir, variant, options):
    out = tmp_path / "out"
    written = write_iologs(trace_dir, out, TARGET, **options)
    assert [p.name for p in written] == ["pid-100.iolog", "pid-200.iolog", JOB_FILE]
    golden = GOLDEN / variant
    for path in written:
        text = _normalised(path, out, trace_dir)
        if os.environ.get("TRAINIO_UPDATE_GOLDEN"):
            golden.mkdir(parents=True, exist_ok=True)
            (golden / path.name).write_text(text)
        assert text == (golden / path.name).read_text(), path.name


def test_sequential_reads_take_offsets_from_the_bytes_read_since_the_open(tmp_path, trace_dir):
    lines = write_iologs(trace_dir, tmp_path, TARGET)[0].read_text().splitlines()
    reads = [line.split()[1:] for line in lines if " read " in line]
    assert reads == [
        [f"{TARGET}/a.bin", "read", "0", "4096"],
        [f"{TARGET}/a.bin", "read", "4096", "100"],  # the short read, as returned; the EOF probe is gone
        [f"{TARGET}/sub/b.bin", "read", "8192", "512"],  # pread: its own offset
        [f"{TARGET}/sub/b.bin", "read", "0", "1000"],  # second fd: its own position
        [f"{TARGET}/sub/b.bin", "read", "1000", "24"],
        [f"{TARGET}/d.bin", "read", "0", "64"],  # open not traced: from offset 0
        [f"{TARGET}/d.bin", "read", "64", "64"],
    ]


def test_a_file_open_on_two_fds_is_opened_and_closed_once(tmp_path, trace_dir):
    lines = write_iologs(trace_dir, tmp_path, TARGET)[0].read_text().splitlines()
    b_actions = [line.split()[2] for line in lines if "/sub/b.bin" in line]
    assert b_actions == ["add", "open", "read", "read", "read", "close"]
    assert not any("c.bin" in line or "missing" in line for line in lines)


def test_timestamps_are_microseconds_from_the_first_op_starting_at_one(tmp_path, trace_dir):
    lines = write_iologs(trace_dir, tmp_path, TARGET)[0].read_text().splitlines()
    assert lines[0] == IOLOG_HEADER
    stamps = [int(line.split()[0]) for line in lines[1:]]
    assert stamps == sorted(stamps) and stamps[0] == 1
    opened = next(line for line in lines if line.endswith("a.bin open"))
    first_read = next(line for line in lines if " read " in line)
    assert opened.split()[0] == "1" and first_read.split()[0] == "11"  # 10 us after the open


def test_time_scale_stretches_gaps_and_start_delays(tmp_path, trace_dir):
    paced = write_iologs(trace_dir, tmp_path / "x1", TARGET)
    slow = write_iologs(trace_dir, tmp_path / "x2", TARGET, time_scale=2.0)
    stamps = [[int(line.split()[0]) - 1 for line in p.read_text().splitlines()[1:]] for p in (paced[0], slow[0])]
    assert stamps[1] == [2 * s for s in stamps[0]]
    assert "startdelay=10000us" in paced[-1].read_text() and "startdelay=20000us" in slow[-1].read_text()


def test_no_stall_drops_start_delays_and_sets_replay_no_stall(tmp_path, trace_dir):
    job = write_iologs(trace_dir, tmp_path, TARGET, no_stall=True)[-1].read_text()
    assert "replay_no_stall=1" in job and "startdelay" not in job


@pytest.mark.parametrize("scale", [0, -1.0, float("nan")])
def test_a_time_scale_that_is_not_positive_is_refused_with_its_value(tmp_path, trace_dir, scale):
    with pytest.raises(ValueError, match=rf"time_scale\(={scale}\) must be > 0"):
        write_iologs(trace_dir, tmp_path, TARGET, time_scale=scale)


def test_target_names_fio_cannot_parse_are_refused(tmp_path, trace_dir):
    with pytest.raises(IologError, match="contains whitespace"):
        write_iologs(trace_dir, tmp_path, "/mnt/my target")
    with pytest.raises(IologError, match="choose a shorter target"):
        write_iologs(trace_dir, tmp_path, "/mnt/" + "t" * 260)


def test_a_trace_without_data_file_reads_is_refused(tmp_path):
    root = make_trace(tmp_path / "t", [], io_rows=[row(1, "read", "/usr/lib/x.so", 1, nbytes=10, io_class="runtime")])
    with pytest.raises(ReplayError, match="no data reads"):
        write_iologs(root, tmp_path / "out", TARGET)


def test_layout_creates_each_read_file_as_large_as_its_furthest_byte(tmp_path, trace_dir):
    target = tmp_path / "target"
    summary = layout_dataset(trace_dir, target)
    sizes = {str(p.relative_to(target)): p.stat().st_size for p in target.rglob("*") if p.is_file()}
    assert sizes.pop(MANIFEST_NAME) > 0
    assert sizes == {"a.bin": 4196, "sub/b.bin": 8192 + 512, "d.bin": 128}
    assert (summary.files, summary.bytes, summary.data_root, summary.target) == (
        3,
        4196 + 8704 + 128,
        "/data/set",
        target,
    )
    assert len(set((target / "a.bin").read_bytes())) > 200  # random bytes, not zeros


def test_layout_bytes_depend_on_seed_and_path_and_right_sized_files_are_kept(tmp_path, trace_dir):
    first = layout_dataset(trace_dir, tmp_path / "one", seed=7)
    again = layout_dataset(trace_dir, tmp_path / "one", seed=7)
    other = layout_dataset(trace_dir, tmp_path / "two", seed=7)
    assert first.reused_files == 0 and again.reused_files == 3 and other.reused_files == 0
    assert (tmp_path / "one" / "a.bin").read_bytes() == (tmp_path / "two" / "a.bin").read_bytes()
    (tmp_path / "two" / "a.bin").unlink()
    layout_dataset(trace_dir, tmp_path / "two", seed=7)
    assert (tmp_path / "one" / "a.bin").read_bytes() == (tmp_path / "two" / "a.bin").read_bytes()
    layout_dataset(trace_dir, tmp_path / "seed0", seed=0)
    assert (tmp_path / "one" / "a.bin").read_bytes() != (tmp_path / "seed0" / "a.bin").read_bytes()


def test_data_root_spans_several_roots_and_files_outside_them(tmp_path):
    rows = [
        row(1, "read", "/data/one/x.bin", 1, fd=3, nbytes=10),
        row(1, "read", "/data/two/y.bin", 2, fd=4, nbytes=10),
        row(1, "read", "relative/z.bin", 3, fd=5, nbytes=10),
    ]
    root = make_trace(tmp_path / "t", [], io_rows=rows)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(cwd="/data/three", data_roots=["/data/one", "/data/two", "/unread/root"])
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert build_schedule(root).data_root == "/data"
    layout_dataset(root, tmp_path / "target")
    assert (tmp_path / "target" / "three" / "relative" / "z.bin").stat().st_size == 10


def test_the_bundled_trace_gives_well_formed_iologs(tmp_path):
    trace = open_trace(BUNDLED)
    written = write_iologs(trace, tmp_path, TARGET)
    assert len(written) == 6  # the main process (it reads DONE) and four DataLoader workers
    for path in written[:-1]:
        lines = path.read_text().splitlines()
        assert lines[0] == IOLOG_HEADER
        added, opened = set(), set()
        last = 0
        for line in lines[1:]:
            stamp, name, action, *rest = line.split()
            assert int(stamp) >= last
            last = int(stamp)
            if action == "add":
                assert name not in added
                added.add(name)
            elif action == "open":
                assert name in added and name not in opened
                opened.add(name)
            elif action == "close":
                opened.remove(name)
            else:
                assert action == "read" and name in opened and int(rest[1]) > 0
