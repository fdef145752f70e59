"""trainio's own messages during a capture: they never change what the command does or how it exits.

Written straight to file descriptor 2, unbuffered: nothing is left in ``sys.stderr``'s buffer for
the interpreter's exit to fail on (which would turn any exit code into 120), and a stderr that is
closed, full (``2>/dev/full``) or a pipe whose reader has gone (``2>&1 | head -1``) loses the
message and nothing else. SIGPIPE is blocked around the write, so that a traced program that
restored its default action is not killed by a message of ours. Stdlib only: traced processes use it.
"""

from __future__ import annotations

import errno
import os
import signal


def tell(message: str) -> None:
    """Write ``message`` and a newline to stderr; any failure to write is ignored."""
    data = (message + "\n").encode("utf-8", "replace")
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPIPE})
    try:
        while data:
            data = data[os.write(2, data) :]
    except OSError as exc:  # EPIPE, ENOSPC, EBADF, EIO, EAGAIN: the message is lost, the run is not
        if exc.errno == errno.EPIPE and signal.SIGPIPE not in before:
            signal.sigtimedwait({signal.SIGPIPE}, 0)  # the SIGPIPE our write raised, not the program's
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
