"""What trainio owns at a target: a *layout root* -- a folder, a bucket's key prefix or a pool's
object-name prefix -- marked by a manifest, ``.trainio-layout.json``, that lists every file or object
trainio wrote under it.

trainio never overwrites, deletes or writes through anything it did not create. A layout root that is
new or empty becomes trainio's (the manifest is written before anything else, marked ``writing``, and
``complete`` once every file is in place); one that carries trainio's manifest is reused, what matches
is kept and what the manifest lists may be rewritten; anything else -- a folder holding other files, a
needed name that exists without the manifest listing it, a symbolic link -- is refused with
:class:`ForeignDataError` unless the caller passes ``overwrite``. A folder where a file should go and a
symbolic link on the way to one are refused even then. Each kind of storage inspects and writes through
its own :class:`LayoutStore` (directory, CephFS, RADOS, S3); the rules are here, once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Protocol

from trainio.models.units import bytes_text

MANIFEST_NAME = ".trainio-layout.json"
DATA_PREFIX = "trainio-data/"
"""The layout root of a data set in a shared namespace named without a prefix: a pool, a bucket."""
FORMAT = "trainio-layout"
FORMAT_VERSION = "1.0"
SHOWN = 3
"""Names a refusal quotes."""


class ForeignDataError(ValueError):
    """A target that holds data trainio did not write (or a link it will not follow) where a layout
    would go; the CLI prints it in one line and exits 2."""


class LayoutManifestError(ForeignDataError):
    """A file named like trainio's manifest that trainio cannot read as one."""


@dataclass(frozen=True)
class LayoutManifest:
    purpose: str
    """``replay`` (a data set) or ``calibrate`` (calibration files)."""
    status: str
    """``writing`` until every entry is in place, then ``complete``."""
    seed: int
    entries: dict[str, int]
    """Name under the layout root -> bytes, every one trainio wrote."""
    tool_version: str = ""
    updated: str = ""

    def text(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "tool_version": self.tool_version,
                "purpose": self.purpose,
                "status": self.status,
                "seed": self.seed,
                "updated": self.updated,
                "entries": dict(sorted(self.entries.items())),
            },
            indent=1,
        )


def read_manifest(data: bytes | str, source: str) -> LayoutManifest:
    """Parse a layout manifest; :class:`LayoutManifestError` naming ``source`` when it is not one trainio
    wrote, is damaged or comes from a newer, incompatible trainio."""

    def bad(reason: str) -> LayoutManifestError:
        return LayoutManifestError(f"{source} is not a layout manifest trainio can read ({reason}); it is left alone")

    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"not JSON: {str(exc).splitlines()[0][:80]}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise bad(f"format is not {FORMAT!r}")
    version = str(document.get("format_version", ""))
    major = version.partition(".")[0]
    if not major.isdigit():
        raise bad(f"format_version {version!r}")
    if int(major) > int(FORMAT_VERSION.partition(".")[0]):
        raise bad(f"format_version {version} is newer than this trainio's {FORMAT_VERSION}; upgrade trainio")
    entries, seed = document.get("entries"), document.get("seed")
    if not isinstance(entries, dict) or not all(
        isinstance(name, str) and isinstance(size, int) and not isinstance(size, bool) and size >= 0
        for name, size in entries.items()
    ):
        raise bad("entries must map names to sizes in bytes")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise bad(f"seed {seed!r} is not an integer")
    return LayoutManifest(
        purpose=str(document.get("purpose", "")),
        status=str(document.get("status", "")),
        seed=seed,
        entries=dict(entries),
        tool_version=str(document.get("tool_version", "")),
        updated=str(document.get("updated", "")),
    )


# ------------------------------------------------------------------------------ what is there

MISSING, FILE, LINK, BLOCKED = "missing", "file", "link", "blocked"


@dataclass(frozen=True)
class Found:
    """What a store found at one name: ``missing``, a regular ``file`` of ``size`` bytes, a symbolic
    ``link``, or ``blocked`` (a folder or device where a file should go, or a link on the way to it:
    ``why`` says which)."""

    kind: str
    size: int = 0
    why: str = ""


@dataclass(frozen=True)
class Inspection:
    root: str
    """The layout root as messages name it (``/data/ds``, ``s3://bucket/prefix/``, ``rados pool p, prefix x/``)."""
    manifest: LayoutManifest | None
    others: tuple[str, ...] | None
    """A few names under the root other than the manifest; None where the store cannot list (a RADOS pool)."""
    found: dict[str, Found]
    """Each needed name."""


@dataclass(frozen=True)
class LayoutPlan:
    root: str
    write: tuple[str, ...]
    """Names to (re)write; the rest are in place."""
    manifest: LayoutManifest
    """What the manifest says while writing (status ``writing``); :attr:`done` once they are written."""

    @property
    def done(self) -> LayoutManifest:
        return replace(self.manifest, status="complete")

    @property
    def reused(self) -> bool:
        """Nothing to write and the manifest already complete: the layout is left untouched."""
        return not self.write and self.manifest.status == "complete"


