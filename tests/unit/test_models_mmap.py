"""Memory-mapped data sets in the model (issue 14): a sample's mapped bytes arrive as page faults, each
reading a readahead window from the backend, and the node's page cache keeps the windows for every
process of the node."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.synthetic import small_workload
from trainio.models.backend import BackendProfile, builtin_profile
from trainio.models.cluster import Cluster
from trainio.models.formats import parse_format
from trainio.models.plan import READAHEAD_BYTES, PlanError, make_plan
from trainio.models.workload import Workload, WorkloadError
from trainio.replay.projection.whatif import project

FILES = parse_format("files")
ROW = 32 << 10


def mapped(**fields) -> Workload:
    """4,096 rows of 32 KiB in one mapped file (128 MiB), read in random order by 2 workers."""
    values = {"sample_bytes": np.array([float(ROW)]), "files_per_sample": 0.0, "reads_per_sample": 0.0}
    return small_workload(**{**values, "access": "mmap", **fields})


both_modes = pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])


@both_modes
def test_mapped_bytes_on_remote_storage_project_slower_than_on_local_storage(exact):
    job = mapped()
    local = project(job, builtin_profile("local-nvme"), Cluster(), FILES, exact=exact)
    remote = project(job, builtin_profile("cephfs"), Cluster(), FILES, exact=exact)
    assert remote.time_to_train_s > 1.05 * local.time_to_train_s
    assert remote.read_MBps * remote.time_to_train_s == pytest.approx(local.read_MBps * local.time_to_train_s, rel=0.1)


@both_modes
def test_more_readahead_means_fewer_requests_for_the_same_bytes(exact):
    small = project(mapped(fault_bytes=128 << 10), builtin_profile("cephfs"), Cluster(), FILES, exact=exact)
    large = project(mapped(fault_bytes=1 << 20), builtin_profile("cephfs"), Cluster(), FILES, exact=exact)
    small_ops = small.read_ops_per_s * small.time_to_train_s
    large_ops = large.read_ops_per_s * large.time_to_train_s
    # a random pass over the file faults in each window once: the file over the window (exact mode
    # draws each sample's fault, so that its count varies by about its square root)
    assert small_ops == pytest.approx(128 * 2**20 / (128 << 10), rel=0.1 if exact else 0.02)
    assert large_ops == pytest.approx(128 * 2**20 / (1 << 20), rel=0.25 if exact else 0.02)
    assert small.read_MBps * small.time_to_train_s == pytest.approx(
        large.read_MBps * large.time_to_train_s, rel=0.25 if exact else 0.02
    )
    assert large.time_to_train_s < small.time_to_train_s


def test_a_random_pass_faults_early_while_windows_are_cold_a_sequential_one_evenly():
    storage = BackendProfile.unlimited(name="t")
    random = make_plan(mapped(fault_bytes=8 << 20), storage, Cluster(), FILES)
    faults = random.mapped_faults(0, 4096)
    assert faults[0] == pytest.approx(1.0)  # 32 KiB rows in 8 MiB windows: the first row faults
    assert faults[:300].sum() > 0.9 * faults.sum()  # the 16 windows are all read within 300 rows
    assert faults.sum() == pytest.approx(16, rel=0.05)
    in_order = make_plan(mapped(fault_bytes=8 << 20, shuffle=False), storage, Cluster(), FILES)
    even = in_order.mapped_faults(0, 4096)
    assert np.all(even == even[0]) and even.sum() == pytest.approx(16)


def test_the_readahead_defaults_to_the_kernels_when_the_trace_did_not_measure_it():
    plan = make_plan(mapped(), BackendProfile.unlimited(name="t"), Cluster(), FILES)
    assert plan.fault_bytes == READAHEAD_BYTES == 128 << 10
    assert plan.opens_per_sample == 0 and plan.stats_per_sample == 0


def test_mapped_pages_go_through_the_page_cache_even_where_reads_would_not():
    plan = make_plan(mapped(epochs=2), builtin_profile("cephfs").unlimited(name="direct"), Cluster(), FILES)
    assert plan.hit_ratios == (0.0, 1.0)  # the second epoch finds the file cached


def test_a_mapped_data_set_cannot_be_projected_onto_an_object_store():
    with pytest.raises(PlanError, match="object store"):
        make_plan(mapped(), builtin_profile("s3"), Cluster(), FILES)


def test_an_unknown_access_is_refused():
    with pytest.raises(WorkloadError, match="access"):
        mapped(access="dax")
