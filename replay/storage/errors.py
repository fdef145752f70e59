"""The failure of work on real storage: ``replay fio``, ``replay s3`` and ``replay calibrate`` print it
in one line and exit 1."""

from __future__ import annotations


class ReplayError(Exception):
    """Work on real storage could not run or cannot be trusted: a missing tool, an unreachable or
    refusing target, a target without room."""


def tail(text: str, lines: int = 3) -> str:
    """The last ``lines`` non-blank lines of a tool's output, on one line (for an error message)."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "(no output)"
