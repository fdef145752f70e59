"""Models of the things a training run's I/O passes through: storage, network, cluster, formats."""
