"""The host's CPU from ``/proc/stat``: the one reader, with one definition of busy.

Busy is user + nice + system + steal: time the cores spent running processes, a guest's stolen time
included; interrupt time is charged to no process and left out. A capture reads it to say how much of
the host others used (``host_cpu``), a calibration to charge the storage daemons' CPU per request, the
accuracy benchmark to see its neighbours. Programs that cannot import trainio (the libcephfs helper
under the system Python, fio's ``exec_prerun`` shell script) report a ``cpu`` line's raw numbers and
:func:`cpu_ticks` reads them.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROC_STAT = "/proc/stat"
CLOCK_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
"""Seconds per clock tick, the unit of /proc/stat."""
STAT_FIELDS = 8
"""user nice system idle iowait irq softirq steal: what a ``cpu`` line's total counts."""


def cpu_ticks(fields: Sequence[str | int]) -> tuple[int, int]:
    """(busy, total) clock ticks from the numbers of one /proc/stat ``cpu`` line (the name left out):
    busy is user + nice + system + steal, total all eight fields (a missing steal counts 0)."""
    numbers = [int(v) for v in fields[:STAT_FIELDS]]
    if len(numbers) < 4:
        raise ValueError(f"a /proc/stat cpu line has at least 4 numbers, not {len(numbers)}: {list(fields)!r}")
    user, nice, system, idle, iowait, irq, softirq, steal = numbers + [0] * (STAT_FIELDS - len(numbers))
    return user + nice + system + steal, user + nice + system + idle + iowait + irq + softirq + steal


def host_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all the host's cores since boot (the aggregate ``cpu`` line)."""
    with open(PROC_STAT, encoding="ascii") as f:
        return cpu_ticks(f.readline().split()[1:])


def usable_busy_ticks(stat_text: str, usable: set[int]) -> tuple[int, int]:
    """(busy ticks, CPUs counted) from the per-CPU lines of /proc/stat for the usable CPUs.

    A container whose /proc/stat numbers CPUs differently from its affinity mask lists none of
    them: then every CPU line counts.
    """
    per_cpu: dict[int, int] = {}
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            per_cpu[int(name[3:])] = cpu_ticks(rest.split())[0]
    if not per_cpu:
        raise ValueError(f"{PROC_STAT} has no per-CPU lines")
    chosen = [ticks for cpu, ticks in per_cpu.items() if cpu in usable] or list(per_cpu.values())
    return sum(chosen), len(chosen)


@dataclass(frozen=True)
class CpuCounters:
    monotonic_ns: int
    cpus: int
    """CPUs whose /proc/stat lines were summed (the usable ones)."""
    busy_s: float
    """Busy time of those CPUs, since boot."""
    children_s: float
    """user + system CPU of this process's waited-for descendants."""
    storage: dict[int, tuple[str, int, float]] = field(default_factory=dict)
    """Storage daemons running on the host: pid -> (name, start time in ticks, CPU seconds so far)."""


def read_counters() -> CpuCounters:
    """The counters a capture reads just before it starts the command and just after it has waited
    for it (``RUSAGE_CHILDREN``: the command and every descendant that was waited for); raises
    OSError or ValueError when /proc/stat cannot be read or parsed."""
    with open(PROC_STAT, encoding="ascii") as f:
        text = f.read()
    ticks, cpus = usable_busy_ticks(text, os.sched_getaffinity(0))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuCounters(
        monotonic_ns=time.monotonic_ns(),
        cpus=cpus,
        busy_s=ticks * CLOCK_TICK_S,
        children_s=children.ru_utime + children.ru_stime,
        storage=storage_daemons(),
    )


def host_cpu(before: CpuCounters, after: CpuCounters) -> dict:
    """The manifest's ``host_cpu`` object for the window between two readings: what the host was
    busy with beyond the command's tree was someone else's work, storage daemons (that may have
    served the run) told apart from strangers."""
    window_s = (after.monotonic_ns - before.monotonic_ns) / 1e9
    busy_s = after.busy_s - before.busy_s
    traced_s = after.children_s - before.children_s
    other_s = max(0.0, busy_s - traced_s)
    capacity = after.cpus * window_s
    storage_s, names = _storage_window(before.storage, after.storage)
    strangers_s = max(0.0, other_s - storage_s)
    return {
        "window_s": round(window_s, 3),
        "cpus": after.cpus,
        "busy_s": round(busy_s, 3),
        "traced_cpu_s": round(traced_s, 3),
        "other_cpu_s": round(other_s, 3),
        "other_fraction": _share(other_s, capacity),
        "storage_daemons": names,
        "storage_cpu_s": round(storage_s, 3),
        "stranger_cpu_s": round(strangers_s, 3),
        "stranger_fraction": _share(strangers_s, capacity),
    }


def _share(cpu_s: float, capacity: float) -> float:
    return round(min(cpu_s / capacity, 1.0), 4) if capacity > 0 else 0.0


