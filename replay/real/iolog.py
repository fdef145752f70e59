"""fio iologs (version 3) and job files rendered from a replay schedule, and the data set they read.

``write_iologs`` writes one iolog per traced process that read data and a job file, ``replay.fio``;
``layout_dataset`` creates the files those iologs read under the target. Run ``fio --readonly
--output-format=json --output=OUT.json replay.fio``. ``replay fio`` renders its jobs (one per process
and node) with the same :func:`write_fio_jobs`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainio.replay.real.schedule import Job, Schedule, build_schedule
from trainio.replay.storage.directory import DirectoryStore, replace_file
from trainio.replay.storage.layout import ensure_layout
from trainio.replay.storage.workdir import subfolder
from trainio.tracefile import Trace

IOLOG_HEADER = "fio version 3 iolog"
JOB_FILE = "replay.fio"
RESULT_FILE = "result.json"
FIO_MAX_NAME = 256
"""fio reads iolog file names with sscanf("%256s"): longer names are cut, whitespace splits them."""
FIO_MAX_LENGTH = 2**32 - 1
"""... and lengths with "%u"."""
RBD_FILE = "rbd"
"""The one file of an RBD job: fio's rbd engine reads the image named in the job file."""


class IologError(ValueError):
    """A schedule fio's iolog cannot express; the message carries the offending value."""


def iolog_name(name: str) -> str:
    """``name`` as an iolog names a file; :class:`IologError` when fio cannot parse it."""
    if any(ch.isspace() for ch in name):
        raise IologError(f"fio's iolog cannot name {name!r}: it contains whitespace")
    if len(name) > FIO_MAX_NAME:
        raise IologError(
            f"fio's iolog cannot name {name!r}: {len(name)} characters > {FIO_MAX_NAME}; choose a shorter target"
        )
    return name


def mapped(schedule: Schedule, name_of: Callable[[str], str]) -> dict[str, str]:
    """Each file of the schedule (relative path) -> the name fio reads it by, checked for fio."""
    return {rel: iolog_name(name_of(rel)) for rel in schedule.sizes}


def pace_text(no_stall: bool, time_scale: float) -> str:
    return "as fast as possible" if no_stall else f"at the traced pace x {time_scale:g}"


def iolog_lines(job: Job, names: dict[str, str], rbd_offsets: dict[str, int] | None = None) -> list[str]:
    """One job's iolog: ``names`` maps each relative path to the file fio reads; with ``rbd_offsets``
    (relative path -> offset in the image) every read goes to the image at its file's place, and the
    files' opens and closes, which have nothing to act on, are dropped."""
    for op in job.ops:
        if op.length > FIO_MAX_LENGTH:
            raise IologError(
                f"read of {op.length} bytes on {op.path} exceeds fio's iolog length limit {FIO_MAX_LENGTH}"
            )
    if rbd_offsets is not None:
        lines = [IOLOG_HEADER, f"1 {RBD_FILE} add", f"{job.ops[0].stamp_us} {RBD_FILE} open"]
        lines += [
            f"{op.stamp_us} {RBD_FILE} read {rbd_offsets[op.path] + op.offset} {op.length}"
            for op in job.ops
            if op.action == "read"
        ]
        return [*lines, f"{job.ops[-1].stamp_us} {RBD_FILE} close"]
    lines = [IOLOG_HEADER] + [f"1 {name} add" for name in dict.fromkeys(names[op.path] for op in job.ops)]
    holders: dict[str, int] = {}
    for op in job.ops:
        name = names[op.path]
        if op.action == "open":
            holders[name] = holders.get(name, 0) + 1
            if holders[name] > 1:  # a node's share can meet a file it still holds open: fio opens it once
                continue
        elif op.action == "close":
            holders[name] = holders.get(name, 0) - 1
            if holders[name] > 0:
                continue
        line = f"{op.stamp_us} {name} {op.action}"
        lines.append(f"{line} {op.offset} {op.length}" if op.action == "read" else line)
    return lines


