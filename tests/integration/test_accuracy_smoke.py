"""bench/accuracy.py --smoke: its own Ceph, one real run, one projection, a well-formed result."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cephdev import require_ceph

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_KEYS = {"name", "measured_s", "projected_s", "error_pct", "bottleneck"}
RESULT_KEYS = {"scenarios", "median_abs_error_pct", "max_abs_error_pct", "machine", "date"}


@pytest.mark.slow
def test_accuracy_smoke_runs_end_to_end_and_writes_the_contract_keys(tmp_path):
    require_ceph()
    out = tmp_path / "accuracy.json"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "accuracy.py"), "--smoke", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the benchmark stops its own Ceph cluster on the way out
        stdout, stderr = proc.communicate(timeout=120)
        pytest.fail(f"bench/accuracy.py --smoke took more than 300 s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    assert proc.returncode == 0, f"{stdout[-3000:]}\n{stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert RESULT_KEYS <= set(result)
    assert result["smoke"] is True and result["scenarios"] and result["held_out"]["scenarios"]
    # the development set under the keys it always had, the held-out set apart with the same keys
    assert result["set"] == "development" and result["adjusted_against"] is True
    held_out = result["held_out"]
    assert held_out["set"] == "held-out" and held_out["adjusted_against"] is False
    assert {"median_abs_error_pct", "max_abs_error_pct"} <= set(held_out)
    assert held_out["setup"]["raw_share"] == 0.5
    formats = result["held_out_formats"]  # the same workload captured reading tar shards, run as files
    assert formats["set"] == "held-out-formats" and formats["adjusted_against"] is False
    assert [row["condition"]["format"] for row in formats["scenarios"]] == ["files"]
    assert "local-shards:" in formats["baseline"]["command"]
    mapped = result["held_out_memmap"]  # the same workload through a mapped file, local, then on CephFS
    assert mapped["set"] == "held-out-memmap" and "--source memmap:" in mapped["baseline"]["command"]
    assert [row["condition"]["source"] for row in mapped["scenarios"]] == ["memmap-cephfs"]
    for row in result["scenarios"] + held_out["scenarios"] + formats["scenarios"] + mapped["scenarios"]:
        assert SCENARIO_KEYS <= set(row), row.keys()
        for key in ("measured_s", "projected_s"):
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]) and row[key] > 0, (key, row[key])
        assert row["error_pct"] == pytest.approx(
            100 * (row["projected_s"] - row["measured_s"]) / row["measured_s"], abs=0.05
        )
        assert isinstance(row["bottleneck"], str) and row["bottleneck"]
    assert result["max_abs_error_pct"] >= result["median_abs_error_pct"] >= 0
    assert held_out["max_abs_error_pct"] >= held_out["median_abs_error_pct"] >= 0
    assert "calibration skipped" in " ".join(result["notes"])  # the smoke run says it used a built-in profile
    md = out.with_suffix(".md").read_text()
    assert md.count("|") > 10 and "## Held-out set" in md and "## Held-out record formats" in md
    assert "## Held-out memory mapping" in md
