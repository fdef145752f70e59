"""The simulator against analytic limits, and the fast mode against the exact one."""

import json

import numpy as np
import pytest

from trainio.models.backend import BackendProfile, builtin_profile
from trainio.models.cluster import Cluster
from trainio.models.formats import parse_format
from trainio.models.plan import PlanError
from trainio.models.workload import Workload
from trainio.replay.projection.whatif import BOTTLENECKS, project

FILES = parse_format("files")
RNG = np.random.default_rng(7)
SAMPLE_BYTES = RNG.lognormal(np.log(100e3), 0.4, 2000)
SAMPLE_CPU = RNG.lognormal(np.log(2e-3), 0.3, 2000)
STEP = RNG.normal(0.05, 0.005, 200)


def backend(**fields) -> BackendProfile:
    """A POSIX backend with no limits at all, unless given."""
    return BackendProfile.unlimited(**{"name": "test", **fields})


def workload(**fields) -> Workload:
    values = {
        "samples": 2048,
        "batch_size": 32,
        "epochs": 2,
        "workers": 4,
        "prefetch_factor": 2,
        "sample_bytes": np.array([100e3]),
        "sample_cpu_s": np.array([0.0]),
        "step_compute_s": np.array([0.01]),
    }
    return Workload(**{**values, **fields})


def varied(**fields) -> Workload:
    """Sizes, decode times and step times drawn from skewed distributions, as traces have them."""
    values = {"samples": 4096, "sample_bytes": SAMPLE_BYTES, "sample_cpu_s": SAMPLE_CPU, "step_compute_s": STEP}
    return workload(**{**values, **fields})


both_modes = pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])


@both_modes
def test_with_infinite_storage_time_is_steps_times_step_time(exact):
    result = project(workload(sample_cpu_s=np.array([1e-5])), backend(), Cluster(), FILES, exact=exact)
    assert result.time_to_train_s == pytest.approx(2 * 64 * 0.01, rel=0.01)
    assert result.bottleneck == "compute"
    assert result.accelerator_utilization == pytest.approx(1.0, abs=0.01)


@both_modes
def test_a_storage_bound_job_takes_its_bytes_over_the_shared_bandwidth(exact):
    result = project(
        workload(step_compute_s=np.array([0.001])),
        backend(aggregate_bandwidth=100e6),
        Cluster(nodes=2, gpus_per_node=2),
        FILES,
        exact=exact,
    )
    assert result.time_to_train_s == pytest.approx(2 * 2048 * 100e3 / 100e6, rel=0.02)
    assert result.bottleneck == "storage-bandwidth"
    assert result.read_MBps == pytest.approx(100, rel=0.02)


@both_modes
def test_a_preload_job_takes_the_preload_then_the_compute(exact):
    result = project(workload(), backend(aggregate_bandwidth=100e6), Cluster(), parse_format("preload"), exact=exact)
    preload = 2048 * 100e3 / 100e6
    assert result.preload_s == pytest.approx(preload, rel=0.01)
    assert result.time_to_train_s == pytest.approx(preload + 2 * 64 * 0.01, rel=0.01)
    assert result.bottleneck == "preload"


@both_modes
def test_with_infinite_storage_and_no_allreduce_doubling_nodes_halves_the_time(exact):
    one = project(workload(), backend(), Cluster(nodes=1, gpus_per_node=2), FILES, exact=exact)
    two = project(workload(), backend(), Cluster(nodes=2, gpus_per_node=2), FILES, exact=exact)
    assert one.time_to_train_s / two.time_to_train_s == pytest.approx(2.0, rel=0.01)


@both_modes
def test_latency_bound_small_files_take_samples_times_latency_over_workers(exact):
    result = project(
        workload(step_compute_s=np.array([1e-4]), epochs=1),
        backend(read_latency_s=1e-3),
        Cluster(),
        FILES,
        exact=exact,
    )
    assert result.time_to_train_s == pytest.approx(2048 * 1e-3 / 4, rel=0.02)
    assert result.bottleneck == "storage-latency"


@both_modes
def test_an_iops_limit_caps_the_request_rate(exact):
    result = project(
        workload(step_compute_s=np.array([1e-4]), workers=8, epochs=1),
        backend(iops=2000, read_latency_s=1e-4),
        Cluster(),
        FILES,
        exact=exact,
    )
    assert result.time_to_train_s == pytest.approx(2048 / 2000, rel=0.02)
    assert result.bottleneck == "storage-iops"


