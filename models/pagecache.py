"""Client page cache: which fraction of an epoch's reads a node serves from its own memory.

DistributedSampler reshuffles the whole data set across ranks every epoch (``set_epoch``), so
with shuffling a node reads a different random 1/N of the data set each epoch, and a read hits
only if the node happens to hold that sample from an earlier epoch. Without shuffling a node
rereads the same share every epoch: all of it hits if it fits in memory, none of it if it does
not (a looping scan through an LRU cache smaller than the loop evicts every page before reuse).
This is why MLPerf Storage requires a data set of at least 5x the client memory.

With shuffling the cache is modelled as LRU over samples of equal size:
  * if the whole data set fits, nothing is evicted and the hit ratio of epoch k is exactly
    1 - (1 - 1/N)^k (the fraction of the data set the node has seen);
  * otherwise an LRU cache is simulated on a scaled-down data set of ``MODEL_SAMPLES`` samples
    (at least ``MODEL_READS_PER_EPOCH`` reads per epoch per node) until the cache has been
    full for a few epochs, after which the hit ratio is stationary and its mean is used.
    A cache holding half the data set hits ~15% on one node, not 50%: each epoch's new order
    evicts most cached samples before they are read again.
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
