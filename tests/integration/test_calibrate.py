"""replay calibrate against real storage: the dev cluster's RGW, RADOS pool and CephFS (the ``ceph``
fixture) and a local directory. Small budgets keep each under 40 s."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tomllib

from tests.helpers import run_cli
from trainio.models.backend import load_profile
from trainio.models.cpu import load_cpu_profile
from trainio.models.units import duration_text
from trainio.replay.calibration.calibrate import calibrate, request_gap_s
from trainio.replay.calibration.honesty import check_profile
from trainio.replay.calibration.place import Placement
from trainio.replay.calibration.report import render_calibration
from trainio.replay.storage import ceph
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import MANIFEST_NAME
from trainio.replay.storage.s3 import s3_client

BUNDLED = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"
BUDGET_S = 15


def _keys(client, bucket: str) -> dict[str, int]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


@pytest.mark.slow
def test_rgw_calibration_colocated_writes_a_loadable_object_profile_with_its_cpu(ceph_env, tmp_path):
    out = tmp_path / "my-rgw.toml"
    client = s3_client(ceph_env["TRAINIO_S3_ENDPOINT"])
    client.create_bucket(Bucket="trainio-calibrate")
    client.put_object(Bucket="trainio-calibrate", Key="train/theirs.jpg", Body=b"y" * 20_000)
    said: list[str] = []
    started = time.monotonic()
    cal = calibrate(
        f"rgw:{ceph_env['TRAINIO_S3_ENDPOINT']}/trainio-calibrate",
        out,
        budget_s=BUDGET_S,
        colocated=True,
        progress=said.append,
    )
    assert time.monotonic() - started < 40
    # It said where its objects went, and they are gone; the bucket's own object is as it was.
    where = f"{ceph_env['TRAINIO_S3_ENDPOINT']}/trainio-calibrate/trainio-calibrate/"
    assert any(f"calibration files at {where} (removed afterwards)" in line for line in said), said
    assert any(line.startswith("removed the calibration files (") for line in said), said
    assert _keys(client, "trainio-calibrate") == {"train/theirs.jpg": 20_000}
    profile = load_profile(out)
    assert (profile.name, profile.access, profile.shared) == ("my-rgw", "object", True)
    assert 0.2e-3 <= cal.fitted.latency_s <= 50e-3
    # boto3 and the RGW + OSD on this host's cores: CPU per GET, charged apart from the latency.
    assert profile.request_cpu_s > 0 and profile.colocated_cpu_s > 0
    assert profile.request_cpu_s == pytest.approx(cal.fitted.request_cpu_s, rel=1e-3)
    assert profile.get_latency_s == pytest.approx(cal.fitted.wait_latency_s, rel=1e-3, abs=1e-9)
    assert all(m.cpu_s > 0 and m.host_cpu_s > 0 and 0 < m.busy <= 1 for m in cal.measurements)
    assert profile.stream_bandwidth > 0 and profile.aggregate_bandwidth > 0 and profile.iops > 0
    # Five single-stream sizes fitted, each with its residual; concurrency cells on top.
    assert len(cal.residuals) == 5 and all(abs(r) < 1 for r in cal.residuals.values())
    assert any(m.threads > 1 for m in cal.measurements)
    # how a GET's CPU grows with client processes per core: the single stream, 4 and 16 of them
    crowding = cal.fitted.crowding
    assert crowding is not None and [m.threads for m in crowding.cells] == [1, 4, 16]
    assert all(cpu > 0 for cpu in crowding.cpu_s)
    assert np.allclose(profile.cpu_crowding_curve.points, crowding.points, rtol=1e-5)
    # every term charges, at each cell's own load, what the cell measured
    assert all(check.honest for check in check_profile(out)), [c for c in check_profile(out) if not c.honest]
    assert "replay calibrate" in profile.source and "rgw:" in profile.source
    table = render_calibration(cal)
    assert "get 4KiB qd1" in table and "GET latency" in table and "client CPU" in table and "srv ms" in table
    assert "cpu_crowding_curve" in table
    assert ceph_env["AWS_SECRET_ACCESS_KEY"] not in out.read_text() + table


@pytest.mark.slow
def test_rados_calibration_checks_its_objects_and_writes_a_block_profile(ceph_env, tmp_path):
    out = tmp_path / "my-rados.toml"
    started = time.monotonic()
    cal = calibrate("rados:trainpool", out, budget_s=BUDGET_S, placement=Placement(keep=True))
    assert time.monotonic() - started < 40
    profile = load_profile(out)
    assert (profile.access, profile.shared) == ("block", True)
    assert 0.02e-3 <= cal.fitted.latency_s <= 50e-3
    assert profile.stream_bandwidth > 0 and profile.aggregate_bandwidth > 0 and profile.iops > 0
    assert cal.tool.startswith("fio-") and cal.tool in profile.source
    # librados' CPU, read from the fio process (fio's own usr/sys figures hold the job thread only).
    assert profile.request_cpu_s > 0 and profile.colocated_cpu_s == 0  # not asked to be co-located
    # Kept (--keep): eight objects and the manifest under its own prefix.
    listed = subprocess.run(
        ["rados", "-p", "trainpool", "ls"], check=True, timeout=30, env=ceph_env, capture_output=True, text=True
    ).stdout.split()
    ours = sorted(name for name in listed if name.startswith("trainio-calibrate%2F"))
    assert ours == sorted([f"trainio-calibrate%2F{i}" for i in range(8)] + [f"trainio-calibrate%2F{MANIFEST_NAME}"])
    # fio's rados engine reports reads of a missing object as fast successes; the stat check catches it.
    subprocess.run(["rados", "-p", "trainpool", "rm", "trainio-calibrate%2F3"], check=True, timeout=30, env=ceph_env)
    sizes = {f"trainio-calibrate%2F{i}": 8 * 2**20 for i in range(8)}
    checked = ceph.rados_objects("trainpool", sizes, tmp_path, ceph_env["CEPH_CONF"])
    assert "trainio-calibrate%2F3 (expected 8388608 bytes, found none)" in checked.problem("before the reads")
    store = ceph.RadosStore("trainpool", "trainio-calibrate/", tmp_path, ceph_env["CEPH_CONF"])
    removed = store.remove(map(str, range(8)))
    assert 7 * 8 * 2**20 < removed < 7 * 8 * 2**20 + 10_000  # seven objects and the manifest


@pytest.mark.slow
def test_cephfs_calibration_through_libcephfs_writes_a_shared_posix_profile(ceph_env, tmp_path):
    out = tmp_path / "my-cephfs.toml"
    started = time.monotonic()
    cal = calibrate("cephfs:/trainio-calibrate", out, budget_s=10)
    assert time.monotonic() - started < 40
    profile = load_profile(out)
    assert (profile.access, profile.shared, profile.page_cache) == ("posix", True, True)
    assert profile.open_latency_s > 0 and profile.stat_latency_s > 0  # each an MDS round trip
    assert profile.request_cpu_s > 0 and profile.stream_bandwidth > 0 and profile.iops > 0
    assert profile.open_cpu_s > 0  # an open and a close through libcephfs cost CPU a read does not
    assert cal.tool.startswith("libcephfs ") and len(cal.residuals) == 5
    assert {m.pattern for m in cal.measurements} == {"randread", "open-read-close", "stat"}
    assert "open-read-close 16KiB" in render_calibration(cal)
    # its files are gone, the folder too
    seen = ceph.CephFSStore("/trainio-calibrate", tmp_path, ceph_env["CEPH_CONF"]).inspect(["data.bin"])
    assert seen.manifest is None and seen.others == () and seen.found["data.bin"].kind == "missing"


@pytest.mark.slow
def test_rados_calibration_of_a_pool_that_is_not_there_fails_loudly(ceph_env, tmp_path):
    with pytest.raises(ReplayError, match="Ceph pool 'no-such-pool' does not exist"):
        calibrate("rados:no-such-pool", tmp_path / "x.toml", budget_s=BUDGET_S)
    assert not (tmp_path / "x.toml").exists()


@pytest.mark.slow
def test_directory_calibration_from_the_cli_prints_the_fit_and_the_next_command(tmp_path):
    target = tmp_path / "storage"
    target.mkdir()
    out = tmp_path / "local.toml"
    proc = run_cli("replay", "calibrate", "--target", target, "--out", out, "--budget-s", "8", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "randread 4KiB qd1" in proc.stdout and "resid." in proc.stdout and "open-read-close" in proc.stdout
    assert f"wrote {out}" in proc.stdout
    assert f"next: replay what-if --trace TRACE --profile {out}" in proc.stdout
    profile = load_profile(out)
    assert (profile.access, profile.shared) == ("posix", False)
    assert 0 < profile.open_latency_s < 10e-3 and 0 < profile.stat_latency_s < 10e-3
    assert list(target.iterdir()) == []  # its files are gone
    # The profile drives a projection.
    whatif = run_cli("replay", "what-if", "--trace", BUNDLED, "--profile", out, "--json", timeout=120)
    assert whatif.returncode == 0, whatif.stderr
    assert json.loads(whatif.stdout)["time_to_train_s"] > 0


def test_directory_calibration_never_writes_in_a_users_folder_of_its_name(tmp_path):
    theirs = tmp_path / "storage" / "trainio-calibrate" / "notes.txt"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("mine")
    proc = run_cli("replay", "calibrate", "--target", tmp_path / "storage", "--out", tmp_path / "x.toml", timeout=60)
    assert proc.returncode == 2 and "holds data trainio did not write" in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 2  # where it would go, then the one-line refusal
    assert [p.name for p in theirs.parent.iterdir()] == ["notes.txt"] and theirs.read_text() == "mine"


@pytest.mark.slow
def test_a_trace_paces_the_streams_as_its_loaders_left_gaps_between_requests(tmp_path):
    """--trace: the bundled trace's loaders spent milliseconds between reads; every single-stream and
    crowding cell pauses that long after each request, and the profile says so."""
    gap = request_gap_s(BUNDLED)
    assert 1e-4 < gap < 0.5
    target = tmp_path / "storage"
    target.mkdir()
    out = tmp_path / "paced.toml"
    proc = run_cli(
        "replay", "calibrate", "--target", target, "--out", out, "--budget-s", "6", "--trace", BUNDLED, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "at its cells CPU per request" in proc.stdout and "does not charge" not in proc.stdout
    text = out.read_text()
    assert f'pause = "{duration_text(gap)}"' in text
    cells = tomllib.loads(text)["cells"]
    singles = [c for c in cells if c["threads"] == 1 and c["depth"] == 1 and c["pattern"] == "randread"]
    assert len(singles) == 5 and all(c["pause_s"] == pytest.approx(gap) for c in singles)
    # paced or not, its files went under trainio-calibrate and are gone
    assert "calibration files at" in proc.stderr and list(target.iterdir()) == []


@pytest.mark.slow
def test_the_cpu_probe_writes_a_curve_that_reproduces_its_cells(tmp_path):
    out = tmp_path / "cpu.toml"
    proc = run_cli("replay", "calibrate", "--cpu", "--out", out, "--budget-s", "5", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "CPU probe" in proc.stdout and f"next: replay what-if --trace TRACE --cpu-profile {out}" in proc.stdout
    crowding = load_cpu_profile(out)
    cores = len(os.sched_getaffinity(0))
    loads = [p for p, _ in crowding.points]
    assert loads[0] == pytest.approx(1 / cores) and loads[-1] == pytest.approx(4.0) and crowding.points[0][1] == 1.0
    assert all(f > 0 for _, f in crowding.points)
    assert all(check.honest for check in check_profile(out))
    # it drives a projection
    whatif = run_cli(
        "replay", "what-if", "--trace", BUNDLED, "--workers", "8", "--cpu-profile", out, "--json", timeout=120
    )
    assert whatif.returncode == 0, whatif.stderr
    assert json.loads(whatif.stdout)["time_to_train_s"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cpu", "--target", "/tmp"], "one of them"),
        ([], "one of them"),
        (["--cpu", "--colocated"], "apply to a storage --target"),
        (["--cpu", "--keep"], "apply to a storage --target"),
    ],
)
def test_cpu_or_a_target_one_of_them_is_a_usage_error(tmp_path, args, message):
    proc = run_cli("replay", "calibrate", *args, "--out", tmp_path / "x.toml", timeout=60)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "x.toml").exists()


def test_the_cpu_probe_refuses_an_out_it_cannot_write_before_measuring(tmp_path):
    started = time.monotonic()
    proc = run_cli("replay", "calibrate", "--cpu", "--out", tmp_path, "--budget-s", "5", timeout=60)
    assert proc.returncode == 2 and "is a directory" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert time.monotonic() - started < 5 + 30  # refused at once, not after the 5 s probe (slack: a busy host)


def test_a_target_that_is_not_storage_is_a_usage_error(tmp_path):
    proc = run_cli("replay", "calibrate", "--target", "nfs:/x", "--out", tmp_path / "x.toml", timeout=60)
    assert proc.returncode == 2 and "target" in proc.stderr and len(proc.stderr.splitlines()) == 1
