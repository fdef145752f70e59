"""scripts/ceph-dev.sh from Python: a real single-node Ceph on a free port base, started, its client
environment read, always stopped again. Shared by the test suite (tests/cephdev.py) and the
benchmarks (bench/accuracy.py); both import it from the checkout's root.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("ceph-dev.sh")
DAEMONS = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "radosgw")
PORT_OFFSETS = (0, 1, 2, 10)
"""mon v2 BASE, mon v1 BASE+1, RGW BASE+2, the other daemons from BASE+10."""
MARKER = ".ceph-dev"
ENV_TIMEOUT_S = 20
DOWN_TIMEOUT_S = 120


class CephDevError(RuntimeError):
    """The dev cluster could not be started or stopped; the message carries the script's output."""


@dataclass(frozen=True)
class DevCeph:
    folder: Path
    env: dict[str, str]
    """This process's environment plus the cluster's client exports (CEPH_CONF, TRAINIO_S3_ENDPOINT,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)."""
    base: int
    """The port base."""


def script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """``scripts/ceph-dev.sh ARGS`` with a time limit."""
    try:
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CephDevError(f"scripts/ceph-dev.sh {' '.join(args)} did not finish within {timeout:.0f} s") from exc


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base(bases: Sequence[int]) -> int:
    """The first port base of ``bases`` whose ports are all free on 127.0.0.1."""
    for base in bases:
        if all(_port_free(base + offset) for offset in PORT_OFFSETS):
            return base
    raise CephDevError(f"no free Ceph port base among {tuple(bases)}")


def client_env(folder: Path) -> dict[str, str]:
    """This process's environment plus the exports of ``ceph-dev.sh env``."""
    exports = script("env", str(folder), timeout=ENV_TIMEOUT_S)
    if exports.returncode != 0:
        raise CephDevError(f"scripts/ceph-dev.sh env failed: {exports.stderr.strip()}")
    env = dict(os.environ)
    for line in exports.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


@contextmanager
def cluster(
    folder: Path,
    bases: Sequence[int],
    *,
    up_timeout_s: int = 60,
    memstore_bytes: int | None = None,
    say: Callable[[str], None] = lambda message: None,
    on_stop_failure: Callable[[str], None] | None = None,
) -> Iterator[DevCeph]:
    """A cluster in ``folder`` on the first free base of ``bases``, stopped on the way out, also on
    failure. A stop that fails raises :class:`CephDevError`, or is handed to ``on_stop_failure``
    (a benchmark keeps its results)."""
    base = free_base(bases)
    try:
        say(f"starting Ceph in {folder} (ports {base}-{base + 99})")
        memstore = ["--memstore-bytes", str(memstore_bytes)] if memstore_bytes else []
        up = script(
            "up",
            str(folder),
            "--ports",
            str(base),
            "--timeout",
            str(up_timeout_s),
            *memstore,
            timeout=up_timeout_s + 30,
        )
        if up.returncode != 0:
            raise CephDevError(f"scripts/ceph-dev.sh up failed:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}")
        yield DevCeph(folder, client_env(folder), base)
    finally:
        if (folder / MARKER).exists():
            down = script("down", str(folder), timeout=DOWN_TIMEOUT_S)
            if down.returncode != 0:
                message = f"scripts/ceph-dev.sh down failed:\n{down.stdout[-2000:]}\n{down.stderr[-2000:]}"
                if on_stop_failure is None:
                    raise CephDevError(message)
                on_stop_failure(message)
            else:
                say("Ceph stopped")


def daemon_pids(folder: Path) -> dict[str, int]:
    """Daemon name -> the pid ``up`` recorded (``mon.a``, ``osd.0``, ...)."""
    pids = {}
    for path in (folder / "pids").glob("*"):
        try:
            pids[path.name] = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return pids


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
