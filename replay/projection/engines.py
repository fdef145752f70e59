"""Where a sweep's configurations run: this machine's cores (a process pool) or a Ray cluster.

An engine takes the trace read once (``LoadedTrace``) and a list of configurations and yields
``(index, fields)`` as each finishes, in any order. The trace goes to the workers once: the pool
hands it to each worker process when it starts, Ray puts it in its object store once and every
task reads it from there. ``evaluate`` is the unit of work: one projection, its wall time, and the
error that stopped it if any, so that one failed configuration never stops the others.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Protocol

from trainio.replay.projection.grid import scenario
from trainio.replay.projection.scenario import LoadedTrace, project_loaded
from trainio.replay.projection.sweepfile import flatten

RAY_CONNECT_TIMEOUT_S = 10.0
"""How long to wait for a Ray cluster's address to answer before giving up."""


class EngineError(Exception):
    """The engine itself failed (not one configuration): a dead worker pool, no Ray."""


class RayUnavailableError(EngineError):
    """Ray is not installed, or the cluster at the given address does not answer."""


def evaluate(loaded: LoadedTrace, config: dict) -> dict:
    """One configuration's what-if keys (flattened), ``wall_s`` and ``error`` (None when it ran)."""
    started = time.perf_counter()
    try:
        result, workload, _ = project_loaded(loaded, scenario(config))
    except Exception as exc:  # noqa: BLE001 - a sweep records any configuration's failure and goes on
        return {"wall_s": time.perf_counter() - started, "error": f"{type(exc).__name__}: {exc}"}
    fields = flatten(result.to_dict())
    fields["captured_duration_s"] = workload.captured_duration_s
    return {**fields, "wall_s": time.perf_counter() - started, "error": None}


class Engine(Protocol):
    name: str
    workers: int

    def run(self, loaded: LoadedTrace, configs: list[dict]) -> Iterator[tuple[int, dict]]: ...

    def close(self) -> None: ...


# --- this machine ---------------------------------------------------------------------------

_held: LoadedTrace | None = None
"""The trace in a pool worker process, set once by ``_hold`` when the worker starts."""


def _hold(loaded: LoadedTrace) -> None:
    global _held
    _held = loaded
    # Ctrl-C goes to the whole process group; the parent alone decides what to keep and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _evaluate_held(config: dict) -> dict:
    assert _held is not None, "worker started without its trace"
    return evaluate(_held, config)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalPool:
    """``workers`` processes on this machine (1: in this process, no pool)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or usable_cores()

    def run(self, loaded: LoadedTrace, configs: list[dict]) -> Iterator[tuple[int, dict]]:
        if self.workers == 1 or len(configs) <= 1:
            for index, config in enumerate(configs):
                yield index, evaluate(loaded, config)
            return
        context = multiprocessing.get_context("spawn")
        others = set(multiprocessing.active_children())
        pool = ProcessPoolExecutor(
            min(self.workers, len(configs)), mp_context=context, initializer=_hold, initargs=(loaded,)
        )
        pending: dict[Future, int] = {pool.submit(_evaluate_held, config): i for i, config in enumerate(configs)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        yield index, future.result()
                    except BrokenProcessPool:
                        raise EngineError(
                            "a worker process died (out of memory?); what finished is kept, rerun to retry the rest"
                        ) from None
        finally:
            if pending:  # interrupted: stop our workers now rather than after their running tasks
                pool.shutdown(wait=False, cancel_futures=True)
                for child in set(multiprocessing.active_children()) - others:
                    child.terminate()
            pool.shutdown(wait=True)

    def close(self) -> None:
        pass


# --- Ray --------------------------------------------------------------------------------------


def _ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("--engine ray needs Ray: pip install 'trainio[ray]'") from None
    return ray


def _ray_address(address: str) -> tuple[str, int] | None:
    """(host, port) to check before connecting, or None when Ray finds no cluster to name one."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            # Where `ray start` records the running cluster (see ray.init's docstring).
            current = Path("/tmp/ray/ray_current_cluster")
            address = current.read_text().strip() if current.is_file() else ""
        if not address:
            return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailableError(f"--address {address!r} is not HOST:PORT or auto")
    return host, int(port)


def _check_reachable(address: str) -> None:
    """Fail within ``RAY_CONNECT_TIMEOUT_S`` when nothing answers (Ray itself retries for minutes)."""
    target = _ray_address(address)
    if target is None:
        raise RayUnavailableError(
            f"--address {address}: no running Ray cluster found (start one with `ray start --head`, or set RAY_ADDRESS)"
        )
    try:
        with socket.create_connection(target, timeout=RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise RayUnavailableError(
            f"cannot reach Ray at {target[0]}:{target[1]} (--address {address}): {reason}"
        ) from None


def _evaluate_ray(loaded: LoadedTrace, config: dict) -> dict:
    return evaluate(loaded, config)


class RayCluster:
    """Tasks on a Ray cluster (``address``: HOST:PORT, ray://HOST:PORT or auto), or on a Ray it
    starts on this machine when ``address`` is None. ``workers`` bounds the tasks in flight
    (default: the cluster's CPUs)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        ray = self._ray = _ray()
        if address is not None:
            _check_reachable(address)
        try:
            if address is None:
                ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
            else:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except ConnectionError as exc:
            raise RayUnavailableError(f"cannot connect to Ray at {address}: {exc}") from None
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, loaded: LoadedTrace, configs: list[dict]) -> Iterator[tuple[int, dict]]:
        ray = self._ray
        shipped = ray.put(loaded)  # once; every task reads it from the object store
        task = ray.remote(num_cpus=1, max_retries=1)(_evaluate_ray)
        queue = list(enumerate(configs))[::-1]
        pending: dict = {}
        window = 2 * self.workers  # enough to keep every CPU busy; a Ctrl-C cancels few
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    index, config = queue.pop()
                    pending[task.remote(shipped, config)] = index
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        yield index, ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        yield index, {"wall_s": None, "error": f"ray task failed: {type(exc).__name__}: {reason}"}
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        self._ray.shutdown()
