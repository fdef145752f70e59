"""Simulate a plan: the door from a projection into the SimPy model.

``simulate`` runs the pipeline of every rank (``trainio.models.pipeline``) in exact mode
(``trainio.models.exact``: every request) or fast mode (``trainio.models.fast``: reduced by
symmetry, aggregation and a steady state) and returns what it measured. docs/model.md states the
model's assumptions and what the fast mode loses.
"""

from __future__ import annotations

import dataclasses
import time

from trainio.models.counters import SimulationResult
from trainio.models.exact import run_exact
from trainio.models.fast import run_fast
from trainio.models.plan import Plan
from trainio.models.timeline import Recorder


def simulate(plan: Plan, *, exact: bool = False, seed: int = 0, recorder: Recorder | None = None) -> SimulationResult:
    """Simulate ``plan``: every request (``exact``) or the reduced fast model; ``recorder``
    collects the first rank's timeline."""
    started = time.perf_counter()
    result = run_exact(plan, seed, recorder) if exact else run_fast(plan, seed, recorder)
    return dataclasses.replace(result, sim_wall_s=time.perf_counter() - started)
