"""Client page cache: which fraction of an epoch's reads a node serves from its own memory.

DistributedSampler reshuffles the data set across ranks every epoch, so a node rereads a sample
only by chance; without shuffling it rereads its own share, which fits in memory or not at all.
The cache is LRU over samples of equal size, computed where that has a closed form and simulated
on a scaled-down data set where it does not (docs/model.md, "Page cache").
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

MODEL_SAMPLES = 20_000
MODEL_READS_PER_EPOCH = 2_000
_STATIONARY_EPOCHS = 3


def hit_ratios(
    epochs: int,
    dataset_bytes: float,
    nodes: int,
    cache_bytes: float,
    *,
    shuffle: bool,
    enabled: bool = True,
    seed: int = 0,
) -> list[float]:
    """Fraction of each epoch's sample reads served from the node's page cache."""
    if not enabled or dataset_bytes <= 0:
        return [0.0] * epochs
    capacity = cache_bytes / dataset_bytes  # fraction of the data set one node can hold
    share = 1.0 / nodes  # fraction of the data set a node reads per epoch
    if not shuffle:
        return [0.0] + [1.0 if share <= capacity else 0.0] * (epochs - 1)
    if capacity >= 1.0:
        return [1.0 - (1.0 - share) ** epoch for epoch in range(epochs)]
    return _simulated_lru(epochs, capacity, nodes, seed)


def _simulated_lru(epochs: int, capacity: float, nodes: int, seed: int) -> list[float]:
    samples = max(MODEL_SAMPLES, MODEL_READS_PER_EPOCH * nodes)
    slots = int(capacity * samples)
    reads = samples // nodes
    rng = np.random.default_rng(seed)
    cache: OrderedDict[int, None] = OrderedDict()
    ratios: list[float] = []
    stationary: list[float] = []  # ratios of epochs that began with a full cache
    while len(ratios) < epochs:
        if len(stationary) == _STATIONARY_EPOCHS:
            return ratios + [float(np.mean(stationary))] * (epochs - len(ratios))
        began_full = len(cache) >= slots
        hits = 0
        for sample in rng.choice(samples, reads, replace=False).tolist():
            if sample in cache:
                hits += 1
                cache.move_to_end(sample)
            elif slots:
                cache[sample] = None
                if len(cache) > slots:
                    cache.popitem(last=False)
        ratios.append(hits / reads)
        if began_full:
            stationary.append(ratios[-1])
    return ratios
