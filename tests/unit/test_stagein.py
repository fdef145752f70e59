"""Stage-in: the copy to node-local disks against analytic limits, and time to value against training
straight from shared storage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from trainio.models.backend import BackendProfile, builtin_profile
from trainio.models.cluster import Cluster
from trainio.models.formats import parse_format
from trainio.models.stagein import CopyJob, StageInError, copy_job, stage_in
from trainio.models.workload import Workload
from trainio.replay.projection.scenario import LoadedTrace, Scenario, ScenarioError, project_loaded

GB = 1e9
RGW = (Path(__file__).parents[2] / "models" / "profiles" / "rgw.toml").read_text()


def source(**fields) -> BackendProfile:
    """A shared store whose only limits are those given."""
    return BackendProfile.unlimited(**{"name": "shared", **fields})


def disk(**fields) -> BackendProfile:
    """A node-local disk that writes at ``write_bandwidth`` and holds ``local_capacity_bytes``."""
    values = {"name": "disk", "shared": False, "client_nic_bandwidth": None, "write_bandwidth": math.inf}
    return BackendProfile.unlimited(**{**values, **fields})


def loaded(step_s: float, sample_bytes: float, samples: int = 4096, epochs: int = 2, processes: int = 4) -> LoadedTrace:
    """A captured run: fixed step time and sample size, next to no decode, 2 workers per process."""
    workload = Workload(
        samples=samples,
        batch_size=32,
        epochs=epochs,
        workers=2,
        prefetch_factor=2,
        sample_bytes=np.array([sample_bytes]),
        sample_cpu_s=np.array([1e-4]),
        step_compute_s=np.array([step_s]),
        captured_processes=processes,
    )
    host = {"cpus": 16, "memory_bytes": 64 * 2**30}
    return LoadedTrace("synthetic", workload, host, builtin_profile("local-nvme"), ())


@pytest.mark.parametrize(
    ("aggregate", "nic", "write"),
    [(10 * GB, 2 * GB, 3 * GB), (100 * GB, 2 * GB, 3 * GB), (100 * GB, 4 * GB, 3 * GB)],
)
@pytest.mark.parametrize("nodes", [1, 8])
def test_copying_the_whole_data_set_takes_its_bytes_over_the_narrowest_limit(aggregate, nic, write, nodes):
    dataset = 500 * GB
    job = CopyJob(dataset, 1000, whole_dataset=True)
    stage = stage_in(
        source(aggregate_bandwidth=aggregate),
        disk(write_bandwidth=write),
        Cluster(nodes=nodes, nic_bandwidth=nic),
        job,
    )
    # every node copies all of it: nodes x dataset bytes through min(aggregate, N x NIC, N x write)
    assert stage.seconds == pytest.approx(nodes * dataset / min(aggregate, nodes * nic, nodes * write))
    limits = {"source-bandwidth": aggregate, "nic": nodes * nic, "target-write": nodes * write}
    assert stage.bound == min(limits, key=limits.__getitem__)
    assert stage.node_bandwidth == pytest.approx(dataset / stage.seconds)


def test_copying_fixed_shards_takes_the_data_set_over_the_narrowest_limit():
    nodes, dataset, aggregate, nic, write = 8, 400 * GB, 10 * GB, 2 * GB, 3 * GB
    workload = loaded(0.01, dataset / 8000, samples=8000).workload
    cluster = Cluster(nodes=nodes, gpus_per_node=4, nic_bandwidth=nic)
    job = copy_job(workload, parse_format("files"), cluster, fixed_shards=True)
    assert (job.bytes_per_node, job.files_per_node, job.whole_dataset) == (dataset / nodes, 1000, False)
    stage = stage_in(source(aggregate_bandwidth=aggregate), disk(write_bandwidth=write), cluster, job)
    # the data set once in all: dataset bytes / min(aggregate, N x NIC, N x write)
    assert stage.seconds == pytest.approx(dataset / min(aggregate, nodes * nic, nodes * write))
    whole = copy_job(workload, parse_format("files"), cluster, fixed_shards=False)
    assert (whole.bytes_per_node, whole.files_per_node) == (dataset, 8000)
    shards = copy_job(workload, parse_format("shards:1GB"), cluster, fixed_shards=False)
    assert shards.files_per_node == 400


def test_small_files_are_copied_at_the_rate_their_latency_request_rate_and_cpu_allow():
    job = CopyJob(1000 * 100e3, 1000, whole_dataset=True)
    slow = source(read_latency_s=0.002, open_latency_s=0.001, stream_bandwidth=100e6)
    per_file = 0.001 + 0.002 + 100e3 / 100e6
    assert stage_in(slow, disk(), Cluster(), job, streams=4).seconds == pytest.approx(1000 * per_file / 4)
    assert stage_in(slow, disk(), Cluster(), job, streams=4).bound == "streams"
    iops = stage_in(source(iops=500.0), disk(), Cluster(nodes=4), job)
    assert (iops.seconds, iops.bound) == (pytest.approx(4 * 1000 / 500), "source-iops")
    cpu = stage_in(source(request_cpu_s=0.004), disk(), Cluster(cpus_per_node=2), job, streams=64)
    assert (cpu.seconds, cpu.bound) == (pytest.approx(1000 * 0.004 / 2), "node-cpu")


def test_a_data_set_over_the_local_capacity_cannot_be_staged():
    job = CopyJob(5 * GB, 10, whole_dataset=True)
    stage = stage_in(source(), disk(local_capacity_bytes=4 * GB), Cluster(), job, nodes_with_space=0.5)
    assert stage.seconds is None and not stage.fits and stage.bound == "local-capacity"
    assert stage.eligible_node_fraction == 0.0
    bigger = stage_in(source(), disk(local_capacity_bytes=4 * GB), Cluster(), job, capacity_bytes=8 * GB)
    assert bigger.fits and bigger.eligible_node_fraction == 1.0
    unknown = stage_in(source(), disk(), Cluster(), job, nodes_with_space=0.25)
    assert unknown.fits and unknown.capacity_bytes is None and unknown.eligible_node_fraction == 0.25


@pytest.mark.parametrize(
    ("src", "target", "says"),
    [
        (disk(), disk(), "from disk: it is node-local storage"),
        (source(), source(name="nfs"), "to nfs: it is shared storage"),
        (source(), disk(write_bandwidth=None), "gives no write_bandwidth"),
    ],
)
def test_a_copy_that_makes_no_sense_is_a_named_error(src, target, says):
    with pytest.raises(StageInError, match=says):
        stage_in(src, target, Cluster(), CopyJob(1.0, 1, whole_dataset=True))


def test_the_builtin_node_local_profiles_say_how_fast_they_write_and_how_much_they_hold():
    nvme, ssd = builtin_profile("local-nvme"), builtin_profile("local-ssd")
    assert (nvme.write_bandwidth, nvme.local_capacity_bytes) == (3.5e9, 3.84e12)
    assert (ssd.write_bandwidth, ssd.local_capacity_bytes) == (500e6, 1.92e12)
    assert builtin_profile("cephfs").write_bandwidth is None


# --- time to value, through the projection API -----------------------------------------------


def profile(tmp_path: Path, name: str, **values: str) -> Path:
    """A shared object store profile (rgw's keys) with ``values`` replaced."""
    lines = []
    for line in RGW.splitlines():
        key = line.split("=")[0].strip()
        lines.append(f'{key} = "{values[key]}"' if key in values else line)
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines).replace('name = "rgw"', f'name = "{name}"'))
    return path


