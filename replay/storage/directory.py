"""A directory as storage: its room, its file system, and files laid out in it."""

from __future__ import annotations

import mmap
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainio.models.units import bytes_text
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.seeded import write_seeded_file

NETWORK_FILE_SYSTEMS = {
    "nfs",
    "nfs4",
    "ceph",
    "fuse.ceph-fuse",
    "cifs",
    "smb3",
    "lustre",
    "glusterfs",
    "beegfs",
    "gpfs",
}
"""File system types whose files every node shares."""


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def room_needed(sizes: dict[str, int], root: Path) -> int:
    """Bytes the files of ``sizes`` (path relative to ``root`` -> bytes) still need under ``root``
    (0: all in place). Raises :class:`ReplayError` when the file system has less room than that, or
    when files must be written where a file larger than wanted (data trainio did not lay out) lies."""
    to_write = 0
    foreign = []
    for rel, size in sizes.items():
        path = root / rel
        have = path.stat().st_size if path.is_file() else None
        if have is None or have < size:
            to_write += size - (have or 0)
        elif have > size:
            foreign.append(f"{path} ({have} bytes, the trace reads {size})")
    if to_write and foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ReplayError(
            f"{root} holds files trainio did not lay out, larger than the trace reads: {foreign[0]}{more}; "
            "they will not be overwritten: choose an empty target directory"
        )
    if to_write:
        free = shutil.disk_usage(_existing_ancestor(root)).free
        if to_write > free:
            raise ReplayError(
                f"not enough space under {root}: the data set needs {to_write} bytes ({bytes_text(to_write)}) more, "
                f"{free} bytes ({bytes_text(free)}) are free"
            )
    return to_write


@dataclass(frozen=True)
class Layout:
    """What :func:`layout_files` found and wrote."""

    files: int
    bytes: int
    reused_files: int
    """Files that already existed with the right size and were left as they were."""


def layout_files(sizes: dict[str, int], root: Path, *, seed: int = 0) -> Layout:
    """Create every file of ``sizes`` (path relative to ``root`` -> bytes) with seeded random bytes; a
    file that already has the right size is kept, so laying out again is cheap."""
    reused = 0
    for rel in sorted(sizes):
        dest = root / rel
        if dest.is_file() and dest.stat().st_size == sizes[rel]:
            reused += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_seeded_file(dest, rel, sizes[rel], seed)
    return Layout(len(sizes), sum(sizes.values()), reused)


def fs_type(path: Path) -> str:
    """The file system type of the mount holding ``path`` (from /proc/self/mountinfo; '' if unknown)."""
    best, fstype = "", ""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].replace("\\040", " ")
        if (str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, fstype = mount, right.split()[0]
    return fstype


def direct_io_works(path: Path) -> bool:
    """Whether ``path`` can be read with O_DIRECT (tmpfs and some FUSE file systems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return False
    try:
        buffer = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
        return os.readv(fd, [buffer]) == 4096
    except OSError:
        return False
    finally:
        os.close(fd)
