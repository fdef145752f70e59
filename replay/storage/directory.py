"""A directory as storage: its room, its file system, and a layout root in it (:class:`DirectoryStore`)."""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from trainio.models.units import bytes_text
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import (
    BLOCKED,
    FILE,
    LINK,
    MANIFEST_NAME,
    MISSING,
    SHOWN,
    ForeignDataError,
    Found,
    Inspection,
    LayoutManifest,
    LayoutPlan,
    read_manifest,
)
from trainio.replay.storage.seeded import seeded_parts

MANIFEST_MAX_BYTES = 64 * 2**20

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


def check_room(root: Path, to_write: int) -> None:
    """:class:`ReplayError` when the file system holding ``root`` has less than ``to_write`` bytes free."""
    free = shutil.disk_usage(_existing_ancestor(root)).free
    if to_write > free:
        raise ReplayError(
            f"not enough space under {root}: the data set needs {to_write} bytes ({bytes_text(to_write)}) more, "
            f"{free} bytes ({bytes_text(free)}) are free"
        )


def replace_file(path: Path, data: bytes) -> None:
    """Write ``path`` whole, replacing what is there: a new file renamed over it, so that a symbolic
    link at ``path`` is replaced, never written through."""
    temp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


_NO_FOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class DirectoryStore:
    """A layout root that is a folder (:mod:`trainio.replay.storage.layout`): every name below it is
    reached through folder handles opened without following links, so a link planted anywhere below
    the root is refused, never followed."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root).expanduser().absolute()
        self.root = str(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise ForeignDataError(f"{self.path} is not a directory")

    def _manifest(self) -> LayoutManifest | None:
        path = self.path / MANIFEST_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ForeignDataError(f"{path} is not trainio's layout manifest ({exc.strerror}); left alone") from exc
        with os.fdopen(fd, "rb") as f:
            return read_manifest(f.read(MANIFEST_MAX_BYTES), str(path))

    def inspect(self, names: Iterable[str]) -> Inspection:
        if not self.path.is_dir():
            return Inspection(self.root, None, (), {name: Found(MISSING) for name in names})
        manifest = self._manifest()
        with os.scandir(self.path) as entries:
            others = tuple(sorted(e.name for e in entries if e.name != MANIFEST_NAME))[: SHOWN + 1]
        folders: dict[str, Found] = {"": Found(FILE)}  # a folder's rel path -> FILE (a real folder) or what blocks it
        found = {}
        for name in names:
            found[name] = self._found(name, folders)
        return Inspection(self.root, manifest, others, found)

    def _found(self, name: str, folders: dict[str, Found]) -> Found:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in folders:
                parent = folders["/".join(parts[: depth - 1])]
                folders[folder] = parent if parent.kind != FILE else _folder_state(self.path / folder, folder)
            if folders[folder].kind != FILE:
                return folders[folder]
        try:
            st = os.lstat(self.path / name)
        except FileNotFoundError:
            return Found(MISSING)
        if stat.S_ISLNK(st.st_mode):
            return Found(LINK)
        if not stat.S_ISREG(st.st_mode):
            return Found(BLOCKED, why="a folder (or other non-file) where the layout puts a file")
        return Found(FILE, st.st_size)

    def write(self, plan: LayoutPlan, sizes: dict[str, int], seed: int) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            replace_file(self.path / MANIFEST_NAME, plan.manifest.text().encode())
            with _Folders(self.path) as folders:
                for name in plan.write:
                    folder, leaf = folders.open(name)
                    try:
                        os.unlink(leaf, dir_fd=folder)
                    except FileNotFoundError:
                        pass
                    fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
                    with os.fdopen(fd, "wb") as f:
                        for _, part in seeded_parts(name, sizes[name], seed):
                            f.write(part)
            replace_file(self.path / MANIFEST_NAME, plan.done.text().encode())
        except OSError as exc:
            where = exc.filename or self.root
            raise ReplayError(f"cannot write the layout at {self.root}: {where}: {exc.strerror}") from exc

    def remove(self, names: Iterable[str]) -> int:
        removed = 0
        folders: dict[str, Found] = {"": Found(FILE)}
        emptied: set[Path] = set()
        for name in names:
            found = self._found(name, folders)
            if found.kind == FILE:
                (self.path / name).unlink()
                removed += found.size
            emptied.update(p for p in Path(name).parents if p != Path("."))
        (self.path / MANIFEST_NAME).unlink(missing_ok=True)
        for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: something else is in it
                os.rmdir(self.path / folder)
        with contextlib.suppress(OSError):
            os.rmdir(self.path)
        return removed


class FileReader:
    """Reads a layout's files (names relative to its root) as a loader does: open, pread, close.
    A read of a file that is not open opens and closes it around the read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fds: dict[str, int] = {}

    def open(self, name: str) -> None:
        if name not in self.fds:
            self.fds[name] = os.open(self.root / name, os.O_RDONLY)

    def read(self, name: str, offset: int, length: int) -> int:
        """Bytes the read returned."""
        fd = self.fds.get(name)
        if fd is not None:
            return len(os.pread(fd, length, offset))
        fd = os.open(self.root / name, os.O_RDONLY)
        try:
            return len(os.pread(fd, length, offset))
        finally:
            os.close(fd)

    def close(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def shutdown(self) -> None:
        for name in list(self.fds):
            self.close(name)


def _folder_state(path: Path, rel: str) -> Found:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Found(MISSING)
    if stat.S_ISLNK(st.st_mode):
        return Found(BLOCKED, why=f"a symbolic link on the way ({rel}); trainio never follows one")
    if not stat.S_ISDIR(st.st_mode):
        return Found(BLOCKED, why=f"a file where the layout needs a folder ({rel})")
    return Found(FILE)


class _Folders:
    """Open folder handles below a root, made on demand without following links."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fds: dict[str, int] = {}

    def __enter__(self) -> _Folders:
        self.fds[""] = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds.values():
            os.close(fd)

    def open(self, name: str) -> tuple[int, str]:
        """(handle of the folder holding ``name``, its last part), creating folders as needed."""
        parts = name.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder not in self.fds:
                parent = self.fds["/".join(parts[: depth - 1])]
                try:
                    os.mkdir(parts[depth - 1], 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
                self.fds[folder] = os.open(parts[depth - 1], _NO_FOLLOW_DIR, dir_fd=parent)
        return self.fds["/".join(parts[:-1])], parts[-1]


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
