"""replay/calibration without storage: the latency / bandwidth fit, the fitted profile numbers and
the profile file they make, on synthetic measurements."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trainio.models.backend import builtin_profile, load_profile
from trainio.models.captured import fit_latency_bandwidth
from trainio.models.units import rate_text
from trainio.replay.calibration.fio_cells import snapshot_cpu
from trainio.replay.calibration.fit import fit_measurements, fit_request_costs
from trainio.replay.calibration.honesty import check_profile
from trainio.replay.calibration.measurement import SIZES, CalibrationError, Cell, Measurement, merge_measurements
from trainio.replay.calibration.profile import profile_toml
from trainio.replay.storage.target import Target
from trainio.tracefile.hostcpu import CLOCK_TICK_S

LATENCY = 0.8e-3
BANDWIDTH = 450 * 2**20


def _time(size: float) -> float:
    return LATENCY + size / BANDWIDTH


def test_exact_measurements_give_back_latency_and_bandwidth_with_zero_residuals():
    fit = fit_request_costs(SIZES, [_time(s) for s in SIZES])
    assert fit.latency_s == pytest.approx(LATENCY, rel=1e-9)
    assert fit.bandwidth == pytest.approx(BANDWIDTH, rel=1e-9)
    assert max(abs(r) for r in fit.residuals) < 1e-9


def test_noisy_measurements_recover_latency_and_bandwidth_within_one_percent():
    rng = np.random.default_rng(7)
    sizes = np.repeat(SIZES, 40)
    seconds = np.array([_time(s) for s in sizes]) * rng.normal(1.0, 0.02, sizes.size)
    fit = fit_request_costs(sizes, seconds)
    assert fit.latency_s == pytest.approx(LATENCY, rel=0.01)
    assert fit.bandwidth == pytest.approx(BANDWIDTH, rel=0.01)
    # The residuals are the relative errors of the fit, point by point.
    assert fit.residuals[0] == pytest.approx((fit.seconds(sizes[0]) - seconds[0]) / seconds[0])


def test_a_small_request_latency_is_not_lost_beside_large_requests():
    # 4 MiB reads 3% slower than the model: a fit in absolute time (fit_latency_bandwidth) moves
    # the latency by 2.7%, the fit of relative errors by less than 1%.
    seconds = [_time(s) * (1.03 if s == SIZES[-1] else 1.0) for s in SIZES]
    assert fit_request_costs(SIZES, seconds).latency_s == pytest.approx(LATENCY, rel=0.01)
    absolute, _ = fit_latency_bandwidth(np.array(SIZES, dtype=float), np.array(seconds))
    assert absolute == pytest.approx(LATENCY, rel=0.05) and abs(absolute / LATENCY - 1) > 0.02


def test_a_fit_stays_physical():
    # Time falling with size: no per-byte cost to see, the bandwidth is unlimited.
    flat = fit_request_costs([4096, 8192, 16384], [3e-3, 2.9e-3, 2.8e-3])
    assert math.isinf(flat.bandwidth) and 2.8e-3 < flat.latency_s < 3e-3
    # A negative intercept: all of it is transfer time, through the origin.
    steep = fit_request_costs([1e6, 2e6, 4e6], [0.5e-3, 1.5e-3, 3.5e-3])
    assert steep.latency_s == 0 and 0 < steep.bandwidth < math.inf


@pytest.mark.parametrize(
    ("sizes", "seconds", "message"),
    [
        ([4096, 4096], [1e-3, 1e-3], "two request sizes"),
        ([4096], [1e-3], "two request sizes"),
        ([4096, 8192], [1e-3, 0.0], "seconds must be finite and > 0"),
        ([4096, 8192], [1e-3], "one length"),
    ],
)
def test_a_fit_without_enough_to_fit_is_refused_naming_why(sizes, seconds, message):
    with pytest.raises(ValueError, match=message):
        fit_request_costs(sizes, seconds)


def _measurement(pattern: str, size: int, threads: int = 1, depth: int = 1, seconds: float = 2.0) -> Measurement:
    per_request = _time(size) * (threads * depth if threads * depth > 1 else 1) ** 0.5
    streams = threads * depth
    ops = int(seconds / per_request * streams)
    name = f"{pattern} {size} {threads}x{depth}"
    return Measurement(name, pattern, size, threads, depth, ops, ops * size, seconds, per_request)


def _measurements() -> list[Measurement]:
    return [
        *(_measurement("randread", size) for size in SIZES),
        _measurement("read", 4096),
        _measurement("randread", 4096, 1, 32),
        _measurement("randread", 4096, 4, 32),
        _measurement("randread", 4 * 2**20, 4, 4),
        Measurement("open-read-close", "open-read-close", 16384, 1, 1, 1000, 16384000, 0.1, 1e-4, first_byte_s=5e-6),
        Measurement("stat", "stat", 0, 1, 1, 1000, 0, 0.003, 3e-6),
    ]


def test_profile_numbers_come_from_the_fit_and_the_best_cells():
    measurements = _measurements()
    fitted = fit_measurements(measurements)
    assert fitted.latency_s == pytest.approx(LATENCY) and fitted.stream_bandwidth == pytest.approx(BANDWIDTH)
    # Only the single-stream random reads are fitted; sequential ones are reported, not fitted.
    assert set(fitted.residuals) == {m.name for m in measurements[:5]}
    best_bw = max(measurements[:9], key=lambda m: m.bytes_per_s)
    assert fitted.aggregate_bandwidth == best_bw.bytes_per_s and fitted.aggregate_from == best_bw.name
    best_rate = max((m for m in measurements[:9] if m.size == 4096), key=lambda m: m.ops_per_s)
    assert fitted.iops == best_rate.ops_per_s and fitted.iops_from == best_rate.name
    assert (fitted.open_latency_s, fitted.stat_latency_s) == (5e-6, 3e-6)


@pytest.mark.parametrize(
    ("target", "access"),
    [
        (Target("rgw", "rgw:http://127.0.0.1:7480/b", endpoint="http://127.0.0.1:7480", bucket="b"), "object"),
        (Target("rados", "rados:trainpool", pool="trainpool"), "block"),
        (Target("directory", "/data", path="/data"), "posix"),
        (Target("cephfs", "cephfs:/train", path="/train"), "posix"),
    ],
)
def test_the_written_profile_loads_with_the_fitted_numbers(tmp_path, target, access):
    measurements = _measurements() if access != "object" else _measurements()[:9]
    fitted = fit_measurements(measurements)
    path = tmp_path / "calibrated.toml"
    path.write_text(profile_toml("calibrated", target, fitted, measurements, source="synthetic", fstype="ext4"))
    profile = load_profile(path)
    assert (profile.name, profile.access, profile.source) == ("calibrated", access, "synthetic")
    assert profile.request_latency_s == pytest.approx(LATENCY, rel=1e-3)
    assert profile.stream_bandwidth == pytest.approx(BANDWIDTH, rel=1e-3)
    assert profile.aggregate_bandwidth == pytest.approx(fitted.aggregate_bandwidth, rel=1e-3)
    assert profile.iops == pytest.approx(fitted.iops, rel=1e-3)
    if access == "posix":
        assert profile.open_latency_s == pytest.approx(5e-6) and profile.stat_latency_s == pytest.approx(3e-6)
        assert profile.shared == (target.kind == "cephfs")
    # Without CPU figures the CPU keys are "0 s", said so in their comments.
    assert profile.request_cpu_s == 0 and profile.colocated_cpu_s == 0
    assert "no --colocated" in path.read_text()
    if access == "block":  # open / stat / queue depth are not measured on RADOS: the built-in rbd values
        rbd = builtin_profile("rbd")
        assert (profile.open_latency_s, profile.max_outstanding) == (rbd.open_latency_s, rbd.max_outstanding)
    text = path.read_text()
    assert all(" # " in line for line in text.splitlines() if line.startswith(("read_latency", "get_latency")))


CLIENT_CPU, CPU_PER_BYTE, SERVER_CPU = 0.3e-3, 1 / (2 * 2**30), 0.2e-3
SMALL_CPU = CLIENT_CPU + SIZES[0] * CPU_PER_BYTE
"""The client's CPU of the smallest single-stream requests: ``request_cpu``."""


