"""Calibration cells of a CephFS folder (``cephfs:/PATH``), through libcephfs (no kernel mount) by the
storage layer's helper under the system Python.

Random reads of a 64 MiB file with libcephfs's object cache off, and open + read + close and stat of
256 small files, each once on a fresh mount (cold: an MDS round trip each). The files are written in
PATH, a layout root of trainio's own (:mod:`.place`), and removed afterwards unless kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainio.models.units import format_size
from trainio.replay.calibration.measurement import (
    LARGE,
    MIN_OPS,
    SAMPLE_BYTES,
    SAMPLE_FILES,
    SMALL,
    Budget,
    Cell,
    Cells,
    Measurement,
    MiB,
    Progress,
    cpu_fields,
    single_stream_cells,
)
from trainio.replay.calibration.place import Placement, calibration_files
from trainio.replay.storage import ceph
from trainio.replay.storage.target import Target
from trainio.tracefile.hostcpu import cpu_ticks

DATA_FILE = "data.bin"
DATA_BYTES = 64 * MiB
PER_CELL_S = 0.15
"""The helper's time per measurement besides the timed phase (a metadata cell mounts afresh)."""


def calibrate_cephfs(
    target: Target, budget: Budget, say: Progress, scratch: Path, placement: Placement, pause_s: float
) -> Cells:
    """Random reads of every size from one stream (the fit's), 4 KiB reads from 8 threads and 4 MiB
    from 4, open + read + close and stat of the sample files."""
    conf = ceph.ceph_conf()
    samples = [f"samples/{i:05d}.bin" for i in range(SAMPLE_FILES)]
    files = {DATA_FILE: DATA_BYTES, **{rel: SAMPLE_BYTES for rel in samples}}
    plan = {"conf": conf, "root": target.path, "data": DATA_FILE, "samples": samples}
    say(f"{format_size(DATA_BYTES)} and {SAMPLE_FILES} files of {format_size(SAMPLE_BYTES)} under {target.text}")
    store = ceph.CephFSStore(target.path, scratch, conf)
    with calibration_files(store, files, placement, say):
        measurements, version = _measure(plan, budget, say, scratch, target.text, pause_s)
    notes = [
        "measured through libcephfs (no kernel mount) with its object cache (client_oc) off: every read "
        "reaches the OSDs",
        f"open and stat cold: each of {SAMPLE_FILES} files once, on a fresh mount (an MDS round trip each)",
        f"calibration files under {target.text} ({'kept' if placement.keep else 'removed afterwards'})",
        f"measured from one Python process ({os.cpu_count()} CPUs): client CPU bounds the rate it can see",
    ]
    return Cells(measurements, f"libcephfs {version}".strip(), notes)


def _measure(
    plan: dict, budget: Budget, say: Progress, scratch: Path, where: str, pause_s: float
) -> tuple[list[Measurement], str]:
    """The helper's cells on the files in place (the paced ones ``pause_s`` idle after each request); the
    measurements and libcephfs's version."""
    conf = plan["conf"]
    cells = [
        *single_stream_cells("randread", pause_s),
        Cell("randread", SMALL, 8, 1, pause_s),
        Cell("randread", LARGE, 4, 1),
        Cell("open-read-close", SAMPLE_BYTES, 1, 1),
        Cell("stat", 0, 1, 1),
    ]
    seconds = budget.per_cell(len(cells), PER_CELL_S)
    say(f"libcephfs: {len(cells)} measurements of up to {seconds:.1f} s under {where}")
    helper_cells = [
        {
            "name": "stat t1" if cell.pattern == "stat" else cell.name,
            "op": cell.pattern,
            "size": cell.size,
            "threads": cell.threads,
            "seconds": seconds,
            "min_ops": MIN_OPS,
            "pause_s": cell.pause_s,
        }
        for cell in cells
    ]
    timeout_s = len(cells) * (seconds + 15) + 60
    result = ceph.run_helper("calibrate", {**plan, "cells": helper_cells}, scratch, conf, timeout_s)
    measurements = []
    for cell, got in zip(cells, result["cells"], strict=True):
        (start, end), ops = got["host_stat"], got["ops"]
        measurements.append(
            Measurement(
                name=got["name"],
                pattern=cell.pattern,
                size=cell.size,
                threads=cell.threads,
                depth=1,
                ops=ops,
                bytes=got["bytes"],
                seconds=got["seconds"],
                latency_s=got["latency_s"],
                first_byte_s=got["first_byte_s"],
                pause_s=cell.pause_s,
                **cpu_fields(ops, got["cpu_s"], cpu_ticks(start), cpu_ticks(end)),
            )
        )
    return measurements, str(result.get("version", ""))