def both(trace: LoadedTrace, nodes: int, **fields) -> tuple:
    straight, _, _ = project_loaded(trace, Scenario(nodes=nodes, **fields))
    copied, _, _ = project_loaded(trace, Scenario(nodes=nodes, stage_in="local-nvme", **fields))
    return straight, copied


def test_without_a_stage_in_the_time_to_value_is_the_time_to_train():
    straight, _, _ = project_loaded(loaded(0.05, 100e3), Scenario(nodes=2, backend="cephfs"))
    assert straight.stage_in_s == 0.0 and straight.time_to_value_s == straight.time_to_train_s
    assert (straight.local_reserved_bytes, straight.eligible_node_fraction, straight.staging) == (0.0, 1.0, None)


@pytest.mark.parametrize("nodes", [1, 2, 4, 8, 16])
def test_a_compute_bound_run_on_a_fast_shared_store_trains_sooner_from_it_at_every_node_count(nodes):
    straight, copied = both(loaded(0.1, 100e3, samples=32768, processes=2), nodes, backend="cephfs")
    assert straight.bottleneck == "compute" and copied.bottleneck == "compute"
    assert copied.stage_in_s > 0
    assert straight.time_to_value_s < copied.time_to_value_s
    assert copied.time_to_value_s == pytest.approx(copied.stage_in_s + copied.time_to_train_s)
    assert copied.backend == "cephfs" and copied.staging["target"] == "local-nvme"