def _with_cpu(m: Measurement, busy: float = 0.5) -> Measurement:
    """``m`` with a client CPU of 0.3 ms + size / 2 GiB/s per request and 0.2 ms more on the host."""
    cpu = CLIENT_CPU + m.size * CPU_PER_BYTE
    return Measurement(
        m.name, m.pattern, m.size, m.threads, m.depth, m.ops, m.bytes, m.seconds, m.latency_s,
        m.first_byte_s, cpu_s=cpu, host_cpu_s=cpu + SERVER_CPU, busy=busy,
    )  # fmt: skip


def _load(tmp_path, fitted, measurements, target=None) -> tuple:
    target = target or Target("rados", "rados:trainpool", pool="trainpool")
    path = tmp_path / "calibrated.toml"
    path.write_text(profile_toml("calibrated", target, fitted, measurements, source="synthetic"))
    return load_profile(path), path.read_text()


def test_cpu_per_request_is_the_smallest_single_streams_and_the_written_latency_excludes_it(tmp_path):
    measurements = [_with_cpu(m) for m in _measurements()]
    fitted = fit_measurements(measurements, colocated=True)
    assert fitted.request_cpu_s == pytest.approx(SMALL_CPU, rel=1e-6)  # larger requests' per-byte CPU stays out
    assert fitted.colocated_cpu_s == pytest.approx(SERVER_CPU, rel=1e-6)
    assert fitted.latency_s == pytest.approx(LATENCY)  # the fit itself is untouched
    profile, text = _load(tmp_path, fitted, measurements)
    assert profile.request_cpu_s == pytest.approx(SMALL_CPU, rel=1e-3)
    assert profile.colocated_cpu_s == pytest.approx(SERVER_CPU, rel=1e-3)
    # An unloaded request still costs the fitted latency: the wait (the servers' work included)
    # plus the client's CPU, which the model charges in the request's own time.
    assert profile.read_latency_s == pytest.approx(LATENCY - SMALL_CPU, rel=1e-3)
    assert profile.read_latency_s + profile.request_cpu_s == pytest.approx(LATENCY, rel=1e-3)
    assert "less request_cpu" in text and "--colocated" in text


