"""The LD_PRELOAD interposer (``_interpose.c``): where its library is and how a process reaches it.

Stdlib only (it runs in every traced process). The interposer writes its records into its own
spool file; Python asks it only for the spool's tag and to stop on failure.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os

OP_NAMES: tuple[str, ...] = ("?", "open", "read", "pread", "readv", "preadv", "fread", "close", "stat", "fstat")
OP_NAMES += ("mmap", "fopen", "fclose", "fdpath", "munmap")
KIND_NAMES = ("unknown", "file", "ipc", "other")
ABI_VERSION = 2


class InterposerError(RuntimeError):
    """The interposer library is missing, cannot be loaded, or is not the one this trainio expects."""


def library_path() -> str:
    """The built interposer next to this module (built by ``pip install .``)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = os.path.join(here, f"_interpose{suffix}")
        if os.path.exists(candidate):
            return candidate
    raise InterposerError(f"interposer library not built in {here} (no C compiler at install time?)")


class Interposer:
    """The copy of the library already loaded in this process (through LD_PRELOAD); never loads one."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or library_path()
        try:
            self.lib = ctypes.CDLL(self.path, mode=os.RTLD_NOLOAD)
        except OSError as exc:
            raise InterposerError(f"not preloaded in this process ({self.path}): C-level reads are not traced") from exc
        if self.lib.trainio_version() != ABI_VERSION:
            raise InterposerError(f"{self.path} has ABI {self.lib.trainio_version()}, expected {ABI_VERSION}")

    def tag(self) -> str | None:
        """``PID-START`` of this process's C spool, or None when the interposer is not capturing."""
        buf = ctypes.create_string_buffer(64)
        return buf.value.decode() if self.lib.trainio_tag(buf, ctypes.c_size_t(64)) else None

    def set_enabled(self, on: bool) -> None:
        self.lib.trainio_set_enabled(int(on))
