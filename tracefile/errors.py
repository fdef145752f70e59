"""Errors raised when a trace cannot be read; each carries the offending path."""

from __future__ import annotations

from pathlib import Path


class TraceError(Exception):
    """Base class: a trace directory or file that cannot be used."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read trace {self.path}: {reason}")


class TraceFormatError(TraceError):
    """The file is not a trainio trace file, or it is truncated or corrupt."""


class TraceVersionError(TraceError):
    """The file was written by a newer, incompatible major version of the format."""
