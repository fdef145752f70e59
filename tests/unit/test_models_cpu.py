"""CPU work in the model: per-sample and per-step CPU from format 1.3 traces, the training process's
own CPU on the node's cores, and the crowding curve a CPU profile carries."""

import numpy as np
import pytest

from tests.unit.synthetic import loader_trace
from tests.unit.test_simulate import workload as simulated_workload
from trainio.models.backend import BackendProfile
from trainio.models.cluster import Cluster
from trainio.models.cpu import CpuCrowding, CpuProfileError, load_cpu_profile, processes_per_core
from trainio.models.formats import parse_format
from trainio.models.workload import Workload, WorkloadError, from_trace
from trainio.replay.projection.render import whatif_table
from trainio.replay.projection.scenario import Scenario, apply_overrides, project_trace
from trainio.replay.projection.whatif import BOTTLENECKS, project
from trainio.tracefile.reader import open_trace

FILES = parse_format("files")
both_modes = pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])


def workload(**fields) -> Workload:
    """test_simulate's workload, small: 512 samples of 2 ms of CPU in batches of 4, two workers, one epoch."""
    values = {"samples": 512, "batch_size": 4, "epochs": 1, "workers": 2, "sample_bytes": np.array([1e3])}
    return simulated_workload(
        **{**values, "sample_cpu_s": np.array([2e-3]), "step_compute_s": np.array([1e-3]), **fields}
    )


# -- from the trace --------------------------------------------------------------------------------


def test_a_samples_cpu_is_its_threads_cpu_time_and_the_rest_of_its_wall_time_waited_for_a_core(tmp_path):
    trace = loader_trace(tmp_path / "t", sample_wall_ns=3_000_000, read_ns=1_000_000, sample_cpu_ns=1_500_000)
    w = from_trace(open_trace(trace))
    assert w.sample_cpu_s == pytest.approx(np.full(32, 1.5e-3))
    assert w.sample_wall_s is not None and w.sample_wall_s == pytest.approx(np.full(32, 2e-3))  # outside the read


def test_a_steps_wall_time_splits_into_the_loops_own_cpu_and_the_accelerators_share(tmp_path):
    w = from_trace(open_trace(loader_trace(tmp_path / "t", step_wall_ns=20_000_000, step_cpu_ns=5_000_000)))
    assert w.step_cpu_s == pytest.approx(np.full(8, 5e-3))
    assert w.step_compute_s == pytest.approx(np.full(8, 15e-3))
    assert (w.captured_usable_cores, w.captured_per_core) == (4.0, processes_per_core(1, 2, 4))


def test_cpu_spent_inside_io_calls_is_the_captured_storages_not_the_samples(tmp_path):
    """A storage client's own CPU (boto3 parsing a response) runs inside the I/O call: the sample's CPU
    work is at most its wall time outside I/O."""
    trace = loader_trace(tmp_path / "t", sample_wall_ns=3_000_000, read_ns=2_000_000, sample_cpu_ns=2_800_000)
    w = from_trace(open_trace(trace))
    assert w.sample_cpu_s == pytest.approx(np.full(32, 1e-3))


def test_the_what_if_table_says_what_the_trace_measured_of_cpu(tmp_path):
    trace = loader_trace(tmp_path / "t", sample_wall_ns=3_000_000, read_ns=1_000_000, sample_cpu_ns=1_500_000)
    result, w, _ = project_trace(trace, Scenario())
    assert (
        "captured CPU       sample 1.50 ms of 2.00 ms outside I/O, 25% waiting for a core; "
        "step 5.00 ms of 20.00 ms (the rest the accelerator's) at 0.5 loader processes per core"
    ) in whatif_table(result, w)
    old = loader_trace(tmp_path / "old", sample_cpu_ns=None, step_cpu_ns=None)
    assert "captured CPU" not in whatif_table(*project_trace(old, Scenario())[:2])


def test_a_trace_without_cpu_times_keeps_wall_time_outside_io_and_no_step_cpu(tmp_path):
    trace = loader_trace(tmp_path / "t", sample_cpu_ns=None, step_cpu_ns=None, cores=None)
    w = from_trace(open_trace(trace))
    assert w.sample_cpu_s == pytest.approx(np.full(32, 2e-3))
    assert w.sample_wall_s is None and not w.step_cpu_s.any()
    assert w.step_compute_s == pytest.approx(np.full(8, 20e-3))
    assert w.captured_usable_cores is None and w.captured_per_core is None


def test_step_cpu_must_pair_with_the_steps():
    with pytest.raises(WorkloadError, match=r"step_cpu_s must hold one value >= 0 per step \(2 for 1 steps\)"):
        workload(step_cpu_s=np.array([1e-3, 2e-3]))
    with pytest.raises(WorkloadError, match=r"captured_per_core\(=0\) must be > 0"):
        workload(captured_per_core=0)


# -- the training process's CPU on the cores ----------------------------------------------------------


