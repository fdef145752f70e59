"""A real single-node Ceph (scripts/ceph-dev.sh) for tests: start, environment, tear-down."""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ceph-dev.sh"
DAEMONS = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "radosgw")
# Unusual ports, away from Ceph's defaults (3300, 6789, 6800-7300) and from the script's default base.
CANDIDATE_BASES = (27400, 27600, 27800, 28000)


def require_ceph() -> None:
    missing = [name for name in (*DAEMONS, "ceph", "rados") if shutil.which(name) is None]
    if missing:
        pytest.fail(f"Ceph is not installed (no {', '.join(missing)}): run scripts/install-system-deps.sh")


def free_base() -> int:
    for base in CANDIDATE_BASES:
        try:
            for port in (base, base + 1, base + 2, base + 10):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    pytest.fail(f"no free port base among {CANDIDATE_BASES}")


def script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def daemons_of(folder: Path) -> list[str]:
    """Live (not zombie) processes started with this cluster's config file."""
    conf = str(folder / "ceph.conf")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and conf.encode() in argv:
            found.append(f"{proc.name} {argv[0].decode()}")
    return found


@contextmanager
def cluster(tmp_path: Path) -> Iterator[tuple[Path, dict, int]]:
    """A started cluster: (folder, environment with the `env` exports, port base); always torn down."""
    folder = tmp_path / "ceph"
    base = free_base()
    try:
        up = script("up", str(folder), "--ports", str(base), "--timeout", "60", timeout=75)
        assert up.returncode == 0, f"ceph-dev.sh up failed:\n{up.stdout}\n{up.stderr}"
        exports = script("env", str(folder), timeout=10)
        assert exports.returncode == 0, exports.stderr
        env = dict(os.environ)
        for line in exports.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
        yield folder, env, base
    finally:
        if (folder / ".ceph-dev").exists():
            down = script("down", str(folder), timeout=60)
            assert down.returncode == 0, f"ceph-dev.sh down failed:\n{down.stdout}\n{down.stderr}"
        assert daemons_of(folder) == []