def _crowd(threads: int, cpu: float, host: float, pause_s: float = 2e-3) -> Measurement:
    return replace(_measurement("get", 4096, threads), cpu_s=cpu, host_cpu_s=host, busy=0.97, pause_s=pause_s)


def _get_streams(pause_s: float = 2e-3) -> list[Measurement]:
    """Single-stream GETs of every size, paced: 0.3 ms of client and 0.5 ms of host CPU for 4 KiB."""
    return [replace(_with_cpu(_measurement("get", size)), pause_s=pause_s) for size in SIZES]


RGW = Target("rgw", "rgw:http://127.0.0.1:7480/b", endpoint="http://127.0.0.1:7480", bucket="b")


def test_cpu_crowding_is_the_cpu_per_request_at_each_processes_per_core_relative_to_the_single_stream(tmp_path):
    # 1, 4 and 16 client processes on 4 cores, paced alike: host CPU 0.5 -> 0.75 -> 1.5 ms per GET
    base_host = SMALL_CPU + SERVER_CPU
    measurements = [
        *_get_streams(),
        _crowd(4, 1.2 * SMALL_CPU, 1.5 * base_host),
        _crowd(16, 2 * SMALL_CPU, 3 * base_host),
    ]
    colocated = fit_measurements(measurements, colocated=True, cores=4).crowding
    assert colocated is not None and [m.threads for m in colocated.cells] == [1, 4, 16]
    assert np.allclose(colocated.points, [(0.25, 1.0), (1.0, 1.5), (4.0, 3.0)])  # the host's CPU
    assert np.allclose(fit_measurements(measurements, cores=4).crowding.points, [(0.25, 1.0), (1.0, 1.2), (4.0, 2.0)])
    path = tmp_path / "calibrated.toml"
    fitted = fit_measurements(measurements, colocated=True, cores=4)
    path.write_text(profile_toml("calibrated", RGW, fitted, measurements, source="synthetic", cores=4))
    profile = load_profile(path)
    assert profile.cpu_crowding == 0 and np.allclose(profile.cpu_crowding_curve.points, colocated.points)
    # At each cell's own load the profile charges what the cell measured.
    for m in measurements[:1] + measurements[-2:]:
        charged = (profile.request_cpu_s + profile.colocated_cpu_s) * profile.crowding_factor(m.threads / 4)
        assert charged == pytest.approx(m.host_cpu_s, rel=2e-3)
    checks = check_profile(path)
    assert {c.cell for c in checks if c.term.startswith("CPU per request")} == {
        m.name for m in measurements[:1] + measurements[-2:]
    }
    assert all(c.honest for c in checks)
    assert "get 4096 16x1" in path.read_text() and "this host's 4 cores" in path.read_text()


