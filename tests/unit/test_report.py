"""The capacity report: its sentences agree with the sweep table, and its pages carry every figure."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from trainio.replay.projection.engines import LocalPool
from trainio.replay.projection.grid import Grid
from trainio.replay.projection.pages import HtmlPage, MarkdownPage, write_report
from trainio.replay.projection.plots import png
from trainio.replay.projection.report import NOTICEABLE, ReportError, Target, build_report, storage
from trainio.replay.projection.sweep import run_sweep
from trainio.replay.projection.sweepfile import SweepTable, read_sweep

TRACE = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> SweepTable:
    out = tmp_path_factory.mktemp("report") / "sweep.parquet"
    grid = Grid.parse(
        {
            "nodes": "1,8,64",
            "backend": "local-nvme,rgw",
            "format": "files,shards:256MiB",
            "dataset_samples": "100000",
            "epochs": "3",
        }
    )
    run_sweep(TRACE, grid, out, LocalPool(1))
    return read_sweep(out)


def _sentences(report) -> list[str]:
    return [s for section in report.sections for s in section.sentences]


def test_the_fewest_nodes_sentence_matches_the_table(table):
    times = sorted(row["time_to_train_s"] for row in table.rows)
    deadline = times[len(times) // 2]  # half the configurations meet it
    report = build_report(table, Target(deadline_s=deadline))
    for name in ("local-nvme", "rgw"):
        meeting = [r["nodes"] for r in table.rows if storage(r) == name and r["time_to_train_s"] <= deadline]
        sentence = next(s for s in _sentences(report) if s.startswith(f"{name}: "))
        if meeting:
            said = int(re.match(rf"{name}: (\d+) nodes?", sentence).group(1))
            assert said == min(meeting), sentence
        else:
            assert "no configuration meets it" in sentence


def test_a_target_nobody_meets_is_said_and_the_closest_named(table):
    fastest = min(table.rows, key=lambda r: r["time_to_train_s"])
    report = build_report(table, Target(deadline_s=fastest["time_to_train_s"] / 2))
    first = report.sections[0].sentences[0]
    assert first.startswith("No configuration meets a ")
    assert f"The closest: {storage(fastest)} with {fastest['nodes']} node" in first
    assert "over the deadline" in first
    nobody = build_report(table, Target(au=1.0)).sections[0].sentences[0]
    best = max(table.rows, key=lambda r: r["accelerator_utilization"])
    assert nobody.startswith("No configuration meets 100% accelerator utilisation")
    assert f"{100 * best['accelerator_utilization']:.0f}% AU" in nobody


def test_the_shard_gain_sentence_compares_rows_that_differ_in_format_alone(table):
    report = build_report(table, Target(au=0.9))
    rows = {(r["backend"], r["format"], r["nodes"]): r for r in table.rows}
    changes = {
        n: rows[("rgw", "shards:256MiB", n)]["time_to_train_s"] / rows[("rgw", "files", n)]["time_to_train_s"] - 1
        for n in (1, 8, 64)
    }
    best = min(changes, key=changes.__getitem__)
    sentence = next(s for s in _sentences(report) if s.startswith("On rgw, packing files into shards:256MiB"))
    if changes[best] <= -NOTICEABLE:
        assert f"cuts time to train by {100 * -changes[best]:.0f}% at {best} node" in sentence
    else:
        assert "less than 1%" in sentence or "gains nothing" in sentence


def test_a_sweep_where_everything_failed_has_nothing_to_report():
    failed = SweepTable([{"key": "k", "nodes": 1, "backend": "rgw", "error": "ClusterError: boom"}], {})
    with pytest.raises(ReportError, match="all 1 configuration failed"):
        build_report(failed, Target(au=0.9))
    with pytest.raises(ReportError, match="must be in"):
        Target(au=1.5)


def test_the_pages_carry_every_figure_and_the_same_sentences(table, tmp_path):
    report = build_report(table, Target(deadline_s=3600))
    names = {figure.name for figure in report.figures}
    assert names == {"time_to_train", "utilisation", "demand", "bottlenecks"}
    images = {figure.name: png(figure) for figure in report.figures}
    assert all(data.startswith(PNG) for data in images.values())
    page = HtmlPage().render(report, images)
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(data) for data in embedded) == sorted(images.values())
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must load nothing from outside"
    markdown = MarkdownPage().render(report, images)
    assert all(f"]({name}.png)" in markdown for name in names)
    first = report.sections[0].sentences[0]
    assert first in markdown and first in page
    written = write_report(report, tmp_path / "report")
    assert {p.name for p in written} == {f"{n}.png" for n in names} | {"index.html", "report.md"}