def _quote(root: str, names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(f"{root.rstrip('/')}/{name}" for name in names[:SHOWN]) + more


def plan_layout(
    inspection: Inspection,
    sizes: dict[str, int],
    *,
    purpose: str,
    seed: int = 0,
    overwrite: bool = False,
    tool_version: str = "",
) -> LayoutPlan:
    """Which of ``sizes`` (name -> bytes) to write and which to keep, by the rules in the module
    docstring; :class:`ForeignDataError` when the target holds what trainio may not touch."""
    root, manifest = inspection.root, inspection.manifest
    blocked = sorted(name for name in sizes if inspection.found.get(name, Found(MISSING)).kind == BLOCKED)
    if blocked:
        why = inspection.found[blocked[0]].why
        raise ForeignDataError(f"{root.rstrip('/')}/{blocked[0]}: {why}; trainio will not write there")
    if manifest is None and inspection.others and not overwrite:
        raise ForeignDataError(
            f"{root} holds data trainio did not write ({_quote(root, list(inspection.others))}; no {MANIFEST_NAME}): "
            "name a new or empty location, or pass --overwrite to let trainio write there"
        )
    listed = manifest.entries if manifest is not None else {}
    foreign = sorted(
        name
        for name in sizes
        if inspection.found.get(name, Found(MISSING)).kind != MISSING
        and (name not in listed or inspection.found[name].kind == LINK)
    )
    if foreign and not overwrite:
        links = [name for name in foreign if inspection.found[name].kind == LINK]
        if links:
            raise ForeignDataError(
                f"{_quote(root, links)}: a symbolic link where the layout puts a file; trainio never writes "
                "through a link: remove it, name another location, or pass --overwrite to replace the link itself"
            )
        raise ForeignDataError(
            f"{root} holds data trainio did not write where the layout goes ({_quote(root, foreign)}): "
            "name a new or empty location, or pass --overwrite to replace it"
        )
    write = tuple(
        name
        for name, size in sorted(sizes.items())
        if name in foreign
        or inspection.found.get(name, Found(MISSING)).kind != FILE
        or inspection.found[name].size != size
        or listed.get(name) != size
    )
    planned = LayoutManifest(
        purpose=purpose,
        status=manifest.status if manifest is not None and not write else "writing",
        seed=seed,
        entries={**listed, **sizes},
        tool_version=tool_version,
        updated=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return LayoutPlan(root, write, planned)


# ------------------------------------------------------------------------------ doing it


class LayoutStore(Protocol):
    """One layout root on one kind of storage."""

    root: str

    def inspect(self, names: Iterable[str]) -> Inspection:
        """The manifest, a few other names under the root, and what is at each of ``names``."""
        ...

    def write(self, plan: LayoutPlan, sizes: dict[str, int], seed: int) -> None:
        """Write ``plan.manifest``, then every name of ``plan.write`` (seeded bytes, replacing what is
        there without following links), then ``plan.done``."""
        ...

    def remove(self, names: Iterable[str]) -> int:
        """Delete ``names`` (files trainio wrote), then the manifest; the bytes deleted."""
        ...


@dataclass(frozen=True)
class Layout:
    """What :func:`ensure_layout` found and did."""

    root: str
    files: int
    bytes: int
    written: int
    bytes_written: int
    reused: bool
    """The manifest matched and every file was in place: nothing was written."""
    names: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "files": self.files,
            "bytes": self.bytes,
            "written": self.written,
            "bytes_written": self.bytes_written,
            "reused": self.reused,
        }


def ensure_layout(
    store: LayoutStore,
    sizes: dict[str, int],
    *,
    purpose: str,
    seed: int = 0,
    overwrite: bool = False,
    say: Callable[[str], None] = lambda _line: None,
    before_write: Callable[[int], None] = lambda _bytes: None,
) -> Layout:
    """Make ``store`` hold every name of ``sizes`` (seeded bytes), by the rules of the module docstring.
    ``before_write`` gets the bytes about to be written (a room check may raise)."""
    from trainio import __version__

    plan = plan_layout(
        store.inspect(sizes), sizes, purpose=purpose, seed=seed, overwrite=overwrite, tool_version=__version__
    )
    to_write = sum(sizes[name] for name in plan.write)
    if plan.reused:
        say(f"layout in place at {store.root}: {len(sizes):,} files, {bytes_text(sum(sizes.values()))}")
    else:
        before_write(to_write)
        say(f"laying out {len(plan.write):,} of {len(sizes):,} files ({bytes_text(to_write)}) at {store.root}")
        store.write(plan, sizes, seed)
    return Layout(
        store.root, len(sizes), sum(sizes.values()), len(plan.write), to_write, plan.reused, tuple(sorted(sizes))
    )
