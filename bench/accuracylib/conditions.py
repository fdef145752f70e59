"""What the accuracy benchmark compares: two sets of conditions (backend, record format, nodes, workers,
preload, step time), each projected from one baseline of its own workload and run for real. The
development set is what the model has been adjusted against; the held-out set is a workload the model
is never adjusted against."""

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
    raw_share: float = 0.0
    """Share of the samples that are raw bytes handed on undecoded (reference_train.py --raw-share)."""


@dataclass(frozen=True)
class Condition:
    name: str
    source: str
    """reference_train.py source kind: local, rgw, rgw-shards, rados, cephfs."""
    profile: str
    """Which calibrated profile the projection uses: local, rgw, rados, cephfs, or as-captured (the
    trace's own storage, nothing calibrated)."""
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
AS_CAPTURED = "as-captured"

HELD_OUT_SETUP = Setup(samples=600, epochs=2, batch_size=16, workers=2, step_time_s=0.02, raw_share=0.5)
HELD_OUT_SMOKE = Setup(samples=96, epochs=1, batch_size=16, workers=2, step_time_s=0.02, raw_share=0.5)
HELD_OUT_CONDITIONS = (
    Condition(
        "local, as captured", "local", AS_CAPTURED, "nothing: the baseline, untraced, on the trace's own storage"
    ),
    Condition("RGW, 2 workers", "rgw", "rgw", "backend"),
    Condition("RGW, 1 worker", "rgw", "rgw", "backend and workers", workers=1),
    Condition("RGW, 4 workers", "rgw", "rgw", "backend and workers", workers=4),
    Condition("RGW, 2 ms step", "rgw", "rgw", "backend and step time", step_time_s=0.002),
    Condition(
        "RGW, two ranks on the host (--gpus-per-node 2 --workers 1)",
        "rgw",
        "rgw",
        "backend, ranks per node and workers",
        world=2,
        workers=1,
    ),
)


@dataclass(frozen=True)
class BenchSet:
    """Conditions projected from one baseline workload of their own."""

    name: str
    setup: Setup
    conditions: tuple[Condition, ...]
    dataset: str
    """Folder of its data under the work folder, its bucket and prefix on the Ceph backends."""
    adjusted: bool
    """Whether the model has been adjusted against these conditions (the development set)."""
    key: str = ""
    """Where the result holds the set: "" at the top (the development set), else under this key."""
    baseline_source: str = "local"
    """reference_train.py source kind of the captured baseline."""

    @property
    def profiles(self) -> set[str]:
        return {c.profile for c in self.conditions} - {AS_CAPTURED}

    @property
    def sources(self) -> set[str]:
        return {c.source for c in self.conditions} | {self.baseline_source}


SHARDS_TO_FILES = Condition(
    "one file per sample, from a tar-shards capture",
    "local",
    AS_CAPTURED,
    "record format: WebDataset-style tar shards (an iterable dataset, shuffle buffer) to one file per sample",
    format="files",
)
"""The held-out workload captured reading tar shards (local-shards), projected onto one file per sample
and run so."""

MEMMAP_ON_CEPHFS = Condition(
    "memory-mapped file on CephFS (ceph-fuse)",
    "memmap-cephfs",
    "cephfs",
    "backend: the mapped file on CephFS, its pages faulted in through the kernel's page cache",
)
"""The held-out workload read through a memory mapping of one packed file, captured on local disk,
projected onto CephFS and run with the file on a ceph-fuse mount."""

DEVELOPMENT = BenchSet("development", FULL, CONDITIONS, "trainio-accuracy", adjusted=True)
HELD_OUT = BenchSet("held-out", HELD_OUT_SETUP, HELD_OUT_CONDITIONS, "trainio-heldout", adjusted=False, key="held_out")
HELD_OUT_FORMATS = BenchSet(
    "held-out-formats",
    HELD_OUT_SETUP,
    (SHARDS_TO_FILES,),
    "trainio-heldout-formats",
    adjusted=False,
    key="held_out_formats",
    baseline_source="local-shards",
)
HELD_OUT_MEMMAP = BenchSet(
    "held-out-memmap",
    HELD_OUT_SETUP,
    (MEMMAP_ON_CEPHFS,),
    "trainio-heldout-memmap",
    adjusted=False,
    key="held_out_memmap",
    baseline_source="memmap",
)
SETS = (DEVELOPMENT, HELD_OUT, HELD_OUT_FORMATS, HELD_OUT_MEMMAP)
SMOKE_SETS = (
    BenchSet("development", SMOKE, SMOKE_CONDITIONS, "trainio-accuracy", adjusted=True),
    BenchSet("held-out", HELD_OUT_SMOKE, HELD_OUT_CONDITIONS[1:2], "trainio-heldout", adjusted=False, key="held_out"),
    BenchSet(
        "held-out-formats",
        HELD_OUT_SMOKE,
        (SHARDS_TO_FILES,),
        "trainio-heldout-formats",
        adjusted=False,
        key="held_out_formats",
        baseline_source="local-shards",
    ),
    BenchSet(
        "held-out-memmap",
        HELD_OUT_SMOKE,
        (MEMMAP_ON_CEPHFS,),
        "trainio-heldout-memmap",
        adjusted=False,
        key="held_out_memmap",
        baseline_source="memmap",
    ),
)
