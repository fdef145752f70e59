"""replay/calibrate.py without storage: the latency / bandwidth fit, the fitted profile numbers and
the profile file they make, on synthetic measurements."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.backend import builtin_profile, load_profile
from models.captured import fit_latency_bandwidth
from models.units import parse_bandwidth, parse_duration, parse_rate
from replay.calibrate import (
    SIZES,
    Measurement,
    Target,
    TargetError,
    bandwidth_text,
    duration_text,
    fit_measurements,
    fit_request_costs,
    parse_target,
    profile_toml,
    rate_text,
)

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
        (Target("directory", "/data", path=Path("/data")), "posix"),
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
        assert not profile.shared
    if access == "block":  # open / stat / queue depth are not measured on RADOS: the built-in rbd values
        rbd = builtin_profile("rbd")
        assert (profile.open_latency_s, profile.max_outstanding) == (rbd.open_latency_s, rbd.max_outstanding)
    text = path.read_text()
    assert all(" # " in line for line in text.splitlines() if line.startswith(("read_latency", "get_latency")))


@pytest.mark.parametrize("seconds", [3.2e-7, 5e-6, 999.96e-6, 2.1157e-3, 0.9999, 12.5])
def test_durations_are_written_as_unit_strings_that_parse_back(seconds):
    assert parse_duration(duration_text(seconds)) == pytest.approx(seconds, rel=1e-3)


@pytest.mark.parametrize("rate", [900.0, 1.5 * 2**20, 1023.99 * 2**20, 2.737 * 2**30, 5e12])
def test_bandwidths_and_rates_are_written_as_unit_strings_that_parse_back(rate):
    assert parse_bandwidth(bandwidth_text(rate)) == pytest.approx(rate, rel=1e-3)
    assert parse_rate(rate_text(rate)) == pytest.approx(rate, rel=1e-3)
    assert bandwidth_text(math.inf) == rate_text(math.inf) == "unlimited"


def test_targets_parse_into_their_kind(tmp_path):
    rgw = parse_target("rgw:http://127.0.0.1:7480/bucket")
    assert (rgw.kind, rgw.endpoint, rgw.bucket) == ("rgw", "http://127.0.0.1:7480", "bucket")
    assert parse_target("s3:https://s3.example.com/b/").bucket == "b"
    assert (parse_target("rados:trainpool").kind, parse_target("rados:trainpool").pool) == ("rados", "trainpool")
    assert parse_target(str(tmp_path)).path == tmp_path


@pytest.mark.parametrize("text", ["rgw:http://127.0.0.1:7480", "rgw:ftp://h/b", "s3:http://h/a/b", "rados:", "/no/dir"])
def test_a_target_that_does_not_parse_is_refused_with_its_text(text):
    with pytest.raises(TargetError, match="target"):
        parse_target(text)
