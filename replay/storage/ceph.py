"""The Ceph client side: the cluster's configuration, the ``rados`` / ``rbd`` tools, and the libcephfs
helper (``cephfs_helper.py``) that the system Python runs for CephFS and for RADOS objects.

Configuration, one rule for every command: ``CEPH_CONF`` when set, else ``/etc/ceph/ceph.conf`` (the
Ceph tools' own default); the file must exist. Every client connects as ``client.admin``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trainio.replay.storage.errors import ReplayError, tail

DEFAULT_CEPH_CONF = "/etc/ceph/ceph.conf"
CEPH_PYTHON = "/usr/bin/python3"
"""The interpreter Debian's python3-rados and python3-cephfs bindings are built for."""
HELPER = Path(__file__).resolve().with_name("cephfs_helper.py")
CEPH_TIMEOUT_S = 60
MOUNT_TIMEOUT_S = "10"
INSTALL_CEPH = (
    "install the Ceph client packages (Debian: ceph-common python3-rados python3-cephfs, "
    "or scripts/install-system-deps.sh)"
)
HELPER_EXIT_CONNECT, HELPER_EXIT_IMPORT = 3, 4
"""cephfs_helper.py's exit status when it cannot connect to Ceph, and when it cannot import a binding."""


def ceph_conf() -> str:
    """The cluster's ceph.conf: ``CEPH_CONF``, else /etc/ceph/ceph.conf; :class:`ReplayError` when
    that file does not exist."""
    conf = os.environ.get("CEPH_CONF")
    if conf:
        if not Path(conf).is_file():
            raise ReplayError(f"CEPH_CONF(={conf!r}) is not a file: set it to the cluster's ceph.conf")
        return conf
    if not Path(DEFAULT_CEPH_CONF).is_file():
        raise ReplayError(
            f"CEPH_CONF is not set and {DEFAULT_CEPH_CONF} does not exist: set CEPH_CONF to the cluster's ceph.conf"
        )
    return DEFAULT_CEPH_CONF


def _mon_host(conf: str) -> str:
    try:
        text = Path(conf).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"unknown: cannot read {conf}: {exc.strerror}"
    found = re.search(r"^\s*mon[ _]host\s*=\s*(.+?)\s*$", text, re.MULTILINE | re.IGNORECASE)
    return found.group(1) if found else f"unknown: no 'mon host' in {conf}"


def unreachable(conf: str, reason: str) -> ReplayError:
    """The error for a cluster that does not answer, naming its configuration and monitors."""
    return ReplayError(f"cannot reach Ceph with CEPH_CONF={conf} (mon host {_mon_host(conf)}): {reason}")


def ceph_tool(tool: str, *args: str, conf: str) -> subprocess.CompletedProcess:
    """``rados`` / ``rbd`` with a time limit; a time-out means Ceph is unreachable."""
    command = [tool, "-c", conf, "--client_mount_timeout", MOUNT_TIMEOUT_S, *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=CEPH_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise ReplayError(f"{tool} not found on PATH: {INSTALL_CEPH}") from exc
    except subprocess.TimeoutExpired as exc:
        raise unreachable(conf, f"`{tool} {' '.join(args)}` did not answer within {CEPH_TIMEOUT_S} s") from exc


def missing(proc: subprocess.CompletedProcess) -> bool:
    """Whether a ``rados`` / ``rbd`` command failed because what it names does not exist."""
    return proc.returncode != 0 and "No such file or directory" in proc.stderr


def tool_output(proc: subprocess.CompletedProcess, what: str) -> str:
    """The command's stdout; :class:`ReplayError` naming ``what`` when it failed."""
    if proc.returncode != 0:
        raise ReplayError(f"{what} failed (exit {proc.returncode}): {tail(proc.stderr, 2)}")
    return proc.stdout


def check_pool(pool: str, conf: str) -> None:
    """That the cluster answers and holds ``pool``."""
    proc = ceph_tool("rados", "lspools", conf=conf)
    if proc.returncode != 0:
        raise unreachable(conf, f"`rados lspools` exited {proc.returncode}: {tail(proc.stderr, 1)}")
    pools = proc.stdout.split()
    if pool not in pools:
        raise ReplayError(f"Ceph pool {pool!r} does not exist (pools: {', '.join(pools) or 'none'})")


def run_helper(command: str, plan: dict, workdir: Path, conf: str, timeout_s: float) -> dict:
    """Run ``cephfs_helper.py COMMAND PLAN`` under the system Python; its JSON result. The plan and
    the result are kept in ``workdir`` as ``COMMAND-plan.json`` and ``COMMAND-result.json``."""
    if not os.access(CEPH_PYTHON, os.X_OK):
        raise ReplayError(f"{CEPH_PYTHON} not found: the Ceph Python bindings need the system Python; {INSTALL_CEPH}")
    plan_file = workdir / f"{command}-plan.json"
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    try:
        proc = subprocess.run(
            [CEPH_PYTHON, str(HELPER), command, str(plan_file)], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"{HELPER.name} {command} did not finish within {timeout_s:.0f} s ({plan_file})") from exc
    if proc.returncode == HELPER_EXIT_CONNECT:
        raise unreachable(conf, tail(proc.stderr, 1))
    if proc.returncode == HELPER_EXIT_IMPORT:
        raise ReplayError(f"{tail(proc.stderr, 1)}: {INSTALL_CEPH}")
    if proc.returncode != 0:
        raise ReplayError(f"{HELPER.name} {command} failed (exit {proc.returncode}): {tail(proc.stderr, 2)}")
    try:
        result = json.loads(proc.stdout)
    except ValueError as exc:
        raise ReplayError(f"{HELPER.name} {command} printed no JSON result: {tail(proc.stdout)}") from exc
    (workdir / f"{command}-result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


@dataclass(frozen=True)
class RadosObjects:
    """What a stat (and write) of objects in a pool found."""

    pool: str
    objects: int
    ok: int
    """Present with the right size."""
    written: int
    bytes_written: int
    bad: tuple[tuple[str, int, int], ...]
    """The first 20 (name, expected bytes, found bytes or -1 when missing)."""

    @property
    def complete(self) -> bool:
        return self.ok == self.objects

    def problem(self, when: str) -> str:
        """What is wrong, in one line (``when``: ``after the replay``, say)."""
        bad = ", ".join(
            f"{name} (expected {want} bytes, found {'none' if have < 0 else have})" for name, want, have in self.bad
        )
        return (
            f"rados pool {self.pool}: {self.objects - self.ok} of {self.objects} objects missing or of the wrong "
            f"size {when}: {bad}"
        )


def rados_objects(
    pool: str, sizes: dict[str, int], workdir: Path, conf: str, *, write: bool, seed: int = 0, timeout_s: float = 600
) -> RadosObjects:
    """Stat every object of ``sizes`` (name -> bytes) in ``pool`` through the rados binding; with
    ``write``, write the missing or wrongly sized ones first (seeded random bytes). fio's rados engine
    never checks an I/O's result, so these stats are what says that a read had data to read."""
    checked = run_helper(
        "rados", {"conf": conf, "pool": pool, "objects": sizes, "seed": seed, "write": write}, workdir, conf, timeout_s
    )
    return RadosObjects(
        pool=pool,
        objects=checked["objects"],
        ok=checked["ok"],
        written=checked["written"],
        bytes_written=checked["bytes_written"],
        bad=tuple((name, want, have) for name, want, have in checked["bad"]),
    )
