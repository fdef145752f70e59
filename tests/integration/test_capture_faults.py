"""The capture's fault suite (issue 13, "Done when"): under each fault the training's own output and
exit code are what they are without the tracer, and the trace keeps what it can.

Each fault runs tests/workloads/fault_train.py untraced and traced under the same fault and compares
the training's stdout, its own stderr lines and its exit status. After each kill the trace is
finalized and its data bytes are compared with what the workload really read (its marks file, which
no kill can erase). The table of faults tried, survived and bytes kept is written to
``out/capture-faults.md`` (and printed with ``pytest -s``).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, WORKLOADS, run_cli, summary_json

WORKLOAD = WORKLOADS / "fault_train.py"
SIZE = 65536
TIMEOUT_S = 180
TABLE = ROOT / "out" / "capture-faults.md"
TRACER_LINES = ("trainio:", "next: tracer summary", "tracer: lost")
SUMMARY_LABELS = (
    "data read",
    "pattern",
    "loader",
    "data stall",
    "coverage",
    "host CPU",
    "node CPU",
    "loop CPU",
    "WARNING",
)
ROWS: list[dict] = []


@dataclass
class Run:
    status: int
    """Popen return code: negative when killed by that signal."""
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "data"
    subprocess.run([sys.executable, WORKLOAD, folder, "--loader", "none"], check=True, capture_output=True, timeout=120)
    return folder


@pytest.fixture(scope="module", autouse=True)
def table():
    yield
    lines = [
        "| fault | exit code untraced / traced | training's output unchanged | trace | data kept |",
        "|---|---|---|---|---|",
        *[
            f"| {r['fault']} | {r['codes']} | {'yes' if r['same'] else 'NO'} | {r['trace']} | {r['kept']} |"
            for r in ROWS
        ],
    ]
    survived = sum(r["same"] for r in ROWS)
    lines.append(f"\n{len(ROWS)} faults tried, {survived} survived with the training's output and exit code unchanged.")
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines))


def workload(data: Path, *args: str) -> list[str]:
    return [sys.executable, str(WORKLOAD), str(data), *args]


def traced(trace: Path, command: list[str]) -> list[str]:
    return [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--", *command]


def run(argv: list[str], **kwargs) -> Run:
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.run(argv, timeout=TIMEOUT_S, **kwargs)
    decode = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else ""  # noqa: E731
    return Run(proc.returncode, decode(proc.stdout), decode(proc.stderr))


def training_lines(stderr: str) -> list[str]:
    """The training's own stderr lines: the tracer's messages and end-of-capture summary removed."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(TRACER_LINES) and not line.strip().startswith(SUMMARY_LABELS)
    ]


def kept(trace: Path, data: Path) -> tuple[str, str]:
    """What became of the trace (finalized by the capture, or by `tracer finalize` afterwards), and
    its data bytes and samples next to what the workload read (its marks, which no kill erases)."""
    how = "finalized by the capture"
    if (trace / "spool").is_dir():
        deadline = time.monotonic() + 60
        while run_cli("tracer", "finalize", trace).returncode == 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # killed processes' locks go when the kernel has torn them down
        how = "`tracer finalize` afterwards"
    lost = json.loads((trace / "manifest.json").read_text())["lost"]
    if any("disk full" in line for line in lost):
        how += ", `disk full` said once"
    samples = len((data / "marks").read_text().split())
    digest = summary_json(trace)
    loader = f"{digest['samples']} of {samples} samples" if digest["batches"] else "no DataLoader"
    share = digest["bytes_read"] / (samples * SIZE)
    return how, f"{digest['bytes_read']:,} of {samples * SIZE:,} bytes ({share:.0%}), {loader}"


def record(fault: str, plain: Run, traced_run: Run, outcome: tuple[str, str]) -> None:
    """Add the fault's row to the table, then check that the training did not notice the tracer."""
    same = (
        plain.status == traced_run.status
        and plain.stdout == traced_run.stdout
        and training_lines(plain.stderr) == training_lines(traced_run.stderr)
    )
    codes = f"{plain.status} / {traced_run.status}"
    ROWS.append({"fault": fault, "codes": codes, "same": same, "trace": outcome[0], "kept": outcome[1]})
    assert plain.stdout == traced_run.stdout
    assert training_lines(plain.stderr) == training_lines(traced_run.stderr), traced_run.stderr
    assert plain.status == traced_run.status, traced_run.stderr


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (400 << 10, 400 << 10))


def test_disk_full_by_rlimit_fsize(tmp_path, data):
    """No file may grow past 400 KiB: the busiest spools stop growing, the training does not notice."""
    plain = run(workload(data))
    got = run(traced(tmp_path / "t", workload(data)), preexec_fn=_limit_file_size)
    record("disk full (RLIMIT_FSIZE: 400 KiB a file)", plain, got, kept(tmp_path / "t", data))
    assert got.stderr.count("disk full") == 1, got.stderr


