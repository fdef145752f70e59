"""Where a calibration writes: a layout root of its own (a sub-folder, a key or object-name prefix, a
CephFS folder), marked by trainio's layout manifest, said aloud, and removed afterwards unless kept.

A calibration never writes where other data lies (:mod:`trainio.replay.storage.layout`): a layout
root that holds files trainio did not write is refused unless ``overwrite``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from trainio.models.units import bytes_text
from trainio.replay.calibration.measurement import Progress
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import ForeignDataError, Layout, LayoutStore, ensure_layout
from trainio.replay.storage.s3 import DEFAULT_TIMEOUTS, Timeouts

CALIBRATION_PREFIX = "trainio-calibrate/"
"""The key prefix (RGW) and object-name prefix (RADOS) of the calibration files."""
CALIBRATION_FOLDER = "trainio-calibrate"
"""The sub-folder of a directory target that holds the calibration files."""


@dataclass(frozen=True)
class Placement:
    """What becomes of a calibration's files and how long it waits for an S3 endpoint."""

    keep: bool = False
    """Leave the calibration files in place for the next run (else they are removed at the end)."""
    overwrite: bool = False
    """Let trainio write its files where other data lies."""
    timeouts: Timeouts = DEFAULT_TIMEOUTS


DEFAULT_PLACEMENT = Placement()


@contextlib.contextmanager
def calibration_files(
    store: LayoutStore, sizes: dict[str, int], placement: Placement, say: Progress
) -> Iterator[Layout]:
    """The calibration files in place under ``store`` for the block; afterwards removed (unless
    ``placement.keep``), whether the block succeeded or not."""
    say(f"calibration files at {store.root} ({'kept' if placement.keep else 'removed'} afterwards)")
    try:
        layout = ensure_layout(store, sizes, purpose="calibrate", overwrite=placement.overwrite, say=say)
    except ForeignDataError:
        raise
    except BaseException:
        _clean(store, sizes, placement, say)  # a write that failed half-way: its files are trainio's
        raise
    try:
        yield layout
    finally:
        _clean(store, sizes, placement, say)


def _clean(store: LayoutStore, sizes: dict[str, int], placement: Placement, say: Progress) -> None:
    if placement.keep:
        say(f"kept the calibration files at {store.root} (--keep)")
        return
    try:
        removed = store.remove(sizes)
    except ReplayError as exc:  # say so, and let the calibration's own error (if any) be the one raised
        say(f"could not remove the calibration files at {store.root}: {exc}")
        return
    say(f"removed the calibration files ({bytes_text(removed)}) from {store.root}")
