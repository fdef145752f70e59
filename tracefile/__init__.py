"""The trace directory: its format, its errors and its one reader.

``tracer`` writes traces; ``models`` and ``replay`` read them only through this package.
"""

from trainio.tracefile.errors import TraceError, TraceFormatError, TraceVersionError
from trainio.tracefile.format import FORMAT_NAME, FORMAT_VERSION
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
