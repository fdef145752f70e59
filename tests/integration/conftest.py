"""Fixtures of the integration tests that use the session's Ceph."""

from __future__ import annotations

import signal

import pytest

# A suite started as `cmd &` by a non-interactive shell (as some CI runners do) has SIGINT and SIGQUIT
# ignored, `nohup` SIGHUP, and every command a test starts inherits that; `tracer capture` rightly keeps
# an ignored signal ignored, so the signal tests would test the runner. They get what a terminal gives.
for _signum, _handler in (
    (signal.SIGINT, signal.default_int_handler),
    (signal.SIGQUIT, signal.SIG_DFL),
    (signal.SIGHUP, signal.SIG_DFL),
    (signal.SIGTERM, signal.SIG_DFL),
):
    if signal.getsignal(_signum) == signal.SIG_IGN:
        signal.signal(_signum, _handler)


@pytest.fixture
def ceph_env(ceph, monkeypatch) -> dict:
    """The session's Ceph (the ``ceph`` fixture), its CEPH_CONF and S3 keys exported to this process."""
    _, env = ceph
    for name in ("CEPH_CONF", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, env[name])
    return env
