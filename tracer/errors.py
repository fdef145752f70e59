"""What the ``tracer`` commands report as one line instead of a traceback (stdlib only: the CLI
loads it before anything heavy)."""

from __future__ import annotations

import errno


class CaptureError(Exception):
    """A capture that cannot start: no command, an ``--out`` that already holds something."""


class CommandError(Exception):
    """The command itself cannot be run; ``exit_code`` is a shell's: 127 not found, 126 not executable."""

    def __init__(self, name: str, exc: OSError) -> None:
        missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
        self.exit_code = 127 if missing else 126
        reason = "command not found" if missing and "/" not in name else exc.strerror or str(exc)
        super().__init__(f"cannot run {name!r}: {reason}")


class FinalizeError(Exception):
    """The spool cannot be finalized now; it is kept as it was."""


class LiveProcessesError(FinalizeError):
    """Traced processes are still writing to the spool."""
