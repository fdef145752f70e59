"""``replay calibrate``: measure a real storage target, fit the profile numbers and write the profile
``replay what-if --profile`` loads.

Each kind of target has its cells (:mod:`.rgw`, :mod:`.rados`, :mod:`.cephfs`, :mod:`.directory`), all
within one time budget; :mod:`.fit` turns them into numbers and :mod:`.profile` into the file. The
matrix, the fit and the CPU accounting are described in docs/calibration.md.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from trainio.models.backend import BackendProfile, load_profile
from trainio.models.units import duration_text, rate_text
from trainio.models.workload import from_trace
from trainio.replay.calibration.cephfs import calibrate_cephfs
from trainio.replay.calibration.directory import calibrate_directory
from trainio.replay.calibration.fit import Fitted, fit_measurements
from trainio.replay.calibration.measurement import MAX_BUDGET_S, MIN_BUDGET_S, Budget, Cells, Measurement, Progress
from trainio.replay.calibration.place import DEFAULT_PLACEMENT, Placement
from trainio.replay.calibration.profile import profile_toml
from trainio.replay.calibration.rados import calibrate_rados
from trainio.replay.calibration.rgw import calibrate_rgw
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.target import CEPHFS, DIRECTORY, RADOS, RGW, Target, TargetError, expected, parse_target
from trainio.tracefile.reader import open_trace

CELLS: dict[str, Callable[[Target, Budget, Progress, Path, Placement, float], Cells]] = {
    RGW: calibrate_rgw,
    RADOS: calibrate_rados,
    CEPHFS: calibrate_cephfs,
    DIRECTORY: calibrate_directory,
}
"""The target kinds ``replay calibrate`` measures, and how."""
MAX_PAUSE_S = 1.0
"""A pause this long between requests would make the calibration all idling."""


def writable(out: Path) -> Path:
    """``out``, checked before anything is measured: not a folder, its folder one or makeable;
    :class:`ValueError` naming it else."""
    try:
        if out.is_dir():
            raise ValueError(f"--out {out} is a directory: name the profile file to write")
        folder = out.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ValueError(f"--out {out}: {folder} is not a folder this user can write in")
    except OSError as exc:
        raise ValueError(f"--out {out}: {exc.strerror or exc}") from exc
    return out


def target_of(text: str) -> Target:
    """``text`` parsed as a target ``replay calibrate`` takes: a directory must exist."""
    target = parse_target(text, tuple(CELLS), command="replay calibrate")
    if target.kind == DIRECTORY and target.directory_kind() != "directory":
        raise TargetError(f"target(={text!r}) is not a directory, nor {expected(set(CELLS) - {DIRECTORY})}")
    return target


@dataclass(frozen=True)
class Calibration:
    """What ``calibrate`` measured, what it fitted and the profile it wrote."""

    target: str
    kind: str
    measurements: tuple[Measurement, ...]
    fitted: Fitted
    profile_path: Path
    profile: BackendProfile
    elapsed_s: float
    tool: str
    """``fio-3.33``, ``boto3 1.x`` or ``libcephfs 16.2.15``."""
    notes: tuple[str, ...] = ()
    colocated: bool = False
    """Whether the storage daemons were taken to share this machine's cores (``colocated_cpu``)."""
    pause_s: float = 0.0
    """Idle time after each request of the paced cells (``request_gap_s`` of a trace, or 0)."""

    @property
    def residuals(self) -> dict[str, float]:
        return self.fitted.residuals


