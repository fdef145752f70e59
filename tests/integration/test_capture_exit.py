"""The training's exit code and output survive whatever happens to the tracer's own output, and a
capture that cannot run its command behaves as a shell would (issue 13, items 5 and 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli

TRACER = [sys.executable, "-m", "trainio.tracer", "capture"]
TIMEOUT_S = 120
PROBE = """
import json, os, sys
def is_open(fd):
    try:
        return bool(os.fstat(fd))
    except OSError:
        return False
fds = [fd for fd in (0, 1, 2) if is_open(fd)]
with open(sys.argv[2], "w") as f:
    json.dump(fds, f)
print("training", fds, flush=True)
sys.exit(int(sys.argv[1]))
"""
"""``train.py CODE FILE``: writes which of its stdin, stdout, stderr are open into FILE, prints them,
exits with CODE."""


def _run(argv: list[str], cwd: Path, **streams) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, timeout=TIMEOUT_S, **streams)


@pytest.mark.parametrize("code", [0, 3])
def test_a_broken_pipe_on_the_tracers_output_keeps_the_exit_code(tmp_path, code):
    """``tracer capture -- ... 2>&1 | head -1``, with ``head`` gone before the tracer writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write into the pipe fails with EPIPE, the tracer's and the training's
    try:
        argv = [*TRACER, "--out", str(tmp_path / "t"), "--", sys.executable, "-c", f"import sys; sys.exit({code})"]
        proc = _run(argv, tmp_path, stdout=write_end, stderr=write_end)
    finally:
        os.close(write_end)
    assert proc.returncode == code
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["exit_code"] == code


@pytest.mark.parametrize("code", [0, 3])
def test_a_full_stderr_keeps_the_exit_code_and_the_training_s_output(tmp_path, code):
    """``2>/dev/full``: each write of the tracer's messages fails with ENOSPC."""
    (tmp_path / "train.py").write_text(PROBE)
    with open("/dev/full", "w") as full:
        plain = _run([sys.executable, "train.py", str(code), "fds"], tmp_path, stdout=subprocess.PIPE, stderr=full)
        argv = [*TRACER, "--out", "t", "--", sys.executable, "train.py", str(code), "fds"]
        traced = _run(argv, tmp_path, stdout=subprocess.PIPE, stderr=full)
    assert traced.returncode == plain.returncode == code
    assert traced.stdout == plain.stdout == b"training [0, 1, 2]\n"


@pytest.mark.parametrize("closed", [0, 1, 2])
def test_a_closed_standard_stream_stays_closed_for_the_training_and_keeps_the_exit_code(tmp_path, closed):
    """``<&-`` / ``>&-`` / ``2>&-``: the training sees the stream closed as it does untraced, and no
    file of the tracer takes its number."""
    (tmp_path / "train.py").write_text(PROBE)
    shell = f'exec "$@" {closed}>&-'
    plain = _run(["sh", "-c", shell, "sh", sys.executable, "train.py", "3", "plain"], tmp_path, stdout=subprocess.PIPE)
    argv = [*TRACER, "--out", "t", "--", sys.executable, "train.py", "3", "traced"]
    traced = _run(["sh", "-c", shell, "sh", *argv], tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert traced.returncode == plain.returncode == 3, traced.stderr
    fds = json.loads((tmp_path / "plain").read_text())
    assert closed not in fds
    assert json.loads((tmp_path / "traced").read_text()) == fds
    assert traced.stdout == plain.stdout  # nothing of the tracer's lands in the training's stdout


def test_a_command_that_is_not_found_exits_127_in_one_line_and_leaves_no_trace_directory(tmp_path):
    for options in ([], ["--out", "deep/er/trace"]):
        proc = run_cli("tracer", "capture", *options, "--", "nosuchcmd-trainio", cwd=tmp_path)
        assert proc.returncode == 127, proc.stderr
        assert proc.stderr == "tracer capture: cannot run 'nosuchcmd-trainio': command not found\n"
        assert list(tmp_path.iterdir()) == []  # nor the folders --out would have needed


@pytest.mark.parametrize(("make", "code"), [("text", 126), ("dir", 126), ("missing-interpreter", 127)])
def test_a_command_that_cannot_be_executed_exits_as_a_shell_would(tmp_path, make, code):
    target = tmp_path / "cmd"
    if make == "dir":
        target.mkdir()
    else:
        target.write_text("#!/nonexistent/interpreter\n" if make == "missing-interpreter" else "echo hi\n")
        target.chmod(0o755 if make == "missing-interpreter" else 0o644)
    sh = subprocess.run(["bash", "-c", str(target)], capture_output=True, timeout=TIMEOUT_S)
    out = tmp_path / "out"
    proc = run_cli("tracer", "capture", "--out", out, "--", target, cwd=tmp_path)
    assert proc.returncode == sh.returncode == code, (proc.stderr, sh.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tracer capture: cannot run"), proc.stderr
    assert not out.exists()


def test_an_empty_out_directory_that_existed_is_kept_when_the_command_is_not_found(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("tracer", "capture", "--out", out, "--", "nosuchcmd-trainio")
    assert proc.returncode == 127
    assert out.is_dir() and list(out.iterdir()) == []


def _stamp(t: float) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(t))


def test_a_default_trace_directory_taken_in_the_same_second_gets_a_new_name_and_the_training_runs(tmp_path):
    now = time.time()
    for t in range(int(now) - 1, int(now) + 60):  # a previous capture holds every name of the next minute
        taken = tmp_path / f"trainio-trace-{_stamp(t)}"
        taken.mkdir()
        (taken / "manifest.json").write_text("{}")
    proc = run_cli("tracer", "capture", "--", sys.executable, "-c", "print('trained')", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "trained\n"
    new = [p for p in tmp_path.iterdir() if p.name.endswith("-2")]
    assert len(new) == 1 and (new[0] / "io").is_dir(), sorted(p.name for p in tmp_path.iterdir())
    assert all((p / "manifest.json").read_text() == "{}" for p in tmp_path.iterdir() if p not in new)


def test_two_captures_started_together_each_run_their_training_into_their_own_directory(tmp_path):
    script = "import os, time; time.sleep(0.3); print(os.getpid())"
    argv = [*TRACER, "--", sys.executable, "-c", script]
    procs = [subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    traces = sorted(tmp_path.iterdir())
    assert len(traces) == 2
    pids = {json.loads((t / "manifest.json").read_text())["processes"][0]["pid"] for t in traces}
    assert pids == {int(o[0]) for o in outs}


def test_an_out_directory_that_holds_anything_is_refused_before_the_training_starts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("MY PRECIOUS")
    marker = tmp_path / "ran"
    proc = run_cli("tracer", "capture", "--out", out, "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is not empty" in proc.stderr
    assert not marker.exists()
    assert [p.name for p in out.iterdir()] == ["mine.txt"] and (out / "mine.txt").read_text() == "MY PRECIOUS"
