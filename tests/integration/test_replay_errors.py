"""Issue 13's errors and bounds, for every replay command that meets them: one line on stderr, exit 2 for
bad input (1 for a failure), no traceback, nothing half-made left or marked done; a damaged trace's
warnings repeated by every command that reads it; an S3 endpoint that never answers fails fast."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.unit.synthetic import io_row, make_trace
from trainio.replay.storage.layout import MANIFEST_NAME

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "traces" / "imagenet_jpeg-cpu"
PROFILE = ROOT / "models" / "profiles" / "cephfs.toml"
S3_ENV = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}


def one_line_error(proc, code: int = 2) -> str:
    lines = [line for line in proc.stderr.splitlines() if ": warning: " not in line and not _progress(line)]
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    return lines[0]


def _progress(line: str) -> bool:
    command, sep, rest = line.partition(": ")
    return bool(sep) and command.startswith("replay ") and not rest.startswith(("error:", "failed:"))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """The bundled trace with one worker's per-process Parquet cut in half."""
    trace = tmp_path_factory.mktemp("damaged") / "trace"
    shutil.copytree(BUNDLED, trace)
    part = sorted((trace / "io").glob("*.parquet"))[1]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    return trace


# ------------------------------------------------------------------------------ 9: a damaged trace


@pytest.mark.parametrize(
    "args",
    [
        ["what-if"],
        ["fio", "--no-stall", "--target", "{tmp}/ds"],
        ["s3", "--endpoint", "http://127.0.0.1:1", "--bucket", "b", "--connect-timeout", "0.2"],
        ["emulate", "--target", "{tmp}/ds", "--epochs", "1", "--compute-scale", "0.01"],
    ],
    ids=lambda args: args[0],
)
def test_every_command_that_reads_a_damaged_trace_repeats_the_readers_warning(args, damaged, tmp_path):
    proc = run_cli("replay", *[a.format(tmp=tmp_path) for a in args], "--trace", damaged, env=S3_ENV, timeout=300)
    assert "warning: skipped cannot read trace" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_replay_fio_on_a_damaged_trace_says_so_in_its_result(damaged, tmp_path):
    proc = run_cli("replay", "fio", "--trace", damaged, "--target", tmp_path / "ds", "--no-stall", "--json")
    result = json.loads(proc.stdout)
    assert result["ops"] < 4097 and any("skipped cannot read trace" in w for w in result["details"]["warnings"])


# ------------------------------------------------------------------------------ 8: tracebacks


