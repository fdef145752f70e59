"""What the ``tracer`` commands report as one line instead of a traceback (stdlib only: the CLI
loads it before anything heavy)."""

from __future__ import annotations


class CaptureError(Exception):
    """The command could not be started at all (not found, not executable)."""


class FinalizeError(Exception):
    """The spool cannot be finalized now; it is kept as it was."""


class LiveProcessesError(FinalizeError):
    """Traced processes are still writing to the spool."""
