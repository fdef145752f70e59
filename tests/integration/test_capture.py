"""Real captures of real DataLoader runs: what the trace holds must match what is on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import WORKLOADS, run_cli, summary_json
from trainio.tracefile import open_trace


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_bytes_read_match_files_times_epochs_through_five_read_paths(tmp_path, mixed_data, start_method):
    trace = tmp_path / "trace"
    proc = run_cli(
        "tracer",
        "capture",
        "--out",
        trace,
        "--",
        sys.executable,
        WORKLOADS / "mixed_readers.py",
        mixed_data,
        "--workers",
        "2",
        "--start-method",
        start_method,
        "--epochs",
        "2",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    expected = json.loads((mixed_data / "expected.json").read_text())
    digest = summary_json(trace)
    want = expected["file_bytes"] * expected["epochs"]
    assert abs(digest["bytes_read"] - want) / want < 0.02, (digest["bytes_read"], want)
    assert digest["coverage"]["ratio"] >= 0.98, digest["coverage"]
    assert digest["coverage"]["c_level"] is True
    assert digest["data_roots"] == [str(mixed_data.resolve())]
    assert digest["distinct_files"] == expected["files"]
    assert digest["epochs"] == 2
    assert digest["batches"] == 2 * expected["files"] // 4
    assert digest["samples"] == 2 * expected["files"]
    # Two epochs of two non-persistent workers: four worker processes plus the main one.
    roles = [p["role"] for p in open_trace(trace).processes]
    assert roles.count("worker") == 4 and roles.count("main") == 1, roles


def test_every_read_path_is_seen(tmp_path, mixed_data):
    trace = tmp_path / "trace"
    run_cli(
        "tracer",
        "capture",
        "--out",
        trace,
        "--",
        sys.executable,
        WORKLOADS / "mixed_readers.py",
        mixed_data,
        "--workers",
        "0",
        "--epochs",
        "1",
        check=True,
    )
    io = open_trace(trace).io.to_pandas() if False else open_trace(trace).io.to_pylist()
    data = [r for r in io if r["io_class"] == "data" and r["bytes_returned"]]
    by_suffix: dict[str, set[str]] = {}
    for row in data:
        by_suffix.setdefault(Path(row["path"]).suffix, set()).add(row["op"])
    assert "fread" in by_suffix[".f32"]  # numpy.fromfile goes through stdio, in C
    assert "pread" in by_suffix[".h5"]  # HDF5's sec2 driver preads, in C
    assert {".png", ".npy", ".bin"} <= set(by_suffix)


def test_exit_code_and_output_of_the_training_are_unchanged(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import sys\nprint('hello', sys.argv[1:])\nsys.exit(3)\n")
    proc = run_cli("tracer", "capture", "--out", tmp_path / "t", "--", sys.executable, script, "--help", "-o", "x")
    assert proc.returncode == 3
    assert proc.stdout.splitlines()[0] == "hello ['--help', '-o', 'x']"


def test_unwritable_out_runs_the_training_untraced(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    script = tmp_path / "train.py"
    script.write_text("print('trained')\nraise SystemExit(5)\n")
    proc = run_cli("tracer", "capture", "--out", blocker / "trace", "--", sys.executable, script)
    assert proc.returncode == 5
    assert proc.stdout.strip() == "trained"
    assert proc.stderr.count("cannot write the trace") == 1
    assert "Traceback" not in proc.stderr


def test_user_pythonpath_sitecustomize_and_ld_preload_are_kept(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text("import os\nos.environ['USER_SITE_RAN'] = 'yes'\n")
    (user / "mymod.py").write_text("VALUE = 42\n")
    script = tmp_path / "train.py"
    script.write_text(
        "import os, mymod\nprint(os.environ.get('USER_SITE_RAN'), mymod.VALUE, 'libm' in os.environ['LD_PRELOAD'])\n"
    )
    libm = "/lib/x86_64-linux-gnu/libm.so.6"
    proc = run_cli(
        "tracer",
        "capture",
        "--out",
        tmp_path / "t",
        "--",
        sys.executable,
        script,
        env={"PYTHONPATH": str(user), "LD_PRELOAD": libm if os.path.exists(libm) else ""},
        check=True,
    )
    assert proc.stdout.split()[:2] == ["yes", "42"]
    assert len(open_trace(tmp_path / "t").processes) == 1


def test_torchrun_two_ranks_in_one_trace(tmp_path):
    trace = tmp_path / "trace"
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    proc = run_cli(
        "tracer",
        "capture",
        "--out",
        trace,
        "--",
        *launcher,
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        WORKLOADS / "ddp_ranks.py",
        tmp_path / "data",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    t = open_trace(trace)
    ranks = {p["rank"] for p in t.processes if p["role"] != "worker" and p["rank"] is not None}
    assert ranks == {0, 1}
    batch_ranks = {r["rank"] for r in t.events.to_pylist() if r["event"] == "batch"}
    assert batch_ranks == {0, 1}
    digest = summary_json(trace)
    # 32 files of 20,000 bytes, two epochs, split between the ranks.
    assert abs(digest["bytes_read"] - 2 * 32 * 20_000) / (2 * 32 * 20_000) < 0.02


def test_without_the_interposer_loader_events_are_kept_and_the_gap_is_stated(tmp_path, mixed_data):
    trace = tmp_path / "trace"
    proc = run_cli(
        "tracer",
        "capture",
        "--no-interposer",
        "--out",
        trace,
        "--",
        sys.executable,
        WORKLOADS / "mixed_readers.py",
        mixed_data,
        "--workers",
        "2",
        "--epochs",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "file reads NOT traced" in proc.stderr
    digest = summary_json(trace)
    assert digest["coverage"]["c_level"] is False
    assert digest["bytes_read"] == 0
    assert digest["batches"] == 10 and digest["samples"] == 40


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}:\n    pass\n"


def test_host_cpu_records_the_command_trees_cpu_and_the_rest_of_the_host(tmp_path):
    trace = tmp_path / "trace"
    run_cli("tracer", "capture", "--out", trace, "--", sys.executable, "-c", BURN.format(seconds=0.3), check=True)
    load = json.loads((trace / "manifest.json").read_text())["host_cpu"]
    assert load["cpus"] == len(os.sched_getaffinity(0))
    assert load["window_s"] > 0 and load["busy_s"] >= 0
    assert load["traced_cpu_s"] >= 0.29  # the 0.3 s loop, plus interpreter start-up
    assert load["other_cpu_s"] == pytest.approx(max(0.0, load["busy_s"] - load["traced_cpu_s"]), abs=0.002)
    assert 0 <= load["other_fraction"] <= 1
    assert summary_json(trace)["host_cpu"] == load
    assert "host CPU       others used" in run_cli("tracer", "summary", trace, check=True).stdout


def test_cpu_burnt_by_an_untraced_process_during_the_capture_counts_as_other(tmp_path):
    """A loader started by the test (not traced) burns ~1 s of CPU inside the capture's window; the
    host's busy time then exceeds the traced tree's by at least most of what the loader used."""
    started, done, trace = tmp_path / "started", tmp_path / "done", tmp_path / "trace"
    waiter = (
        "import pathlib, sys, time\n"
        "pathlib.Path(sys.argv[1]).touch()\n"
        "deadline = time.monotonic() + 120\n"
        "while not pathlib.Path(sys.argv[2]).exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
    )
    cmd = [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--"]
    capture = subprocess.Popen(
        [*cmd, sys.executable, "-c", waiter, str(started), str(done)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the traced command did not start"
        loader = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=1.0)])
        _, status, usage = os.wait4(loader.pid, 0)
        loader.returncode = os.waitstatus_to_exitcode(status)
        assert loader.returncode == 0
        done.touch()
        _, stderr = capture.communicate(timeout=120)
    finally:
        done.touch()
        if capture.poll() is None:
            capture.kill()
            capture.wait(timeout=30)
    assert capture.returncode == 0, stderr
    loader_cpu = usage.ru_utime + usage.ru_stime
    assert loader_cpu >= 0.99
    load = json.loads((trace / "manifest.json").read_text())["host_cpu"]
    # Others' noise only adds to other_cpu_s; the margin covers /proc/stat's tick accounting.
    assert load["other_cpu_s"] >= 0.7 * loader_cpu, load
    assert load["other_fraction"] > 0