def write_fio_jobs(
    schedule: Schedule,
    iolog_dir: Path,
    job_file: Path,
    *,
    options: list[str],
    comment: list[str],
    no_stall: bool,
    names: dict[str, str] | None = None,
    rbd_offsets: dict[str, int] | None = None,
) -> list[Path]:
    """Write each job's iolog into ``iolog_dir``, then ``job_file``: ``comment`` lines and the run
    command, ``[global]`` with ``options``, one section per job. Returns the iologs, then the job file."""
    iolog_dir = subfolder(iolog_dir.parent, iolog_dir.name)
    written, sections = [], []
    for job in schedule.jobs:
        path = iolog_dir / f"{job.name}.iolog"
        replace_file(path, ("\n".join(iolog_lines(job, names or {}, rbd_offsets)) + "\n").encode())
        written.append(path)
        section = [f"[{job.name}]", f"read_iolog={path}"]
        if not no_stall and job.delay_us > 0:
            section.append(f"startdelay={job.delay_us}us")
        sections.append("\n".join(section))
    header = [
        *(f"; {line}" for line in comment),
        f"; run: fio --readonly --output-format=json --output={RESULT_FILE} {job_file}",
        "[global]",
        *options,
        *(["replay_no_stall=1"] if no_stall else []),
    ]
    replace_file(job_file, ("\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n").encode())
    return [*written, job_file]


def write_iologs(
    trace: Trace | str | os.PathLike,
    out_dir: str | os.PathLike,
    target: str | os.PathLike,
    *,
    no_stall: bool = False,
    time_scale: float = 1.0,
) -> list[Path]:
    """Write ``pid-PID.iolog`` per process that read data, then the job file ``replay.fio``.

    ``target`` is where ``layout_dataset`` puts (or put) the data set; the iologs name files
    there. ``time_scale`` multiplies the traced times (2.0 replays at half speed, 0.5 at double);
    ``no_stall`` replays as fast as possible, in order. Returns the iologs in pid order, then the
    job file (always last).
    """
    schedule = build_schedule(trace, time_scale=time_scale)
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    target = Path(target).absolute()
    names = mapped(schedule, lambda rel: str(target / rel))
    comment = [
        f"fio job file written by trainio replay/real/iolog.py from {schedule.trace_path.absolute()}",
        f"replays the file reads of {len(schedule.jobs)} processes against {target} "
        f"(traced data root {schedule.data_root}),",
        f"{pace_text(no_stall, time_scale)}; lay the data set out first.",
    ]
    options = ["ioengine=psync", "iodepth=1"]
    return write_fio_jobs(
        schedule, out, out / JOB_FILE, options=options, comment=comment, no_stall=no_stall, names=names
    )


@dataclass(frozen=True)
class LayoutSummary:
    """What ``layout_dataset`` made: files and bytes under ``target`` for the traced ``data_root``."""

    target: Path
    data_root: str
    files: int
    bytes: int
    reused_files: int = 0
    """Files that were in place (trainio's, with the right size) and were left as they were."""


def layout_dataset(
    trace: Trace | str | os.PathLike | Schedule, target: str | os.PathLike, *, seed: int = 0, overwrite: bool = False
) -> LayoutSummary:
    """Create every file the trace read under ``target``, sized to the furthest byte read, filled with
    seeded random bytes (reproducible from the seed and the relative path), in a layout root of
    trainio's own (:mod:`trainio.replay.storage.layout`): files trainio wrote with the right size are
    kept, so laying out again is cheap; a target holding other data is refused unless ``overwrite``."""
    schedule = trace if isinstance(trace, Schedule) else build_schedule(trace)
    store = DirectoryStore(Path(target))
    layout = ensure_layout(store, schedule.sizes, purpose="replay", seed=seed, overwrite=overwrite)
    return LayoutSummary(store.path, schedule.data_root, layout.files, layout.bytes, layout.files - layout.written)
