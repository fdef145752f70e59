"""Signals under ``tracer capture``: every delivery reaches the command exactly as often as without it.

A terminal's Ctrl-C goes to the whole foreground process group, a scheduler's SIGTERM to the job's
process group (or, like systemd, to every process of the job): the command, in the capture's group,
has it already and must not get it a second time. A signal sent to the capture's pid alone
(``kill PID``, a container runtime stopping its PID 1) reaches nobody else: the capture forwards it.

The signal itself does not say which it was (siginfo names the sender, not the target). So the
capture keeps a **witness**: a forked process in the same group that blocks these signals and only
looks at what is pending for it. When the capture gets a signal it asks the witness: pending there
too means the group got it; not pending (asked twice, 50 ms apart, for senders that signal one
process after the other) means it was meant for the capture alone. A command that left the
capture's process group (``setsid``) does not get group signals, so they are forwarded to it.
The capture itself never dies of these signals: it waits for the command, finalizes, and ends the
way the command ended.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
"""Signals whose default action would kill the capture (and lose the trace) and that jobs use to
ask a training to stop or checkpoint (Ctrl-C, Ctrl-\\, SIGTERM, SIGHUP, Slurm's SIGUSR1)."""
RECHECK_S = 0.05
"""Second look at the witness: a sender signalling the job's processes one by one may reach it later."""
ANSWER_TIMEOUT_S = 2.0
CORE_SIGNALS = frozenset(
    {
        signal.SIGQUIT,
        signal.SIGILL,
        signal.SIGTRAP,
        signal.SIGABRT,
        signal.SIGBUS,
        signal.SIGFPE,
        signal.SIGSEGV,
        signal.SIGXCPU,
        signal.SIGXFSZ,
        signal.SIGSYS,
    }
)
"""Signals that would dump the capture's own core: the capture exits 128+N for them instead."""


class Witness:
    """A process in the capture's group that tells which of the signals the group was sent."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signals = set(signals)
        self.seen: set[int] = set()
        ask_r, self._ask = os.pipe()
        self._answer, answer_w = os.pipe()
        self.pid = os.fork()  # the signals are blocked already (see Delivery): the witness never handles one
        if self.pid == 0:
            _witness_loop(ask_r, answer_w, self.signals)
        os.close(ask_r)
        os.close(answer_w)

    def group_got(self, signum: int) -> bool | None:
        """Whether ``signum`` is pending at the witness too (it is consumed); None if it cannot tell."""
        for wait in (0.0, RECHECK_S):
            time.sleep(wait)
            if signum not in self.seen:
                pending = self._ask_pending()
                if pending is None:
                    return None
                self.seen |= pending
            if signum in self.seen:
                self.seen.discard(signum)
                return True
        return False

    def _ask_pending(self) -> set[int] | None:
        try:
            os.write(self._ask, b"?")
            ready, _, _ = select.select([self._answer], [], [], ANSWER_TIMEOUT_S)
            answer = os.read(self._answer, 64) if ready else b""
        except OSError:
            return None
        return set(answer[1 : 1 + answer[0]]) if answer else None

    def close(self) -> None:
        for fd in (self._ask, self._answer):
            os.close(fd)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _witness_loop(ask: int, answer: int, signals: set[int]) -> None:
    """The witness: answers each request with the signals pending for it, and consumes them."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # it must not hold the user's terminal or pipes open
        os.dup2(ask, 3)
        os.dup2(answer, 4)
        os.closerange(5, os.sysconf("SC_OPEN_MAX"))
        while os.read(3, 1):
            pending = sorted(signal.sigpending() & signals)
            for signum in pending:
                signal.sigtimedwait([signum], 0)
            os.write(4, bytes([len(pending), *pending]))
    finally:
        os._exit(0)


class Delivery:
    """While the command runs: a signal the group got is left to the command, one sent to the capture
    alone is forwarded to it. ``log`` keeps each decision for the manifest."""

    def __init__(self, signals: tuple[int, ...] = FORWARDED) -> None:
        self.signals = tuple(s for s in signals if signal.getsignal(s) is not signal.SIG_IGN)
        """A signal ignored by the capture's parent (``nohup``, ``cmd &``) stays ignored, for the command too."""
        self.child_pid: int | None = None
        self.log: list[dict] = []
        self._queue: list[int] = []
        self._early: list[int] = []
        self._busy = False
        self._ended = False
        signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        try:
            self.witness: Witness | None = Witness(self.signals)
        except OSError:
            self.witness = None  # without one every signal is forwarded, as before
        self._previous: dict[int, Callable | int | None] = {s: signal.signal(s, self._on_signal) for s in self.signals}
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self.signals)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._queue.append(signum)
        if self._busy:
            return  # a signal that arrives while one is being decided waits its turn
        self._busy = True
        try:
            while self._queue:
                self._decide(self._queue.pop(0))
        finally:
            self._busy = False

    def started(self, pid: int) -> None:
        """The command runs as ``pid``; a signal that came before it existed is delivered to it now."""
        self.child_pid = pid
        early, self._early = self._early, []
        for signum in early:
            if self.witness is not None:
                self.witness.group_got(signum)  # consumed: the command did not exist to get it
            self._forward(signum, "it came before the command started")

    def ended(self) -> None:
        """The command has exited and is not reaped yet: nothing more goes to its pid, which another
        process may have once it is reaped."""
        self._ended = True

    def _decide(self, signum: int) -> None:
        if self._ended:
            self._note(signum, False, "the command had ended")
            return
        if self.child_pid is None:
            self._early.append(signum)
            return
        try:
            left = os.getpgid(self.child_pid) != os.getpgrp()
        except ProcessLookupError:
            left = False
        if left:
            self._forward(signum, "the command left the capture's process group")
            return
        got = self.witness.group_got(signum) if self.witness is not None else None
        if got:
            self._note(signum, False, "the process group got it")
        else:
            self._forward(signum, "sent to the capture alone" if got is False else "no witness to tell who got it")

    def _forward(self, signum: int, why: str) -> None:
        assert self.child_pid is not None
        try:
            os.kill(self.child_pid, signum)  # a zombie at worst: it is reaped only after ended()
        except OSError as exc:  # raised here it would end the capture, and with it the trace
            self._note(signum, False, f"cannot send it: {exc.strerror}")
            return
        self._note(signum, True, why)

    def _note(self, signum: int, forwarded: bool, why: str) -> None:
        self.log.append({"signal": signal.Signals(signum).name, "forwarded": forwarded, "why": why})

    def finished(self) -> None:
        """The command has ended: from now on each of the signals stops the capture's own work
        (reaping, finalizing) with KeyboardInterrupt, instead of killing the capture; the caller
        keeps the spool and the command's exit code."""
        for signum in self.signals:
            signal.signal(signum, _interrupt)
        self._end_witness()

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, *exc: object) -> None:
        """Restore the signal handlers the capture started with."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._end_witness()

    def _end_witness(self) -> None:
        if self.witness is not None:
            self.witness.close()
            self.witness = None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def end_like(exit_code: int, killed_by: int | None) -> NoReturn:
    """Leave the process as the command left: killed by the same signal (so that a calling shell
    stops its script on Ctrl-C as it would have), else with its exit code."""
    if killed_by is not None and killed_by not in CORE_SIGNALS:
        if killed_by != signal.SIGKILL:  # whose action cannot be changed
            signal.signal(killed_by, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {killed_by})
        os.kill(os.getpid(), killed_by)
    sys.exit(exit_code)