@pytest.fixture
def mount(tmp_path):
    """``mount(options)``: a tmpfs mounted under tmp_path (root only: CI runs as root)."""
    mounted: list[Path] = []

    def make(options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True, timeout=30)
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True, timeout=30)


def test_disk_full_on_a_small_file_system(tmp_path, data, mount):
    small = mount("size=9m")  # the capture's 4 MiB reserve, then room for some of the spool segments
    plain = run(workload(data))
    got = run(traced(small / "t", workload(data)))
    record("disk full (9 MiB tmpfs)", plain, got, kept(small / "t", data))
    assert got.stderr.count("disk full") == 1, got.stderr


def test_unwritable_output_directory(tmp_path, data, mount):
    out = mount("ro,size=1m")
    plain = run(workload(data))
    got = run(traced(out / "t", workload(data)))
    record("unwritable output directory (read-only file system)", plain, got, ("none: ran untraced, said once", "-"))
    assert got.stderr.count("cannot write the trace") == 1, got.stderr


@pytest.mark.parametrize(("fault", "label"), [("kill-main", "main process"), ("kill-worker", "DataLoader worker")])
def test_sigkill_of_a_traced_process(tmp_path, data, fault, label):
    plain = run(workload(data, "--fault", fault))
    got = run(traced(tmp_path / "t", workload(data, "--fault", fault)))
    record(f"SIGKILL of the {label}", plain, got, kept(tmp_path / "t", data))


KILL_TRACER = """
import ctypes, json, os, signal, subprocess, sys, time
command, ready, out, err = json.loads(sys.argv[1])
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the orphaned training comes to us
with open(out, "wb") as o, open(err, "wb") as e:
    tracer = subprocess.Popen(command, stdout=o, stderr=e, start_new_session=True)
while not os.path.exists(ready):
    time.sleep(0.02)
children = open(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read().split()
training = next(int(c) for c in children if b"fault_train" in open(f"/proc/{c}/cmdline", "rb").read())
os.kill(tracer.pid, signal.SIGKILL)
tracer.wait()
status = os.waitstatus_to_exitcode(os.waitpid(training, 0)[1])
while True:  # the capture's other orphans
    try:
        os.wait()
    except ChildProcessError:
        break
print(json.dumps(status))
"""


def test_sigkill_of_the_tracer_parent(tmp_path, data):
    """The capture itself is killed mid-run: the training goes on to its own end, and `tracer
    finalize` afterwards keeps every record."""
    plain = run(workload(data))
    ready = tmp_path / "ready"
    args = [traced(tmp_path / "t", workload(data, "--ready", str(ready))), str(ready)]
    args += [str(tmp_path / "out"), str(tmp_path / "err")]
    harness = run([sys.executable, "-c", KILL_TRACER, json.dumps(args)])
    got = Run(json.loads(harness.stdout), (tmp_path / "out").read_text(), (tmp_path / "err").read_text())
    record("SIGKILL of the tracer (`tracer capture`) itself", plain, got, kept(tmp_path / "t", data))


def _interrupted(command: list[str], ready: Path) -> Run:
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not ready.exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the training never got ready"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ready.unlink()
    return Run(proc.returncode, out.decode(), err.decode())


def test_ctrl_c_to_the_process_group(tmp_path, data):
    ready = tmp_path / "ready"
    command = workload(data, "--fault", "interrupt", "--ready", str(ready))
    plain = _interrupted(command, ready)
    got = _interrupted(traced(tmp_path / "t", command), ready)
    record("Ctrl-C to the process group", plain, got, kept(tmp_path / "t", data))
    assert "checkpoint saved" in got.stdout


BROKEN_PIPE = "2>&1 | head, head gone"


@pytest.mark.parametrize(
    ("label", "setup", "silent"),
    [
        ("stderr closed (2>&-)", "2>&-", False),
        ("stdout closed (>&-)", ">&-", False),
        ("stdout and stderr a pipe whose reader has gone (2>&1 into head, a silent training)", BROKEN_PIPE, True),
        ("stderr a full device (2>/dev/full, a silent training)", "2>/dev/full", True),
    ],
)
def test_the_tracers_own_output_fails(tmp_path, data, label, setup, silent):
    """The tracer's messages cannot be written; a silent training shows that its exit code is kept
    (one that writes fails by itself, with or without the tracer)."""
    command = workload(data, "--loader", "none", "--exit", "3", *(["--silent"] if silent else []))

    def under(argv: list[str]) -> Run:
        if setup != BROKEN_PIPE:
            return run(["sh", "-c", f'exec "$@" {setup}', "sh", *argv])
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            return run(argv, stdout=write_end, stderr=write_end)
        finally:
            os.close(write_end)

    plain, got = under(command), under(traced(tmp_path / "t", command))
    record(label, plain, got, kept(tmp_path / "t", data))