STORAGE_DAEMONS = frozenset(
    {
        "ceph-osd",
        "ceph-mon",
        "ceph-mds",
        "ceph-mgr",
        "radosgw",
        "ceph-fuse",
        "nfsd",
        "ganesha.nfsd",
        "rpc.mountd",
        "glusterfsd",
        "glusterfs",
        "minio",
        "beegfs-storage",
        "beegfs-meta",
        "mount-s3",
        "s3fs",
        "gcsfuse",
        "goofys",
        "rclone",
        "juicefs",
        "weed",
        "seaweedfs",
    }
)
"""Process names (``comm``) of storage servers and FUSE file-system clients that serve a run's reads
from the same host: Ceph (OSD, MON, MDS, MGR, RGW, ceph-fuse), the kernel's and Ganesha's NFS
servers, Gluster, MinIO, BeeGFS, SeaweedFS, JuiceFS and the S3/GCS FUSE clients."""


def storage_daemons(proc: str = "/proc") -> dict[int, tuple[str, int, float]]:
    """pid -> (name, start time in ticks, CPU seconds so far) of the storage daemons running now."""
    found = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue  # ended meanwhile
        head, _, rest = text.rpartition(")")
        name = head.partition("(")[2]
        if name in STORAGE_DAEMONS:
            fields = rest.split()
            cpu_s = (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S
            found[int(entry.name)] = (name, int(fields[19]), cpu_s)
    return found


def _storage_window(
    before: dict[int, tuple[str, int, float]], after: dict[int, tuple[str, int, float]]
) -> tuple[float, dict[str, int]]:
    """CPU seconds the storage daemons used between two scans, and how many of each ran. A daemon
    started in between counts from its start; one that ended in between is not counted."""
    total = 0.0
    names: dict[str, int] = {}
    for pid, (name, started, cpu_s) in after.items():
        then = before.get(pid)
        total += cpu_s - (then[2] if then is not None and then[1] == started else 0.0)
        names[name] = names.get(name, 0) + 1
    return max(total, 0.0), dict(sorted(names.items()))


def _cpu_list(text: str) -> list[int]:
    """``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11] (the kernel's CPU list format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if part:
            first, _, last = part.partition("-")
            cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def cpu_topology(root: str = "/", affinity: Sequence[int] | None = None) -> dict:
    """The node's CPU as the job saw it (the manifest's ``host.cpu``): online CPUs, physical cores and
    SMT threads per core, the process's affinity, its cgroup's CPU quota, and the cores it could use
    (the affinity, capped by the quota). ``root`` is ``/`` except in tests."""
    base = Path(root)
    system = base / "sys/devices/system/cpu"
    online = _cpu_list((system / "online").read_text()) if (system / "online").exists() else []
    cores: set[tuple[int, ...]] = set()
    for cpu in online:
        topology = system / f"cpu{cpu}" / "topology"
        siblings = next(
            (topology / n for n in ("core_cpus_list", "thread_siblings_list") if (topology / n).exists()), None
        )
        cores.add(tuple(_cpu_list(siblings.read_text())) if siblings else (cpu,))
    mask = sorted(affinity if affinity is not None else os.sched_getaffinity(0))
    cgroup = cgroup_quota(base)
    quota = cgroup["quota_cores"]
    return {
        "online_cpus": len(online) or os.cpu_count(),
        "physical_cores": len(cores) or None,
        "threads_per_core": max((len(c) for c in cores), default=None),
        "affinity": mask,
        "cgroup": cgroup,
        "usable_cores": float(min(len(mask), quota)) if quota is not None else float(len(mask)),
    }


def cgroup_quota(root: Path) -> dict:
    """This process's cgroup CPU limit: ``{"version": 1|2|None, "quota_cores", "period_us"}``; the
    tightest quota of its cgroup and the cgroups above it (a Kubernetes pod's ``cpu: 8`` gives 8)."""
    none = {"version": None, "quota_cores": None, "period_us": None}
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return none
    mounts = root / "sys/fs/cgroup"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):  # version 1: the cpu controller's own hierarchy
            folder = next((mounts / n for n in ("cpu,cpuacct", "cpu") if (mounts / n).is_dir()), None)
            limits = [_v1_limit(d) for d in _up(folder, path)] if folder else []
            return _tightest(1, limits)
    unified = next((path for line in lines for hier, _, path in [line.partition("::")] if hier == "0"), None)
    if unified is not None and (mounts / "cgroup.controllers").exists():
        return _tightest(2, [_v2_limit(d) for d in _up(mounts, unified)])
    return none


def _up(mount: Path, path: str) -> list[Path]:
    """The cgroup folder of ``path`` under ``mount`` and each folder above it up to the mount."""
    parts = [p for p in path.strip("/").split("/") if p]
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _v1_limit(folder: Path) -> tuple[int, int] | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return (quota, period) if quota > 0 and period > 0 else None


def _v2_limit(folder: Path) -> tuple[int, int] | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        return (int(quota), int(period)) if quota != "max" else None
    except (OSError, ValueError):
        return None


def _tightest(version: int, limits: list[tuple[int, int] | None]) -> dict:
    found = [lim for lim in limits if lim is not None]
    if not found:
        return {"version": version, "quota_cores": None, "period_us": None}
    quota, period = min(found, key=lambda lim: lim[0] / lim[1])
    return {"version": version, "quota_cores": round(quota / period, 3), "period_us": period}
