"""The dev Ceph (scripts/ceph_dev.py) for tests: a missing install or a cluster that does not start or
stop fails the test, never skips it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.ceph_dev import DAEMONS, CephDevError, daemons_of
from scripts.ceph_dev import cluster as dev_cluster

# Unusual ports, away from Ceph's defaults (3300, 6789, 6800-7300), the script's default base and the
# benchmarks' bases.
CANDIDATE_BASES = (27400, 27600, 27800, 28000)


def require_ceph() -> None:
    missing = [name for name in (*DAEMONS, "ceph", "rados") if shutil.which(name) is None]
    if missing:
        pytest.fail(f"Ceph is not installed (no {', '.join(missing)}): run scripts/install-system-deps.sh")


@contextmanager
def cluster(tmp_path: Path) -> Iterator[tuple[Path, dict, int]]:
    """A started cluster: (folder, environment with the `env` exports, port base); always torn down,
    and no daemon of it left."""
    folder = tmp_path / "ceph"
    try:
        with dev_cluster(folder, CANDIDATE_BASES, up_timeout_s=60) as dev:
            yield dev.folder, dev.env, dev.base
    except CephDevError as exc:
        pytest.fail(str(exc))
    assert daemons_of(folder) == []
