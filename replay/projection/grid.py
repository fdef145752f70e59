"""A sweep's grid: what-if options that each take a list of values; the configurations are their product.

A configuration is a plain dict whose keys are ``Scenario`` fields (JSON-ready values), so it
travels to worker processes and into the sweep file as it is. Its ``key`` names it by content: the
trace's digest, the storage and CPU profiles' contents, the parameters and the trainio version, so
that a rerun can reuse what an earlier run of the same configuration by the same model computed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trainio
from trainio.models.backend import PROFILE_DIR, builtin_names, load_profile
from trainio.models.captured import NAME as AS_CAPTURED
from trainio.models.formats import parse_format
from trainio.models.stagein import COPY_STREAMS
from trainio.models.units import parse_bandwidth, parse_size
from trainio.replay.projection.scenario import (
    MAX_EPOCHS,
    MAX_GPUS_PER_NODE,
    MAX_SAMPLES,
    Scenario,
    stage_in_target,
)


class GridError(ValueError):
    """An option list that is empty or holds a value the option does not take."""


def _whole(minimum: int, maximum: int | None = None) -> Callable[[str, str], int]:
    def parse(text: str, option: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise GridError(f"{option}: {text!r} is not a whole number") from None
        if value < minimum:
            raise GridError(f"{option}: {value} must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise GridError(f"{option}: {value} must be <= {maximum:,}")
        return value

    return parse


_count, _natural = _whole(1), _whole(0)


def _positive(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GridError(f"{option}: {text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise GridError(f"{option}: {value} must be a number > 0")
    return value


def _format(text: str, option: str) -> str:
    parse_format(text)  # FormatError names the bad format
    return text


def _size(text: str, option: str) -> float:
    return parse_size(text, option)


def _bandwidth(text: str, option: str) -> float:
    return parse_bandwidth(text, option)


def _backend(text: str, option: str) -> str:
    known = [AS_CAPTURED, *builtin_names()]
    if text not in known:
        raise GridError(f"{option}: {text!r} is not a known backend (known: {', '.join(known)})")
    return text


def _profile(text: str, option: str) -> str:
    load_profile(text)  # ProfileError names the file and what is wrong
    return text


def _stage_in(text: str, option: str) -> str | None:
    if text == NO_STAGE_IN:
        return None
    stage_in_target(text)  # ScenarioError, ProfileError or StageInError say what is wrong
    return text


def _fraction(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise GridError(f"{option}: {text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise GridError(f"{option}: {value} must be a fraction from 0 to 1")
    return value


@dataclass(frozen=True)
class Axis:
    """One sweepable option: its ``Scenario`` field and how one listed value is read."""

    field: str
    option: str
    parse: Callable[[str, str], object]
    help: str


AXES = (
    Axis("nodes", "--nodes", _count, "Nodes in the job"),
    Axis("gpus_per_node", "--gpus-per-node", _whole(1, MAX_GPUS_PER_NODE), "Training processes per node [captured]"),
    Axis("backend", "--backend", _backend, "Built-in storage profiles (see `replay backends`), or as-captured"),
    Axis("profile", "--profile", _profile, "Storage profile TOML files; swept beside the --backend names"),
    Axis("format", "--format", _format, "Record formats: files, shards:SIZE, preload [captured]"),
    Axis(
        "stage_in",
        "--stage-in",
        _stage_in,
        "Train from --backend (none) or copy the data to node-local storage first: none, local-nvme, "
        "local-ssd or a profile TOML [none]",
    ),
    Axis("stage_in_streams", "--stage-in-streams", _count, f"Files each node copies at once [{COPY_STREAMS}]"),
    Axis("local_capacity_bytes", "--local-capacity", _size, "Node-local disk for the data set [the profile's]"),
    Axis("nodes_with_space", "--nodes-with-space", _fraction, "Fraction of GPU nodes with that disk free [1]"),
    Axis("epochs", "--epochs", _whole(1, MAX_EPOCHS), "Epochs [captured]"),
    Axis("dataset_samples", "--dataset-samples", _whole(1, MAX_SAMPLES), "Data set size in samples [captured]"),
    Axis("workers", "--workers", _natural, "DataLoader workers per process [captured]"),
    Axis("batch_size", "--batch-size", _count, "Batch size per process [captured]"),
    Axis("compute_scale", "--compute-scale", _positive, "Step compute time multipliers [1]"),
    Axis("model_bytes", "--model-bytes", _size, "Gradient bytes all-reduced per step, e.g. 100MB [none]"),
    Axis("cpus_per_node", "--cpus-per-node", _count, "CPU cores per node [captured host]"),
    Axis("node_memory_bytes", "--node-memory", _size, "Page-cache memory per node, e.g. 256GiB [captured host]"),
    Axis(
        "readahead_bytes",
        "--readahead",
        _size,
        "Memory-mapped data sets: bytes a page fault reads, e.g. 128KiB [captured, else 128KiB]",
    ),
    Axis("nic_bandwidth", "--nic", _bandwidth, "Storage NIC per node, e.g. '25 Gbit/s' [unlimited]"),
    Axis("interconnect_bandwidth", "--interconnect", _bandwidth, "All-reduce link per rank [100 Gbit/s]"),
    Axis("seed", "--seed", _natural, "Random seeds [0]"),
)
"""The comma-list options of ``replay sweep``, in the order the grid varies them (last fastest)."""
STORAGE = ("backend", "profile")
"""Backends and profiles form one storage axis: each configuration uses one or the other."""
FLAGS = ("page_cache", "overlap_allreduce", "exact", "stage_in_shard", "cpu_profile")
"""What-if flags: one value for the whole sweep."""
PATHS = ("profile", "cpu_profile")
"""``Scenario`` fields that are files."""
NO_STAGE_IN = "none"
STAGE_IN_ONLY = {
    "stage_in_shard": False,
    "stage_in_streams": COPY_STREAMS,
    "local_capacity_bytes": None,
    "nodes_with_space": None,
}
"""Parameters of the copy, and their values in configurations that train from the backend itself."""


def split(text: str, option: str) -> list[str]:
    """The values of one comma list, in order, duplicates dropped; an empty list is an error."""
    values = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not values:
        raise GridError(f"{option} {text!r} lists no value: the grid would be empty")
    return values


@dataclass(frozen=True)
class Grid:
    """Lists of values per ``Scenario`` field; fields not listed keep their default."""

    axes: dict[str, tuple] = field(default_factory=dict)
    flags: dict[str, object] = field(default_factory=dict)

    @classmethod
    def parse(cls, lists: Mapping[str, str | None], flags: Mapping[str, object] | None = None) -> Grid:
        """From option texts by ``Scenario`` field (``{"nodes": "1,2,4", "backend": "rgw"}``)."""
        axes: dict[str, tuple] = {}
        for axis in AXES:
            text = lists.get(axis.field)
            if text is not None:
                axes[axis.field] = tuple(axis.parse(value, axis.option) for value in split(text, axis.option))
        unknown = set(lists) - {axis.field for axis in AXES}
        if unknown:
            raise GridError(f"not a sweep option: {sorted(unknown)[0]}")
        return cls(axes, dict(flags or {}))

    def configurations(self) -> list[dict]:
        storage = [{"backend": name, "profile": None} for name in self.axes.get("backend", ())]
        storage += [{"backend": AS_CAPTURED, "profile": path} for path in self.axes.get("profile", ())]
        others = [(name, values) for name, values in self.axes.items() if name not in STORAGE]
        names = [name for name, _ in others]
        configs: dict[str, dict] = {}  # by content: without a stage-in the copy's parameters do not matter
        for place in storage or [{}]:
            for values in itertools.product(*(values for _, values in others)):
                config = _normalised({**self.flags, **place, **dict(zip(names, values, strict=True))})
                if config["stage_in"] is None:
                    config.update(STAGE_IN_ONLY)
                configs.setdefault(json.dumps(config, sort_keys=True), config)
        return list(configs.values())

    def __len__(self) -> int:
        return len(self.configurations())


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """Every ``Scenario`` field, JSON-ready (profile paths as text)."""
    resolved = scenario(values)
    config = {name: getattr(resolved, name) for name in Scenario.__dataclass_fields__}
    for name in PATHS:
        config[name] = None if config[name] is None else str(config[name])
    return config


def scenario(config: dict[str, Any]) -> Scenario:
    """The ``Scenario`` of a configuration."""
    fields: dict[str, Any] = dict(config)
    for name in PATHS:
        if fields.get(name) is not None:
            fields[name] = Path(fields[name])
    return Scenario(**fields)


def digest_files(paths: Iterable[Path], root: Path | None = None) -> str:
    """SHA-256 over the files' names (relative to ``root``) and contents, in sorted order."""
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(str(path.relative_to(root) if root else path.name).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()


def trace_digest(trace_dir: str | Path) -> str:
    root = Path(trace_dir)
    return digest_files((p for p in root.rglob("*") if p.is_file()), root)


def profile_digest(config: dict) -> str:
    """The digest of the storage profile's contents (a built-in's file; as-captured: the trace's)."""
    if config["profile"] is not None:
        return digest_files([Path(config["profile"])])
    if config["backend"] == AS_CAPTURED:
        return AS_CAPTURED
    return digest_files([PROFILE_DIR / f"{config['backend']}.toml"])


_STAGE_IN = "stage-in:"
"""Prefix of a stage-in target's entry among the profile digests."""
_CPU_PROFILE = "cpu-profile:"
"""Prefix of a CPU profile's entry among the profile digests."""


def stage_in_digest(target: str) -> str:
    """The digest of a stage-in target's profile (a built-in's file, or the file named)."""
    return digest_files([PROFILE_DIR / f"{target}.toml" if target in builtin_names() else Path(target)])


def key(config: dict, trace: str, profiles: dict[str, str]) -> str:
    """The configuration's identity: the trainio version (another model computes other rows), trace
    digest, the storage and CPU profiles' contents, parameters (not the profiles' paths)."""
    storage = config["profile"] or config["backend"]
    params = {name: value for name, value in config.items() if name not in PATHS}
    identity = {"version": trainio.__version__, "trace": trace, "profile": profiles[storage], "params": params}
    if config.get("stage_in") is not None:
        identity["stage_in"] = profiles[_STAGE_IN + config["stage_in"]]
    if config.get("cpu_profile") is not None:
        identity["cpu_profile"] = profiles[_CPU_PROFILE + config["cpu_profile"]]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def storage_digests(configs: list[dict]) -> dict[str, str]:
    """Profile digest per storage (backend name or profile path), stage-in target and CPU profile, each
    file read once."""
    digests: dict[str, str] = {}
    for config in configs:
        storage = config["profile"] or config["backend"]
        if storage not in digests:
            digests[storage] = profile_digest(config)
        target = config.get("stage_in")
        if target is not None and _STAGE_IN + target not in digests:
            digests[_STAGE_IN + target] = stage_in_digest(target)
        cpu = config.get("cpu_profile")
        if cpu is not None and _CPU_PROFILE + cpu not in digests:
            digests[_CPU_PROFILE + cpu] = digest_files([Path(cpu)])
    return digests
