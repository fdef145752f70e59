"""Drawing from what the trace observed: sample sizes, decode times, step times, counts.

The workload keeps its distributions as arrays of observed values; the simulation draws from
them without replacement, pass after pass, so that tails survive and a short simulated window is
not biased by a lucky draw.
"""

from __future__ import annotations

import math

import numpy as np

from trainio.models.plan import Plan


class Resampler:
    """Draws observed values without replacement, reshuffling after every pass, so that the mean
    of any run of draws longer than a pass is the observations' mean."""

    def __init__(self, values: np.ndarray, rng: np.random.Generator) -> None:
        self.values, self.rng = values, rng
        self._order = rng.permutation(values)
        self._next = 0

    def draw(self, n: int) -> np.ndarray:
        parts = []
        while n > 0:
            if self._next == self._order.size:
                self._order, self._next = self.rng.permutation(self.values), 0
            take = min(n, self._order.size - self._next)
            parts.append(self._order[self._next : self._next + take])
            self._next += take
            n -= take
        return np.concatenate(parts) if parts else self.values[:0]


def step_draws(plan: Plan, seed: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s observed steps, as indices: one run-long sequence of passes over the
    observations, each pass a fresh permutation, so a run as long as the captured one uses every
    observed step once (a one-off warm-up step is neither lost nor repeated)."""
    steps = plan.steps_per_epoch
    start, stop = epoch * steps, (epoch + 1) * steps
    n = plan.step_compute_s.size
    rng = np.random.default_rng([seed, 1])
    passes = [rng.permutation(n) for _ in range(stop // n + 1)]
    return np.concatenate(passes)[start:stop]


def compute_draws(plan: Plan, seed: int, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s accelerator time of each step (``step_draws``)."""
    return plan.step_compute_s[step_draws(plan, seed, epoch)]


def counts(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    """Integer counts per sample with the given mean (a fractional part becomes a coin flip)."""
    base = math.floor(mean)
    frac = mean - base
    if frac == 0:
        return np.full(n, base, dtype=np.int64)
    return base + (rng.random(n) < frac)
