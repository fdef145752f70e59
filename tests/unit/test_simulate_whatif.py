"""Naming the bottleneck from the evidence, and the table of built-in backends."""

import math

import pytest

from trainio.replay.projection.backends_table import backend_rows
from trainio.replay.projection.whatif import BOTTLENECKS, classify

IDLE_LOADERS = {"metadata": 0.0, "latency": 0.0, "queue": 0.0, "transfer": 0.0, "cpu": 0.0, "cpu_wait": 0.0}


def evidence(**fields):
    values = {
        "stall_fraction": 0.5,
        "compute_fraction": 0.5,
        "network_fraction": 0.0,
        "preload_fraction": 0.0,
        "preload_share_of_stall": 0.0,
        "loop_overhead_fraction": 0.0,
        "step_cpu_fraction": 0.0,
        "host_cpu_wait_fraction": 0.0,
        "bandwidth_utilization": 0.1,
        "iops_utilization": 0.1,
        "cpu_utilization": 0.1,
        "storage_cpu_share": 0.0,
        "loader_time_share": IDLE_LOADERS,
    }
    return {**values, **fields}


def shares(**fields):
    return {**IDLE_LOADERS, **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"stall_fraction": 0.03, "compute_fraction": 0.97}, "compute"),
        # Stall that only the loop's own overheads and a small preload explain is still compute-bound.
        (
            {
                "stall_fraction": 0.12,
                "compute_fraction": 0.88,
                "loop_overhead_fraction": 0.07,
                "preload_fraction": 0.03,
                "preload_share_of_stall": 0.25,
            },
            "compute",
        ),
        (
            {
                "stall_fraction": 0.12,
                "compute_fraction": 0.88,
                "loop_overhead_fraction": 0.02,
                "loader_time_share": shares(latency=0.9, cpu=0.1),
            },
            "storage-latency",
        ),
        ({"stall_fraction": 0.02, "compute_fraction": 0.40, "network_fraction": 0.58}, "network"),
        ({"stall_fraction": 0.3, "compute_fraction": 0.3, "network_fraction": 0.4}, "network"),
        ({"preload_share_of_stall": 0.7, "bandwidth_utilization": 0.99}, "preload"),
        ({"bandwidth_utilization": 0.97}, "storage-bandwidth"),
        ({"iops_utilization": 0.9, "bandwidth_utilization": 0.5}, "storage-iops"),
        ({"cpu_utilization": 0.95}, "cpu-preprocessing"),
        ({"cpu_utilization": 0.95, "storage_cpu_share": 0.6}, "storage-cpu"),
        ({"loader_time_share": shares(cpu=0.7, latency=0.3), "storage_cpu_share": 0.55}, "storage-cpu"),
        ({"loader_time_share": shares(latency=0.5, metadata=0.2, cpu=0.3)}, "storage-latency"),
        ({"loader_time_share": shares(transfer=0.6, cpu=0.4)}, "storage-bandwidth"),
        ({"loader_time_share": shares(cpu=0.5, cpu_wait=0.1, latency=0.4)}, "cpu-preprocessing"),
        ({"loader_time_share": shares(queue=0.7, latency=0.3)}, "storage-iops"),
    ],
)
def test_the_bottleneck_is_named_from_the_evidence(fields, expected):
    assert classify(evidence(**fields)) == expected
    assert expected in BOTTLENECKS


def test_backend_rows_cover_every_builtin_profile_with_its_source():
    rows = {row["name"]: row for row in backend_rows()}
    assert set(rows) == {"cephfs", "local-nvme", "local-ssd", "nfs", "rbd", "rgw", "s3"}
    assert rows["rgw"]["source"].startswith("measured here")
    assert rows["rgw"]["request_latency_ms"] == pytest.approx(1.3)
    assert rows["rgw"]["request_cpu_ms"] == pytest.approx(1.2)  # boto3's CPU per GET, on the node's cores
    assert rows["s3"]["open_ms"] is None  # no opens on an object store
    assert rows["s3"]["aggregate_MBps"] == math.inf
    assert rows["local-nvme"]["client_MBps"] is None  # node-local: no client link
    assert not rows["local-nvme"]["shared"]
    assert (rows["local-nvme"]["write_MBps"], rows["local-nvme"]["local_capacity_GB"]) == (3500, 3840)
    assert rows["cephfs"]["write_MBps"] is None and rows["cephfs"]["local_capacity_GB"] is None