def calibrate(
    target: str,
    out: Path,
    *,
    budget_s: float = 60,
    colocated: bool = False,
    placement: Placement = DEFAULT_PLACEMENT,
    pause_s: float = 0.0,
    progress: Progress | None = None,
) -> Calibration:
    """Measure ``target``, fit the profile numbers and write the profile to ``out`` (TOML).

    The calibration writes its files only in a layout root of its own at the target and removes them
    afterwards unless ``placement.keep`` (:mod:`.place`).

    ``budget_s`` bounds the measurements (set-up included; a measurement runs at least
    ``MIN_CELL_S``). ``colocated``: the storage daemons run on this machine and share its cores with
    training (hyperconverged, or a dev cluster): their CPU per request, the host's busy CPU less the
    client's, is written as ``colocated_cpu`` (else "0 s", and their time stays inside the latency).
    ``pause_s``: idle time after each request of the single streams and of the cells the CPU crowding
    is fitted from, as a loader leaves between its requests (:func:`request_gap_s` of its trace).
    Raises :class:`~trainio.replay.storage.target.TargetError` for a target it does not take,
    :class:`~trainio.replay.storage.layout.ForeignDataError` when that root holds data trainio did not
    write, :class:`~trainio.replay.storage.errors.ReplayError` (:class:`CalibrationError`) when a
    measurement fails or cannot be trusted.
    """
    if not MIN_BUDGET_S <= budget_s <= MAX_BUDGET_S:
        raise ValueError(f"budget_s(={budget_s}) must be {MIN_BUDGET_S:g} to {MAX_BUDGET_S:g}")
    if not (0 <= pause_s < MAX_PAUSE_S):
        raise ValueError(f"pause_s(={pause_s}) must be >= 0 and < {MAX_PAUSE_S} s")
    say = progress or (lambda message: None)
    parsed = target_of(target)
    out = writable(Path(out))
    budget = Budget(budget_s)
    with tempfile.TemporaryDirectory(prefix="trainio-calibrate-") as scratch:
        cells = CELLS[parsed.kind](parsed, budget, say, Path(scratch), placement, pause_s)
    cores = len(os.sched_getaffinity(0))
    fitted = fit_measurements(cells.measurements, colocated=colocated, cores=cores)
    notes = [*cells.notes, *_cpu_notes(fitted, colocated)]
    elapsed = time.monotonic() - budget.start
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = (
        f"measured by `replay calibrate` against {parsed.text} on {now} from {os.uname().nodename}, "
        f"{cells.tool}, {len(cells.measurements)} measurements in {elapsed:.0f} s"
    )
    text = profile_toml(out.stem, parsed, fitted, cells.measurements, source=source, fstype=cells.fstype, cores=cores)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"cannot write the profile {out}: {exc.strerror or exc}") from exc
    return Calibration(
        target=parsed.text,
        kind=parsed.kind,
        measurements=tuple(cells.measurements),
        fitted=fitted,
        profile_path=out,
        profile=load_profile(out),
        elapsed_s=elapsed,
        tool=cells.tool,
        notes=tuple(notes),
        colocated=colocated,
        pause_s=pause_s,
    )


def request_gap_s(trace_dir: str | Path) -> float:
    """The time a captured loader spends between its storage requests: each sample's wall time outside
    I/O (decode, transforms, waiting for a core) over its requests, on average. A loader's client and
    the storage servers idle that long between requests; back to back they stay hot and each request
    costs markedly less CPU (docs/calibration.md), so the paced cells pause this long."""
    workload = from_trace(open_trace(trace_dir))
    wall = workload.sample_wall_s if workload.sample_wall_s is not None else workload.sample_cpu_s
    requests = max(1.0, workload.files_per_sample, workload.reads_per_sample)
    return float(np.mean(wall)) / requests


def _cpu_notes(fitted: Fitted, colocated: bool) -> list[str]:
    notes = []
    if fitted.cpu_bound:
        assert fitted.iops_busy is not None
        notes.append(
            f"the best request rate, {rate_text(fitted.iops)} ({fitted.iops_from}), was measured with this host's "
            f"cores {100 * fitted.iops_busy:.0f}% busy: it was this host's CPU limit; the profile's iops is "
            "unlimited and the model charges request_cpu"
            + (" and colocated_cpu" if colocated else " (calibrate with --colocated if the storage daemons run here)")
        )
    if fitted.wait_latency_s == 0 and fitted.latency_s > 0:
        notes.append(
            f"the fitted latency, {duration_text(fitted.latency_s)}, is all CPU on this machine: the profile's "
            "latency is 0"
        )
    if colocated:
        notes.append("colocated_cpu counts every process on this machine but the client: calibrate on a quiet machine")
    return notes
