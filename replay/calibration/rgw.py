"""Calibration cells of an S3 endpoint (``rgw:`` / ``s3:``): timed GETs of calibration objects with boto3.

Concurrent streams run in forked processes, as DataLoader workers do (threads of one process would
share its GIL and measure the client); single-stream sizes and the crowding cells run in interleaved
passes, so that a slow second of a shared machine does not land on one cell (docs/calibration.md).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainio.models.units import format_size
from trainio.replay.calibration.measurement import (
    LARGE,
    MIN_CELL_S,
    MIN_OPS,
    SIZES,
    SMALL,
    Budget,
    CalibrationError,
    Cells,
    Measurement,
    Progress,
    cell_name,
    cpu_fields,
    gather,
    merge_measurements,
)
from trainio.replay.calibration.place import CALIBRATION_PREFIX, Placement, calibration_files
from trainio.replay.storage.errors import ReplayError
from trainio.replay.storage.s3 import (
    S3RequestError,
    S3Store,
    TimedGet,
    Timeouts,
    boto_version,
    new_session,
    s3_client,
    timed_get,
)
from trainio.replay.storage.target import Target
from trainio.tracefile.hostcpu import host_ticks

RGW_COPIES = 4
"""Objects per size (spread over placement groups)."""
RGW_PER_CELL_S = 0.04
"""Start-up of one RGW measurement per client stream: a forked process, its client and connection."""
CROWDING_STREAMS = (4, 16)
"""Concurrent client processes of the two small-GET cells that ``cpu_crowding`` is fitted from."""
CROWDING_CHUNK_S = 0.5
"""Shortest timed part of a crowding cell worth a pass of its own."""
CROWDING_MAX_PASSES = 4
STREAM_START_TIMEOUT_S = 30.0


def _rgw_names(size: int) -> list[str]:
    """The calibration objects of ``size``, under the calibration prefix."""
    return [f"{format_size(size)}/{i}" for i in range(RGW_COPIES)]


def _rgw_keys(size: int) -> list[str]:
    return [CALIBRATION_PREFIX + name for name in _rgw_names(size)]


@dataclass(frozen=True)
class _Clients:
    """How a client stream makes its client: from one session (its service models loaded, inherited by
    forked streams, so that each client costs little), with the calibration's timeouts."""

    session: Any
    timeouts: Timeouts

    def client(self, target: Target, pool: int) -> Any:
        return s3_client(target.endpoint, pool=pool, session=self.session, timeouts=self.timeouts)


def _checked_get(client: Any, target: Target, key: str, size: int) -> TimedGet:
    try:
        got = timed_get(client, target.bucket, key)
    except S3RequestError as exc:
        raise CalibrationError(f"{exc} (against {target.text})") from exc
    if got.bytes != size:
        raise CalibrationError(f"GET {key} from {target.text} returned {got.bytes} bytes, not {size}")
    return got


@dataclass(frozen=True)
class _Stream:
    """One client stream's timed phase: its GETs, wall and CPU seconds, the host's ticks around it."""

    wall_s: float
    gets: list[TimedGet]
    cpu_s: float
    host_start: tuple[int, int]
    host_end: tuple[int, int]
    error: str = ""


def _timed_gets(
    client: Any, target: Target, size: int, seconds: float, rng: random.Random, *, min_ops: int, pause_s: float = 0.0
) -> _Stream:
    """GETs of random calibration objects of ``size`` for ``seconds`` (at least ``min_ops``),
    ``pause_s`` idle after each."""
    keys = _rgw_keys(size)
    gets: list[TimedGet] = []
    host_start, cpu = host_ticks(), time.process_time()
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds or len(gets) < min_ops:
        gets.append(_checked_get(client, target, rng.choice(keys), size))
        if pause_s > 0:
            time.sleep(pause_s)
    wall = time.perf_counter() - begin
    return _Stream(wall, gets, time.process_time() - cpu, host_start, host_ticks())