@pytest.mark.parametrize("nodes", [1, 2, 4])
def test_with_a_slow_shared_store_and_a_small_data_set_copying_first_wins(tmp_path, nodes):
    slow = profile(tmp_path, "slow", get_latency="20 ms")
    straight, copied = both(loaded(0.01, 100e3, samples=2048, epochs=10), nodes, profile=slow)
    assert straight.bottleneck == "storage-latency"
    assert copied.time_to_value_s < straight.time_to_value_s
    # 16 streams, each file waits its first byte, the client's CPU, then moves at 500 MiB/s
    per_file = 0.020 + 1.2e-3 + 100e3 / (500 * 2**20)
    assert copied.stage_in_s == pytest.approx(2048 * per_file / 16)


def test_a_data_set_over_the_local_capacity_has_no_time_to_value():
    result, _, _ = project_loaded(
        loaded(0.05, 100e3), Scenario(nodes=2, backend="cephfs", stage_in="local-nvme", local_capacity_bytes=1e8)
    )
    assert result.stage_in_s is None and result.time_to_value_s is None
    assert result.staging["fits"] is False and result.eligible_node_fraction == 0.0
    assert result.local_reserved_bytes == pytest.approx(4096 * 100e3)
    assert any(note.startswith("cannot stage: 409.6 MB per node does not fit") for note in result.notes)


def test_fixed_shards_copy_a_share_and_every_node_rereads_its_own_from_the_page_cache():
    trace = loaded(0.05, 100e3)
    whole, _, _ = project_loaded(trace, Scenario(nodes=4, backend="cephfs", stage_in="local-nvme"))
    shard, _, _ = project_loaded(trace, Scenario(nodes=4, backend="cephfs", stage_in="local-nvme", stage_in_shard=True))
    assert shard.local_reserved_bytes == pytest.approx(whole.local_reserved_bytes / 4)
    assert whole.page_cache_hit_ratio == pytest.approx((0.0, 0.25))  # a random quarter of the data set
    assert shard.page_cache_hit_ratio == (0.0, 1.0)  # its own quarter, read last epoch
    assert any("whole data set" in note for note in whole.notes)


@pytest.mark.parametrize(
    ("fields", "error", "says"),
    [
        ({"stage_in": "nfs"}, StageInError, "it is shared storage"),
        ({"stage_in": "lustre"}, ScenarioError, "node-local: local-nvme, local-ssd"),
        ({"stage_in": "local-nvme", "backend": "as-captured"}, StageInError, "node-local storage"),
        ({"stage_in": "local-nvme", "nodes_with_space": 1.5}, StageInError, "fraction from 0 to 1"),
    ],
)
def test_bad_stage_in_choices_are_named_errors(fields, error, says):
    with pytest.raises(error, match=says):
        project_loaded(loaded(0.05, 100e3), Scenario(**{"backend": "cephfs", **fields}))
