"""The bytes trainio writes to storage: random, incompressible and reproducible from a seed and the
file's or object's name, drawn part by part so that any part can be made on its own (an S3
multipart upload). A file laid out in a directory and the object of the same name hold the same bytes."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

PART_BYTES = 16 * 2**20


def seeded_part(name: str, start: int, length: int, seed: int) -> bytes:
    """``length`` bytes of ``name`` from ``start``, which must be a multiple of ``PART_BYTES``."""
    if start % PART_BYTES:
        raise ValueError(f"start(={start}) must be a multiple of {PART_BYTES}")
    return np.random.default_rng([seed, zlib.crc32(name.encode()), start // PART_BYTES]).bytes(length)


def seeded_parts(name: str, size: int, seed: int) -> Iterator[tuple[int, bytes]]:
    """(start, bytes) of every part of ``name``'s ``size`` bytes."""
    for start in range(0, size, PART_BYTES):
        yield start, seeded_part(name, start, min(PART_BYTES, size - start), seed)


def write_seeded_file(path: Path, name: str, size: int, seed: int, *, fsync: bool = False) -> None:
    """Write ``path`` with ``name``'s bytes (``fsync``: on the device before returning)."""
    with open(path, "wb") as f:
        for _, part in seeded_parts(name, size, seed):
            f.write(part)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
