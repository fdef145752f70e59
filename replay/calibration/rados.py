"""Calibration cells of a Ceph pool (``rados:POOL``): fio's rados engine on eight 8 MiB objects.

fio 3.33's rados engine needs ``conf=`` (it crashes without it) and never checks an I/O's result:
reads of objects that are not there "succeed" at tens of GB/s. So the objects are written (under the
object-name prefix ``trainio-calibrate/``, :mod:`.place`) and stat'ed after the reads; a missing or
short one fails the calibration.
"""

from __future__ import annotations

from pathlib import Path

from trainio.models.units import format_size
from trainio.replay.calibration.fio_cells import FIO_PER_CELL_S, fio_measurements, job_file, run_cells
from trainio.replay.calibration.measurement import (
    LARGE,
    SMALL,
    Budget,
    CalibrationError,
    Cell,
    Cells,
    MiB,
    Progress,
    single_stream_cells,
)
from trainio.replay.calibration.place import CALIBRATION_PREFIX, Placement, calibration_files
from trainio.replay.storage import ceph
from trainio.replay.storage.target import Target

RADOS_OBJECTS = 8
RADOS_BYTES = 64 * MiB
"""Total size of the calibration objects in a pool: 8 objects of 8 MiB (under the OSD's object limit)."""


def calibrate_rados(
    target: Target, budget: Budget, say: Progress, scratch: Path, placement: Placement, pause_s: float
) -> Cells:
    """Random reads of every size from one stream (the fit's), 4 KiB and 4 MiB reads at queue depth
    from one and four jobs (the best request rate and aggregate bandwidth)."""
    conf = ceph.ceph_conf()
    ceph.check_pool(target.pool, conf)
    store = ceph.RadosStore(target.pool, CALIBRATION_PREFIX, scratch, conf)
    sizes = {str(i): RADOS_BYTES // RADOS_OBJECTS for i in range(RADOS_OBJECTS)}
    say(f"{RADOS_OBJECTS} objects of {format_size(RADOS_BYTES // RADOS_OBJECTS)} in pool {target.pool}")
    with calibration_files(store, sizes, placement, say):
        objects = {store.object_name(n): s for n, s in sizes.items()}
        return _measure(target, budget, say, scratch, conf, objects, pause_s)


def _measure(
    target: Target, budget: Budget, say: Progress, scratch: Path, conf: str, objects: dict[str, int], pause_s: float
) -> Cells:
    """The fio cells on ``objects`` (name -> bytes), the single streams ``pause_s`` idle after each request,
    then a stat of every one."""
    # ioengine first: fio knows the engine's options (pool=, conf=, ...) only once the engine is set.
    options = [
        "ioengine=rados",
        f"pool={target.pool}",
        "clientname=admin",
        f"conf={conf}",
        "filename=" + ":".join(objects),
        f"size={RADOS_BYTES}",
        "touch_objects=0",
    ]
    cells = [
        *single_stream_cells("randread", pause_s),
        Cell("randread", SMALL, 1, 16),
        Cell("randread", SMALL, 4, 16),
        Cell("randread", LARGE, 1, 4),
        Cell("randread", LARGE, 4, 4),
    ]
    seconds = budget.per_cell(len(cells), FIO_PER_CELL_S["rados"])
    say(f"fio rados: {len(cells)} measurements of {seconds:.1f} s on pool {target.pool}")
    job = job_file(options, cells, seconds, lambda cell: "rados", scratch)
    jobs, version = run_cells(job, scratch, len(cells) * (seconds + 15) + 30, target.text)
    checked = ceph.rados_objects(target.pool, objects, scratch, conf)
    if not checked.complete:
        raise CalibrationError(
            f"{checked.problem('after the reads')}; fio's rados engine does not check its I/O, so its figures "
            "cannot be trusted"
        )
    return Cells(fio_measurements(jobs, cells, target.text, scratch), version)
