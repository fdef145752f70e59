"""A closed stdin, stdout or stderr stays closed for the command, and no file of trainio takes its number.

A program started with ``2>&-`` has no file descriptor 2: the next file opened gets number 2 and
becomes the program's stderr (and that of every child it starts). If that file were the capture's
pipe or a spool, the training's error output would land in it. So the capture holds ``/dev/null``
on closed standard descriptors for its whole life, close-on-exec (the command starts with them
closed again), and a traced process holds them only while it opens or maps its spool (Python's
``mmap`` duplicates the descriptor it is given). Stdlib only: traced processes use it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

STD_FDS = (0, 1, 2)


def closed() -> list[int]:
    """Which of stdin, stdout, stderr are closed."""
    found = []
    for fd in STD_FDS:
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            found.append(fd)
    return found


def hold() -> list[int]:
    """Put ``/dev/null`` on each closed standard descriptor, close-on-exec; returns them."""
    fds = closed()
    for fd in fds:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        if null != fd:
            os.dup2(null, fd, inheritable=False)
            os.close(null)
    return fds


@contextmanager
def kept_free() -> Iterator[None]:
    """While inside, files opened (and descriptors duplicated) get numbers above the standard ones."""
    fds = hold()
    try:
        yield
    finally:
        for fd in fds:
            os.close(fd)
