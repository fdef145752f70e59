"""A shard reader: one loader's sequential pass over its shards, through a shuffle buffer.

A reader of packed records (tar/WebDataset, TFRecord) reads its shards front to back in large
requests and hands out samples from a shuffle buffer, so a sample leaves only once the buffer
behind it has been filled.
"""

from __future__ import annotations

import math

import numpy as np

from trainio.models.plan import Plan
from trainio.models.resample import Resampler


class ShardStream:
    """One reader's sequential pass over its shards in one epoch.

    Sample k may be handed out once the reader has read ``shuffle_buffer`` samples beyond it (the
    shuffle buffer's fill). Reads are requests of ``request_bytes`` that never cross a shard end;
    each shard is opened when its first byte is read.
    """

    def __init__(self, plan: Plan, samples: int, sizes: Resampler) -> None:
        self.plan = plan
        self.ends = np.cumsum(sizes.draw(samples))
        self.total = float(self.ends[-1]) if samples else 0.0
        self.samples = samples
        self.taken = 0
        self.pos = 0.0

    def target(self, taken: int) -> float:
        """Bytes that must have been read before ``taken`` samples can be handed out."""
        needed = min(taken + self.plan.shuffle_buffer, self.samples)
        return float(self.ends[needed - 1]) if needed else 0.0

    def next_request(self) -> tuple[bool, float]:
        """(opens a shard, bytes) of the request at the current position."""
        shard, size = self.plan.shard_bytes, self.plan.request_bytes
        offset = self.pos % shard if math.isfinite(shard) else self.pos
        return offset == 0, min(size, shard - offset, self.total - self.pos)

    def requests_before(self, position: float) -> float:
        """Requests that read [0, position), counting a request in progress by its fraction."""
        shard, size = self.plan.shard_bytes, self.plan.request_bytes
        if not math.isfinite(shard):
            return position / size
        full = math.floor(position / shard)
        return full * math.ceil(shard / size) + (position - full * shard) / size
