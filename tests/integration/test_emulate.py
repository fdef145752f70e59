"""replay emulate on real storage: a bundled trace against a local directory and the RGW and RADOS of the
project's own Ceph (the ``ceph`` fixture). Bytes and requests must match the trace; accelerator utilisation
must fall when the step time shrinks below what the storage takes per batch. Wall-clock targets (emulate vs
the real training, within 5%) are bench/emulate_vs_real.py's, not asserted on a shared machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, run_cli
from trainio.replay.real.emulate import EmulateOptions, emulate
from trainio.replay.real.fioreplay import replay_fio

BUNDLED = ROOT / "traces" / "imagenet_jpeg-cpu"
BYTES, READS, GETS = 14_044_054, 4_097, 2_049  # every sample's file read whole: one GET each, and the start-up file
KEYS = {"time_to_train_s", "per_epoch_s", "accelerator_utilization", "stall_fraction", "read_MBps", "read_ops_per_s"}
KEYS |= {
    "lat_p50_ms",
    "lat_p99_ms",
    "projected_time_to_train_s",
    "projection_difference_s",
    "projection_difference_pct",
}


def check(result, ops: int) -> None:
    assert (result.bytes, result.ops, result.errors) == (BYTES, ops, 0)
    assert (result.expected_bytes, result.expected_ops) == (BYTES, ops)
    assert result.steps == 64 and result.samples == 2048 and len(result.per_epoch_s) == 2
    assert 0 < result.accelerator_utilization < 1 and result.lat_p99_ms >= result.lat_p50_ms > 0
    print(
        f"{result.target}: {result.time_to_train_s:.2f} s "
        f"(projected {result.projected_time_to_train_s:.2f}), AU {result.accelerator_utilization:.3f}, "
        f"{result.read_MBps:.1f} MB/s, p50 {result.lat_p50_ms:.3f} ms, client {result.client_cpu_busy}, "
        f"host {result.host_cpu_busy}"
    )


@pytest.mark.slow
def test_a_local_directory_reads_what_the_trace_read_and_au_falls_with_a_faster_accelerator(tmp_path):
    traced = emulate(BUNDLED, str(tmp_path / "ds"))
    check(traced, READS)
    assert traced.details["layout"]["written"] == 1025 and traced.captured_time_to_train_s == pytest.approx(3.812, 1e-3)
    fast = emulate(BUNDLED, str(tmp_path / "ds"), EmulateOptions(compute_scale=0.05))
    check(fast, READS)
    assert fast.details["layout"]["reused"] and fast.captured_time_to_train_s is None
    assert fast.accelerator_utilization < 0.5 * traced.accelerator_utilization
    assert fast.compute_s < 0.1 * traced.compute_s


@pytest.mark.slow
def test_rgw_issues_one_get_per_traced_sample_and_au_falls_below_the_storages_pace(ceph_env, tmp_path):
    target = f"rgw:{ceph_env['TRAINIO_S3_ENDPOINT']}/emulate"
    slow = emulate(BUNDLED, target, EmulateOptions(compute_scale=0.5))
    check(slow, GETS)
    fast = emulate(BUNDLED, target, EmulateOptions(compute_scale=0.02))
    check(fast, GETS)
    assert fast.details["layout"]["reused"] and fast.accelerator_utilization < slow.accelerator_utilization


@pytest.mark.slow
def test_rados_reads_every_traced_read_and_au_falls_below_the_storages_pace(ceph_env, tmp_path):
    slow = emulate(BUNDLED, "rados:trainpool", EmulateOptions(compute_scale=0.5))
    check(slow, READS)
    fast = emulate(BUNDLED, "rados:trainpool", EmulateOptions(compute_scale=0.02))
    check(fast, READS)
    assert fast.accelerator_utilization < slow.accelerator_utilization


@pytest.mark.slow
def test_shards_on_s3_and_rados_are_read_in_large_requests(ceph_env, tmp_path):
    options = EmulateOptions(fmt="shards:4MiB", compute_scale=0.2, endpoint=ceph_env["TRAINIO_S3_ENDPOINT"])
    result = emulate(BUNDLED, "s3://emulate-shards/ds", options)
    assert result.format == "shards:4MiB" and result.errors == 0
    # two shards a worker each, read whole in one request every epoch, and the start-up file
    assert (result.bytes, result.ops) == (result.expected_bytes, result.expected_ops)
    assert result.ops == 5 and 2 * 7_022_041 < result.bytes < 2 * 8_000_000
    fio = replay_fio(BUNDLED, "rados:trainpool", tmp_path / "work", fmt="shards:4MiB", no_stall=True)
    assert (fio.bytes, fio.ops) == (fio.expected_bytes, fio.expected_ops) and fio.details["format"] == "shards:4MiB"


@pytest.mark.slow
def test_the_cli_emulates_two_nodes_and_prints_the_keys(tmp_path):
    proc = run_cli(
        "replay",
        "emulate",
        "--trace",
        BUNDLED,
        "--target",
        tmp_path / "ds",
        "--nodes",
        "2",
        "--compute-scale",
        "0.2",
        "--json",
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert KEYS <= set(result) and (result["nodes"], result["ranks"], result["bytes"]) == (2, 2, BYTES)
    assert "replay emulate: emulating 2 rank(s)" in proc.stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_emulation_and_prints_what_was_measured(tmp_path):
    run_cli("replay", "emulate", "--trace", BUNDLED, "--target", tmp_path / "ds", "--epochs", "1", check=True)
    command = [
        sys.executable,
        "-m",
        "trainio.replay",
        "emulate",
        "--trace",
        str(BUNDLED),
        "--target",
        str(tmp_path / "ds"),
    ]
    proc = subprocess.Popen(
        [*command, "--epochs", "20", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's: Ctrl-C reaches every process of it
    )
    time.sleep(4)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    result = json.loads(out)
    assert result["interrupted"] and 0 < result["steps"] < 20 * 32 and result["bytes"] > 0
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert left == [], left  # no rank or worker left behind
