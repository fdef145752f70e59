import pytest

from trainio.models.cluster import Cluster, ClusterError
from trainio.models.network import NetworkError, exposed_allreduce_s, ring_allreduce_s


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": 0}, r"nodes\(=0\) must be an integer >= 1"),
        ({"gpus_per_node": 2.5}, r"gpus_per_node\(=2.5\)"),
        ({"cpus_per_node": -1}, r"cpus_per_node\(=-1\)"),
        ({"nic_bandwidth": 0.0}, r"nic_bandwidth\(=0.0\) must be > 0"),
        ({"node_memory_bytes": -1}, r"node_memory_bytes\(=-1\) must be >= 0"),
    ],
)
def test_impossible_clusters_are_refused_with_the_bad_value(fields, message):
    with pytest.raises(ClusterError, match=message):
        Cluster(**fields)


def test_distributed_sampler_gives_every_rank_the_padded_share():
    cluster = Cluster(nodes=64, gpus_per_node=8)
    assert cluster.world_size == 512
    assert cluster.samples_per_rank(1_281_167) == 2503  # ceil(1281167 / 512)
    assert Cluster(nodes=2, gpus_per_node=2).samples_per_rank(4096) == 1024


def test_ring_allreduce_costs_two_n_minus_one_over_n_of_the_buffer_plus_latency_steps():
    # 8 ranks, 100 MB at 10 GB/s, 5 us per step: 2*7/8 * 0.01 s + 14 * 5 us
    assert ring_allreduce_s(100e6, 8, 10e9, 5e-6) == pytest.approx(0.0175 + 70e-6)


def test_one_rank_or_nothing_to_reduce_costs_nothing():
    assert ring_allreduce_s(100e6, 1, 10e9, 5e-6) == 0.0
    assert ring_allreduce_s(0, 8, 10e9, 5e-6) == 0.0


def test_overlapped_allreduce_only_shows_beyond_compute():
    assert exposed_allreduce_s(0.10, 0.04, overlap=True) == 0.0
    assert exposed_allreduce_s(0.10, 0.15, overlap=True) == pytest.approx(0.05)
    assert exposed_allreduce_s(0.10, 0.04, overlap=False) == 0.04


def test_allreduce_refuses_zero_bandwidth():
    with pytest.raises(NetworkError, match=r"bandwidth\(=0\) must be > 0"):
        ring_allreduce_s(1e6, 4, 0, 0.0)
