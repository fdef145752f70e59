"""PNG renderings of report figures with matplotlib (the only module that draws).

``png(figure)`` returns the image bytes of any figure in ``trainio.replay.projection.figures``.
One colour per storage across figures, line style per series within it.
"""

from __future__ import annotations

import io
from functools import singledispatch

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, PercentFormatter

from trainio.replay.projection.figures import (
    CellsFigure,
    DemandFigure,
    LinesFigure,
    Series,
    TimelineFigure,
)

DPI = 110
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
CATEGORY_COLOURS = {
    "compute": "#4daf4a",
    "network": "#984ea3",
    "cpu-preprocessing": "#ff7f00",
    "storage-cpu": "#a65628",
    "host-cpu": "#e6ab02",
    "storage-latency": "#377eb8",
    "storage-bandwidth": "#e41a1c",
    "storage-iops": "#f781bf",
    "preload": "#999999",
}


def _figure(width: float, height: float) -> MplFigure:
    """A figure on the Agg canvas of its own: no pyplot, no global backend, nothing to close."""
    fig = MplFigure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _bytes(fig: MplFigure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _palette(series: tuple[Series, ...]) -> dict[str, tuple]:
    groups = list(dict.fromkeys(s.group for s in series))
    colours = matplotlib.colormaps["tab10"]
    return {group: colours(i % 10) for i, group in enumerate(groups)}


def _styles(series: tuple[Series, ...]) -> list[tuple[tuple, str, str]]:
    """(colour, line style, marker) per series: colour by group, style by rank within the group."""
    palette, seen = _palette(series), dict[str, int]()
    styles = []
    for s in series:
        n = seen[s.group] = seen.get(s.group, -1) + 1
        styles.append((palette[s.group], STYLES[n % len(STYLES)], MARKERS[n % len(MARKERS)]))
    return styles


def _nodes_axis(ax, xlabel: str, nodes: list[float]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(nodes)
    ax.set_xticklabels([f"{n:g}" for n in nodes])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.grid(True, which="major", alpha=0.3)


def _compact(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _log_numbers(ax, values: list[float]) -> None:
    """A log y axis labelled in plain numbers (1, 2, 5 x 10^k over a few decades, else 10^k)."""
    ax.set_yscale("log")
    positive = [v for v in values if v > 0]
    decades = np.log10(max(positive) / min(positive)) if positive else 0.0
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _compact(value)))
    ax.yaxis.set_minor_formatter(NullFormatter())


@singledispatch
def png(figure: object) -> bytes:
    raise TypeError(f"no renderer for {type(figure).__name__}")


@png.register
def _lines(figure: LinesFigure) -> bytes:
    fig = _figure(9, 5.5)
    ax = fig.subplots()
    for s, (colour, style, marker) in zip(figure.series, _styles(figure.series), strict=True):
        ax.plot(s.x, s.y, linestyle=style, marker=marker, color=colour, label=s.label, linewidth=1.8)
    for ref in figure.references:
        ax.plot(ref.x, ref.y, linestyle="--", color="0.55", linewidth=1.2, label=ref.label)
    if figure.level is not None:
        ax.axhline(figure.level[0], color="black", linewidth=1.2, linestyle="-.", label=figure.level[1])
    _log_numbers(ax, [y for s in figure.series + figure.references for y in s.y])
    _nodes_axis(ax, figure.xlabel, sorted({x for s in figure.series for x in s.x}))
    ax.set_ylabel(figure.ylabel)
    ax.set_title(figure.title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _bytes(fig)


@png.register
def _cells(figure: CellsFigure) -> bytes:
    rows, cols = len(figure.rows), len(figure.columns)
    label_width = 0.09 * max(len(r) for r in figure.rows)
    fig = _figure(max(6.0, 1.0 + 0.75 * cols + label_width), 1.4 + 0.42 * rows)
    ax = fig.subplots()
    if figure.values:
        data = np.array([[np.nan if v is None else v for v in row] for row in figure.values], dtype=float)
        image = ax.imshow(data, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("accelerator utilisation")
        bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        for i in range(rows):
            for j in range(cols):
                if np.isnan(data[i, j]):
                    continue
                ax.text(j, i, f"{100 * data[i, j]:.0f}%", ha="center", va="center", fontsize=8)
                if figure.threshold is not None and data[i, j] >= figure.threshold:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    else:
        names = list(figure.legend)
        colours = ListedColormap([CATEGORY_COLOURS.get(n, "#cccccc") for n in names])
        index = np.array([[np.nan if c is None else names.index(c) for c in row] for row in figure.categories])
        ax.imshow(index, cmap=colours, vmin=-0.5, vmax=len(names) - 0.5, aspect="auto")
        for i in range(rows):
            for j in range(cols):
                cell = figure.categories[i][j]
                if cell is not None:
                    ax.text(
                        j,
                        i,
                        cell.replace("storage-", "st-").replace("-preprocessing", ""),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if cell != "storage-iops" else "black",
                    )
        handles = [Patch(color=CATEGORY_COLOURS.get(n, "#cccccc"), label=n) for n in names]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xticks(range(cols), figure.columns)
    ax.set_yticks(range(rows), figure.rows, fontsize=8)
    ax.set_xlabel(figure.xlabel)
    ax.set_title(figure.title)
    return _bytes(fig)


@png.register
def _demand(figure: DemandFigure) -> bytes:
    fig = _figure(13, 5.5)
    axes = fig.subplots(1, len(figure.panels), squeeze=False)
    for ax, panel in zip(axes[0], figure.panels, strict=True):
        palette = _palette(panel.demand + panel.capacity)
        for s, (colour, _, marker) in zip(panel.demand, _styles(panel.demand), strict=True):
            ax.plot(s.x, s.y, color=colour, linestyle="-", marker=marker, linewidth=1.6, label=s.label)
        for s in panel.capacity:
            ax.plot(s.x, s.y, color=palette[s.group], linestyle="--", linewidth=2.2, alpha=0.8, label=s.label)
        if panel.saturated:
            xs, ys = zip(*panel.saturated, strict=True)
            ax.scatter(xs, ys, marker="x", s=70, color="black", zorder=5, label="storage is the bottleneck")
        _log_numbers(ax, [y for s in panel.demand + panel.capacity for y in s.y])
        _nodes_axis(ax, figure.xlabel, sorted({x for s in panel.demand for x in s.x}))
        ax.set_ylabel(panel.ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    axes[0][-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(figure.title)
    fig.tight_layout()
    return _bytes(fig)


@png.register
def _timeline(figure: TimelineFigure) -> bytes:
    edges = np.asarray(figure.edges_s)
    scale, unit = (3600.0, "h") if edges[-1] >= 3 * 3600 else (60.0, "min") if edges[-1] >= 180 else (1.0, "s")
    t = edges / scale
    fig = _figure(11, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1.2, 1))
    parts = (
        ("computing", figure.compute, "#4daf4a"),
        ("all-reduce / barrier", figure.sync, "#984ea3"),
        ("stalled on data", figure.stall, "#e41a1c"),
    )
    base = np.zeros(len(figure.compute))
    for label, values, colour in parts:
        stacked = base + np.asarray(values)
        top.stairs(stacked, t, baseline=base, fill=True, color=colour, label=label)
        base = stacked
    top.set_ylim(0, 1.0)
    top.yaxis.set_major_formatter(PercentFormatter(1.0))
    top.set_ylabel("accelerator time")
    bottom.stairs(figure.read_MBps, t, fill=True, color="#377eb8", alpha=0.8, label="reads of one node")
    peak = max(max(figure.read_MBps, default=0.0), 1e-3)
    capacity = figure.capacity_MBps
    if capacity is not None and capacity <= 3 * peak:
        bottom.axhline(capacity, color="#377eb8", linestyle="--", label="what one node can read")
    else:
        bottom.set_ylim(0, 1.15 * peak)
        if capacity is not None:  # far above: say it rather than flatten the reads
            bottom.plot([], [], " ", label=f"one node can read {capacity:,.0f} MB/s")
    bottom.set_ylabel("storage read (MB/s)")
    bottom.set_xlabel(f"time since start ({unit})")
    for ax in (top, bottom):
        if figure.preload_s > 0:
            ax.axvspan(
                0,
                figure.preload_s / scale,
                facecolor="none",
                edgecolor="0.3",
                hatch="..",
                linewidth=0,
                zorder=3,
                label="preload",
            )
        for i, (start, end) in enumerate(figure.extrapolated):
            ax.axvspan(
                start / scale,
                end / scale,
                facecolor="none",
                edgecolor="0.5",
                hatch="//",
                linewidth=0,
                label="extrapolated (fast mode)" if i == 0 else None,
            )
        for i, end in enumerate(figure.epoch_ends_s[:-1]):
            ax.axvline(
                end / scale, color="black", linewidth=0.8, linestyle=":", label="epoch boundary" if i == 0 else None
            )
        ax.set_xlim(0, t[-1])
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    top.set_title(figure.title)
    return _bytes(fig)
