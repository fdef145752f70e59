"""Helpers: running ``tracer``/``replay`` as real subprocesses, always with a timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "tests" / "workloads"


def run_cli(
    tool: str, *args: str, timeout: float = 180, env: dict | None = None, cwd: Path | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    """``python -m trainio.tracer ...`` (or replay) with a timeout; output captured as text."""
    proc = subprocess.run(
        [sys.executable, "-m", f"trainio.{tool}", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def summary_json(trace_dir: Path) -> dict:
    return json.loads(run_cli("tracer", "summary", trace_dir, "--json", check=True).stdout)
