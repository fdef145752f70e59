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


@pytest.fixture(scope="session")
def ceph(tmp_path_factory: pytest.TempPathFactory):
    """One real single-node Ceph for the whole test session: (folder, environment with CEPH_CONF,
    TRAINIO_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Fails, never skips, without Ceph."""
    from tests.cephdev import cluster, require_ceph

    require_ceph()
    with cluster(tmp_path_factory.mktemp("ceph-session")) as (folder, env, _base):
        yield folder, env