def _rgw_stream(
    target: Target, size: int, seconds: float, seed: int, clients: _Clients, barrier: Any, pause_s: float
) -> _Stream:
    """One of several concurrent client streams, ``pause_s`` idle after each GET, after one untimed
    GET that opens its connection and a wait at ``barrier`` for the others."""
    client = clients.client(target, 1)
    rng = random.Random(seed)
    _checked_get(client, target, rng.choice(_rgw_keys(size)), size)
    barrier.wait(STREAM_START_TIMEOUT_S)
    return _timed_gets(client, target, size, seconds, rng, min_ops=MIN_OPS, pause_s=pause_s)


def _rgw_stream_process(
    target: Target, size: int, seconds: float, seed: int, clients: _Clients, barrier: Any, pause_s: float, results: Any
) -> None:
    """``_rgw_stream`` in a child process: its result, or the error's message, goes on ``results``."""
    try:
        results.put(_rgw_stream(target, size, seconds, seed, clients, barrier, pause_s))
    except (ReplayError, threading.BrokenBarrierError) as exc:
        results.put(_Stream(0.0, [], 0.0, (0, 0), (0, 0), str(exc) or type(exc).__name__))


def _get_measurement(size: int, streams: int, outcomes: list[_Stream], pause_s: float) -> Measurement:
    """A GET cell from its streams' outcomes; the host's ticks run from the first start to the last end."""
    gets = [got for outcome in outcomes for got in outcome.gets]
    return Measurement(
        name=cell_name("get", size, streams, 1),
        pattern="get",
        size=size,
        threads=streams,
        depth=1,
        ops=len(gets),
        bytes=sum(got.bytes for got in gets),
        seconds=max(outcome.wall_s for outcome in outcomes),
        latency_s=float(np.mean([got.total_s for got in gets])),
        first_byte_s=float(np.mean([got.first_byte_s for got in gets])),
        pause_s=pause_s,
        **cpu_fields(
            len(gets),
            sum(outcome.cpu_s for outcome in outcomes),
            min((outcome.host_start for outcome in outcomes), key=lambda ticks: ticks[1]),
            max((outcome.host_end for outcome in outcomes), key=lambda ticks: ticks[1]),
        ),
    )


