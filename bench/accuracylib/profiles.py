"""The profiles a round's projections use: calibrated by ``replay calibrate`` on a quiet machine (the
storage paced as the round's baseline trace's loaders were, and this host's CPU crowding), or the
built-in ones (smoke)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from trainio.models.backend import PROFILE_DIR, BackendProfile, builtin_profile, load_profile
from trainio.replay.calibration.calibrate import calibrate, request_gap_s
from trainio.replay.calibration.cpu import calibrate_cpu, render_cpu_calibration
from trainio.replay.calibration.honesty import check_profile
from trainio.replay.calibration.place import Placement
from trainio.replay.calibration.report import render_calibration

from .conditions import BUILTIN, say
from .machine import ATTEMPTS, CpuMeter, Patience, cpu_probe_ms, quietly


def calibrate_profiles(
    needed: set[str],
    env: dict,
    data: Path,
    folder: Path,
    scratch: Path,
    budget_s: float,
    meter: CpuMeter,
    patience: Patience,
    *,
    trace: Path,
    prefix: str = "calibrated",
) -> tuple[dict[str, Path], dict[str, dict]]:
    """One profile per backend in ``folder`` (``PREFIX-NAME.toml``), measured by ``replay calibrate
    --trace TRACE`` on a quiet machine (``--colocated`` for the Ceph targets: the daemons share this
    host's cores with the runs); ``scratch`` holds every try."""
    targets = {
        "local": str(data.parent),
        "rgw": f"rgw:{env['TRAINIO_S3_ENDPOINT']}/trainio-calibrate",
        "rados": "rados:trainpool",
        "cephfs": "cephfs:/trainio-calibrate",
    }
    paths, info = {}, {}
    pause_s = request_gap_s(trace)
    saved = {name: os.environ.get(name) for name in ("CEPH_CONF", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({name: env[name] for name in saved})
    try:
        for name in sorted(needed):
            out = folder / f"{prefix}-{name}.toml"
            say(f"calibrating {name}: {targets[name]} (budget {budget_s:.0f} s, {1e3 * pause_s:.2f} ms pause)")

            tries = iter(range(ATTEMPTS))

            # the Ceph daemons run on this host: their CPU per request is the training's too
            colocated = name != "local"

            def measure(
                target: str = targets[name], out: Path = out, tries: Iterator = tries, colocated: bool = colocated
            ) -> object:
                # each try writes its own file, so that the least disturbed one can be kept
                path = scratch / f"try-{next(tries)}" / out.name
                # kept between tries and rounds: uploaded once, not inside every try's budget
                return calibrate(
                    target,
                    path,
                    budget_s=budget_s,
                    colocated=colocated,
                    pause_s=pause_s,
                    placement=Placement(keep=True),
                )

            probe = cpu_probe_ms()
            cal, usage = quietly(meter, f"calibrating {name}", patience, measure, plausible)
            shutil.copyfile(cal.profile_path, out)
            print(render_calibration(cal), flush=True)
            paths[name] = out
            info[name] = {
                "source": "replay calibrate",
                "target": targets[name],
                "profile_file": out.name,
                "elapsed_s": round(cal.elapsed_s, 1),
                "notes": list(cal.notes),
                "machine_usage": usage.to_dict(),
                "cpu_probe_ms": round(probe, 2),
                "pause_s": pause_s,
                **profile_numbers(load_profile(out)),
            }
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return paths, info


def plausible(cal: object) -> bool:
    """Whether a calibration's profile charges at each of its cells what its terms were fitted to give
    there and misses no cell by more than a quiet machine's calibration does
    (``replay/calibration/honesty.py``): one that does was disturbed."""
    return all(check.plausible for check in check_profile(cal.profile_path))  # type: ignore[attr-defined]


def calibrate_cpu_profile(out: Path, scratch: Path, budget_s: float, meter: CpuMeter, patience: Patience) -> dict:
    """This host's CPU crowding (``replay calibrate --cpu``) on a quiet machine, written to ``out``;
    ``scratch`` holds every try."""
    say(f"probing this host's CPU crowding (budget {budget_s:.0f} s)")
    tries = iter(range(ATTEMPTS))

    def measure() -> object:
        return calibrate_cpu(scratch / f"try-{next(tries)}" / out.name, budget_s=budget_s)

    cal, usage = quietly(meter, "CPU probe", patience, measure)
    shutil.copyfile(cal.profile_path, out)
    print(render_cpu_calibration(cal), flush=True)
    return {
        "profile_file": out.name,
        "machine_usage": usage.to_dict(),
        "crowding": [list(point) for point in cal.crowding.points],
    }


def builtin_profiles(needed: set[str], why: str) -> tuple[dict[str, Path], dict[str, dict]]:
    paths = {name: PROFILE_DIR / f"{BUILTIN[name]}.toml" for name in needed}
    info = {
        name: {
            "source": f"built-in profile {BUILTIN[name]!r} ({why})",
            **profile_numbers(builtin_profile(BUILTIN[name])),
        }
        for name in needed
    }
    return paths, info


def profile_numbers(profile: BackendProfile) -> dict:
    numbers = {
        "name": profile.name,
        "access": profile.access,
        "shared": profile.shared,
        "page_cache": profile.page_cache,
    }
    for key in ("open_latency_s", "read_latency_s", "get_latency_s"):
        value = getattr(profile, key)
        if value is not None:
            numbers[key] = value
    for key in ("stream_bandwidth", "aggregate_bandwidth", "iops", "request_cpu_s", "colocated_cpu_s", "cpu_crowding"):
        numbers[key] = getattr(profile, key)
    numbers["cpu_crowding_curve"] = [list(point) for point in profile.cpu_crowding_curve.points]
    return numbers
