"""ctypes binding to the LD_PRELOAD interposer (``_interpose.c``) and its record layout."""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path

import numpy as np

# Must match ``struct trainio_rec`` in _interpose.c (64 bytes).
RECORD_DTYPE = np.dtype(
    [
        ("start_ns", "<i8"),
        ("dur_ns", "<i8"),
        ("offset", "<i8"),
        ("requested", "<i8"),
        ("returned", "<i8"),
        ("tid", "<i4"),
        ("fd", "<i4"),
        ("path_off", "<u4"),
        ("path_len", "<u4"),
        ("op", "u1"),
        ("kind", "u1"),
        ("pad", "V2"),
        ("file_id", "<u4"),
    ]
)
OP_NAMES = np.array(
    [
        "?",
        "open",
        "read",
        "pread",
        "readv",
        "preadv",
        "fread",
        "close",
        "stat",
        "fstat",
        "mmap",
        "fopen",
        "fclose",
        "fdpath",
    ],
    dtype=object,
)
KIND_NAMES = np.array(["unknown", "file", "ipc", "other"], dtype=object)
DRAIN_RECORDS = 65536
DRAIN_ARENA = 8 << 20


class InterposerError(RuntimeError):
    """The interposer library is missing or cannot be loaded."""


def library_path() -> Path:
    """The built interposer next to this module (built by ``pip install .``)."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_interpose{suffix}"
        if candidate.exists():
            return candidate
    raise InterposerError(f"interposer library not built in {here} (no C compiler at install time?)")


class Interposer:
    """The loaded library; ``drain()`` returns the records buffered since the last call."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or library_path()
        try:
            self.lib = ctypes.CDLL(str(self.path))
        except OSError as exc:
            raise InterposerError(f"cannot load {self.path}: {exc}") from exc
        self.lib.trainio_drain.restype = ctypes.c_size_t
        self.lib.trainio_drain.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        self.lib.trainio_dropped.restype = ctypes.c_uint64
        self.lib.trainio_start_rchar.restype = ctypes.c_uint64
        self._records = np.empty(DRAIN_RECORDS, dtype=RECORD_DTYPE)
        self._arena = ctypes.create_string_buffer(DRAIN_ARENA)

    def drain(self) -> list[tuple[np.ndarray, bytes]]:
        """Chunks of (records, path arena); record paths are offsets into their chunk's arena."""
        chunks = []
        while True:
            n = self.lib.trainio_drain(self._records.ctypes.data, DRAIN_RECORDS, self._arena, DRAIN_ARENA)
            if n == 0:
                return chunks
            records = self._records[:n].copy()
            end = int((records["path_off"] + records["path_len"]).max())
            chunks.append((records, self._arena.raw[:end]))

    def dropped(self) -> int:
        return int(self.lib.trainio_dropped())

    def start_rchar(self) -> int:
        """rchar when this program image started (non-zero after an exec, e.g. through a shell shim)."""
        return int(self.lib.trainio_start_rchar())
