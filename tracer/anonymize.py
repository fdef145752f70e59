"""An anonymized copy of a trace, for sharing: names hashed, the shape of the I/O kept.

Every path component, bucket and object key is replaced by a salted hash (``n`` + 10 hex digits)
that is the same for the same name throughout one export and different in the next (the salt is
random and not stored). Separators, the number of components, which files share a directory and
file extensions stay, so a projection or a replay of the copy reads the same sizes, offsets,
timings and layout as the original. Each path is classified before it is hashed (``io_class`` is
copied), so ``tracer summary`` and ``replay what-if`` give the same answers on the copy.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from trainio.tracefile.format import EVENTS_DIR, EVENTS_SCHEMA, IO_DIR, IO_SCHEMA
from trainio.tracefile.reader import read_manifest, read_parquet_part
from trainio.tracer.errors import CaptureError
from trainio.tracer.finalize import COMPRESSION
from trainio.tracer.manifest import write_manifest

KEPT = (
    "sizes, offsets, operations, results, start times and durations of every I/O",
    "DataLoader events and configuration (dataset and sampler class names)",
    "processes' pids, roles, ranks, DataLoader worker ids, how they ended, their kernel I/O counters",
    "coverage, host CPU load, CPU count and memory, platform, Python and torch versions, exit code",
    "the shape of every path: separators, number of components, shared directories, file extensions",
)
HASHED = "every path component, bucket and object key, the host name"
DROPPED = "the command line, every process's arguments and the environment"
_PATH_IN_TEXT = re.compile(r"(?:s3://|/)[^\s:'\"(),]+")
_EXTENSION = re.compile(r"(\.[A-Za-z0-9]{1,8})$")


class Anonymizer:
    """Salted hashes of names, stable within one export."""

    def __init__(self, salt: bytes | None = None) -> None:
        self._salt = salt or secrets.token_bytes(16)
        self._cache: dict[str, str] = {}

    def name(self, part: str) -> str:
        """One path component or bucket name; the extension of a file name is kept."""
        if part in ("", ".", ".."):
            return part
        ext = _EXTENSION.search(part)
        stem = part[: ext.start()] if ext and ext.start() > 0 else part
        digest = hmac.new(self._salt, stem.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
        return f"n{digest[:10]}" + (ext.group(1) if ext and ext.start() > 0 else "")

    def path(self, path: str | None) -> str | None:
        """A file path or ``s3://bucket/key``: each component hashed, separators kept."""
        if path is None:
            return None
        if path not in self._cache:
            scheme, sep, rest = path.partition("://")
            if not sep:
                scheme, rest = "", path
            hashed = "/".join(self.name(p) for p in rest.split("/"))
            self._cache[path] = f"{scheme}://{hashed}" if sep else hashed
        return self._cache[path]

    def text(self, text: str) -> str:
        """Free text (a recorded problem): the paths in it hashed."""
        return _PATH_IN_TEXT.sub(lambda m: self.path(m.group(0)) or "", text)


def _hash_column(table: pa.Table, column: str, fn: Callable[[str | None], str | None]) -> pa.Table:
    encoded = table[column].combine_chunks().dictionary_encode()
    names = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], pa.string())
    values = names.take(encoded.indices)
    return table.set_column(table.schema.get_field_index(column), column, values)


def _manifest(manifest: dict, anon: Anonymizer) -> dict:
    out = dict(manifest)
    out["command"] = [f"<anonymized: {len(manifest.get('command') or [])} arguments>"]
    out["env"] = {}
    out["cwd"] = anon.path(manifest.get("cwd"))
    host = dict(manifest.get("host") or {})
    out["host"] = {**host, "hostname": anon.name(str(host.get("hostname")))}
    out["data_roots"] = [anon.path(r) for r in manifest.get("data_roots") or []]
    out["lost"] = [anon.text(str(line)) for line in manifest.get("lost") or []]
    processes = []
    for proc in manifest.get("processes") or []:
        proc = dict(proc)
        proc["argv"] = [f"<anonymized: {len(proc.get('argv') or [])} arguments>"]
        proc["executable"] = anon.path(proc.get("executable"))
        proc["python_prefixes"] = [anon.path(p) for p in proc.get("python_prefixes") or []]
        proc["errors"] = [anon.text(str(e)) for e in proc.get("errors") or []]
        processes.append(proc)
    out["processes"] = processes
    out["anonymized"] = {"kept": list(KEPT), "hashed": HASHED, "dropped": DROPPED}
    return out


def anonymize_trace(src: Path, dst: Path, anon: Anonymizer) -> dict:
    """Write an anonymized copy of the finalized trace ``src`` into the new directory ``dst``;
    returns the copy's manifest. Raises CaptureError when ``dst`` exists and holds anything."""
    manifest = read_manifest(src)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise CaptureError(f"--out {dst} already exists: choose a new directory")
    for folder, schema in ((IO_DIR, IO_SCHEMA), (EVENTS_DIR, EVENTS_SCHEMA)):
        (dst / folder).mkdir(parents=True, exist_ok=True)
        for part in sorted((src / folder).glob("*.parquet")):
            table = read_parquet_part(part, schema)
            if folder == IO_DIR:
                for column in ("path", "bucket", "key"):
                    table = _hash_column(table, column, anon.path)
            metadata = pq.read_schema(part).metadata
            pq.write_table(table.replace_schema_metadata(metadata), dst / folder / part.name, compression=COMPRESSION)
    copy = _manifest(manifest, anon)
    write_manifest(dst, copy)
    return copy


def describe() -> str:
    """What an anonymized export keeps, hashes and drops, for the user."""
    return "\n".join(
        [f"anonymized: hashed {HASHED} (salted, stable within this export); dropped {DROPPED}", "kept:"]
        + [f"  {line}" for line in KEPT]
    )
