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
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from trainio.replay.storage.directory import replace_file
from trainio.replay.storage.errors import ReplayError, tail
from trainio.replay.storage.layout import (
    FILE,
    MANIFEST_NAME,
    MISSING,
    ForeignDataError,
    Found,
    Inspection,
    LayoutPlan,
    read_manifest,
)

DEFAULT_CEPH_CONF = "/etc/ceph/ceph.conf"
CEPH_PYTHON = "/usr/bin/python3"
"""The interpreter Debian's python3-rados and python3-cephfs bindings are built for."""
HELPER = Path(__file__).resolve().with_name("cephfs_helper.py")
CEPH_TIMEOUT_S = 60
RADOS_MAX_OBJECT = 128 * 2**20
"""osd_max_object_size's default: the largest object a pool takes."""
MOUNT_TIMEOUT_S = "10"
INSTALL_CEPH = (
    "install the Ceph client packages (Debian: ceph-common python3-rados python3-cephfs, "
    "or scripts/install-system-deps.sh)"
)
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
"""Where Debian installs python3-rados, built for the system Python's version."""
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
    replace_file(plan_file, json.dumps(plan).encode())
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
    replace_file(workdir / f"{command}-result.json", json.dumps(result, indent=2).encode())
    return result


@dataclass(frozen=True)
class RadosObjects:
    """What a stat (and write) of objects in a pool found."""

    pool: str
    objects: int
    ok: int
    """Present with the right size."""
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
    pool: str, sizes: dict[str, int], workdir: Path, conf: str, *, timeout_s: float = 600
) -> RadosObjects:
    """Stat every object of ``sizes`` (name -> bytes) in ``pool`` through the rados binding. fio's rados
    engine never checks an I/O's result, so these stats are what says that a read had data to read."""
    checked = run_helper("rados", {"conf": conf, "pool": pool, "objects": sizes}, workdir, conf, timeout_s)
    return RadosObjects(
        pool=pool,
        objects=checked["objects"],
        ok=checked["ok"],
        bad=tuple((name, want, have) for name, want, have in checked["bad"]),
    )


def rados_object_name(name: str) -> str:
    """The object that holds ``name`` (a path under a layout root): ``%`` written ``%25``, ``/`` ``%2F``."""
    return name.replace("%", "%25").replace("/", "%2F")


class RadosStore:
    """A layout root in a pool: the objects whose names start with ``prefix`` (names encoded by
    :func:`rados_object_name`), with the layout manifest as one more object. A pool is a shared
    namespace that trainio does not list: only the names it needs are checked."""

    def __init__(self, pool: str, prefix: str, workdir: Path, conf: str) -> None:
        self.pool, self.prefix, self.workdir, self.conf = pool, prefix, workdir, conf
        self.root = f"rados:{pool}/{prefix}"

    def object_name(self, name: str) -> str:
        return rados_object_name(self.prefix + name)

    def _helper(
        self,
        sizes: dict[str, int],
        *,
        write: Iterable[str] = (),
        remove: Iterable[str] = (),
        texts: dict | None = None,
        seed: int = 0,
    ) -> dict:
        plan = {
            "conf": self.conf,
            "seed": seed,
            "pool": self.pool,
            "objects": {self.object_name(name): size for name, size in sizes.items()},
            "manifest": {"name": self.object_name(MANIFEST_NAME), **(texts or {})},
            "write": [self.object_name(name) for name in write],
            "remove": [self.object_name(name) for name in remove],
        }
        return run_helper("rados", plan, self.workdir, self.conf, 600 + sum(sizes.values()) / 10e6)

    def inspect(self, names: Iterable[str]) -> Inspection:
        names = list(names)
        checked = self._helper({name: 0 for name in names})
        text = checked["manifest"]
        manifest = None if text is None else read_manifest(text, f"{self.root}{MANIFEST_NAME}")
        found = {}
        for name in names:
            have = checked["found"][self.object_name(name)]
            found[name] = Found(MISSING) if have < 0 else Found(FILE, have)
        return Inspection(self.root, manifest, None, found)

    def write(self, plan: LayoutPlan, sizes: dict[str, int], seed: int) -> None:
        texts = {"before": plan.manifest.text(), "after": plan.done.text()}
        written = self._helper(sizes, write=plan.write, texts=texts, seed=seed)
        if written["ok"] != written["objects"]:
            bad = RadosObjects(self.pool, written["objects"], written["ok"], tuple(map(tuple, written["bad"])))
            raise ReplayError(bad.problem("after writing them"))

    def remove(self, names: Iterable[str]) -> int:
        return int(self._helper({}, remove=names)["bytes_removed"])


