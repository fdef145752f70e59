"""The profiles the accuracy benchmarks committed, evaluated at the calibration cells they were fitted
from, at those cells' own load: every fitted term charges what it was fitted to give there (a cell's
own CPU per request or per unit of work; the latency / bandwidth line's value)."""

from pathlib import Path

import pytest

from trainio.replay.calibration.honesty import check_profile

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted((ROOT / "bench" / "results" / "accuracy-profiles").rglob("*.toml")) + sorted(
    (ROOT / "traces").rglob("cpu.toml")
)


def test_the_benchmarks_committed_profiles_are_there():
    assert any(path.name == "cpu.toml" for path in COMMITTED)
    assert any(path.name.endswith("-rgw.toml") for path in COMMITTED)


@pytest.mark.parametrize("path", COMMITTED, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_committed_profile_charges_at_its_cells_what_its_terms_were_fitted_to_give(path):
    checks = check_profile(path)
    assert checks, f"{path}: no term to check"
    wrong = [
        f"{c.cell} ({c.per_core:.3g} per core): {c.term} {c.charged * 1e3:.3f} ms charged, "
        f"{c.expected * 1e3:.3f} ms fitted, {c.measured * 1e3:.3f} ms measured"
        for c in checks
        if not c.honest
    ]
    assert not wrong, "\n".join(wrong)
