"""replay/storage/fio.py's reader on real fio 3.33 JSON outputs (tests/fixtures/fio/README.md) and corrupt variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainio.replay.storage.fio import FioLatency, FioOutputError, job_spans, read_fio_json, read_lat_log

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fio"


def _error(source: str | Path) -> str:
    with pytest.raises(FioOutputError) as exc:
        read_fio_json(source)
    message = str(exc.value)
    assert "\n" not in message, message
    return message


def _variant(tmp_path: Path, edit, name: str = "variant.json") -> Path:
    """read.json parsed, edited by ``edit(document)``, written back as fio would (indented)."""
    document = json.loads((FIXTURES / "read.json").read_text())
    edit(document)
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=2))
    return path


def test_a_sequential_read_job_is_read_with_its_bytes_ios_and_latencies():
    result = read_fio_json(FIXTURES / "read.json")
    assert result.fio_version == "fio-3.33"
    assert result.timestamp > 1_600_000_000
    assert result.messages == ()
    (job,) = result.jobs
    assert job.jobname == "seqread" and job.error == 0
    assert job.read.io_bytes == 4 * 2**20 and job.read.total_ios == 64 and job.read.short_ios == 0
    assert job.read.bw_bytes > 0 and job.read.iops > 0 and job.job_runtime_ms >= 0
    assert job.write.io_bytes == 0 and job.write.total_ios == 0
    assert isinstance(job.read.clat_ns, FioLatency)
    assert 0 < job.read.clat_ns.min <= job.read.clat_ns.mean <= job.read.clat_ns.max
    assert job.read.lat_ns.mean >= job.read.clat_ns.mean
    assert job.usr_cpu >= 0 and job.sys_cpu >= 0


def test_percentile_keys_become_floats_in_order():
    clat = read_fio_json(FIXTURES / "read.json").jobs[0].read.clat_ns
    assert list(clat.percentile)[:3] == [1.0, 5.0, 10.0]
    assert {99.0, 99.5, 99.99} <= clat.percentile.keys()
    values = list(clat.percentile.values())
    assert values == sorted(values)
    # fio writes no percentiles for a distribution without samples (slat with psync).
    assert read_fio_json(FIXTURES / "read.json").jobs[0].read.slat_ns.percentile == {}


def test_several_jobs_are_read_in_order():
    result = read_fio_json(FIXTURES / "randread-3jobs.json")
    assert [job.jobname for job in result.jobs] == ["randread"] * 3
    assert [job.read.io_bytes for job in result.jobs] == [2**20] * 3
    assert [job.read.total_ios for job in result.jobs] == [256] * 3


def test_a_failed_job_keeps_its_error_and_fio_messages_before_the_json():
    result = read_fio_json(FIXTURES / "error-missing-file.json")
    (job,) = result.jobs
    assert job.error == 2 and job.read.io_bytes == 0
    assert result.messages[0] == "fio: refusing extend of file due to read-only"
    assert all(m.startswith("fio: ") for m in result.messages) and len(result.messages) == 2


def test_text_is_accepted_as_well_as_a_path():
    text = (FIXTURES / "read.json").read_text()
    assert read_fio_json(text) == read_fio_json(FIXTURES / "read.json")
    assert read_fio_json(str(FIXTURES / "read.json")).jobs[0].read.io_bytes == 4 * 2**20


def test_fio_messages_after_the_json_are_kept_too():
    text = (FIXTURES / "read.json").read_text() + "fio: file hash not empty on exit\n"
    assert read_fio_json(text).messages == ("fio: file hash not empty on exit",)


def test_exec_prerun_notices_of_thread_jobs_are_dropped_not_kept_as_messages():
    # fio 3.33 writes these into the --output file for each exec_prerun/postrun of a job run as a thread
    notices = "c0 : Saving output of prerun in c0.prerun.txt\nc0 : Saving output of postrun in c0.postrun.txt\n"
    text = notices + (FIXTURES / "read.json").read_text() + "fio: file hash not empty on exit\n" + notices
    result = read_fio_json(text)
    assert result.messages == ("fio: file hash not empty on exit",)
    assert result.jobs == read_fio_json(FIXTURES / "read.json").jobs
    with pytest.raises(FioOutputError, match="text before the JSON"):
        read_fio_json("c0 : Saving output of something else\n" + (FIXTURES / "read.json").read_text())


def test_unknown_fields_and_a_future_fio_version_are_tolerated(tmp_path):
    def edit(doc):
        doc["fio version"] = "fio-9.99"
        doc["new top field"] = {"x": 1}
        doc["jobs"][0]["new job field"] = [1, 2]
        doc["jobs"][0]["read"]["new direction field"] = 3.5

    result = read_fio_json(_variant(tmp_path, edit))
    assert result.fio_version == "fio-9.99" and result.jobs[0].read.io_bytes == 4 * 2**20


def test_fio_normal_text_around_the_json_is_an_error_naming_file_and_line():
    message = _error(FIXTURES / "normal-and-json.txt")
    assert str(FIXTURES / "normal-and-json.txt") in message
    assert "text before the JSON at line 1" in message and "seqread: (g=0)" in message


def test_a_fio_message_inside_the_json_is_an_error_with_its_line():
    message = _error(FIXTURES / "warning-inside.json")
    assert str(FIXTURES / "warning-inside.json") in message
    assert "malformed JSON at line 257" in message and "fio: file hash not empty" in message


def test_truncated_output_is_reported_as_truncated():
    message = _error(FIXTURES / "truncated.json")
    assert str(FIXTURES / "truncated.json") in message and "truncated" in message


def test_other_text_after_the_json_is_an_error(tmp_path):
    path = tmp_path / "out.json"
    path.write_text((FIXTURES / "read.json").read_text() + "Segmentation fault\n")
    assert "text after the JSON at line" in _error(path) and "Segmentation fault" in _error(path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"fio: only a message\n", "no JSON object"),
        (b"\x00\xff\xfe garbage", "not UTF-8 text"),
        (b"[1, 2]\n", "text before the JSON"),
        (b"{not json}\n", "malformed JSON at line 1"),
    ],
)
def test_empty_garbage_and_non_fio_files_are_errors_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "out.json"
    path.write_bytes(content)
    message = _error(path)
    assert str(path) in message and reason in message


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    message = _error(tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in message and "No such file" in message


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.pop("jobs"), "jobs"),
        (lambda d: d.pop("fio version"), "fio version"),
        (lambda d: d["jobs"][0].pop("job_runtime"), "jobs[0].job_runtime"),
        (lambda d: d["jobs"][0]["read"].pop("io_bytes"), "jobs[0].read.io_bytes"),
        (lambda d: d["jobs"][0]["write"]["clat_ns"].pop("mean"), "jobs[0].write.clat_ns.mean"),
    ],
)
def test_a_missing_required_field_is_named_with_its_path(tmp_path, edit, field):
    path = _variant(tmp_path, edit)
    message = _error(path)
    assert str(path) in message and f"missing field {field!r}" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["jobs"][0]["read"].update(io_bytes="4M"), "'jobs[0].read.io_bytes' is '4M', expected an integer"),
        (lambda d: d["jobs"][0]["read"].update(iops=None), "'jobs[0].read.iops' is None, expected a number"),
        (lambda d: d["jobs"][0].update(error=True), "'jobs[0].error' is True, expected an integer"),
        (lambda d: d.update(jobs={}), "'jobs' is {}, expected a list"),
        (lambda d: d["jobs"].__setitem__(0, "job"), "jobs[0] is not a JSON object"),
        (lambda d: d["jobs"][0]["read"]["clat_ns"]["percentile"].update(p99=1), "percentile key 'p99'"),
    ],
)
def test_a_mistyped_field_is_named_with_its_value(tmp_path, edit, expected):
    assert expected in _error(_variant(tmp_path, edit))


# ------------------------------------------------------------------------------ per-I/O latency logs


def test_a_latency_log_gives_the_first_issue_and_the_last_end(tmp_path):
    log = tmp_path / "job_lat.1.log"
    log.write_text("1000, 2000000, 0, 4096, 0\n1005, 1000000, 0, 4096, 0\n1010, 4000000, 0, 4096, 0, 0\n")
    span = read_lat_log(log)
    assert span is not None and span.ios == 3
    assert (span.first_issue_s, span.last_issue_s, span.last_end_s) == pytest.approx((0.998, 1.006, 1.010))
    (tmp_path / "empty.log").write_text("")
    assert read_lat_log(tmp_path / "empty.log") is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"1000, 2000\n", "line 1 is not a latency log line"),
        (b"1000, x, 0, 4096, 0\n", "line 1 is not a latency log line"),
        (b"1000, 2000, 0, 4096, 0\n1001, 2", "line 2 is not a latency log line"),
        (b"\xff\xfe binary", "not text"),
        (b"1, 2, 3, 4, 5" + b"9" * 300 + b"\n", "not a latency log line"),
    ],
)
def test_a_latency_log_that_is_not_one_is_one_line_naming_the_file(tmp_path, data, reason):
    log = tmp_path / "job_lat.1.log"
    log.write_bytes(data)
    with pytest.raises(FioOutputError, match=f"cannot read fio output {log}: .*{reason}"):
        read_lat_log(log)
    with pytest.raises(FioOutputError, match="No such file"):
        read_lat_log(tmp_path / "missing.log")


def test_job_spans_follow_the_job_files_order_and_miss_jobs_without_io(tmp_path):
    (tmp_path / "job_lat.1.log").write_text("2000, 1000000, 0, 4096, 0\n")
    (tmp_path / "job_lat.3.log").write_text("3000, 1000000, 0, 4096, 0\n")
    spans = job_spans(tmp_path / "job", 3)
    assert [span.last_end_s if span else None for span in spans] == [2.0, None, 3.0]
