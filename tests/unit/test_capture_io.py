"""The tracer's own messages, its standard descriptors and its exit, in this process."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from trainio.tracer import signals, stdfds
from trainio.tracer.errors import CommandError
from trainio.tracer.messages import tell


@contextmanager
def stderr_as(fd: int) -> Iterator[None]:
    """fd 2 replaced by ``fd`` (or closed, for -1) while inside."""
    saved = os.dup(2)
    try:
        if fd < 0:
            os.close(2)
        else:
            os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def test_a_message_into_a_pipe_whose_reader_has_gone_is_dropped_without_a_sigpipe():
    read_end, write_end = os.pipe()
    os.close(read_end)
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a program that restored the default action
    try:
        with stderr_as(write_end):
            tell("lost")  # would kill this process if the SIGPIPE were delivered
        assert signal.SIGPIPE not in signal.sigpending()
    finally:
        signal.signal(signal.SIGPIPE, previous)
        os.close(write_end)


@pytest.mark.parametrize("target", ["/dev/full", "closed"])
def test_a_message_to_a_full_or_closed_stderr_is_dropped(target):
    fd = os.open(target, os.O_WRONLY) if target != "closed" else -1
    try:
        with stderr_as(fd):
            tell("lost")
    finally:
        if fd >= 0:
            os.close(fd)


def test_a_message_is_written_whole_and_unbuffered(tmp_path):
    out = tmp_path / "err"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        with stderr_as(fd):
            tell("x" * 100_000)
    finally:
        os.close(fd)
    assert out.read_text() == "x" * 100_000 + "\n"


def test_while_stderr_is_closed_files_opened_land_above_it_and_it_is_closed_again(tmp_path):
    with stderr_as(-1):
        assert stdfds.closed() == [2]
        with stdfds.kept_free():
            fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
        assert fd > 2 and stdfds.closed() == [2]
        os.close(fd)


def test_the_capture_exits_with_the_command_s_code_when_no_signal_killed_it():
    with pytest.raises(SystemExit) as exit_:
        signals.end_like(3, None)
    assert exit_.value.code == 3


@pytest.mark.parametrize(
    ("name", "errno_", "code", "says"),
    [
        ("nosuch", 2, 127, "command not found"),
        ("./nosuch", 2, 127, "No such file or directory"),
        ("./text", 13, 126, "Permission denied"),
        ("./bad", 8, 126, "Exec format error"),
    ],
)
def test_a_command_that_cannot_run_gets_a_shell_s_exit_code(name, errno_, code, says):
    error = CommandError(name, OSError(errno_, os.strerror(errno_)))
    assert error.exit_code == code and str(error) == f"cannot run {name!r}: {says}"
