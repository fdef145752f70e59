"""bench/gpu_accuracy.py: the projection half on a committed CPU stand-in of the GPU half's output, and
the GPU half's own path run on this CPU (a small CNN instead of ResNet-50)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from trainio.replay.projection.whatif import BOTTLENECKS

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "gpu_accuracy.py"
STAND_IN = ROOT / "tests" / "data" / "gpu-standin"
SCENARIO_KEYS = {"name", "measured_s", "projected_s", "error_pct", "bottleneck"}


def _bench(*args, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _check_result(result: dict, measured: dict) -> None:
    assert {"machine", "scenarios", "median_abs_error_pct", "max_abs_error_pct", "date"} <= set(result)
    assert result["machine"] == measured["machine"]
    runs, captures = measured["runs"], measured["captures"]
    assert len(result["scenarios"]) == len(runs) * len(captures)
    for row in result["scenarios"]:
        assert SCENARIO_KEYS <= set(row), row.keys()
        assert math.isfinite(row["projected_s"]) and row["projected_s"] > 0
        assert row["error_pct"] == pytest.approx(100 * (row["projected_s"] / row["measured_s"] - 1), abs=0.02)
        assert row["bottleneck"] in BOTTLENECKS
        assert row["measured_s"] in {run["measured_s"] for run in runs}
    as_captured = [row for row in result["scenarios"] if row["kind"] == "as captured"]
    assert len(as_captured) == len(
        {c["workers"] for c in captures} & {r["workers"] for r in runs if r["kind"] == "workers"}
    )
    assert result["as_captured_max_abs_error_pct"] == max(abs(row["error_pct"]) for row in as_captured)
    assert result["max_abs_error_pct"] >= result["median_abs_error_pct"] >= 0


def test_the_projection_half_projects_each_committed_capture_onto_each_measured_run(tmp_path):
    measured = json.loads((STAND_IN / "runs.json").read_text())
    assert measured["stand_in"] is True and len(measured["captures"]) == 2 and len(measured["runs"]) >= 4
    out = tmp_path / "gpu_accuracy.json"
    proc = _bench("project", STAND_IN, "--out", out, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _check_result(json.loads(out.read_text()), measured)
    assert "| captured at | projected to |" in out.with_suffix(".md").read_text()
    kinds = {row["kind"] for row in json.loads(out.read_text())["scenarios"]}
    assert {"as captured", "workers", "preload", "ranks"} <= kinds


def test_an_outdir_without_runs_is_a_one_line_error(tmp_path):
    proc = _bench("project", tmp_path, "--out", tmp_path / "x.json", timeout=60)
    assert proc.returncode == 2 and "holds no runs.json" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_the_gpu_half_runs_its_path_on_this_cpu_and_brings_back_few_small_files(tmp_path):
    out = tmp_path / "out"
    proc = _bench("gpu-run", out, "--stand-in", "--data", tmp_path / "jpegs", timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size <= 16 << 20 for p in files)
    assert all(len(p.relative_to(out).parts) <= 2 for p in files)
    measured = json.loads((out / "runs.json").read_text())
    assert not measured["errors"], measured["errors"]
    for capture in measured["captures"]:
        with tarfile.open(out / capture["file"]) as tar:
            assert any(name.endswith("manifest.json") for name in tar.getnames())
    projected = tmp_path / "gpu_accuracy.json"
    proc = _bench("project", out, "--out", projected, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _check_result(json.loads(projected.read_text()), measured)
