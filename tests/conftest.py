"""Session fixtures shared by the unit and integration tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import WORKLOADS


@pytest.fixture(scope="session")
def mixed_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mixed-readers data set, generated once (untraced) for all capture tests."""
    data = tmp_path_factory.mktemp("mixed") / "data"
    subprocess.run(
        [sys.executable, WORKLOADS / "mixed_readers.py", data, "--workers", "0", "--epochs", "1"],
        check=True,
        timeout=180,
        capture_output=True,
    )
    return data
