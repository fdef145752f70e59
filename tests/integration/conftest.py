"""Fixtures of the integration tests that use the session's Ceph."""

from __future__ import annotations

import pytest


@pytest.fixture
def ceph_env(ceph, monkeypatch) -> dict:
    """The session's Ceph (the ``ceph`` fixture), its CEPH_CONF and S3 keys exported to this process."""
    _, env = ceph
    for name in ("CEPH_CONF", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, env[name])
    return env
