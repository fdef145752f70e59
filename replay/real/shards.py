"""Samples packed into shards, and the reads a shard reader issues for them.

A shard is laid out as a tar of its samples (WebDataset's format): a 512-byte header per sample, its
bytes padded to 512, and 1,024 bytes of end-of-archive; trainio fills it with seeded random bytes of
that size, since nothing parses it. A reader goes through its shards front to back in large requests
(``LARGE_REQUEST_BYTES``, never across a shard's end) and hands samples out through a shuffle buffer
(``SHUFFLE_BUFFER_SAMPLES``): sample ``i`` can leave once the samples up to ``i + buffer`` are read,
which is what :func:`shard_requests` and :func:`packed_schedule` use (``models/shards.py`` models the
same reader). ``replay fio --format shards:SIZE`` and ``replay emulate --format`` read through it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from trainio.models.formats import LARGE_REQUEST_BYTES, SHUFFLE_BUFFER_SAMPLES, RecordFormat
from trainio.replay.real.schedule import Job, Op, Schedule

TAR_BLOCK = 512
TAR_END = 2 * TAR_BLOCK
SHARD_FOLDER = "shards"


def member_bytes(size: int) -> int:
    """A sample's place in a tar: its header and its bytes padded to whole blocks."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


@dataclass(frozen=True)
class Member:
    shard: int
    start: int
    """Where the member (its header) starts in its shard."""
    end: int


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class ShardLayout(Generic[K]):
    names: tuple[str, ...]
    """``shards/shard-000000.tar`` ..."""
    sizes: tuple[int, ...]
    members: dict[K, Member]
    order: tuple[K, ...]
    """The samples in packing order."""

    @property
    def files(self) -> dict[str, int]:
        return dict(zip(self.names, self.sizes, strict=True))


def pack(samples: Sequence[tuple[K, int]], shard_bytes: float) -> ShardLayout[K]:
    """Pack ``samples`` ((key, bytes), in order) into shards of at most ``shard_bytes``; a sample larger
    than that gets a shard of its own."""
    members: dict[K, Member] = {}
    sizes: list[int] = []
    used = 0
    for key, size in samples:
        length = member_bytes(size)
        if not sizes or (used > 0 and used + length + TAR_END > shard_bytes):
            sizes.append(0)
            used = 0
        members[key] = Member(len(sizes) - 1, used, used + length)
        used += length
        sizes[-1] = used + TAR_END
    names = tuple(f"{SHARD_FOLDER}/shard-{i:06d}.tar" for i in range(len(sizes)))
    return ShardLayout(names, tuple(sizes), members, tuple(key for key, _ in samples))


@dataclass(frozen=True)
class Request:
    shard: int
    offset: int
    length: int
    first: int
    """The first member of the stream it reads bytes of: it is needed before that member is complete."""


def shard_requests(stream: Sequence[Member], request_bytes: float = LARGE_REQUEST_BYTES) -> list[Request]:
    """The reads of a reader going through ``stream`` (members in the order it reads them): each run of
    members that follow each other in one shard read front to back in requests of ``request_bytes``."""
    requests: list[Request] = []
    run_start = 0
    for i, member in enumerate(stream):
        ends_run = i + 1 == len(stream) or stream[i + 1].shard != member.shard or stream[i + 1].start != member.end
        if not ends_run:
            continue
        first, shard = stream[run_start], member.shard
        offset = first.start
        index = run_start
        while offset < member.end:
            while stream[index].end <= offset:
                index += 1
            length = int(min(request_bytes, member.end - offset))
            requests.append(Request(shard, offset, length, index))
            offset += length
        run_start = i + 1
    return requests


def _job_ops(
    job: Job, stream: list[Member], layout: ShardLayout[str], buffer: int, request_bytes: float
) -> tuple[Op, ...]:
    """One job's reads of its stream; each issued at the traced open of the first sample that needs it."""
    opens = [op.stamp_us for op in job.ops if op.action == "open"] or [job.ops[0].stamp_us]
    ops: list[Op] = []
    current = -1
    for request in shard_requests(stream, request_bytes):
        stamp = opens[min(max(0, request.first - buffer), len(opens) - 1)]
        name = layout.names[request.shard]
        if request.shard != current:
            if current >= 0:
                ops.append(Op(stamp, layout.names[current], "close"))
            ops.append(Op(stamp, name, "open"))
            current = request.shard
        ops.append(Op(stamp, name, "read", request.offset, request.length))
    ops.append(Op(ops[-1].stamp_us, layout.names[current], "close"))
    return tuple(ops)


def packed_schedule(schedule: Schedule, fmt: RecordFormat, *, buffer: int = SHUFFLE_BUFFER_SAMPLES) -> Schedule:
    """``schedule`` as a shard reader would issue it: the traced files packed into shards of
    ``fmt.shard_bytes`` (path order), each job reading as many consecutive samples as it opened files,
    from where the previous job stopped (wrapping: every epoch reads the data set again), in large
    sequential requests, each at the traced time of the first open whose sample needs it (the buffer)."""
    if fmt.kind != "shards" or fmt.shard_bytes is None:
        raise ValueError(f"format(={fmt}) is not shards:SIZE")
    layout = pack(list(schedule.sizes.items()), fmt.shard_bytes)
    packed = [layout.members[key] for key in layout.order]
    request_bytes = fmt.request_bytes or LARGE_REQUEST_BYTES
    cursor = 0
    ops: dict[str, tuple[Op, ...]] = {}
    for job in sorted(schedule.jobs, key=lambda job: (job.delay_us, job.name)):  # in the order they start
        count = max(1, sum(op.action == "open" for op in job.ops))
        stream = [packed[(cursor + i) % len(packed)] for i in range(count)]
        cursor = (cursor + count) % len(packed)
        ops[job.name] = _job_ops(job, stream, layout, buffer, request_bytes)
    jobs = [replace(job, ops=ops[job.name]) for job in schedule.jobs]
    reads = [op for job in jobs for op in job.ops if op.action == "read"]
    return replace(
        schedule,
        jobs=tuple(jobs),
        sizes=layout.files,
        expected_bytes=sum(op.length for op in reads),
        expected_ops=len(reads),
    )
