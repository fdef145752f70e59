"""A full disk during capture costs the tail of the trace, never the training (issue 13, item 3).

The trace directory lives on a small tmpfs that the test mounts (root only: CI runs as root).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import WORKLOADS, run_cli, summary_json
from trainio.tracer.capture import traced_env
from trainio.tracer.manifest import new_manifest, write_manifest

WORKLOAD = WORKLOADS / "persistent_workers.py"


@pytest.fixture
def small_disk(tmp_path):
    """A mounted 8 MiB tmpfs: room for the capture's 4 MiB reserve and a few MiB of spool."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True, timeout=30)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True, timeout=30)


def fill(folder: Path) -> Path:
    """Fill the file system holding ``folder``; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_costs_the_tail_with_one_warning_and_the_exit_code_lands(tmp_path, small_disk):
    trace = small_disk / "trace"
    data = tmp_path / "data"
    script = tmp_path / "train.py"
    # The training itself runs fine; only its trace outgrows the disk.
    script.write_text(
        f"import runpy, sys\nsys.argv = [{str(WORKLOAD)!r}, {str(data)!r}, '--end', 'join']\n"
        f"runpy.run_path({str(WORKLOAD)!r}, run_name='__main__')\nsys.exit(7)\n"
    )
    proc = run_cli("tracer", "capture", "--out", trace, "--", sys.executable, script, timeout=300)
    assert proc.returncode == 7, proc.stderr
    assert "Traceback" not in proc.stderr and "tracing stopped" not in proc.stderr
    assert proc.stderr.count("disk full") == 1, proc.stderr
    manifest = json.loads((trace / "manifest.json").read_text())
    assert manifest["exit_code"] == 7
    digest = summary_json(trace)
    assert digest["coverage"]["ratio"] < 0.98  # what the full disk cost is not hidden
    assert sum(1 for w in digest["warnings"] if "disk full" in w) == 1


def test_finalize_on_a_still_full_disk_is_one_line_and_keeps_the_spool(tmp_path, small_disk):
    trace = small_disk / "trace"
    data = tmp_path / "data"
    (trace / "spool").mkdir(parents=True)
    manifest = new_manifest(["train"], dict(os.environ))
    write_manifest(trace, manifest)
    env = traced_env(dict(os.environ), trace, [])
    cmd = [sys.executable, str(WORKLOAD), str(data), "--end", "join", "--epochs", "1"]
    subprocess.run(cmd, env=env, check=True, timeout=300, capture_output=True)
    spool_before = sorted((p.name, p.stat().st_size) for p in (trace / "spool").iterdir())
    filler = fill(small_disk)
    fin = run_cli("tracer", "finalize", trace)
    assert fin.returncode == 1
    assert fin.stderr.count("\n") == 1 and "No space left on device" in fin.stderr, fin.stderr
    assert sorted((p.name, p.stat().st_size) for p in (trace / "spool").iterdir()) == spool_before
    filler.unlink()
    fin = run_cli("tracer", "finalize", trace)
    assert fin.returncode == 0, fin.stderr
    assert summary_json(trace)["samples"] == 64