@both_modes
def test_storage_cpu_per_request_competes_with_decoding_for_the_nodes_cores(exact):
    """8 workers on 2 cores: each sample takes 1 ms of decode and one GET of 3 ms of client and
    server CPU, so the cores, not the 0.1 ms latency, set the pace: samples x 4 ms / 2 cores."""
    job = workload(step_compute_s=np.array([1e-4]), sample_cpu_s=np.array([1e-3]), workers=8, epochs=1)
    get = {"access": "object", "get_latency_s": 1e-4, "open_latency_s": None, "stat_latency_s": None}
    cluster = Cluster(cpus_per_node=2)
    busy = project(job, backend(**get, request_cpu_s=2e-3, colocated_cpu_s=1e-3), cluster, FILES, exact=exact)
    assert busy.time_to_train_s == pytest.approx(2048 * 4e-3 / 2, rel=0.03)
    assert busy.bottleneck == "storage-cpu"
    assert busy.bottleneck_evidence["storage_cpu_share"] == pytest.approx(0.75, rel=0.01)
    idle = project(job, backend(**get), cluster, FILES, exact=exact)
    assert idle.time_to_train_s == pytest.approx(2048 * 1e-3 / 2, rel=0.03)
    assert idle.bottleneck == "cpu-preprocessing"


@both_modes
def test_crowded_cores_raise_the_cpu_per_request_by_the_profiles_crowding(exact):
    """The case above with the profile's CPU measured at 1 process per core and growing as its
    square root: 8 workers on 2 cores (4 per core) double it, 3 ms -> 6 ms per GET."""
    job = workload(step_compute_s=np.array([1e-4]), sample_cpu_s=np.array([1e-3]), workers=8, epochs=1)
    get = {"access": "object", "get_latency_s": 1e-4, "open_latency_s": None, "stat_latency_s": None}
    crowded = backend(**get, request_cpu_s=2e-3, colocated_cpu_s=1e-3, cpu_crowding=0.5, cpu_crowding_base=1.0)
    result = project(job, crowded, Cluster(cpus_per_node=2), FILES, exact=exact)
    assert result.time_to_train_s == pytest.approx(2048 * 7e-3 / 2, rel=0.03)
    assert "CPU per request x2.00 (6.00 ms): 4 client processes per core" in " ".join(result.notes)
    # as many workers as cores: no more crowded than the profile's measurement, its CPU as written
    two = workload(step_compute_s=np.array([1e-4]), sample_cpu_s=np.array([1e-3]), workers=2, epochs=1)
    result = project(two, crowded, Cluster(cpus_per_node=2), FILES, exact=exact)
    assert result.time_to_train_s == pytest.approx(2048 * 4e-3 / 2, rel=0.03)
    assert not any("CPU per request" in note for note in result.notes)


@both_modes
def test_a_file_systems_cpu_per_open_is_charged_on_the_cores(exact):
    """8 workers on 2 cores, 1 ms of decode and an open costing 1 ms of client CPU and 1 ms of
    metadata-server CPU per sample: the cores bound it at samples x 3 ms / 2."""
    job = workload(step_compute_s=np.array([1e-4]), sample_cpu_s=np.array([1e-3]), workers=8, epochs=1)
    fs = backend(open_latency_s=1e-4, open_cpu_s=1e-3, colocated_open_cpu_s=1e-3)
    result = project(job, fs, Cluster(cpus_per_node=2), FILES, exact=exact)
    assert result.time_to_train_s == pytest.approx(2048 * 3e-3 / 2, rel=0.03)
    assert result.bottleneck == "storage-cpu"


def test_an_allreduce_longer_than_compute_makes_the_job_network_bound():
    result = project(
        workload(model_bytes=1e9),
        backend(),
        Cluster(nodes=4, gpus_per_node=1, interconnect_bandwidth=10e9),
        FILES,
    )
    allreduce = 2 * 3 / 4 * 1e9 / 10e9 + 6 * 5e-6
    assert result.time_to_train_s == pytest.approx(2 * 16 * allreduce, rel=0.01)  # overlap hides compute
    assert result.bottleneck == "network"


