"""Under ``tracer capture`` a signal reaches the training as often as without it (issue 13, item 4).

Each delivery path runs the same checkpointing training (tests/workloads/checkpoint_on_signal.py)
twice, untraced and traced, in a session of its own: a real terminal (a pty whose line discipline
turns ^C into SIGINT for the foreground process group), ``kill`` of one pid, ``kill`` of the process
group (a scheduler), and a signal to every process of the job one by one (systemd, Slurm's cgroup
mode). What the training received, whether its checkpoint was written, and how it ended must be
the same both times.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import WORKLOADS

WORKLOAD = WORKLOADS / "checkpoint_on_signal.py"
TIMEOUT_S = 60


@dataclass
class Outcome:
    received: list[str]
    checkpoint: bool
    status: int
    """os.waitstatus_to_exitcode of the process started (negative: killed by that signal)."""
    output: str


def _command(folder: Path, traced: bool) -> list[str]:
    workload = [sys.executable, str(WORKLOAD), str(folder / "log"), str(folder / "ready")]
    if not traced:
        return workload
    return [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(folder / "trace"), "--", *workload]


def _wait_ready(folder: Path, deadline: float) -> None:
    while not (folder / "ready").exists():
        assert time.monotonic() < deadline, "the training never got ready"
        time.sleep(0.02)


def _outcome(folder: Path, status: int, output: str) -> Outcome:
    log = folder / "log"
    received = log.read_text().split() if log.exists() else []
    return Outcome(received, (folder / "checkpoint").exists(), status, output)


def in_terminal(folder: Path, traced: bool, presses: int) -> Outcome:
    """Run in a new session on a pty and press ^C ``presses`` times, 0.2 s apart."""
    folder.mkdir()
    deadline = time.monotonic() + TIMEOUT_S
    pid, master = pty.fork()
    if pid == 0:  # the child: session leader with the pty as its controlling terminal
        try:
            command = _command(folder, traced)
            os.execv(command[0], command)
        finally:
            os._exit(127)
    output = b""
    try:
        _wait_ready(folder, deadline)
        for _ in range(presses):
            time.sleep(0.2)
            os.write(master, b"\x03")
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has ended
                    break
                if not chunk:
                    break
                output += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    return _outcome(folder, os.waitstatus_to_exitcode(status), output.decode(errors="replace"))


def by_kill(folder: Path, traced: bool, signum: int, how: str) -> Outcome:
    """Run in a new session; send ``signum`` to its first process only (``pid``), to its process
    group (``group``), or to each of its processes one by one (``each``)."""
    folder.mkdir()
    deadline = time.monotonic() + TIMEOUT_S
    proc = subprocess.Popen(
        _command(folder, traced), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_ready(folder, deadline)
        time.sleep(0.2)
        if how == "pid":
            os.kill(proc.pid, signum)
        elif how == "group":
            os.killpg(proc.pid, signum)
        else:
            for pid in _group_members(proc.pid):
                os.kill(pid, signum)
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return _outcome(folder, proc.returncode, output.decode(errors="replace"))


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                members.append(int(entry))
    return sorted(members)


def _decisions(folder: Path) -> list[dict]:
    return json.loads((folder / "trace" / "manifest.json").read_text())["signals"]


def _same(plain: Outcome, traced: Outcome) -> None:
    assert (traced.received, traced.checkpoint, traced.status) == (plain.received, plain.checkpoint, plain.status), (
        plain,
        traced,
    )


def test_a_terminal_ctrl_c_reaches_the_training_once_and_its_checkpoint_is_written(tmp_path):
    plain = in_terminal(tmp_path / "plain", traced=False, presses=1)
    traced = in_terminal(tmp_path / "traced", traced=True, presses=1)
    assert plain.received == ["SIGINT"] and plain.checkpoint and plain.status == 3
    _same(plain, traced)
    assert "checkpoint saved" in traced.output and "trainio: trace written" in traced.output
    assert _decisions(tmp_path / "traced") == [
        {"signal": "SIGINT", "forwarded": False, "why": "the process group got it"}
    ]


def test_a_second_ctrl_c_interrupts_the_checkpoint_as_it_would_untraced(tmp_path):
    """Two presses: two SIGINTs, the second one inside the checkpoint, which dies of it; the
    capture then ends killed by SIGINT too, so that a calling shell script stops as it would."""
    plain = in_terminal(tmp_path / "plain", traced=False, presses=2)
    traced = in_terminal(tmp_path / "traced", traced=True, presses=2)
    assert plain.received == ["SIGINT", "SIGINT"] and not plain.checkpoint and plain.status == -signal.SIGINT
    _same(plain, traced)
    assert [d["forwarded"] for d in _decisions(tmp_path / "traced")] == [False, False]


@pytest.mark.parametrize(
    ("signum", "how"),
    [
        (signal.SIGINT, "pid"),  # kill -INT PID: only the capture got it, so it forwards it
        (signal.SIGTERM, "pid"),  # a container runtime stopping its PID 1
        (signal.SIGUSR1, "pid"),  # Slurm's --signal=USR1 to the batch step's process
        (signal.SIGTERM, "group"),  # a scheduler's SIGTERM to the job's process group
        (signal.SIGTERM, "each"),  # systemd / Slurm cgroup: every process, one by one
        (signal.SIGHUP, "group"),  # the terminal went away
    ],
)
def test_a_signal_reaches_the_training_exactly_once_whoever_it_was_sent_to(tmp_path, signum, how):
    plain = by_kill(tmp_path / "plain", traced=False, signum=signum, how=how)
    traced = by_kill(tmp_path / "traced", traced=True, signum=signum, how=how)
    name = signal.Signals(signum).name
    assert plain.received == [name] and plain.checkpoint and plain.status == 3
    _same(plain, traced)
    assert [d["forwarded"] for d in _decisions(tmp_path / "traced")] == [how == "pid"]


def test_a_command_killed_by_a_signal_leaves_the_capture_killed_by_it(tmp_path):
    kill_self = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    plain = subprocess.run([sys.executable, "-c", kill_self], timeout=TIMEOUT_S)
    cmd = [sys.executable, "-m", "trainio.tracer", "capture", "--out", tmp_path / "t", "--", sys.executable]
    traced = subprocess.run([*cmd, "-c", kill_self], timeout=TIMEOUT_S, capture_output=True, text=True)
    assert plain.returncode == traced.returncode == -signal.SIGTERM, traced.stderr
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["exit_code"] == 128 + signal.SIGTERM


def test_a_signal_ignored_by_the_capture_s_parent_stays_ignored_in_the_training(tmp_path):
    """``cmd &`` in a script and ``nohup`` start a command with SIGINT / SIGHUP ignored."""
    show = "import signal as s; print([s.getsignal(n) == s.SIG_IGN for n in (s.SIGINT, s.SIGHUP)])"
    ignoring = ["sh", "-c", 'trap "" INT HUP; exec "$@"', "sh"]
    plain = subprocess.run([*ignoring, sys.executable, "-c", show], capture_output=True, text=True, timeout=TIMEOUT_S)
    cmd = [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(tmp_path / "t"), "--", sys.executable]
    traced = subprocess.run([*ignoring, *cmd, "-c", show], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert plain.stdout == "[True, True]\n"
    assert traced.stdout == plain.stdout, traced.stderr


INTERRUPTED_FINALIZE = """
import json, os, signal, sys, time
from pathlib import Path
import trainio.tracer.finalize
from trainio.tracer.capture import capture

def slow_finalize(*args, **kwargs):  # a long finalize, and a Ctrl-C during it
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)

trainio.tracer.finalize.finalize = slow_finalize
said = []
result = capture([sys.executable, "-c", "import sys; sys.exit(3)"], Path(sys.argv[1]), warn=said.append)
print(json.dumps({"code": result.exit_code, "summary": result.summary, "said": said}))
"""


def test_a_signal_while_the_trace_is_finalized_keeps_the_spool_and_the_exit_code(tmp_path):
    trace = tmp_path / "t"
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_FINALIZE, str(trace)], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["code"] == 3 and result["summary"] is None
    assert [s for s in result["said"] if "stopped by SIGINT" in s and "tracer finalize" in s], result["said"]
    assert (trace / "spool").is_dir()
    assert json.loads((trace / "manifest.json").read_text())["exit_code"] == 3
    finalized = subprocess.run([sys.executable, "-m", "trainio.tracer", "finalize", str(trace)], timeout=TIMEOUT_S)
    assert finalized.returncode == 0
