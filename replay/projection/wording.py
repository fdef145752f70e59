"""Numbers, durations and lists in words, for a report's sentences and tables."""

from __future__ import annotations

import math
from collections.abc import Iterable


def duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def percent(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def rate(value: float | None, unit: str = "") -> str:
    if value is None or math.isinf(value):
        return f"unlimited {unit}".strip()
    return (f"{value:,.0f} {unit}" if value >= 10 else f"{value:,.2f} {unit}").strip()


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def joined(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def ranges(numbers: Iterable[int], swept: list[int]) -> str:
    """Node counts as runs of the swept values: '1–4, 16'."""
    chosen = sorted(set(numbers))
    runs: list[list[int]] = []
    for n in chosen:
        if runs and swept.index(n) == swept.index(runs[-1][-1]) + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


def time_unit(longest_s: float) -> tuple[float, str]:
    """The unit to plot times up to ``longest_s`` in: (seconds per unit, its name)."""
    return (3600.0, "hours") if longest_s >= 3 * 3600 else (60.0, "minutes") if longest_s >= 180 else (1.0, "s")
