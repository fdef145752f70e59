"""Gradient all-reduce over the interconnect (ring algorithm)."""

from __future__ import annotations

from typing import overload

import numpy as np
from numpy.typing import ArrayLike


class NetworkError(ValueError):
    """An all-reduce that cannot be costed (no ranks, no bandwidth)."""


def ring_allreduce_s(nbytes: float, ranks: int, bandwidth: float, latency_s: float) -> float:
    """Seconds for a ring all-reduce of ``nbytes`` over ``ranks`` ranks.

    Each rank sends and receives 2(N-1)/N of the buffer in 2(N-1) latency-bound steps
    (reduce-scatter, then all-gather). One rank has nobody to talk to.
    """
    if ranks < 1:
        raise NetworkError(f"ranks(={ranks}) must be >= 1")
    if nbytes < 0:
        raise NetworkError(f"nbytes(={nbytes}) must be >= 0")
    if not bandwidth > 0:
        raise NetworkError(f"bandwidth(={bandwidth}) must be > 0")
    if latency_s < 0:
        raise NetworkError(f"latency_s(={latency_s}) must be >= 0")
    if ranks == 1 or nbytes == 0:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency_s


@overload
def exposed_allreduce_s(compute_s: float, allreduce_s: float, overlap: bool) -> float: ...
@overload
def exposed_allreduce_s(compute_s: np.ndarray, allreduce_s: float, overlap: bool) -> np.ndarray: ...
def exposed_allreduce_s(compute_s: ArrayLike, allreduce_s: float, overlap: bool) -> float | np.ndarray:
    """The part of the all-reduce a step waits for: all of it, or what sticks out of compute
    when it overlaps the backward pass (the step then costs max(compute, allreduce)).
    ``compute_s`` may be one step's compute time (a float comes back) or an array of them."""
    compute = np.asarray(compute_s, dtype=float)
    exposed = np.maximum(0.0, allreduce_s - compute) if overlap else np.full(compute.shape, allreduce_s)
    return exposed if exposed.ndim else float(exposed)
