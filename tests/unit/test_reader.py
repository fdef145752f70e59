"""Corrupt, truncated, empty, foreign and future-version inputs to the trace reader."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.synthetic import make_trace
from trainio.tracefile import TraceFormatError, TraceVersionError, open_trace
from trainio.tracefile.format import IO_SCHEMA


def test_a_well_formed_trace_loads(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    trace = open_trace(root)
    assert trace.io.num_rows == 1 and trace.warnings == []


def test_garbage_manifest_is_a_format_error_naming_the_file(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    (root / "manifest.json").write_bytes(b"\x00\xffnot json")
    with pytest.raises(TraceFormatError) as exc:
        open_trace(root)
    assert str(root / "manifest.json") in str(exc.value) and "not valid JSON" in str(exc.value)


@pytest.mark.parametrize("content", ["", "{}", "[1, 2]", '{"format": "other-tool"}'])
def test_empty_or_foreign_manifest_is_refused(tmp_path, content):
    root = make_trace(tmp_path / "t", [(1, 100)])
    (root / "manifest.json").write_text(content)
    with pytest.raises(TraceFormatError):
        open_trace(root)


def test_future_major_version_is_refused_with_the_version(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format_version"] = "2.0"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TraceVersionError, match="2.0"):
        open_trace(root)


def test_newer_minor_version_is_accepted(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format_version"] = "1.9"
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert open_trace(root).io.num_rows == 1


def test_truncated_parquet_alone_is_an_error_naming_it(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    part = next((root / "io").glob("*.parquet"))
    part.write_bytes(part.read_bytes()[:-20])
    with pytest.raises(TraceFormatError) as exc:
        open_trace(root)
    assert str(part) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_truncated_parquet_among_others_is_skipped_with_a_warning(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100), (2, 200)])
    part = sorted((root / "io").glob("*.parquet"))[0]
    part.write_bytes(part.read_bytes()[: len(part.read_bytes()) // 2])
    trace = open_trace(root)
    assert trace.io.num_rows == 1
    assert len(trace.warnings) == 1 and str(part) in trace.warnings[0]


def test_parquet_without_trainio_metadata_is_refused(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    part = next((root / "io").glob("*.parquet"))
    pq.write_table(pa.table({"x": [1]}), part)
    with pytest.raises(TraceFormatError, match="without trainio metadata"):
        open_trace(root)


def test_unfinalized_trace_says_to_run_finalize(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    for part in (root / "io").iterdir():
        part.unlink()
    (root / "io").rmdir()
    (root / "spool").mkdir()
    with pytest.raises(TraceFormatError, match="tracer finalize"):
        open_trace(root)


def test_not_a_directory(tmp_path):
    with pytest.raises(TraceFormatError, match="not a directory"):
        open_trace(tmp_path / "missing")


def test_io_schema_carries_the_process_columns():
    assert IO_SCHEMA.names[-4:] == ["io_class", "rank", "worker_id", "role"]


def test_a_column_missing_from_an_older_minor_version_reads_as_null(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    part = next((root / "io").glob("*.parquet"))
    table = pq.read_table(part)
    pq.write_table(table.drop_columns(["file_id"]), part)
    trace = open_trace(root)
    assert trace.io["file_id"].null_count == 1 and trace.io["bytes_returned"].to_pylist() == [100]


def test_a_missing_core_column_is_an_error(tmp_path):
    root = make_trace(tmp_path / "t", [(1, 100)])
    part = next((root / "io").glob("*.parquet"))
    pq.write_table(pq.read_table(part).drop_columns(["start_ns"]), part)
    with pytest.raises(TraceFormatError, match="missing columns"):
        open_trace(root)