def test_cells_paced_otherwise_than_the_single_stream_are_not_its_crowding(tmp_path):
    """Back-to-back GETs cost less CPU than paced ones: they say nothing of how a paced request's CPU
    grows, and no crowding is fitted from them; without multi-process cells none is either."""
    measurements = [*_get_streams(), _crowd(4, 1e-4, 2e-4, pause_s=0.0), _crowd(16, 2e-4, 4e-4, pause_s=0.0)]
    fitted = fit_measurements(measurements, colocated=True, cores=2)
    assert fitted.crowding is None
    profile, text = _load(tmp_path, fitted, measurements, RGW)
    assert profile.cpu_crowding == 0 and not profile.cpu_crowding_curve.measured
    assert "cpu_crowding = 0  # not measured" in text
    assert fit_measurements([_with_cpu(m) for m in _measurements()]).crowding is None  # queue depths, no processes


def test_a_power_law_anchored_at_the_paced_stream_but_fitted_on_back_to_back_cells_is_caught(tmp_path):
    """The committed round-1 RGW profile before this fix: cpu_crowding 0.175 fitted from 4 KiB GETs of 4
    and 16 processes back to back (host 2.500 and 3.188 ms), applied from the paced single stream's
    base (1 process on 2 cores, request_cpu 1.792 + colocated_cpu 1.346 ms): at the 4-process cell's
    own load it charges 4.00 ms, 1.6x what the cell measured."""
    path = tmp_path / "old.toml"
    old = (Path(__file__).parent / "data" / "rgw-round1-before.toml").read_text()
    path.write_text(old)
    checks = {c.cell: c for c in check_profile(path) if c.term.startswith("CPU per request")}
    assert checks["get 4KiB t4"].charged == pytest.approx(4.00e-3, rel=0.01)
    assert checks["get 4KiB t4"].error == pytest.approx(0.6, abs=0.02) and not checks["get 4KiB t4"].honest
    assert checks["get 4KiB t16"].charged == pytest.approx(5.10e-3, rel=0.01) and not checks["get 4KiB t16"].honest


def test_the_latency_line_charges_its_fit_at_each_cell_and_a_cell_far_off_it_is_implausible(tmp_path):
    measurements = [_with_cpu(m) for m in _measurements()]
    checks = check_profile(_written(tmp_path, measurements))
    line = [c for c in checks if c.term.startswith("time per request")]
    assert len(line) == 5 and all(c.honest and c.plausible for c in line)
    # One size 40% slower than the others say: the fit is still written faithfully, but that cell is off it.
    noisy = [
        replace(m, latency_s=1.4 * m.latency_s) if m.size == SIZES[2] and m.single_stream else m for m in measurements
    ]
    line = [c for c in check_profile(_written(tmp_path, noisy)) if c.term.startswith("time per request")]
    assert all(c.honest for c in line) and not all(c.plausible for c in line)
    # The client's CPU per request beyond a free line's intercept: the fit holds the latency at the CPU
    # and the profile charges that line at every cell.
    slower = [replace(m, latency_s=0.2e-3 + m.size / BANDWIDTH) for m in measurements]
    line = [c for c in check_profile(_written(tmp_path, slower)) if c.term.startswith("time per request")]
    assert len(line) == 5 and all(c.honest for c in line)
    # Written the way calibrations before the hold did (latency floored at 0, the free line's slope), the
    # profile charges more than the line at every cell, and the check says so.
    path = tmp_path / "floored.toml"
    free = replace(fit_measurements(slower), latency_s=0.2e-3, stream_bandwidth=BANDWIDTH)
    path.write_text(profile_toml("floored", Target("rados", "rados:p", pool="p"), free, slower, source="x"))
    line = [c for c in check_profile(path) if c.term.startswith("time per request")]
    assert all(c.charged > c.expected for c in line) and not all(c.honest for c in line)


def _written(tmp_path: Path, measurements: list[Measurement]) -> Path:
    path = tmp_path / "calibrated.toml"
    target = Target("rados", "rados:trainpool", pool="trainpool")
    path.write_text(profile_toml("calibrated", target, fit_measurements(measurements), measurements, source="x"))
    return path


