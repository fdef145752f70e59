"""The rooms meet only at the trace directory: models/ and replay/ never import tracer/ (nor torch)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", [p for p in ("models", "replay", "tracefile") if (ROOT / p).is_dir()])
def test_analysis_side_never_imports_the_capture_side_or_torch(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files in {package}/"
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & {"tracer", "torch"}) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}
