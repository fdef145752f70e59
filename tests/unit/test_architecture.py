"""The import rules that keep the rooms apart (CONVENTIONS.md, Architecture 1).

- Everything imports under ``trainio.``: a bare ``import models`` or ``import tracer`` would meet a
  user's own package of that name.
- The analysis side (trace reader, models, replay) never imports the capture side, nor torch.
- No module imports a private (``_name``) symbol from a module of another package folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("tracer", "tracefile", "models", "replay")
CODE = sorted(p for room in ROOMS for p in (ROOT / room).rglob("*.py"))
CALLERS = CODE + sorted((ROOT / "bench").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))


def _from_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import in ``path``; ``import a.b`` gives ("a.b", [])."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def _package_of(path: Path) -> str:
    return "trainio." + ".".join(path.relative_to(ROOT).parent.parts)


@pytest.mark.parametrize("path", CALLERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_trainio_is_imported_under_its_own_name_only(path):
    bare = [m for m, _ in _from_imports(path) if m.split(".")[0] in ROOMS]
    assert bare == [], f"{path.relative_to(ROOT)} imports {bare}: use trainio.{bare[0]}"


@pytest.mark.parametrize("room", ["tracefile", "models", "replay"])
def test_analysis_side_never_imports_the_capture_side_or_torch(room):
    files = sorted((ROOT / room).rglob("*.py"))
    assert files, f"no Python files in {room}/"
    offenders = {
        str(f.relative_to(ROOT)): sorted(
            m for m, _ in _from_imports(f) if m.startswith("trainio.tracer") or m.split(".")[0] == "torch"
        )
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_module_imports_another_packages_private_names():
    offenders = []
    for path in CODE:
        for module, names in _from_imports(path):
            if not module.startswith("trainio."):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and module.rsplit(".", 1)[0] != _package_of(path):
                offenders.append(f"{path.relative_to(ROOT)}: from {module} import {', '.join(private)}")
    assert offenders == []


def test_the_package_folder_links_every_room():
    for room in ROOMS:
        link = ROOT / "trainio" / room
        assert link.is_symlink() and link.resolve() == (ROOT / room).resolve(), f"trainio/{room} must link ../{room}"
