"""The trace directory: its format, its errors and its one reader.

``tracer`` writes traces; ``models`` and ``replay`` read them only through this package. The reader
(and with it pyarrow) loads on first use, so that the capture side can name the format's files and
errors without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainio.tracefile.errors import TraceError, TraceFormatError, TraceVersionError
from trainio.tracefile.layout import FORMAT_NAME, FORMAT_VERSION

if TYPE_CHECKING:
    from trainio.tracefile.reader import Trace, open_trace

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Trace",
    "TraceError",
    "TraceFormatError",
    "TraceVersionError",
    "open_trace",
]


def __getattr__(name: str) -> Any:
    if name in ("Trace", "open_trace"):
        from trainio.tracefile import reader

        return getattr(reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
