"""Helper scripts of the checkout; ``scripts.ceph_dev`` is importable from its root (tests, benchmarks)."""
