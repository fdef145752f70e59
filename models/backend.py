"""Storage backend profiles: what one storage system costs per operation and per byte.

A profile is a TOML file with a ``[meta]`` table (``name``, ``description``, ``source``) and a
``[backend]`` table of unit strings (``trainio.models.units``). Every key is required except those
in ``OPTIONAL`` (absent: a default) and ``UNKNOWN_WHEN_ABSENT`` (absent: not known); ``"n/a"`` marks
a key that does not apply to the access kind or to a shared or node-local backend. The built-in
profiles live in ``models/profiles/``, each value with a comment naming where it comes from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainio.models.cpu import CpuCrowding, CpuProfileError
from trainio.models.profilefile import read_toml
from trainio.models.units import UnitError, parse_bandwidth, parse_duration, parse_rate, parse_size

PROFILE_DIR = Path(__file__).parent / "profiles"
ACCESS_KINDS = ("posix", "block", "object")
NOT_APPLICABLE = "n/a"


class ProfileError(ValueError):
    """A profile that is unreadable, incomplete or has a value of the wrong kind."""


@dataclass(frozen=True)
class BackendProfile:
    """One storage backend. Sizes in bytes, times in seconds, rates per second.

    ``shared`` backends (NFS, Ceph, object stores) are one system that all nodes contend for:
    ``aggregate_bandwidth`` and ``iops`` are for the whole cluster. Node-local backends
    (``shared=False``) give every node its own copy of those limits.
    """

    name: str
    access: str
    """``posix`` (open + read), ``block`` (a local file system on a network block device: opens
    are local, reads go to the device) or ``object`` (each file is one GET, no open/stat)."""
    shared: bool
    page_cache: bool
    """Whether re-reads of data that fits in node memory are served by the client page cache."""
    stream_bandwidth: float
    """Bytes/s one request stream (one sequential reader) can get."""
    aggregate_bandwidth: float
    """Bytes/s of the whole backend (per node when not shared)."""
    iops: float
    """Data requests/s of the whole backend (per node when not shared)."""
    open_latency_s: float | None = None
    stat_latency_s: float | None = None
    read_latency_s: float | None = None
    """Time to first byte of one read request."""
    get_latency_s: float | None = None
    """Time to first byte of one object GET (or ranged GET)."""
    client_nic_bandwidth: float | None = None
    """Bytes/s one client node can move to or from this backend; None for node-local ones."""
    max_outstanding: float = math.inf
    """Requests one client node may have in flight at once."""
    request_cpu_s: float = 0.0
    """CPU the client spends on the training node per data request (HTTP and its parsing, the
    librados messenger, a file system client): taken from the node's cores, not a wait. The
    latencies exclude it, so that an unloaded request still costs latency + this."""
    colocated_cpu_s: float = 0.0
    """CPU the storage servers spend per data request on the training nodes' own cores: non-zero
    only when they run there (hyperconverged, e.g. Rook-Ceph on the GPU nodes, or a dev cluster).
    The latencies include it (the servers work while the client waits); the model also takes it
    from the node's cores, beside the request, so that it slows everything else there."""
    open_cpu_s: float = 0.0
    """Client CPU per file open (its close included) on a file system whose opens go to a server
    (a CephFS or NFS client): like ``request_cpu_s``, outside ``open_latency_s``."""
    colocated_open_cpu_s: float = 0.0
    """Co-located servers' (a metadata server's) CPU per open: like ``colocated_cpu_s``."""
    cpu_crowding: float = 0.0
    """How a data request's CPU (``request_cpu_s`` and ``colocated_cpu_s``) grows when more client
    processes share each core: times (processes per core / ``cpu_crowding_base``) ** this, never
    less: more processes per core switch more often and share the caches (docs/model.md, "CPU")."""
    cpu_crowding_base: float = 1.0
    """Client processes per core at which ``request_cpu_s`` and ``colocated_cpu_s`` were measured."""
    cpu_crowding_curve: CpuCrowding = CpuCrowding()
    """Measured instead of ``cpu_crowding``: at each count of client processes per core the calibration
    measured, what the CPU per request was, relative to ``request_cpu_s`` + ``colocated_cpu_s``
    (``replay calibrate``: the small-request cells, paced alike); interpolated between them."""
    write_bandwidth: float | None = None
    """Bytes/s one node can write to its own copy of a node-local backend (sequential writes): what
    limits copying a data set onto it (``trainio.models.stagein``). None: not known, or shared."""
    local_capacity_bytes: float | None = None
    """Bytes of a node-local backend a node can fill with a data set. None: not known, or shared."""
    description: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.access not in ACCESS_KINDS:
            raise ProfileError(f"access(={self.access!r}) must be one of {', '.join(ACCESS_KINDS)}")
        needed = ("get_latency_s",) if self.access == "object" else _POSIX_LATENCIES
        for name in needed:
            value = getattr(self, name)
            if value is None:
                raise ProfileError(f"{name} is required for access={self.access!r}")
            if value < 0:
                raise ProfileError(f"{name}(={value}) must be >= 0")
        for name in ("request_cpu_s", "colocated_cpu_s", "open_cpu_s", "colocated_open_cpu_s", "cpu_crowding"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ProfileError(f"{name}(={getattr(self, name)}) must be >= 0 and finite")
        if not (self.cpu_crowding_base > 0 and math.isfinite(self.cpu_crowding_base)):
            raise ProfileError(f"cpu_crowding_base(={self.cpu_crowding_base}) must be > 0 and finite")
        if self.cpu_crowding_curve.measured and self.cpu_crowding:
            raise ProfileError("give cpu_crowding or cpu_crowding_curve, not both")
        for name in ("stream_bandwidth", "aggregate_bandwidth", "iops", "max_outstanding"):
            value = getattr(self, name)
            if not value > 0:
                raise ProfileError(f"{name}(={value}) must be > 0")
        if self.shared and self.client_nic_bandwidth is None:
            raise ProfileError("client_nic_bandwidth is required for a shared backend")
        for name in ("client_nic_bandwidth", "write_bandwidth", "local_capacity_bytes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ProfileError(f"{name}(={value}) must be > 0")

    @classmethod
    def unlimited(cls, **fields: object) -> BackendProfile:
        """A shared POSIX backend with no latency and no limits, except the ``fields`` given (tests and
        benchmarks dial one limit at a time)."""
        values: dict = {
            "name": "unlimited",
            "access": "posix",
            "shared": True,
            "page_cache": False,
            "stream_bandwidth": math.inf,
            "aggregate_bandwidth": math.inf,
            "iops": math.inf,
            "open_latency_s": 0.0,
            "stat_latency_s": 0.0,
            "read_latency_s": 0.0,
            "client_nic_bandwidth": math.inf,
        }
        return cls(**{**values, **fields})

    @property
    def request_latency_s(self) -> float:
        """Time to first byte of one data request (a read, or a GET for object stores)."""
        latency = self.get_latency_s if self.access == "object" else self.read_latency_s
        assert latency is not None  # checked in __post_init__
        return latency

    @property
    def node_cpu_per_request_s(self) -> float:
        """CPU one data request takes from the training node's cores (client and co-located server)."""
        return self.request_cpu_s + self.colocated_cpu_s

    def crowding_factor(self, processes_per_core: float) -> float:
        """What a data request's CPU is multiplied by when ``processes_per_core`` client processes
        share each core: the measured ``cpu_crowding_curve``, else ``cpu_crowding`` (never below 1)."""
        if self.cpu_crowding_curve.measured:
            return self.cpu_crowding_curve.factor(processes_per_core)
        return max(1.0, processes_per_core / self.cpu_crowding_base) ** self.cpu_crowding


_POSIX_LATENCIES = ("open_latency_s", "stat_latency_s", "read_latency_s")


def _number(text: object, key: str | None = None) -> float:
    if isinstance(text, int | float) and not isinstance(text, bool) and math.isfinite(text):
        return float(text)
    raise UnitError(f"{key}(={text!r}): expected a plain number")


def _count(text: object, key: str | None = None) -> float:
    if isinstance(text, int) and not isinstance(text, bool) and text > 0:
        return float(text)
    if isinstance(text, str) and text.strip().lower() in ("inf", "unlimited"):
        return math.inf
    raise UnitError(f"{key}(={text!r}): expected a positive integer or 'unlimited'")


# TOML key -> (dataclass field, parser)
_KEYS: dict[str, tuple[str, Callable[..., float]]] = {
    "open_latency": ("open_latency_s", parse_duration),
    "stat_latency": ("stat_latency_s", parse_duration),
    "read_latency": ("read_latency_s", parse_duration),
    "get_latency": ("get_latency_s", parse_duration),
    "stream_bandwidth": ("stream_bandwidth", parse_bandwidth),
    "aggregate_bandwidth": ("aggregate_bandwidth", parse_bandwidth),
    "iops": ("iops", parse_rate),
    "client_nic_bandwidth": ("client_nic_bandwidth", parse_bandwidth),
    "max_outstanding": ("max_outstanding", _count),
    "request_cpu": ("request_cpu_s", parse_duration),
    "colocated_cpu": ("colocated_cpu_s", parse_duration),
    "open_cpu": ("open_cpu_s", parse_duration),
    "colocated_open_cpu": ("colocated_open_cpu_s", parse_duration),
    "cpu_crowding": ("cpu_crowding", _number),
    "cpu_crowding_base": ("cpu_crowding_base", _number),
    "write_bandwidth": ("write_bandwidth", parse_bandwidth),
    "local_capacity_bytes": ("local_capacity_bytes", parse_size),
}
OPTIONAL = {
    "request_cpu": "0 s",
    "colocated_cpu": "0 s",
    "open_cpu": "0 s",
    "colocated_open_cpu": "0 s",
    "cpu_crowding": 0,
    "cpu_crowding_base": 1,
}
"""Keys a profile may leave out, and the value they then have."""
UNKNOWN_WHEN_ABSENT = ("write_bandwidth", "local_capacity_bytes")
"""Keys a profile may leave out when it does not know them (None); only node-local backends have them."""


def _applies(key: str, access: str, shared: bool) -> bool:
    if key in ("open_latency", "stat_latency", "read_latency"):
        return access != "object"
    if key == "get_latency":
        return access == "object"
    if key == "client_nic_bandwidth":
        return shared
    if key in UNKNOWN_WHEN_ABSENT:
        return not shared
    return True


_FLAGS = ("access", "shared", "page_cache")
_META = ("name", "description", "source")
_META_OPTIONAL = ("colocated", "pause")
"""What a calibration adds to [meta]: whether the servers' CPU was counted, the streams' pause."""
CURVE_KEY = "cpu_crowding_curve"
CELLS_TABLE = "cells"
"""[[cells]]: the calibration's measurements, for re-evaluating the profile at them (not read by the model)."""


def load_profile(path: str | Path) -> BackendProfile:
    """Read one profile file; every problem is a ProfileError naming the file and the key."""
    path = Path(path)
    data = read_toml(path, "profile", ProfileError)

    def fail(message: str) -> ProfileError:
        return ProfileError(f"profile {path}: {message}")

    unknown_tables = sorted(set(data) - {"meta", "backend", CELLS_TABLE})
    if unknown_tables:
        raise fail(f"unknown table [{unknown_tables[0]}] (expected [meta] and [backend])")
    meta, backend = data.get("meta"), data.get("backend")
    if not isinstance(meta, dict) or not isinstance(backend, dict):
        raise fail("needs a [meta] and a [backend] table")
    for table, known, optional in (
        ("meta", _META + _META_OPTIONAL, _META_OPTIONAL),
        ("backend", (*_FLAGS, *_KEYS, CURVE_KEY), (*OPTIONAL, *UNKNOWN_WHEN_ABSENT, CURVE_KEY)),
    ):
        values = data[table]
        for key in values:
            if key not in known:
                raise fail(f"unknown key [{table}] {key}")
        for key in known:
            if key not in values and key not in optional:
                raise fail(f"missing key [{table}] {key}")
    for key in _META:
        if not isinstance(meta[key], str):
            raise fail(f"[meta] {key}(={meta[key]!r}) must be a string")
    if not isinstance(meta.get("colocated", False), bool):
        raise fail(f"[meta] colocated(={meta['colocated']!r}) must be true or false")
    try:
        parse_duration(meta.get("pause", "0 s"), "pause")
    except UnitError as err:
        raise fail(f"[meta] {err}") from err
    if not isinstance(data.get(CELLS_TABLE, []), list):
        raise fail(f"[{CELLS_TABLE}] must be an array of tables ([[{CELLS_TABLE}]])")
    for key in ("shared", "page_cache"):
        if not isinstance(backend[key], bool):
            raise fail(f"[backend] {key}(={backend[key]!r}) must be true or false")
    access, shared = backend["access"], backend["shared"]
    if access not in ACCESS_KINDS:
        raise fail(f"[backend] access(={access!r}) must be one of {', '.join(ACCESS_KINDS)}")

    fields: dict[str, Any] = {}  # dataclass field -> value (None where n/a); BackendProfile checks them
    for key, (field, parse) in _KEYS.items():
        text = backend.get(key, OPTIONAL.get(key))
        if text is None:  # left out of UNKNOWN_WHEN_ABSENT: not known
            fields[field] = None
            continue
        if not _applies(key, access, shared):
            if text != NOT_APPLICABLE:
                raise fail(f"[backend] {key}(={text!r}) does not apply here; write {NOT_APPLICABLE!r}")
            fields[field] = None
            continue
        if text == NOT_APPLICABLE:
            raise fail(f"[backend] {key} applies to access={access!r}, shared={shared}; give a value")
        try:
            fields[field] = parse(text, key)
        except UnitError as err:
            raise fail(f"[backend] {err}") from err
    curve = backend.get(CURVE_KEY, [])
    if not isinstance(curve, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, int | float) for v in p) for p in curve
    ):
        raise fail(f"[backend] {CURVE_KEY}(={curve!r}) must be a list of [processes per core, factor] pairs")
    try:
        fields["cpu_crowding_curve"] = CpuCrowding(tuple((float(p), float(f)) for p, f in curve), CURVE_KEY)
    except CpuProfileError as err:
        raise fail(f"[backend] {CURVE_KEY}: {err}") from err
    try:
        return BackendProfile(
            name=meta["name"],
            description=meta["description"],
            source=meta["source"],
            access=access,
            shared=shared,
            page_cache=backend["page_cache"],
            **fields,
        )
    except ProfileError as err:
        raise fail(str(err)) from err


def builtin_names() -> list[str]:
    """Names of the profiles shipped in ``models/profiles``."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.toml"))


def builtin_profile(name: str) -> BackendProfile:
    """A shipped profile by name (``local-nvme``, ``nfs``, ``rgw``, ...)."""
    path = PROFILE_DIR / f"{name}.toml"
    if not path.is_file():
        raise ProfileError(f"no built-in profile {name!r}; known: {', '.join(builtin_names())}")
    return load_profile(path)
