"""A work folder of trainio's own: where a replay keeps its iologs, job files, plans and reports.

A folder named by the user is taken only when it is new, empty or marked as a previous trainio work
folder (``.trainio-workdir``); any other is refused with
:class:`~trainio.replay.storage.layout.ForeignDataError` unless ``overwrite``. Without a name a fresh
temporary folder is made, and removed again when the work fails (:func:`work_folder`). Files are
written by :func:`~trainio.replay.storage.directory.replace_file`, so a link planted in the folder is
replaced, never written through.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trainio.replay.storage.directory import replace_file
from trainio.replay.storage.layout import ForeignDataError

MARKER = ".trainio-workdir"
MARKER_TEXT = b"a work folder of trainio (replay): its files may be replaced by the next run\n"


def claim_workdir(path: Path, *, overwrite: bool = False) -> Path:
    """``path`` (absolute), made or checked as described in the module docstring."""
    try:
        path = Path(path).expanduser().absolute()
        unusable = path.is_symlink() or (path.exists() and not path.is_dir())
    except (OSError, RuntimeError) as exc:
        raise ForeignDataError(f"--workdir {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    if unusable:
        raise ForeignDataError(f"--workdir {path} is not a directory")
    marker = path / MARKER
    if path.is_dir() and not (marker.is_file() and not marker.is_symlink()):
        with os.scandir(path) as entries:
            others = sorted(entry.name for entry in entries)[:3]
        if others and not overwrite:
            raise ForeignDataError(
                f"--workdir {path} holds files trainio did not write ({', '.join(others)}): "
                "name a new or empty folder, or pass --overwrite to let trainio replace its files there"
            )
    path.mkdir(parents=True, exist_ok=True)
    replace_file(marker, MARKER_TEXT)
    return path


def subfolder(workdir: Path, name: str) -> Path:
    """``workdir/name``, made if missing; a link there is refused, never followed."""
    folder = workdir / name
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ForeignDataError(f"{folder} is not a folder trainio made (a link or a file); it is left alone")
    folder.mkdir(exist_ok=True)
    return folder


@contextlib.contextmanager
def work_folder(path: Path | None, *, prefix: str, overwrite: bool = False) -> Iterator[Path]:
    """The work folder: ``path`` claimed, or a new temporary one (``prefix``) that is removed again
    when the block raises, so that a failed run leaves nothing behind."""
    if path is not None:
        yield claim_workdir(path, overwrite=overwrite)
        return
    temp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield claim_workdir(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
