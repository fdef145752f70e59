"""The one host-CPU reader (its definition of busy, the raw lines of programs that cannot import it) and the
manifest's host_cpu: its arithmetic, the busy-host warning, and traces that lack it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.unit.synthetic import make_trace
from trainio.replay.projection.scenario import Scenario, project_trace
from trainio.replay.storage import cephfs_helper
from trainio.tracefile import open_trace
from trainio.tracefile.busyhost import BUSY_HOST_FRACTION, busy_host_warning
from trainio.tracefile.hostcpu import CpuCounters, cpu_ticks, host_cpu, host_ticks, usable_busy_ticks
from trainio.tracefile.summary import summarize
from trainio.tracer.report import host_cpu_line

TRACES = Path(__file__).resolve().parents[2] / "traces"
STAT = """cpu  300 10 60 900 20 0 5 3 0 0
cpu0 100 5 20 450 10 0 2 1 0 0
cpu1 200 5 40 450 10 0 3 2 0 0
intr 1 2 3
ctxt 99
"""


def _load(other_fraction: float) -> dict:
    return {
        "window_s": 10.0,
        "cpus": 2,
        "busy_s": 12.0,
        "traced_cpu_s": 2.0,
        "other_cpu_s": round(other_fraction * 20, 3),
        "other_fraction": other_fraction,
    }


def _with_host_cpu(root: Path, load: object) -> Path:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["host_cpu"] = load
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_a_cpu_line_is_busy_user_nice_system_steal_of_all_eight_fields():
    assert cpu_ticks("300 10 60 900 20 0 5 3 0 0".split()) == (300 + 10 + 60 + 3, 300 + 10 + 60 + 900 + 20 + 5 + 3)
    assert cpu_ticks([1, 2, 3, 4]) == (6, 10)  # a kernel without iowait, irq, softirq and steal


@pytest.mark.parametrize("fields", [["1", "2", "3"], ["a", "b", "c", "d"], []])
def test_a_line_that_is_no_cpu_line_is_refused(fields):
    with pytest.raises(ValueError):
        cpu_ticks(fields)


def test_the_aggregate_line_and_the_per_cpu_lines_agree_on_busy():
    busy, total = cpu_ticks(STAT.splitlines()[0].split()[1:])
    assert busy == usable_busy_ticks(STAT, {0, 1})[0] and total == 1298


def test_the_cephfs_helper_reports_raw_numbers_that_the_reader_reads_as_this_host_does():
    # the helper runs under the system Python without trainio: it reports the cpu line, the reader judges it
    before = host_ticks()
    busy, total = cpu_ticks(cephfs_helper._host_stat())
    after = host_ticks()
    assert before[0] <= busy <= after[0] and before[1] <= total <= after[1] and busy <= total


def test_busy_ticks_sum_user_nice_system_steal_of_the_usable_cpus_only():
    assert usable_busy_ticks(STAT, {1}) == (200 + 5 + 40 + 2, 1)
    assert usable_busy_ticks(STAT, {0, 1}) == (100 + 5 + 20 + 1 + 200 + 5 + 40 + 2, 2)


def test_busy_ticks_count_every_cpu_when_the_affinity_names_none_of_them():
    assert usable_busy_ticks(STAT, {12, 13}) == (373, 2)


def test_busy_ticks_refuse_a_stat_without_cpu_lines():
    with pytest.raises(ValueError, match="per-CPU"):
        usable_busy_ticks("intr 1 2\n", {0})


def test_other_cpu_is_host_busy_minus_the_traced_tree_over_the_window():
    before = CpuCounters(monotonic_ns=0, cpus=2, busy_s=100.0, children_s=1.0)
    after = CpuCounters(monotonic_ns=4_000_000_000, cpus=2, busy_s=106.0, children_s=3.0)
    assert host_cpu(before, after) == {
        "window_s": 4.0,
        "cpus": 2,
        "busy_s": 6.0,
        "traced_cpu_s": 2.0,
        "other_cpu_s": 4.0,
        "other_fraction": 0.5,
    }


def test_other_cpu_is_never_negative_when_tick_accounting_lags_the_tree():
    before = CpuCounters(monotonic_ns=0, cpus=2, busy_s=100.0, children_s=0.0)
    after = CpuCounters(monotonic_ns=1_000_000_000, cpus=2, busy_s=100.5, children_s=0.53)
    load = host_cpu(before, after)
    assert load["other_cpu_s"] == 0.0 and load["other_fraction"] == 0.0


def test_warning_for_a_busy_host_names_the_share_and_the_consequence(tmp_path):
    root = _with_host_cpu(make_trace(tmp_path / "t", [(1, 100)]), _load(0.5))
    warnings = open_trace(root).warnings
    assert len(warnings) == 1
    assert "50%" in warnings[0] and "per-sample CPU times may be inflated" in warnings[0]
    assert "\n" not in warnings[0]


def test_no_warning_for_a_quiet_host(tmp_path):
    root = _with_host_cpu(make_trace(tmp_path / "t", [(1, 100)]), _load(0.01))
    assert open_trace(root).warnings == []
    assert busy_host_warning({"host_cpu": _load(BUSY_HOST_FRACTION)}) is None


def test_a_trace_without_host_cpu_reads_and_summarises(tmp_path):
    trace = open_trace(make_trace(tmp_path / "t", [(1, 100)]))
    assert trace.warnings == []
    digest = summarize(trace)
    assert digest["host_cpu"] is None
    assert host_cpu_line(digest["host_cpu"]).startswith("not recorded")


def test_malformed_host_cpu_is_a_warning_not_an_error(tmp_path):
    root = _with_host_cpu(make_trace(tmp_path / "t", [(1, 100)]), "lots")
    warnings = open_trace(root).warnings
    assert len(warnings) == 1 and "malformed" in warnings[0]


def test_summary_json_and_line_carry_host_cpu(tmp_path):
    root = _with_host_cpu(make_trace(tmp_path / "t", [(1, 100)]), _load(0.03))
    digest = summarize(open_trace(root))
    assert digest["host_cpu"]["other_fraction"] == 0.03
    assert host_cpu_line(digest["host_cpu"]).startswith("others used 3.0% of 2 cores during the capture")


def test_what_if_warns_about_a_baseline_captured_on_a_busy_host(tmp_path):
    root = shutil.copytree(TRACES / "translation_streaming-cpu", tmp_path / "t")
    _, _, quiet = project_trace(root, Scenario())
    assert not any("busy host" in w for w in quiet)
    _with_host_cpu(root, _load(0.5))
    _, _, busy = project_trace(root, Scenario())
    assert sum("busy host" in w and "recapture on a quiet machine" in w for w in busy) == 1