def test_a_cell_measured_in_passes_merges_into_request_weighted_means():
    a = replace(_measurement("get", 4096), ops=100, seconds=1.0, latency_s=1e-3, cpu_s=1e-3, host_cpu_s=2e-3, busy=0.2)
    b = replace(_measurement("get", 4096), ops=300, seconds=3.0, latency_s=2e-3, cpu_s=3e-3, host_cpu_s=4e-3, busy=0.6)
    merged = merge_measurements([a, b])
    assert (merged.name, merged.ops, merged.bytes, merged.seconds) == (a.name, 400, a.bytes + b.bytes, 4.0)
    assert merged.latency_s == pytest.approx(1.75e-3) and merged.cpu_s == pytest.approx(2.5e-3)
    assert merged.host_cpu_s == pytest.approx(3.5e-3) and merged.busy == pytest.approx(0.5)
    assert merge_measurements([a, replace(b, cpu_s=None)]).cpu_s is None  # not measured in every pass


def test_without_colocated_the_servers_cpu_stays_inside_the_latency(tmp_path):
    measurements = [_with_cpu(m) for m in _measurements()]
    fitted = fit_measurements(measurements)
    assert fitted.colocated_cpu_s is None
    profile, _ = _load(tmp_path, fitted, measurements)
    assert profile.colocated_cpu_s == 0
    assert profile.read_latency_s == pytest.approx(LATENCY - SMALL_CPU, rel=1e-3)


def test_an_open_costs_the_cpu_its_file_takes_beyond_the_read(tmp_path):
    """The open-read-close cell's CPU per file less the read's is the open's (and close's) CPU; the
    written open latency excludes it, as the read latency excludes the read's."""
    open_cpu, mds_cpu = 0.4e-3, 0.15e-3
    measurements = [_with_cpu(m) for m in _measurements()]
    measurements = [
        replace(
            m, cpu_s=SMALL_CPU + open_cpu, host_cpu_s=SMALL_CPU + open_cpu + SERVER_CPU + mds_cpu, first_byte_s=6e-4
        )
        if m.pattern == "open-read-close"
        else m
        for m in measurements
    ]
    fitted = fit_measurements(measurements, colocated=True)
    assert fitted.open_cpu_s == pytest.approx(open_cpu, rel=1e-3)
    assert fitted.colocated_open_cpu_s == pytest.approx(mds_cpu, rel=1e-3)
    target = Target("cephfs", "cephfs:/train", path="/train")
    profile, text = _load(tmp_path, fitted, measurements, target)
    assert (profile.open_cpu_s, profile.colocated_open_cpu_s) == pytest.approx((open_cpu, mds_cpu), rel=1e-3)
    assert profile.open_latency_s == pytest.approx(6e-4 - open_cpu, rel=1e-3)
    assert "mean open less open_cpu" in text
    rgw = Target("rgw", "rgw:http://127.0.0.1:7480/b", endpoint="http://127.0.0.1:7480", bucket="b")
    assert "open_cpu" not in _load(tmp_path, fitted, measurements, rgw)[1]  # no opens on an object store


def test_cpu_beyond_a_free_intercept_holds_the_latency_at_the_cpu(tmp_path):
    measurements = [_with_cpu(m) for m in _measurements()]
    slower = [replace(m, latency_s=0.2e-3 + m.size / BANDWIDTH) for m in measurements]  # 0.2 ms < client CPU
    fitted = fit_measurements(slower, colocated=True)
    assert fitted.latency_s == pytest.approx(SMALL_CPU) and fitted.wait_latency_s == 0
    # the slope gives back what the raised intercept took at the small sizes: a faster stream
    assert fitted.stream_bandwidth > BANDWIDTH
    profile, text = _load(tmp_path, fitted, measurements)
    assert profile.read_latency_s == 0 and "the line was fitted through request_cpu" in text


def test_a_latency_held_at_its_floor_refits_the_slope_by_least_relative_squares():
    sizes = np.array(SIZES, dtype=float)
    seconds = 0.1e-3 + sizes / BANDWIDTH
    fit = fit_request_costs(sizes, seconds, min_latency_s=0.3e-3)
    assert fit.latency_s == 0.3e-3

    def cost(per_byte: float) -> float:
        return float(np.sum(((0.3e-3 + per_byte * sizes - seconds) / seconds) ** 2))

    best = 1 / fit.bandwidth
    assert cost(best) < cost(best * 1.001) and cost(best) < cost(best * 0.999)
    assert fit_request_costs(sizes, seconds, min_latency_s=0.05e-3).latency_s == pytest.approx(0.1e-3)  # free
    with pytest.raises(ValueError, match="min_latency_s"):
        fit_request_costs(sizes, seconds, min_latency_s=-1.0)


