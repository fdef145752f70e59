"""Record formats: how the samples of a data set are laid out and read.

``files`` (one file or object per sample), ``shards:SIZE`` (samples packed into shards read
sequentially through a shuffle buffer) or ``preload`` (read into memory before the first step).
A format changes the opens and request sizes, never the bytes or CPU time per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainio.models.units import UnitError, format_size, parse_size

LARGE_REQUEST_BYTES = 4 * 2**20
"""Request size of sequential bulk reads (shards, preload): the usual tar/TFRecord reader buffer."""
SHUFFLE_BUFFER_SAMPLES = 1000
"""Samples a shard reader holds to shuffle (WebDataset's customary ``shuffle(1000)``)."""
KINDS = ("files", "shards", "preload")


class FormatError(ValueError):
    """A record format that does not parse."""


@dataclass(frozen=True)
class RecordFormat:
    kind: str
    shard_bytes: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FormatError(f"kind(={self.kind!r}) must be one of {', '.join(KINDS)}")
        if (self.kind == "shards") != (self.shard_bytes is not None):
            raise FormatError(f"shard_bytes(={self.shard_bytes}) is given for shards and only shards")
        if self.shard_bytes is not None and not 0 < self.shard_bytes < float("inf"):
            raise FormatError(f"shard_bytes(={self.shard_bytes}) must be > 0 and finite")

    @property
    def request_bytes(self) -> float | None:
        """Bytes per read request of bulk formats; None for files (the captured pattern is used)."""
        if self.kind == "shards":
            assert self.shard_bytes is not None
            return min(self.shard_bytes, LARGE_REQUEST_BYTES)
        return LARGE_REQUEST_BYTES if self.kind == "preload" else None

    def __str__(self) -> str:
        if self.shard_bytes is None:
            return self.kind
        return f"shards:{format_size(self.shard_bytes)}"


def parse_format(text: str) -> RecordFormat:
    """``files``, ``shards:256MiB`` or ``preload``."""
    kind, _, argument = text.strip().partition(":")
    if kind in ("files", "preload") and not argument:
        return RecordFormat(kind)
    if kind == "shards" and argument:
        try:
            size = parse_size(argument)
        except UnitError as err:
            raise FormatError(f"format {text!r}: shard size {err}") from err
        try:
            return RecordFormat("shards", size)
        except FormatError as err:
            raise FormatError(f"format {text!r}: {err}") from err
    raise FormatError(f"format {text!r}: expected 'files', 'shards:SIZE' (e.g. shards:256MiB) or 'preload'")
