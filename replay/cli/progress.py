"""A one-line progress bar for long work: done/total, rate and ETA on a terminal, silent otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """``update(done, total)`` redraws at most every ``every_s``; ``close()`` ends the line."""

    def __init__(
        self,
        label: str,
        unit: str,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 0.2,
    ) -> None:
        self.label, self.unit = label, unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.clock, self.every_s = clock, every_s
        self.started = clock()
        self.drawn = -float("inf")
        self.line = ""

    def text(self, done: int, total: int) -> str:
        elapsed = self.clock() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        width = 24
        filled = width * done // total if total else width
        eta = _clock((total - done) / rate) if rate > 0 else "?"
        return (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {rate:.2f} {self.unit}/s  ETA {eta}"
        )

    def update(self, done: int, total: int) -> None:
        """Redraw; ``done == 0`` (re)starts the clock the rate is measured from."""
        now = self.clock()
        if done == 0:
            self.started = now
        if not self.enabled or (now - self.drawn < self.every_s and done < total):
            return
        self.drawn = now
        line = self.text(done, total)
        self.stream.write("\r" + line.ljust(len(self.line)))
        self.line = line
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.line:
            self.stream.write("\n")
            self.stream.flush()
