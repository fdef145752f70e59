"""A report as a page: self-contained HTML (images as data URIs) or Markdown (images beside it).

Both renderers take the ``Report`` and the PNG bytes of its figures by name and return text; one
renderer per output, the same content in each.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Protocol

from trainio.replay.projection.document import Report, Section, Table
from trainio.replay.projection.plots import png

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
p.intro { color: #555; margin: .2rem 0; } ul.answers li { margin: .3rem 0; }
img { max-width: 100%; height: auto; display: block; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; } th { background: #f4f4f4; }
"""


class Page(Protocol):
    suffix: str

    def render(self, report: Report, images: dict[str, bytes]) -> str: ...


class HtmlPage:
    """One file that views offline: styles inline, images embedded."""

    suffix = ".html"

    def render(self, report: Report, images: dict[str, bytes]) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(report.title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{html.escape(report.title)}</h1>",
            *(f'<p class="intro">{html.escape(line)}</p>' for line in report.intro),
        ]
        for section in report.sections:
            parts += self._section(section, images)
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def _section(self, section: Section, images: dict[str, bytes]) -> list[str]:
        parts = [f"<h2>{html.escape(section.title)}</h2>"]
        if section.sentences:
            parts.append('<ul class="answers">')
            parts += [f"<li>{html.escape(sentence)}</li>" for sentence in section.sentences]
            parts.append("</ul>")
        if section.figure is not None:
            data = base64.b64encode(images[section.figure.name]).decode("ascii")
            alt = html.escape(section.figure.title)
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{alt}" title="{alt}">')
        if section.table is not None:
            parts += self._table(section.table)
        return parts

    @staticmethod
    def _table(table: Table) -> list[str]:
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
        body = ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows]
        note = [f"<p>{html.escape(table.note)}</p>"] if table.note else []
        return ["<table>", f"<tr>{head}</tr>", *body, "</table>", *note]


class MarkdownPage:
    """Markdown whose images are the PNG files written beside it (``NAME.png``)."""

    suffix = ".md"

    def render(self, report: Report, images: dict[str, bytes]) -> str:
        lines = [f"# {report.title}", "", *(f"{line}  " for line in report.intro), ""]
        for section in report.sections:
            lines += [f"## {section.title}", ""]
            lines += [f"- {_md(sentence)}" for sentence in section.sentences]
            if section.sentences:
                lines.append("")
            if section.figure is not None:
                lines += [f"![{_md(section.figure.title)}]({section.figure.name}.png)", ""]
            if section.table is not None:
                lines += self._table(section.table)
        return "\n".join(lines).rstrip() + "\n"

    @staticmethod
    def _table(table: Table) -> list[str]:
        lines = ["| " + " | ".join(_md(c) for c in table.header) + " |", "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
        return [*lines, "", *([table.note, ""] if table.note else [])]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


PAGES: tuple[Page, ...] = (HtmlPage(), MarkdownPage())


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write the figures (NAME.png), index.html and report.md into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {figure.name: png(figure) for figure in report.figures}
    written = []
    for name, data in images.items():
        path = out / f"{name}.png"
        path.write_bytes(data)
        written.append(path)
    for page, filename in zip(PAGES, ("index.html", "report.md"), strict=True):
        path = out / filename
        path.write_text(page.render(report, images), encoding="utf-8")
        written.append(path)
    return written