AGREEMENT = {
    "compute-bound": (varied(), backend(read_latency_s=2e-4), Cluster(gpus_per_node=2, cpus_per_node=8), "files"),
    "bandwidth-bound": (
        varied(),
        backend(aggregate_bandwidth=120e6, read_latency_s=2e-4),
        Cluster(gpus_per_node=2, cpus_per_node=8),
        "files",
    ),
    "latency-bound": (
        varied(),
        backend(read_latency_s=3e-3, open_latency_s=1e-3),
        Cluster(gpus_per_node=2, cpus_per_node=8),
        "files",
    ),
    "multi-node-shared": (
        varied(),
        backend(aggregate_bandwidth=300e6, stream_bandwidth=200e6, client_nic_bandwidth=150e6, read_latency_s=5e-4),
        Cluster(nodes=4, gpus_per_node=2, cpus_per_node=8),
        "files",
    ),
    "cpu-bound": (varied(workers=8), backend(read_latency_s=1e-4), Cluster(gpus_per_node=2, cpus_per_node=2), "files"),
    # As many workers as cores, decoding about as long as a step: fast mode used to be 20% slow here.
    "cpu-knee": (
        varied(workers=2, step_compute_s=STEP * 0.66),
        backend(read_latency_s=1e-4),
        Cluster(gpus_per_node=1, cpus_per_node=2),
        "files",
    ),
    "storage-cpu-bound": (
        varied(workers=4),
        backend(read_latency_s=5e-4, request_cpu_s=2e-3, colocated_cpu_s=1e-3),
        Cluster(gpus_per_node=2, cpus_per_node=2),
        "files",
    ),
    "loading-in-the-training-loop": (
        varied(workers=0),
        backend(read_latency_s=1e-3, aggregate_bandwidth=300e6),
        Cluster(gpus_per_node=2, cpus_per_node=8),
        "files",
    ),
    "shards": (
        varied(),
        backend(aggregate_bandwidth=150e6, read_latency_s=1e-3),
        Cluster(nodes=2, gpus_per_node=2, cpus_per_node=8),
        "shards:16MiB",
    ),
    "nfs-page-cache": (
        varied(epochs=3),
        builtin_profile("nfs"),
        Cluster(nodes=2, gpus_per_node=2, cpus_per_node=8, node_memory_bytes=200e6),
        "files",
    ),
}


@pytest.mark.parametrize("case", AGREEMENT)
def test_fast_mode_agrees_with_exact_mode_within_two_percent(case):
    job, storage, cluster, fmt = AGREEMENT[case]
    fast = project(job, storage, cluster, parse_format(fmt))
    exact = project(job, storage, cluster, parse_format(fmt), exact=True)
    assert fast.mode == "fast" and exact.mode == "exact"
    assert fast.time_to_train_s == pytest.approx(exact.time_to_train_s, rel=0.02)
    assert fast.read_MBps == pytest.approx(exact.read_MBps, rel=0.03)
    assert fast.bottleneck == exact.bottleneck


def test_fast_mode_skips_the_middle_of_long_epochs_and_still_agrees_with_exact():
    job = varied(samples=40_000, epochs=1, workers=4, step_compute_s=np.array([0.02]))
    storage = backend(aggregate_bandwidth=120e6)
    for fmt in ("files", "shards:64MiB"):
        fast = project(job, storage, Cluster(cpus_per_node=8), parse_format(fmt))
        exact = project(job, storage, Cluster(cpus_per_node=8), parse_format(fmt), exact=True)
        assert fast.simulated_steps < 1250  # some of the epoch's 1250 steps were skipped
        assert fast.time_to_train_s == pytest.approx(exact.time_to_train_s, rel=0.02)


def test_the_imagenet_sized_case_runs_in_fast_mode_in_seconds():
    job = Workload(
        samples=1_281_167,
        batch_size=256,
        epochs=90,
        workers=8,
        prefetch_factor=2,
        sample_bytes=SAMPLE_BYTES * 1.1,
        sample_cpu_s=SAMPLE_CPU,
        step_compute_s=STEP * 2,
        model_bytes=100_000_000,
    )
    cluster = Cluster(nodes=64, gpus_per_node=8, cpus_per_node=96, node_memory_bytes=512 * 2**30)
    result = project(job, builtin_profile("nfs"), cluster, FILES)
    assert result.sim_wall_s < 30
    assert len(result.per_epoch_s) == 90
    # the page cache fills epoch by epoch: later epochs read less and are faster
    assert result.per_epoch_s[-1] < result.per_epoch_s[0]
    assert result.page_cache_hit_ratio[1] == pytest.approx(1 / 64)


