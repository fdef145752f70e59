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
from trainio.tracefile.hostcpu import (
    CLOCK_TICK_S,
    CpuCounters,
    cgroup_quota,
    cpu_ticks,
    cpu_topology,
    host_cpu,
    host_ticks,
    storage_daemons,
    usable_busy_ticks,
)
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
        "storage_daemons": {},
        "storage_cpu_s": 0.0,
        "stranger_cpu_s": 4.0,
        "stranger_fraction": 0.5,
    }


def test_storage_daemons_cpu_is_told_apart_from_strangers():
    """ceph-osd ran all along (1.5 CPU-s in the window), radosgw started meanwhile (0.5), a ceph-mon
    that ended meanwhile is not counted; the rest of the others' CPU is strangers'."""
    before = CpuCounters(0, 2, 100.0, 1.0, storage={10: ("ceph-osd", 5, 2.0), 11: ("ceph-mon", 6, 1.0)})
    after = CpuCounters(4_000_000_000, 2, 106.0, 3.0, storage={10: ("ceph-osd", 5, 3.5), 12: ("radosgw", 9, 0.5)})
    load = host_cpu(before, after)
    assert load["storage_cpu_s"] == 2.0 and load["storage_daemons"] == {"ceph-osd": 1, "radosgw": 1}
    assert load["stranger_cpu_s"] == 2.0 and load["stranger_fraction"] == 0.25


def test_storage_daemons_are_found_by_name_in_proc(tmp_path):
    for pid, name in ((40, "ceph-osd"), (41, "python3"), (42, "radosgw")):
        (tmp_path / str(pid)).mkdir()
        fields = ["S"] + ["0"] * 10 + ["150", "50"] + ["0"] * 6 + ["777"]
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({name}) {' '.join(fields)}\n")
    (tmp_path / "self").mkdir()
    found = storage_daemons(str(tmp_path))
    assert sorted(found) == [40, 42] and found[40][0] == "ceph-osd" and found[40][1] == 777
    assert found[40][2] == pytest.approx(200 * CLOCK_TICK_S)


def test_co_located_storage_is_never_told_to_recapture_elsewhere():
    load = {**_load(0.3), "storage_cpu_s": 5.0, "stranger_fraction": 0.05, "storage_daemons": {"ceph-osd": 3}}
    warning = busy_host_warning({"host_cpu": load})
    assert warning is not None and "co-located storage" in warning and "ceph-osd x3" in warning
    assert "recapture" not in warning and "quiet" not in warning
    strangers = busy_host_warning({"host_cpu": {**load, "stranger_fraction": 0.2, "stranger_cpu_s": 4.0}})
    assert strangers is not None and "recapture on a quiet machine" in strangers


def test_the_node_cpu_is_read_from_sysfs_and_the_tightest_cgroup_quota(tmp_path):
    """Four online CPUs as two cores with two SMT threads each, a cgroup v2 pod limited to 1.5 cores
    below a parent limited to 3: usable = min(affinity, quota)."""
    system = tmp_path / "sys/devices/system/cpu"
    system.mkdir(parents=True)
    (system / "online").write_text("0-3\n")
    for cpu, siblings in ((0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3")):
        (system / f"cpu{cpu}/topology").mkdir(parents=True)
        (system / f"cpu{cpu}/topology/core_cpus_list").write_text(siblings + "\n")
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/kubepods/pod1\n")
    cgroup = tmp_path / "sys/fs/cgroup"
    (cgroup / "kubepods/pod1").mkdir(parents=True)
    (cgroup / "cgroup.controllers").write_text("cpu memory\n")
    (cgroup / "cpu.max").write_text("max 100000\n")
    (cgroup / "kubepods/cpu.max").write_text("300000 100000\n")
    (cgroup / "kubepods/pod1/cpu.max").write_text("150000 100000\n")
    cpu = cpu_topology(str(tmp_path), affinity=[0, 1, 2, 3])
    assert cpu == {
        "online_cpus": 4,
        "physical_cores": 2,
        "threads_per_core": 2,
        "affinity": [0, 1, 2, 3],
        "cgroup": {"version": 2, "quota_cores": 1.5, "period_us": 100000},
        "usable_cores": 1.5,
    }
    assert cpu_topology(str(tmp_path), affinity=[1])["usable_cores"] == 1.0


def test_a_cgroup_v1_quota_is_read_from_the_cpu_hierarchy(tmp_path):
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("4:memory:/job\n3:cpu,cpuacct:/job\n0::/\n")
    folder = tmp_path / "sys/fs/cgroup/cpu,cpuacct/job"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("800000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(tmp_path) == {"version": 1, "quota_cores": 8.0, "period_us": 100000}
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_quota(tmp_path) == {"version": 1, "quota_cores": None, "period_us": None}


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
