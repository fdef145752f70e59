"""What a report is made of, whatever renders it (``pages``): sections of sentences, a figure and a table."""

from __future__ import annotations

from dataclasses import dataclass

from trainio.replay.projection.figures import Figure


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Section:
    title: str
    sentences: tuple[str, ...] = ()
    figure: Figure | None = None
    table: Table | None = None


@dataclass(frozen=True)
class Report:
    title: str
    intro: tuple[str, ...]
    sections: tuple[Section, ...]

    @property
    def figures(self) -> tuple[Figure, ...]:
        return tuple(s.figure for s in self.sections if s.figure is not None)