def test_same_seed_same_answer_and_the_seed_matters():
    job, storage, cluster, fmt = AGREEMENT["bandwidth-bound"]
    first = project(job, storage, cluster, parse_format(fmt), seed=3)
    again = project(job, storage, cluster, parse_format(fmt), seed=3)
    other = project(job, storage, cluster, parse_format(fmt), seed=4)
    assert first.time_to_train_s == again.time_to_train_s
    assert first.time_to_train_s != other.time_to_train_s


def test_projecting_onto_shards_trades_opens_for_large_requests_but_reads_the_same_bytes():
    job = varied(epochs=1, files_per_sample=1.0, reads_per_sample=2.0, stats_per_sample=1.0)
    storage = backend(open_latency_s=1e-4, read_latency_s=1e-4)
    files = project(job, storage, Cluster(), FILES)
    shards = project(job, storage, Cluster(), parse_format("shards:64MiB"))
    seconds = files.time_to_train_s
    assert files.read_ops_per_s * seconds == pytest.approx(2 * 4096)
    assert files.metadata_ops_per_s * seconds == pytest.approx(2 * 4096)
    assert shards.read_ops_per_s * shards.time_to_train_s < 150  # ~430 MB in 4 MiB requests
    assert shards.read_MBps * shards.time_to_train_s == pytest.approx(files.read_MBps * seconds, rel=1e-3)


def test_a_run_that_preloaded_its_data_set_reads_samples_when_projected_onto_files():
    job = workload(preload_bytes=2048 * 100e3, preload_cpu_s=1.0, dataset_preloaded=True)
    storage = backend(aggregate_bandwidth=100e6)
    onto_files = project(job, storage, Cluster(), FILES)
    assert onto_files.preload_s == 0.0
    onto_two_nodes = project(job, storage, Cluster(nodes=2), parse_format("preload"))
    # each node preloads its half of the data set and decodes half of what the capture decoded
    assert onto_two_nodes.preload_s == pytest.approx(1024 * 100e3 / 50e6 + 0.5, rel=0.01)


def test_a_preload_larger_than_node_memory_is_noted():
    result = project(workload(), backend(), Cluster(node_memory_bytes=100e6), parse_format("preload"))
    assert "more than node_memory_bytes" in result.notes[0]


def test_an_object_store_issues_one_get_per_file_and_no_opens():
    job = varied(epochs=1, reads_per_sample=3.0)
    result = project(job, builtin_profile("rgw"), Cluster(), FILES)
    assert result.read_ops_per_s * result.time_to_train_s == pytest.approx(4096)
    assert result.metadata_ops_per_s == 0


def test_the_result_has_the_documented_keys_and_is_json():
    result = project(varied(epochs=1), builtin_profile("s3"), Cluster(nodes=2), FILES).to_dict()
    for key in (
        "time_to_train_s",
        "per_epoch_s",
        "accelerator_utilization",
        "stall_fraction",
        "read_MBps",
        "read_ops_per_s",
        "backend_capacity",
        "bottleneck",
        "bottleneck_evidence",
        "nodes",
        "gpus_per_node",
        "backend",
        "format",
        "mode",
        "simulated_steps",
        "sim_wall_s",
        "preload_s",
    ):
        assert key in result
    assert result["bottleneck"] in BOTTLENECKS
    # S3's bandwidth is unlimited, so two nodes get what their 100 Gbit/s links carry
    assert result["backend_capacity"]["aggregate_MBps"] == pytest.approx(25_000)
    assert result["backend_capacity"]["iops"] == 5500
    assert project(varied(epochs=1), backend(), Cluster(), FILES).to_dict()["backend_capacity"]["iops"] is None
    json.dumps(result, allow_nan=False)


def test_a_batch_larger_than_a_ranks_share_with_drop_last_is_refused():
    with pytest.raises(PlanError, match=r"batch_size\(=32\).*16 samples.*128 ranks"):
        project(workload(drop_last=True), backend(), Cluster(nodes=16, gpus_per_node=8), FILES)