@both_modes
def test_the_training_processs_own_cpu_waits_for_a_core_beside_the_workers_and_names_host_cpu(exact):
    """One core: each step's 20 ms of the loop's CPU shares it with the workers' 8 ms per batch, so
    the loop waits for the core and the run is host-CPU bound; with the same 21 ms step all on the
    accelerator the workers fit beside it."""
    cluster = Cluster(cpus_per_node=1)
    starved = project(
        workload(step_compute_s=np.array([1e-3]), step_cpu_s=np.array([20e-3])),
        BackendProfile.unlimited(),
        cluster,
        FILES,
        exact=exact,
    )
    assert starved.bottleneck == "host-cpu"
    assert starved.time_to_train_s == pytest.approx(128 * (20e-3 + 8e-3), rel=0.05)
    evidence = starved.bottleneck_evidence
    assert evidence["host_cpu_wait_fraction"] > 0.15 and evidence["step_cpu_fraction"] > 0.6
    free = project(workload(step_compute_s=np.array([21e-3])), BackendProfile.unlimited(), cluster, FILES, exact=exact)
    assert free.bottleneck == "compute"
    assert free.time_to_train_s == pytest.approx(128 * 21e-3, rel=0.03)
    assert "host-cpu" in BOTTLENECKS


def test_compute_scale_scales_the_accelerators_share_not_the_loops_cpu():
    job = workload(
        workers=1, sample_cpu_s=np.array([1e-5]), step_compute_s=np.array([10e-3]), step_cpu_s=np.array([10e-3])
    )
    scaled = apply_overrides(job, Scenario(compute_scale=0.5))
    assert scaled.step_compute_s == pytest.approx([5e-3]) and scaled.step_cpu_s == pytest.approx([10e-3])
    result = project(scaled, BackendProfile.unlimited(), Cluster(cpus_per_node=4), FILES)
    assert result.time_to_train_s == pytest.approx(128 * 15e-3, rel=0.02)
    assert result.compute_s == pytest.approx(128 * 5e-3, rel=0.01)  # the accelerator's time alone


# -- the crowding curve -----------------------------------------------------------------------------


def test_crowding_interpolates_in_log_load_and_holds_beyond_the_measured_points():
    curve = CpuCrowding(((0.5, 1.0), (2.0, 1.2), (8.0, 1.5)))
    assert curve.factor(0.5) == 1.0 and curve.factor(2.0) == 1.2 and curve.factor(8.0) == 1.5
    assert curve.factor(1.0) == pytest.approx(1.1)  # halfway between 0.5 and 2 in log
    assert curve.factor(0.1) == 1.0 and curve.factor(64) == 1.5  # no extrapolation
    assert curve.ratio(8.0, 2.0) == pytest.approx(1.25)
    assert CpuCrowding().factor(100) == 1.0 and not CpuCrowding().measured
    with pytest.raises(CpuProfileError, match="increasing"):
        CpuCrowding(((2.0, 1.0), (1.0, 1.1)))
    with pytest.raises(CpuProfileError, match="> 0"):
        CpuCrowding(((1.0, 0.0),))


@both_modes
def test_a_nodes_crowding_scales_the_captured_cpu_from_the_captures_load_to_the_projections(exact):
    """Captured at 0.5 loader processes per core; projected with 8 workers on 2 cores (4 per core),
    where the host's curve says a unit of work costs 1.5x its cost at 0.5: the CPU-bound loader
    slows by that much. The same curve serves another core count (--cpus-per-node 8: 1 per core)."""
    curve = CpuCrowding(((0.5, 1.0), (1.0, 1.2), (4.0, 1.5)))
    job = workload(workers=8, captured_per_core=0.5, sample_cpu_s=np.array([2e-3]), step_compute_s=np.array([1e-4]))
    flat = project(job, BackendProfile.unlimited(), Cluster(cpus_per_node=2), FILES, exact=exact)
    crowded = project(job, BackendProfile.unlimited(), Cluster(cpus_per_node=2, cpu_crowding=curve), FILES, exact=exact)
    assert flat.time_to_train_s == pytest.approx(512 * 2e-3 / 2, rel=0.03)
    assert crowded.time_to_train_s == pytest.approx(1.5 * flat.time_to_train_s, rel=0.03)
    assert any(note.startswith("CPU per sample and per step x1.50") for note in crowded.notes)
    wide = project(job, BackendProfile.unlimited(), Cluster(cpus_per_node=8, cpu_crowding=curve), FILES, exact=exact)
    wide_flat = project(job, BackendProfile.unlimited(), Cluster(cpus_per_node=8), FILES, exact=exact)
    assert wide.time_to_train_s == pytest.approx(1.2 * wide_flat.time_to_train_s, rel=0.03)


def test_a_trace_projects_with_a_cpu_profile_given_on_the_scenario(tmp_path):
    trace = loader_trace(tmp_path / "t", workers=2, cores=4)  # captured at 0.5 per core
    profile = tmp_path / "cpu.toml"
    profile.write_text('[meta]\nname = "probe"\n\n[cpu]\ncrowding = [[0.5, 1.0], [2.0, 2.0]]\n')
    plain, _, _ = project_trace(trace, Scenario(workers=8))
    crowded, _, _ = project_trace(trace, Scenario(workers=8, cpu_profile=profile))
    assert crowded.time_to_train_s > 1.3 * plain.time_to_train_s
    assert "(probe)" in " ".join(crowded.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs a [cpu] table"),
        ("[cpu]\ncrowding = [[1, 2, 3]]\n", "must be a list of [per_core, factor] pairs"),
        ("[cpu]\ncrowding = [[2, 1.0], [1, 1.0]]\n", "increasing"),
        ("[cpu\n", "cannot read CPU profile"),
    ],
)
def test_a_bad_cpu_profile_is_an_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "cpu.toml"
    path.write_text(text)
    with pytest.raises(CpuProfileError) as err:
        load_cpu_profile(path)
    assert str(path) in str(err.value) and message in str(err.value)
