"""``what-if --plot``: one projection's timeline as a PNG."""

from __future__ import annotations

from pathlib import Path

from trainio.models.timeline import Recorder
from trainio.replay.projection.figures import timeline_figure
from trainio.replay.projection.plots import png
from trainio.replay.projection.whatif import WhatIfResult


def write_timeline(path: str | Path, result: WhatIfResult, recorder: Recorder, bins: int = 400) -> None:
    title = (
        f"{result.nodes} node(s) x {result.gpus_per_node} GPU(s), {result.backend}, {result.format}: "
        f"first rank's accelerator and its node's storage reads"
    )
    figure = timeline_figure(Path(path).stem, title, recorder.binned(result.time_to_train_s, bins), result)
    Path(path).write_bytes(png(figure))
