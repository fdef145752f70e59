"""What the accuracy benchmark compares: the shared set-up of every run and the conditions (backend,
record format, nodes, workers, preload, step time) projected from one baseline and run for real."""

from __future__ import annotations

from dataclasses import dataclass

SHARD_FORMAT = "shards:4MiB"
TARGET_MEDIAN_PCT, TARGET_MAX_PCT = 10.0, 20.0
GOAL_MEDIAN_PCT, GOAL_MAX_PCT = 5.0, 10.0


class BenchError(RuntimeError):
    """A step of the benchmark that failed: Ceph, placing data, a run, a projection."""


def say(message: str) -> None:
    print(f"accuracy: {message}", flush=True)


@dataclass(frozen=True)
class Setup:
    """What every run shares."""

    samples: int
    epochs: int
    batch_size: int
    workers: int
    step_time_s: float


@dataclass(frozen=True)
class Condition:
    name: str
    source: str
    """reference_train.py source kind: local, rgw, rgw-shards, rados, cephfs."""
    profile: str
    """Which calibrated profile the projection uses: local, rgw, rados, cephfs."""
    varies: str
    """What the condition changes against the baseline."""
    world: int = 1
    workers: int | None = None
    step_time_s: float | None = None
    preload: bool = False
    format: str | None = None
    """Record format of the projection (None: as captured, one file per sample)."""
    page_cache: bool | None = None
    """What-if's ``--page-cache`` (None: the profile's). The RADOS and CephFS loaders read through
    librados / libcephfs in user space, so nothing they read is in the page cache next epoch."""


FULL = Setup(samples=2000, epochs=2, batch_size=32, workers=2, step_time_s=0.02)
SMOKE = Setup(samples=192, epochs=1, batch_size=32, workers=2, step_time_s=0.02)

CONDITIONS = (
    Condition("local files (the baseline's setup)", "local", "local", "nothing: the baseline, untraced"),
    Condition("RGW, one GET per sample", "rgw", "rgw", "backend"),
    Condition("RADOS, one object per sample", "rados", "rados", "backend", page_cache=False),
    Condition("CephFS (libcephfs), one file per sample", "cephfs", "cephfs", "backend", page_cache=False),
    Condition("RGW, tar shards of 4 MiB", "rgw-shards", "rgw", "backend and record format", format=SHARD_FORMAT),
    Condition("RGW, 2 nodes", "rgw", "rgw", "backend and nodes", world=2),
    Condition("RGW, 4 nodes", "rgw", "rgw", "backend and nodes", world=4),
    Condition("RGW, 1 worker", "rgw", "rgw", "backend and workers", workers=1),
    Condition("RGW, 4 workers", "rgw", "rgw", "backend and workers", workers=4),
    Condition(
        "RGW shards, bulk preload", "rgw-shards", "rgw", "backend and format: preload", preload=True, format="preload"
    ),
    Condition(
        "RADOS, compute-bound (50 ms step)",
        "rados",
        "rados",
        "backend and step time",
        step_time_s=0.05,
        page_cache=False,
    ),
    Condition(
        "RADOS, loader-bound (2 ms step)",
        "rados",
        "rados",
        "backend and step time",
        step_time_s=0.002,
        page_cache=False,
    ),
)
SMOKE_CONDITIONS = (CONDITIONS[1],)
BUILTIN = {"local": "local-nvme", "rgw": "rgw", "rados": "rbd", "cephfs": "cephfs"}
"""Built-in profiles used when calibration is skipped (smoke)."""