@pytest.mark.parametrize(("busy", "unlimited"), [(0.95, True), (0.9, True), (0.6, False)])
def test_a_request_rate_measured_with_the_host_cores_busy_is_written_unlimited(tmp_path, busy, unlimited):
    measurements = [_with_cpu(m, busy=busy if m.threads * m.depth > 1 else 0.4) for m in _measurements()]
    fitted = fit_measurements(measurements)
    assert fitted.iops_busy == busy and fitted.cpu_bound == unlimited
    profile, text = _load(tmp_path, fitted, measurements)
    iops_line = next(line for line in text.splitlines() if line.startswith("iops"))
    assert f"{100 * busy:.0f}% busy" in iops_line
    if unlimited:
        assert math.isinf(profile.iops) and rate_text(fitted.iops) in iops_line and "CPU limit" in iops_line
    else:
        assert profile.iops == pytest.approx(fitted.iops, rel=1e-3)


def _snapshot_file(tmp_path: Path, lines: list[tuple]) -> Path:
    # "EVENT PID JOB_UTIME JOB_STIME MAIN_UTIME MAIN_STIME cpu USER NICE SYSTEM IDLE IOWAIT IRQ SOFTIRQ STEAL ..."
    text = "".join(
        f"{event} {pid} {ju} {js} {mu} {ms} cpu  {busy} 0 0 {total - busy} 0 0 0 0 0 0\n"
        for event, pid, ju, js, mu, ms, busy, total in lines
    )
    (tmp_path / "c0.cpu").write_text(text)
    return tmp_path


def test_fio_job_processes_cpu_comes_from_their_snapshots(tmp_path):
    # Two forked jobs (their own pids): each its own CPU; the fio main process's (40 -> 46) is neither.
    scratch = _snapshot_file(
        tmp_path,
        [
            ("pre", 11, 10, 5, 40, 0, 1000, 4000),
            ("pre", 12, 20, 5, 40, 0, 1001, 4001),
            ("post", 11, 60, 15, 45, 0, 1300, 4400),
            ("post", 12, 70, 15, 46, 0, 1310, 4410),
        ],
    )
    got = snapshot_cpu(scratch, 0, Cell("randread", 4096, 2, 1), 100, "test")
    assert got["cpu_s"] == pytest.approx((60 + 60) * CLOCK_TICK_S / 100)
    assert got["host_cpu_s"] == pytest.approx((310 - 6) * CLOCK_TICK_S / 100)
    assert got["busy"] == pytest.approx(310 / 410)


def test_fio_jobs_run_as_threads_of_one_process_count_that_process_once(tmp_path):
    # The rados engine forces thread mode: two jobs, one pid, the process's CPU from first to last snapshot.
    scratch = _snapshot_file(
        tmp_path,
        [
            ("pre", 7, 100, 50, 0, 0, 1000, 4000),
            ("pre", 7, 101, 50, 0, 0, 1000, 4000),
            ("post", 7, 180, 90, 0, 0, 1200, 4400),
            ("post", 7, 181, 90, 0, 0, 1200, 4400),
        ],
    )
    got = snapshot_cpu(scratch, 0, Cell("randread", 4096, 2, 16), 1000, "test")
    assert got["cpu_s"] == pytest.approx(121 * CLOCK_TICK_S / 1000)


@pytest.mark.parametrize(
    "lines",
    [
        [
            ("pre", 11, 10, 5, 40, 0, 1000, 4000),
            ("pre", 12, 20, 5, 40, 0, 1001, 4001),
            ("post", 11, 60, 15, 45, 0, 1300, 4400),
        ],
        [],
    ],
    ids=["a job's end snapshot missing", "no snapshots"],
)
def test_missing_fio_cpu_snapshots_fail_the_cell_naming_the_file(tmp_path, lines):
    scratch = _snapshot_file(tmp_path, lines)
    with pytest.raises(CalibrationError, match="c0.cpu"):
        snapshot_cpu(scratch, 0, Cell("randread", 4096, 2, 1), 100, "test")
    (scratch / "c0.cpu").write_text("pre 11 garbage\n")
    with pytest.raises(CalibrationError, match="cannot read the CPU snapshots"):
        snapshot_cpu(scratch, 0, Cell("randread", 4096, 2, 1), 100, "test")
