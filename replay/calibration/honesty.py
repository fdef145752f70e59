"""Every fitted term of a profile, evaluated at the calibration cells it was fitted from, at those
cells' own load, against what the cells measured.

A storage profile (``replay calibrate``) is checked for the CPU it charges per request, at each cell
of the smallest requests one at a time per process (the single stream and the crowding cells, at
their client processes per core, however they were paced): what the cell measured; and for the
time per request its latency and stream bandwidth give at each single-stream cell: the line fitted
through them, whose miss of each cell is the fit's residual. A CPU profile (``replay calibrate
--cpu``) is checked for its crowding curve at each probe cell. Both keep their cells in the file
(``[[cells]]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tomllib

from trainio.models.backend import CELLS_TABLE, load_profile
from trainio.models.cpu import load_cpu_profile
from trainio.replay.calibration.fit import fit_request_costs
from trainio.replay.calibration.measurement import DATA_PATTERNS, CalibrationError

EXACT = 0.02
"""What a term may miss what it was fitted to give at a cell by: the file's rounding."""
LINE_FIT = 0.25
"""Beyond this a latency / bandwidth line misses a cell of its five sizes by more than a calibration on
a quiet machine does (``CellCheck.plausible``): the cells were disturbed."""


@dataclass(frozen=True)
class CellCheck:
    """One term at one cell: what the profile charges there, what the term was fitted to give there
    (the cell's own measurement, or for the latency / bandwidth line the least-squares line through
    the single-stream cells), and what the cell measured."""

    cell: str
    term: str
    per_core: float
    measured: float
    charged: float
    expected: float

    @property
    def error(self) -> float:
        """(charged - measured) / measured."""
        return (self.charged - self.measured) / self.measured

    @property
    def honest(self) -> bool:
        """The profile charges what the term was fitted to give at this cell, at the cell's own load."""
        return abs(self.charged - self.expected) <= EXACT * self.expected

    @property
    def plausible(self) -> bool:
        """Honest, and no further from the cell than a quiet machine's calibration would be."""
        return self.honest and abs(self.error) <= max(LINE_FIT, EXACT)


def check_profile(path: str | Path) -> list[CellCheck]:
    """Evaluate the profile at ``path`` at its cells; a CalibrationError when it keeps none."""
    path = Path(path)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    cells = data.get(CELLS_TABLE) or []
    if not cells:
        raise CalibrationError(f"{path} keeps no [[{CELLS_TABLE}]]: it cannot be checked against its measurements")
    if "cpu" in data:
        return _cpu_checks(path, cells)
    return _storage_checks(path, data, cells)


def _cpu_checks(path: Path, cells: list[dict]) -> list[CellCheck]:
    crowding = load_cpu_profile(path)
    base = min(cells, key=lambda c: c["per_core"])["cpu_s_per_unit"]
    return [
        CellCheck(
            f"{c['processes']} processes",
            "cpu crowding",
            c["per_core"],
            c["cpu_s_per_unit"],
            base * crowding.factor(c["per_core"]),
            c["cpu_s_per_unit"],
        )
        for c in cells
    ]


def _storage_checks(path: Path, data: dict, cells: list[dict]) -> list[CellCheck]:
    profile = load_profile(path)
    colocated = bool(data["meta"].get("colocated", False))
    measured_key = "host_cpu_s" if colocated else "cpu_s"
    per_request = profile.request_cpu_s + (profile.colocated_cpu_s if colocated else 0.0)
    term = "request_cpu" + (" + colocated_cpu" if colocated else "")
    reads = [c for c in cells if c["pattern"] in DATA_PATTERNS]
    streams = [c for c in reads if c["threads"] == 1 and c["depth"] == 1 and c["pattern"] != "read"] or [
        c for c in reads if c["threads"] == 1 and c["depth"] == 1
    ]
    checks = []
    if streams and per_request > 0:
        base = min(streams, key=lambda c: c["size"])
        kind = (base["size"], 1, base["pattern"])
        for c in reads:
            if (c["size"], c["depth"], c["pattern"]) == kind and c.get(measured_key):
                charged, cpu = per_request * profile.crowding_factor(c["per_core"]), c[measured_key]
                checks.append(CellCheck(c["name"], f"CPU per request ({term})", c["per_core"], cpu, charged, cpu))
    if len({c["size"] for c in streams}) > 1:
        sizes, seconds = [c["size"] for c in streams], [c["latency_s"] for c in streams]
        fit = fit_request_costs(sizes, seconds, profile.request_cpu_s)
        line = "time per request (latency + size / stream_bandwidth)"
        for c in streams:
            charged = profile.request_latency_s + profile.request_cpu_s + c["size"] / profile.stream_bandwidth
            checks.append(CellCheck(c["name"], line, c["per_core"], c["latency_s"], charged, fit.seconds(c["size"])))
    return checks
