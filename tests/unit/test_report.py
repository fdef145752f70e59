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
from trainio.replay.projection.timetovalue import WINNER, with_winners

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


# --- copy then train vs train from shared storage ---------------------------------------------


def _row(nodes: int, backend: str, train_s: float, stage_in: str | None = None, copy_s: float | None = 0.0) -> dict:
    """A sweep row with the keys the report reads; ``copy_s`` None: the copy does not fit."""
    row = {
        "key": f"{backend}-{nodes}-{stage_in}",
        "nodes": nodes,
        "gpus_per_node": 8,
        "backend": backend,
        "profile": None,
        "format": "files",
        "stage_in": stage_in,
        "time_to_train_s": train_s,
        "accelerator_utilization": 0.5,
        "bottleneck": "storage-bandwidth",
        "read_MBps": 100.0,
        "read_ops_per_s": 1000.0,
        "backend_capacity.aggregate_MBps": 1000.0,
        "backend_capacity.iops": 10000.0,
        "error": None,
        "stage_in_s": 0.0,
        "time_to_value_s": train_s,
        "local_reserved_bytes": 0.0,
        "eligible_node_fraction": 1.0,
    }
    if stage_in:
        row |= {
            "stage_in_s": copy_s,
            "time_to_value_s": None if copy_s is None else copy_s + train_s,
            "local_reserved_bytes": 2e12,
            "eligible_node_fraction": 0.0 if copy_s is None else 1.0,
            "staging.target": stage_in,
            "staging.whole_dataset": True,
            "staging.local_capacity_bytes": 3.84e12 if copy_s is not None else 1e12,
            "staging.bound": "source-bandwidth",
        }
    return row


def _stage_in_sentences(rows: list[dict]) -> list[str]:
    report = build_report(SweepTable(rows, {"trace": "t"}), Target(au=0.9))
    section = next(s for s in report.sections if s.title == "Copy then train vs train from shared storage")
    assert section.figure is not None and section.figure.name == "time_to_value"
    return list(section.sentences)


def test_the_crossover_is_said_in_words_from_the_time_to_value_of_both_ways():
    rows = []
    for nodes in (1, 2, 4, 8, 16):
        rows.append(_row(nodes, "rgw", 8000 / nodes))  # slow store, scales with nodes
        rows.append(_row(nodes, "rgw", 1000 / nodes, "local-nvme", copy_s=100.0 * nodes))  # copy grows with nodes
        rows.append(_row(nodes, "cephfs", 1000 / nodes))
        rows.append(_row(nodes, "cephfs", 1000 / nodes, "local-nvme", copy_s=60.0))
    sentences = _stage_in_sentences(rows)
    # rgw: straight 8000/n, copying 1000/n + 100 n: copying wins up to 8 nodes (1000 s vs 925 s), not at 16
    assert (
        "Beyond 8 nodes, training straight from rgw delivers the model sooner than copying to local-nvme first; "
        "up to 8, copying first wins (at 8 nodes copying is 1.2 min sooner, 16.7 min straight against 15.4 min "
        "copying; at 16 nodes training straight is 19.4 min sooner, 8.3 min straight against 27.7 min copying)."
        in sentences
    )
    assert (
        "At every node count swept (1–16), training straight from cephfs delivers the model sooner than "
        "copying to local-nvme first." in sentences
    )
    assert sentences[0].startswith("Every node copies the whole data set (2.0 TB)")
    assert any(s.startswith("Stranded capacity: at 16 nodes, copying to local-nvme reserves 2.0 TB") for s in sentences)
    winners = with_winners(rows)
    assert {(r["backend"], r["nodes"]): r[WINNER] for r in winners if r["stage_in"] is None} == {
        **{("rgw", n): "local-nvme" for n in (1, 2, 4, 8)},
        ("rgw", 16): "none",
        **{("cephfs", n): "none" for n in (1, 2, 4, 8, 16)},
    }


def test_a_copy_that_does_not_fit_is_named_and_left_out_of_the_other_sections():
    rows = [_row(n, "rgw", 4000 / n) for n in (1, 2, 4)]
    rows += [_row(1, "rgw", 1000, "local-nvme", 100.0), _row(2, "rgw", 500, "local-nvme", 100.0)]
    rows.append(_row(4, "rgw", 250, "local-nvme", None))
    sentences = _stage_in_sentences(rows)
    assert (
        "Beyond 2 nodes, training straight from rgw delivers the model sooner than copying to local-nvme first; "
        "up to 2, copying first wins (at 2 nodes copying is 23.3 min sooner, 33.3 min straight against 10.0 min "
        "copying; at 4 nodes the copy does not fit)." in sentences
    )
    assert "At 4 nodes the 2.0 TB each node would copy do not fit in local-nvme's 1.0 TB" in " ".join(sentences)
    report = build_report(SweepTable(rows, {}), Target(au=0.9))
    table = next(s for s in report.sections if s.title == "All configurations").table
    assert len(table.rows) == 5  # the copy that does not fit cannot run: no row of its own there