def _rgw_single_stream(
    target: Target, seconds: float, clients: _Clients, say: Progress, pause_s: float
) -> list[Measurement]:
    """The latency and CPU fit's cells: GETs of every size in ``SIZES`` from one client, paced
    as a loader issues them (``pause_s``), in interleaved passes of about ``MIN_CELL_S`` per
    size (small to large, then large to small), so that every size spans the same moments of a
    machine whose speed drifts over seconds (docs/calibration.md)."""
    client = clients.client(target, 1)
    rng = random.Random(0)
    for size in SIZES:  # opens the connection, outside the timed phases
        _checked_get(client, target, rng.choice(_rgw_keys(size)), size)
    passes = max(1, int(seconds / (len(SIZES) * MIN_CELL_S)))
    chunk_s = seconds / (passes * len(SIZES))
    parts: dict[int, list[Measurement]] = {size: [] for size in SIZES}
    for number in range(passes):
        say(f"GET {format_size(SIZES[0])}-{format_size(SIZES[-1])}, one client stream: pass {number + 1} of {passes}")
        for size in SIZES if number % 2 == 0 else SIZES[::-1]:
            stream = _timed_gets(client, target, size, chunk_s, rng, min_ops=-(-MIN_OPS // passes), pause_s=pause_s)
            parts[size].append(_get_measurement(size, 1, [stream], pause_s))
    return [merge_measurements(parts[size]) for size in SIZES]


def _rgw_cell(
    target: Target, size: int, streams: int, seconds: float, clients: _Clients, pause_s: float = 0.0
) -> Measurement:
    """GETs of ``size`` from ``streams`` concurrent clients, ``pause_s`` idle after each. They run in forked
    processes, as DataLoader workers do: threads of one Python process would share its GIL and
    measure the client, not the endpoint. The client's CPU is that of the stream processes over
    their timed phases."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(streams)
    results = context.Queue()
    processes = [
        context.Process(
            target=_rgw_stream_process,
            args=(target, size, seconds, i, clients, barrier, pause_s, results),
            daemon=True,
        )
        for i in range(streams)
    ]
    try:
        outcomes = gather(processes, results, seconds + STREAM_START_TIMEOUT_S + clients.timeouts.worst_s)
    except queue.Empty as exc:
        codes = [process.exitcode for process in processes]
        raise CalibrationError(f"a GET process against {target.text} gave no result (exit codes {codes})") from exc
    errors = [outcome.error for outcome in outcomes if outcome.error]
    if errors:
        raise CalibrationError(f"{len(errors)} of {streams} GET streams failed; first: {errors[0]}")
    return _get_measurement(size, streams, outcomes, pause_s)


def _rgw_crowding(
    target: Target, seconds: float, clients: _Clients, say: Progress, pause_s: float
) -> list[Measurement]:
    """4 KiB GETs from each of ``CROWDING_STREAMS`` concurrent client processes, paced as the single
    stream is (``pause_s``), in alternating passes (so that both counts span the same moments, as
    ``_rgw_single_stream``'s sizes do): how the CPU per request grows with processes per core
    (``cpu_crowding_curve``) and the best small-request rate."""
    per_pass = sum(RGW_PER_CELL_S * streams + CROWDING_CHUNK_S for streams in CROWDING_STREAMS)
    passes = max(1, min(CROWDING_MAX_PASSES, int(seconds / per_pass)))
    parts: dict[int, list[Measurement]] = {streams: [] for streams in CROWDING_STREAMS}
    for number in range(passes):
        for streams in CROWDING_STREAMS if number % 2 == 0 else CROWDING_STREAMS[::-1]:
            chunk_s = max(MIN_CELL_S, seconds / passes / len(CROWDING_STREAMS) - RGW_PER_CELL_S * streams)
            say(
                f"GET {format_size(SMALL)} from {streams} client streams for {chunk_s:.1f} s, "
                f"pass {number + 1} of {passes}"
            )
            parts[streams].append(_rgw_cell(target, SMALL, streams, chunk_s, clients, pause_s))
    return [merge_measurements(parts[streams]) for streams in CROWDING_STREAMS]


def calibrate_rgw(
    target: Target, budget: Budget, say: Progress, scratch: Path, placement: Placement, pause_s: float
) -> Cells:
    """Single-stream GETs of every size (the fit's) and 4 KiB GETs from 4 and 16 processes (the crowding
    and the best request rate), all ``pause_s`` idle after each GET, then 4 MiB GETs from 4 and 8
    back to back (the aggregate bandwidth). The calibration objects live under the key prefix
    ``trainio-calibrate/`` (:mod:`.place`)."""
    concurrent = [(LARGE, 4), (LARGE, 8)]
    clients = _Clients(new_session(), placement.timeouts)
    store = S3Store(clients.client(target, 8), target.endpoint, target.bucket, CALIBRATION_PREFIX)
    sizes = {name: size for size in SIZES for name in _rgw_names(size)}
    with calibration_files(store, sizes, placement, say):
        cells = len(SIZES) + len(CROWDING_STREAMS) + len(concurrent)
        single_s = budget.per_cell(cells, RGW_PER_CELL_S) * len(SIZES)
        measurements = _rgw_single_stream(target, single_s, clients, say, pause_s)
        crowding_s = budget.per_cell(len(CROWDING_STREAMS) + len(concurrent)) * len(CROWDING_STREAMS)
        measurements += _rgw_crowding(target, crowding_s, clients, say, pause_s)
        for i, (size, streams) in enumerate(concurrent):
            seconds = budget.per_cell(len(concurrent) - i, RGW_PER_CELL_S * streams)
            say(f"GET {format_size(size)} from {streams} client streams for {seconds:.1f} s")
            measurements.append(_rgw_cell(target, size, streams, seconds, clients))
    notes = [
        f"measured with boto3 on this machine ({os.cpu_count()} CPUs), one process per stream: "
        "client CPU bounds the GET rate it can see",
        f"calibration objects under {store.root} ({'kept' if placement.keep else 'removed afterwards'})",
    ]
    return Cells(measurements, boto_version(), notes)
