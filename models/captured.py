"""The ``as-captured`` backend: storage costs fitted from the trace's own reads.

Projecting a trace onto the storage it was captured on must reproduce the captured run; this
profile is that storage as the trace saw it (page cache included, since the captured latencies
already contain its hits). Per-request latency and per-stream bandwidth come from a least-squares
fit of read duration against read size; limits the run never approached are left unlimited. A
memory-mapped run has no reads: its storage is what its page faults cost, the fetches' time waiting
(wall less CPU) over the bytes they faulted in (``fault_profile``).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trainio.models.backend import BackendProfile
from trainio.tracefile.format import READ_OPS
from trainio.tracefile.reader import Trace

NAME = "as-captured"


def _durations(io: pa.Table, ops: tuple[str, ...]) -> np.ndarray:
    mask = pc.and_(pc.is_in(io["op"], pa.array(list(ops))), pc.equal(io["io_class"], "data"))
    rows = io.filter(pc.and_(mask, pc.greater_equal(io["result"], 0)))
    return rows["duration_ns"].to_numpy().astype(float) / 1e9


def fit_latency_bandwidth(sizes: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """(latency_s, bytes_per_s) of ``seconds = latency + size / bandwidth``, both kept physical."""
    if sizes.size == 0:
        return 0.0, math.inf
    if sizes.size < 3 or np.ptp(sizes) == 0:
        rate = sizes.sum() / seconds.sum() if seconds.sum() > 0 else math.inf
        return 0.0, float(rate)
    slope, intercept = np.polyfit(sizes, seconds, 1)
    if slope <= 0:
        return float(max(np.median(seconds), 0.0)), math.inf
    if intercept < 0:  # no measurable fixed cost: all of it is transfer time
        return 0.0, float(sizes.sum() / seconds.sum())
    return float(intercept), float(1.0 / slope)


def fault_bandwidth(trace: Trace) -> float:
    """Bytes per second the fetches that faulted mapped data in waited for (wall less CPU and traced
    I/O): the captured storage as page faults with readahead saw it; infinite without such fetches."""
    events = trace.events
    if not events.num_rows:
        return math.inf
    fetches = events.filter(pc.and_(pc.equal(events["event"], "fetch"), pc.greater(events["majflt"], 0)))
    fetches = fetches.filter(pc.and_(pc.is_valid(fetches["cpu_ns"]), pc.greater(fetches["read_bytes"], 0)))
    wall = fetches["end_ns"].to_numpy() - fetches["start_ns"].to_numpy()
    traced = np.nan_to_num(fetches["io_ns"].to_numpy(zero_copy_only=False).astype(float))
    waited = np.maximum(wall - fetches["cpu_ns"].to_numpy() - traced, 0).sum() / 1e9
    nbytes = float(fetches["read_bytes"].to_numpy().sum())
    return nbytes / waited if waited > 0 else math.inf


def captured_profile(trace: Trace) -> BackendProfile:
    """The storage of the captured run, as its reads (or a memory-mapped run's faults) measured it."""
    from trainio.tracefile.summary import data_mappings, data_reads, reads_through_mappings

    io = trace.io
    objects = _durations(io, ("get",))
    reads = io.filter(pc.and_(pc.is_in(io["op"], pa.array(list(READ_OPS))), pc.equal(io["io_class"], "data")))
    reads = reads.filter(pc.greater(reads["bytes_returned"], 0))
    sizes = reads["bytes_returned"].to_numpy().astype(float)
    seconds = reads["duration_ns"].to_numpy().astype(float) / 1e9
    latency, bandwidth = fit_latency_bandwidth(sizes, seconds)
    opens = _durations(io, ("open", "fopen"))
    stats = _durations(io, ("stat", "fstat"))
    source = f"fitted from {reads.num_rows} data reads of trace {trace.path}"

    def profile(
        access: str,
        bandwidth: float,
        *,
        get_latency_s: float | None = None,
        open_latency_s: float | None = None,
        stat_latency_s: float | None = None,
        read_latency_s: float | None = None,
    ) -> BackendProfile:
        return BackendProfile(
            name=NAME,
            access=access,
            shared=False,
            page_cache=False,
            stream_bandwidth=bandwidth,
            aggregate_bandwidth=math.inf,
            iops=math.inf,
            description="the storage of the captured run, as its own reads measured it",
            source=source,
            get_latency_s=get_latency_s,
            open_latency_s=open_latency_s,
            stat_latency_s=stat_latency_s,
            read_latency_s=read_latency_s,
        )

    if not objects.size and reads_through_mappings(data_reads(trace), data_mappings(trace)):
        source = f"fitted from the page faults of trace {trace.path}'s fetches"
        return profile("posix", fault_bandwidth(trace), open_latency_s=0.0, stat_latency_s=0.0, read_latency_s=0.0)
    if objects.size and not reads.num_rows:
        get_sizes = io.filter(pc.equal(io["op"], "get"))["bytes_returned"].fill_null(0).to_numpy().astype(float)
        latency, bandwidth = fit_latency_bandwidth(get_sizes[: objects.size], objects)
        return profile("object", bandwidth, get_latency_s=latency)
    return profile(
        "posix",
        bandwidth,
        open_latency_s=float(np.median(opens)) if opens.size else 0.0,
        stat_latency_s=float(np.median(stats)) if stats.size else 0.0,
        read_latency_s=latency,
    )
