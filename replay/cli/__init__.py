"""The ``replay`` command: project a captured trace onto other storage, node counts and formats."""

from __future__ import annotations

import click

from trainio.models.backend import ProfileError
from trainio.models.cluster import ClusterError
from trainio.models.cpu import CpuProfileError
from trainio.models.formats import FormatError
from trainio.models.network import NetworkError
from trainio.models.plan import PlanError
from trainio.models.stagein import StageInError
from trainio.models.units import UnitError
from trainio.models.workload import WorkloadError
from trainio.replay.projection.engines import EngineError, RayUnavailableError
from trainio.replay.projection.grid import GridError
from trainio.replay.projection.report import ReportError
from trainio.replay.projection.scenario import ScenarioError
from trainio.replay.projection.sweep import SweepError
from trainio.replay.projection.sweepfile import SweepFileError
from trainio.replay.real.iolog import IologError
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.layout import ForeignDataError
from trainio.tracefile.cli import OneLineErrors, UserError
from trainio.tracefile.errors import TraceError


class ReplayGroup(OneLineErrors):
    failures = (ReplayError, EngineError)
    bad_input = (
        UserError,
        TraceError,
        ProfileError,
        UnitError,
        FormatError,
        ClusterError,
        CpuProfileError,
        NetworkError,
        WorkloadError,
        PlanError,
        StageInError,
        ScenarioError,
        GridError,
        SweepError,
        SweepFileError,
        RayUnavailableError,
        ReportError,
        ForeignDataError,
        IologError,
    )


@click.group(cls=ReplayGroup, name="replay")
@click.version_option(package_name="trainio", prog_name="replay")
def main() -> None:
    """Project a captured training run onto other storage, node counts and record formats.

    \b
      replay what-if --trace TRACE --nodes 4 --backend rgw
      replay what-if --trace TRACE --backend as-captured      (self-check: the captured run)
      replay emulate --trace TRACE --target /mnt/storage/ds   (the same, measured on real storage)
      replay backends                                         (built-in storage profiles)
      replay sweep --trace TRACE --nodes 1,4,16 --backend cephfs,rgw --out sweep.parquet
      replay report --sweep sweep.parquet --out report/ --deadline 12h
    """


# Each subcommand module registers itself on ``main`` when imported (one line per module).
from trainio.replay.cli import (  # noqa: E402
    backends,  # noqa: F401
    calibrate,  # noqa: F401
    emulate,  # noqa: F401
    fio,  # noqa: F401
    report,  # noqa: F401
    s3,  # noqa: F401
    sweep,  # noqa: F401
    whatif,  # noqa: F401
)