def import_rados() -> ModuleType:
    """The rados binding in this interpreter: importable as is, or Debian's python3-rados when this
    Python has the system Python's version (its extension is built for that version only)."""
    try:
        import rados
    except ImportError:
        tag = sys.implementation.cache_tag  # e.g. cpython-311
        if not list(DEBIAN_DIST_PACKAGES.glob(f"rados.{tag}-*.so")):
            raise ReplayError(
                f"this Python ({sys.executable}, {tag}) cannot import the rados binding: {INSTALL_CEPH}, and run "
                "trainio with a Python of the system's version"
            ) from None
        sys.path.append(str(DEBIAN_DIST_PACKAGES))
        import rados
    return rados


class RadosReader:
    """Reads a layout's objects in a pool through librados, connected on first use (after a fork: a
    librados handle must not cross one). Opens and closes have nothing to act on."""

    def __init__(self, pool: str, conf: str, object_name: Callable[[str], str]) -> None:
        self.pool, self.conf, self.object_name = pool, conf, object_name
        self.cluster: Any = None
        self.ioctx: Any = None

    def _connect(self) -> Any:
        rados = import_rados()
        try:
            self.cluster = rados.Rados(conffile=self.conf)
            self.cluster.conf_set("client_mount_timeout", MOUNT_TIMEOUT_S)
            self.cluster.connect(timeout=int(MOUNT_TIMEOUT_S))
            self.ioctx = self.cluster.open_ioctx(self.pool)
        except rados.Error as exc:
            raise unreachable(self.conf, str(exc)) from exc
        return self.ioctx

    def open(self, name: str) -> None:
        pass

    def close(self, name: str) -> None:
        pass

    def read(self, name: str, offset: int, length: int) -> int:
        """Bytes the read returned; :class:`ReplayError` when librados refuses it."""
        ioctx = self.ioctx or self._connect()
        try:
            return len(ioctx.read(self.object_name(name), length, offset))
        except import_rados().Error as exc:
            raise ReplayError(f"rados read of {self.object_name(name)} in pool {self.pool}: {exc}") from exc

    def shutdown(self) -> None:
        if self.ioctx is not None:
            self.ioctx.close()
            self.cluster.shutdown()
            self.ioctx = self.cluster = None


class CephFSStore:
    """A layout root that is a folder inside CephFS, inspected and written by the libcephfs helper with
    the rules of :mod:`trainio.replay.storage.layout` (no link followed)."""

    def __init__(self, path: str, workdir: Path, conf: str) -> None:
        self.path, self.workdir, self.conf = path, workdir, conf
        self.root = f"cephfs:{path}"

    def _helper(self, command: str, timeout_s: float = CEPH_TIMEOUT_S * 5, **plan: object) -> dict:
        return run_helper(
            command,
            {"conf": self.conf, "root": self.path, "manifest": MANIFEST_NAME, **plan},
            self.workdir,
            self.conf,
            timeout_s,
        )

    def inspect(self, names: Iterable[str]) -> Inspection:
        names = list(names)
        seen = self._helper("inspect", names=names)
        if not seen.get("is_dir", True):
            raise ForeignDataError(f"{self.root} is not a directory")
        text = seen["manifest"]
        manifest = None if text is None else read_manifest(text, f"{self.root}/{MANIFEST_NAME}")
        found = {name: Found(kind, size, why) for name, (kind, size, why) in seen["found"].items()}
        return Inspection(self.root, manifest, tuple(seen["others"]), found)

    def write(self, plan: LayoutPlan, sizes: dict[str, int], seed: int) -> None:
        manifest = {"name": MANIFEST_NAME, "before": plan.manifest.text(), "after": plan.done.text()}
        self._helper(
            "layout",
            600 + sum(sizes.values()) / 10e6,
            files=sizes,
            write=list(plan.write),
            seed=seed,
            manifest=manifest,
        )

    def remove(self, names: Iterable[str]) -> int:
        return int(self._helper("remove", names=list(names))["bytes_removed"])