def test_a_binary_profile_is_one_line_naming_the_file(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_bytes(bytes(range(256)) * 4)
    line = one_line_error(run_cli("replay", "what-if", "--trace", BUNDLED, "--profile", profile))
    assert str(profile) in line and "not UTF-8" in line


def test_a_regular_file_as_target_is_one_line(tmp_path):
    (tmp_path / "a-regular-file").write_text("x")
    for command in (["fio"], ["emulate"]):
        proc = run_cli("replay", *command, "--trace", BUNDLED, "--target", tmp_path / "a-regular-file")
        assert "is a file, not a directory" in one_line_error(proc)
    assert (tmp_path / "a-regular-file").read_text() == "x"


def test_a_folder_where_a_traced_file_goes_is_one_line_and_nothing_is_marked_done(tmp_path):
    (tmp_path / "ds" / "train" / "class_000" / "img_000000.jpg").mkdir(parents=True)
    (tmp_path / "ds" / MANIFEST_NAME).write_text(
        json.dumps(
            {"format": "trainio-layout", "format_version": "1.0", "status": "complete", "seed": 0, "entries": {}}
        )
    )
    proc = run_cli("replay", "fio", "--trace", BUNDLED, "--target", tmp_path / "ds", "--overwrite")
    assert "img_000000.jpg: a folder" in one_line_error(proc)
    assert json.loads((tmp_path / "ds" / MANIFEST_NAME).read_text())["entries"] == {}
    assert not (tmp_path / "ds" / "train" / "class_000" / "img_000010.jpg").exists()


# ------------------------------------------------------------------------------ 1: the work folder


def test_a_users_workdir_is_refused_and_left_as_it_was(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    for name in ("mapping.tsv", "replay.fio", "result.json"):
        (work / name).write_text("mine\n")
    proc = run_cli("replay", "fio", "--trace", BUNDLED, "--target", tmp_path / "ds", "--workdir", work)
    assert "holds files trainio did not write" in one_line_error(proc)
    assert sorted(p.name for p in work.iterdir()) == ["mapping.tsv", "replay.fio", "result.json"]
    assert all(p.read_text() == "mine\n" for p in work.iterdir()) and not (tmp_path / "ds").exists()


# ------------------------------------------------------------------------------ 10: an S3 endpoint that never answers


@pytest.fixture
def silent_endpoint():
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize(
    "args",
    [
        ["s3", "--trace", str(BUNDLED), "--bucket", "b", "--endpoint", "{url}"],
        ["calibrate", "--target", "rgw:{url}/b", "--out", "{tmp}/p.toml", "--budget-s", "5"],
        ["emulate", "--trace", str(BUNDLED), "--target", "s3://b/ds", "--endpoint", "{url}"],
    ],
    ids=lambda args: args[0],
)
def test_an_s3_endpoint_that_never_answers_fails_within_the_timeouts(args, silent_endpoint, tmp_path):
    start = time.monotonic()
    given = [a.format(url=silent_endpoint, tmp=tmp_path) for a in args]
    proc = run_cli("replay", *given, "--read-timeout", "1", "--connect-timeout", "1", env=S3_ENV, timeout=60)
    line = one_line_error(proc, 1)
    assert "timeout" in line.lower() and silent_endpoint in line, line
    print(f"{args[0]}: failed after {time.monotonic() - start:.1f} s: {line}")


# ------------------------------------------------------------------------------ 11: the message about replay s3


def test_a_trace_of_object_gets_is_refused_without_pointing_at_the_command_that_refused(tmp_path):
    get = io_row(1, "s3://bucket/train/a.jpg", 4096, 1, op="get")
    get["kind"] = "object"
    trace = make_trace(tmp_path / "trace", [], io_rows=[get])
    for command in (
        ["fio", "--target", str(tmp_path / "ds")],
        ["s3", "--endpoint", "http://127.0.0.1:1", "--bucket", "b"],
    ):
        line = one_line_error(run_cli("replay", *command, "--trace", trace, env=S3_ENV), 1)
        assert "1 data operations are object GETs" in line and f"replay {command[0]} does not replay" in line
        assert "replayed by" not in line


# ------------------------------------------------------------------------------ 12: bounds


def test_more_ranks_than_samples_warns():
    proc = run_cli("replay", "what-if", "--trace", BUNDLED, "--nodes", "1000000000", "--json", check=True)
    assert "1,000,000,000 ranks" in proc.stderr and "1,024 samples" in proc.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [("request_cpu", "1e300 s"), ("iops", "1e400 IOPS"), ("stream_bandwidth", "1e30 GB/s"), ("read_latency", "-1 ms")],
)
def test_absurd_unit_values_are_refused_naming_file_and_key(tmp_path, key, value):
    lines = [line for line in PROFILE.read_text().splitlines() if not line.startswith(f"{key} =")]
    lines.insert(lines.index("[backend]") + 1, f'{key} = "{value}"')
    profile = tmp_path / "p.toml"
    profile.write_text("\n".join(lines))
    line = one_line_error(run_cli("replay", "what-if", "--trace", BUNDLED, "--profile", profile))
    assert str(profile) in line and key in line and len(line) < 300


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_a_non_finite_compute_scale_names_the_option(value):
    line = one_line_error(run_cli("replay", "what-if", "--trace", BUNDLED, "--compute-scale", value))
    assert "--compute-scale" in line and "step_compute_s" not in line


def test_failed_replays_leave_no_temporary_folders(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    no_data = make_trace(tmp_path / "trace", [], io_rows=[io_row(1, "/usr/lib/x.so", 9, 1, io_class="runtime")])
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "theirs").write_text("x")
    for trace, target in ((no_data, tmp_path / "new"), (BUNDLED, tmp_path / "ds")):
        proc = run_cli("replay", "fio", "--trace", trace, "--target", target, env={"TMPDIR": str(tmp)})
        assert proc.returncode in (1, 2), proc.stderr
    assert list(tmp.iterdir()) == []
