"""Calibration cells of a directory: fio on a 128 MiB file (``O_DIRECT`` where the file system allows
it, so that the device and not the page cache is measured) and, for the file-per-sample cost, timed
``open`` / ``read`` / ``close`` and ``stat`` calls from Python. Its files go in the sub-folder
``trainio-calibrate`` (:mod:`.place`) and are removed afterwards unless kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from trainio.models.units import format_size
from trainio.replay.calibration.fio_cells import FIO_PER_CELL_S, fio_measurements, job_file, run_cells
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
from trainio.replay.calibration.place import CALIBRATION_FOLDER, Placement, calibration_files
from trainio.replay.storage.directory import DirectoryStore, check_room, direct_io_works, fs_type
from trainio.replay.storage.fio import find_fio
from trainio.replay.storage.target import Target
from trainio.tracefile.hostcpu import host_ticks

FILE_BYTES = 128 * MiB
DATA_FILE = "data.bin"


def _sample_cells(folder: Path, seconds: float) -> list[Measurement]:
    """File-per-sample cost: open + read + close of small files, and stat, timed from Python."""
    files = sorted(folder.iterdir())
    opens: list[float] = []
    totals: list[float] = []
    stats: list[float] = []
    nbytes = 0
    read_host, read_cpu = host_ticks(), time.process_time()
    begin = time.perf_counter()
    i = 0
    while time.perf_counter() - begin < seconds or len(totals) < MIN_OPS:
        path = files[i % len(files)]
        i += 1
        t0 = time.perf_counter()
        fd = os.open(path, os.O_RDONLY)
        t1 = time.perf_counter()
        try:
            while chunk := os.read(fd, SAMPLE_BYTES):
                nbytes += len(chunk)
        finally:
            os.close(fd)
        opens.append(t1 - t0)
        totals.append(time.perf_counter() - t0)
    read_wall = time.perf_counter() - begin
    read_cpu, read_end = time.process_time() - read_cpu, host_ticks()
    stat_host, stat_cpu = host_ticks(), time.process_time()
    begin = time.perf_counter()
    i = 0
    while time.perf_counter() - begin < seconds / 2 or len(stats) < MIN_OPS:
        t0 = time.perf_counter()
        os.stat(files[i % len(files)])
        stats.append(time.perf_counter() - t0)
        i += 1
    stat_wall = time.perf_counter() - begin
    stat_cpu, stat_end = time.process_time() - stat_cpu, host_ticks()
    return [
        Measurement(
            name=f"open-read-close {format_size(SAMPLE_BYTES)} t1",
            pattern="open-read-close",
            size=SAMPLE_BYTES,
            threads=1,
            depth=1,
            ops=len(totals),
            bytes=nbytes,
            seconds=read_wall,
            latency_s=float(np.mean(totals)),
            first_byte_s=float(np.mean(opens)),
            **cpu_fields(len(totals), read_cpu, read_host, read_end),
        ),
        Measurement(
            "stat t1",
            "stat",
            0,
            1,
            1,
            len(stats),
            0,
            stat_wall,
            float(np.mean(stats)),
            **cpu_fields(len(stats), stat_cpu, stat_host, stat_end),
        ),
    ]


def calibrate_directory(
    target: Target, budget: Budget, say: Progress, scratch: Path, placement: Placement, pause_s: float
) -> Cells:
    """Random reads of every size from one stream (the fit's), sequential reads, small and large reads
    at queue depth (or from several threads without O_DIRECT), then the file-per-sample cells."""
    root = target.directory
    find_fio()
    store = DirectoryStore(root / CALIBRATION_FOLDER)
    samples = [f"samples/{i:05d}.bin" for i in range(SAMPLE_FILES)]
    files = {DATA_FILE: FILE_BYTES, **{name: SAMPLE_BYTES for name in samples}}
    check_room(root, 2 * sum(files.values()))
    with calibration_files(store, files, placement, say):
        os.sync()  # the layout's dirty pages written back now, not during the measurements
        return _measure(store.path, budget, say, scratch, fs_type(root), pause_s)


def _measure(work: Path, budget: Budget, say: Progress, scratch: Path, fstype: str, pause_s: float) -> Cells:
    """The fio cells on the data file and the file-per-sample cells on the samples, in place in ``work``;
    the single streams and the threaded small reads ``pause_s`` idle after each request."""
    data = work / DATA_FILE
    direct = direct_io_works(data)
    notes = [f"file system {fstype or 'unknown'}"]
    if not direct:
        notes.append(f"O_DIRECT is refused on {work}: reads were measured through the page cache")
    notes.append("open/stat measured with the files' metadata and data warm in the page cache")
    async_engine = "libaio" if direct else "psync"
    cells = [
        *single_stream_cells("randread", pause_s),
        Cell("read", SMALL, 1, 1),
        Cell("read", 1 * MiB, 1, 1),
        Cell("randread", SMALL, 1, 32) if direct else Cell("randread", SMALL, 8, 1, pause_s),
        Cell("randread", SMALL, 4, 32) if direct else Cell("randread", SMALL, 16, 1, pause_s),
        Cell("randread", LARGE, 4, 4) if direct else Cell("randread", LARGE, 4, 1),
    ]
    seconds = budget.per_cell(len(cells) + 1.5, FIO_PER_CELL_S["directory"])
    say(f"fio: {len(cells)} measurements of {seconds:.1f} s in {work}")
    job = job_file(
        [f"filename={data}", f"size={FILE_BYTES}", f"direct={int(direct)}"],
        cells,
        seconds,
        lambda cell: async_engine if cell.depth > 1 else "psync",
        scratch,
    )
    jobs, version = run_cells(job, scratch, len(cells) * (seconds + 15) + 30, str(work))
    measurements = fio_measurements(jobs, cells, str(work), scratch)
    say(f"open + read + close and stat of {SAMPLE_FILES} files for {seconds:.1f} s")
    measurements += _sample_cells(work / "samples", seconds)
    return Cells(measurements, version, notes, fstype)
