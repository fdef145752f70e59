"""Projection accuracy: `replay what-if` against real runs of the same training on a real Ceph.

    python bench/accuracy.py            # about 11 min on 2 cores -> bench/results/accuracy.json and accuracy.md
    python bench/accuracy.py --smoke --out out/bench-smoke/accuracy.json      # ~30 s, for CI

The benchmark runs ``--repeats`` rounds (3). Each round is what a user does, then what really
happens: ``replay calibrate`` measures every backend (small budget); the reference training
(examples/reference_train.py: a real DataLoader reading and decoding real JPEGs, the accelerator
step emulated by a sleep per batch) is captured as the baseline, on local disk, one node, one
file per sample; every condition below is projected from that one trace with
``project_trace(baseline, Scenario(profile=..., ...))`` and that round's profiles, and run for
real once. ``measured_s`` is the median of the rounds' runs and ``projected_s`` the median of
the rounds' projections: on a shared machine the CPU a request or a decode costs drifts by tens
of percent from one minute to the next, and a single calibration or capture catches one moment
of it, as a single run does. Each round's own projection against its own run (same minutes) is
reported too (``round_error_pct``).

Nothing is fitted to the real runs: the profiles come from calibrate, the workload from the
baseline trace, and a condition only sets what it changes (backend, format, workers, nodes, step
time as ``compute_scale`` = its step time / the baseline's). Time to train counts, in both, from
the start of data loading (the preload or the first batch request) to the end of the last step;
with several processes, from the first one's start to the last one's end.

The benchmark starts its own single-node Ceph (scripts/ceph-dev.sh, memstore OSD, its own port
base) and tears it down at the end, also on failure. Steps: Ceph up; the data set generated and
placed on local disk, RGW (one object per sample, and tar shards of 4 MiB), RADOS and CephFS;
then each round: calibration of the local directory, RGW, pool ``trainpool`` (RADOS) and
CephFS (through libcephfs), the Ceph ones with ``--colocated`` (the daemons share this host's
cores with the runs, so their CPU per request is charged on the node's cores), the baseline
capture, one run of every condition; then the projections; Ceph down. Each round's profiles are
kept in ``accuracy-profiles/round-N/`` beside the result.

A shared machine is a noisy one: a run during which other users' processes took CPU is slower in
a way no projection can know, and a baseline captured under such load carries it into every
projection. So every measurement (calibration, capture, run) first waits for a quiet machine
(others under QUIET_FRACTION of the CPU for half a second, at most GATE_WAIT_S), and one during
which others used more than DISTURBED_FRACTION of the CPU is repeated (up to ATTEMPTS times, and
not after --time-budget); ``measured_s`` is the median of the quiet runs. The CPU of the
workload, of the Ceph daemons and of everything else is recorded for every run.

"Nodes" are concurrent processes on this one host, each reading its own DistributedSampler share
(no torch.distributed). They share the host's cores, page cache and loopback, so the projection
describes them as that: one node with N ranks (``Scenario(nodes=1, gpus_per_node=N)``). The
projection onto N separate nodes (``Scenario(nodes=N)``, each with the captured host's cores) is
reported beside it as ``projected_separate_nodes_s``.

Results: per scenario ``name``, ``measured_s``, ``projected_s`` (``replay what-if``'s default
fast mode), ``error_pct`` (projected vs measured), ``bottleneck`` (the projection's), and more:
every real run, the exact-mode projection, the CPU the workload, the Ceph daemons and the rest of
the machine used during each run. Then ``median_abs_error_pct``, ``max_abs_error_pct`` (and the
same for exact mode), the profiles used, the baseline, ``machine`` and ``date``. ``--smoke`` runs
one scenario on a tiny data set, with the built-in ``rgw`` profile instead of calibrating (the
result says so), to check that everything runs end to end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the documented command runs from a checkout

from trainio.models.backend import BackendProfile, builtin_profile, load_profile  # noqa: E402
from trainio.replay.calibrate import calibrate, host_ticks, render_calibration  # noqa: E402
from trainio.replay.projection.scenario import Scenario, project_trace  # noqa: E402

CEPH_DEV = ROOT / "scripts" / "ceph-dev.sh"
WORKLOAD = ROOT / "examples" / "reference_train.py"
RESULTS = HERE / "results"
PORT_BASES = (32400, 32600, 32800, 33000)
"""Ceph port bases tried in turn (mon BASE, BASE+1, RGW BASE+2, daemons BASE+10..99): away from
Ceph's defaults, scripts/ceph-dev.sh's default and the tests' bases."""
MEMSTORE_BYTES = 1 << 30
RUN_TIMEOUT_S = 600
TARGET_MEDIAN_PCT, TARGET_MAX_PCT = 10.0, 20.0
GOAL_MEDIAN_PCT, GOAL_MAX_PCT = 5.0, 10.0
SHARD_FORMAT = "shards:4MiB"
QUIET_FRACTION = 0.05
"""A measurement starts once others use at most this share of the machine's CPU (a half second)."""
DISTURBED_FRACTION = 0.05
"""A run during which others used more than this share of the machine's CPU is run again."""
GATE_WAIT_S = 60.0
"""Longest wait for a quiet machine before a measurement starts anyway."""
SMOKE_GATE_WAIT_S = 5.0
ATTEMPTS = 3
"""Tries per wanted quiet run (or calibration, or baseline capture); the smoke run tries once."""


class BenchError(RuntimeError):
    """A step of the benchmark that failed: Ceph, placing data, a run, a projection."""


@dataclass(frozen=True)
class Setup:
    """What every run shares."""

    samples: int
    epochs: int
    batch_size: int
    workers: int
    step_time_s: float


@dataclass(frozen=True)
class Condition:
    name: str
    source: str
    """reference_train.py source kind: local, rgw, rgw-shards, rados, cephfs."""
    profile: str
    """Which calibrated profile the projection uses: local, rgw, rados, cephfs."""
    varies: str
    """What the condition changes against the baseline."""
    world: int = 1
    workers: int | None = None
    step_time_s: float | None = None
    preload: bool = False
    format: str | None = None
    """Record format of the projection (None: as captured, one file per sample)."""
    page_cache: bool | None = None
    """What-if's ``--page-cache`` (None: the profile's). The RADOS and CephFS loaders read through
    librados / libcephfs in user space, so nothing they read is in the page cache next epoch."""


FULL = Setup(samples=2000, epochs=2, batch_size=32, workers=2, step_time_s=0.02)
SMOKE = Setup(samples=192, epochs=1, batch_size=32, workers=2, step_time_s=0.02)

CONDITIONS = (
    Condition("local files (the baseline's setup)", "local", "local", "nothing: the baseline, untraced"),
    Condition("RGW, one GET per sample", "rgw", "rgw", "backend"),
    Condition("RADOS, one object per sample", "rados", "rados", "backend", page_cache=False),
    Condition("CephFS (libcephfs), one file per sample", "cephfs", "cephfs", "backend", page_cache=False),
    Condition("RGW, tar shards of 4 MiB", "rgw-shards", "rgw", "backend and record format", format=SHARD_FORMAT),
    Condition("RGW, 2 nodes", "rgw", "rgw", "backend and nodes", world=2),
    Condition("RGW, 4 nodes", "rgw", "rgw", "backend and nodes", world=4),
    Condition("RGW, 1 worker", "rgw", "rgw", "backend and workers", workers=1),
    Condition("RGW, 4 workers", "rgw", "rgw", "backend and workers", workers=4),
    Condition(
        "RGW shards, bulk preload", "rgw-shards", "rgw", "backend and format: preload", preload=True, format="preload"
    ),
    Condition(
        "RADOS, compute-bound (50 ms step)",
        "rados",
        "rados",
        "backend and step time",
        step_time_s=0.05,
        page_cache=False,
    ),
    Condition(
        "RADOS, loader-bound (2 ms step)",
        "rados",
        "rados",
        "backend and step time",
        step_time_s=0.002,
        page_cache=False,
    ),
)
SMOKE_CONDITIONS = (CONDITIONS[1],)
BUILTIN = {"local": "local-nvme", "rgw": "rgw", "rados": "rbd", "cephfs": "cephfs"}
"""Built-in profiles used when calibration is skipped (smoke)."""


def say(message: str) -> None:
    print(f"accuracy: {message}", flush=True)


# ---------------------------------------------------------------------------- Ceph


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ceph_dev(*args: str, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(CEPH_DEV), *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"scripts/ceph-dev.sh {' '.join(args)} did not finish within {timeout:.0f} s") from err


@contextmanager
def ceph_cluster(folder: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """A single-node Ceph in ``folder`` on a free port base: (client environment, folder); always
    stopped again."""
    base = next((b for b in PORT_BASES if all(_port_free(b + i) for i in (0, 1, 2, 10))), None)
    if base is None:
        raise BenchError(f"no free Ceph port base among {PORT_BASES}")
    try:
        say(f"starting Ceph in {folder} (ports {base}-{base + 99})")
        up = _ceph_dev(
            "up",
            str(folder),
            "--ports",
            str(base),
            "--timeout",
            "90",
            "--memstore-bytes",
            str(MEMSTORE_BYTES),
            timeout=120,
        )
        if up.returncode != 0:
            raise BenchError(f"scripts/ceph-dev.sh up failed:\n{up.stdout[-2000:]}\n{up.stderr[-2000:]}")
        exports = _ceph_dev("env", str(folder), timeout=20)
        if exports.returncode != 0:
            raise BenchError(f"scripts/ceph-dev.sh env failed: {exports.stderr.strip()}")
        env = dict(os.environ)
        for line in exports.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
        yield env, folder
    finally:
        if (folder / ".ceph-dev").exists():
            down = _ceph_dev("down", str(folder), timeout=120)
            if down.returncode != 0:
                print(f"accuracy: scripts/ceph-dev.sh down failed: {down.stderr.strip()}", file=sys.stderr)
            else:
                say("Ceph stopped")


def daemon_pids(folder: Path) -> dict[str, int]:
    pids = {}
    for path in (folder / "pids").glob("*"):
        try:
            pids[path.name] = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
    return pids


# ---------------------------------------------------------------------------- the machine's CPU

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_s() -> float:
    """CPU seconds all cores spent running processes since boot (``replay calibrate``'s reading of
    /proc/stat: interrupt time is left out, and the loopback traffic to our own Ceph makes much of it)."""
    return host_ticks()[0] / _TICK


def own_cpu_s() -> float:
    """CPU of this process and of its children that have been waited for (and theirs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cpu_probe_ms() -> float:
    """Milliseconds of one core for a fixed piece of Python work (best of 5). A virtual machine's
    cores run faster or slower with its neighbours' load, which /proc/stat cannot show: the same
    request or decode then costs more CPU time. Probing before every calibration and run shows
    whether the runs met the same machine the profiles were measured on."""
    best = math.inf
    for _ in range(5):
        start = time.thread_time()
        total = 0
        for i in range(200_000):
            total += i * i % 7
        best = min(best, time.thread_time() - start)
    return 1e3 * best


@dataclass(frozen=True)
class CpuSample:
    t: float
    busy: float
    ceph: dict[str, float]
    own: float
    live: float
    """CPU so far of live processes of ours (not yet waited for)."""


@dataclass(frozen=True)
class Usage:
    """Where the machine's CPU went during a window."""

    window_s: float
    own_cpu_s: float
    """This benchmark and what it started (the workload, its DataLoader workers, fio, ...)."""
    ceph_cpu_s: dict[str, float]
    other_cpu_s: float
    """Everything else: other users of the machine."""
    cpus: int

    @property
    def other_fraction(self) -> float:
        return self.other_cpu_s / (self.cpus * self.window_s) if self.window_s > 0 else 0.0

    @property
    def quiet(self) -> bool:
        return self.other_fraction <= DISTURBED_FRACTION

    def to_dict(self) -> dict:
        return {
            "window_s": round(self.window_s, 3),
            "own_cpu_s": round(self.own_cpu_s, 3),
            "ceph_cpu_s": {name: round(v, 3) for name, v in self.ceph_cpu_s.items() if v >= 0.005},
            "other_cpu_s": round(self.other_cpu_s, 3),
            "other_fraction": round(self.other_fraction, 4),
            "quiet": self.quiet,
        }


class CpuMeter:
    """Splits the CPU the machine spends into this benchmark's, its Ceph daemons' and the rest's.

    Other users of a shared machine slow a run down in a way no projection can know (and a
    baseline captured under their load carries it into every projection), so the benchmark waits
    for a quiet machine before each measurement and repeats the ones that were disturbed."""

    def __init__(self, ceph: Path) -> None:
        self.ceph = ceph
        self.cpus = len(os.sched_getaffinity(0))

    def sample(self, pids: tuple[int, ...] = ()) -> CpuSample:
        daemons = daemon_pids(self.ceph)
        return CpuSample(
            t=time.monotonic(),
            busy=machine_busy_s(),
            ceph={name: process_cpu_s(pid) for name, pid in daemons.items()},
            own=own_cpu_s(),
            live=sum(process_cpu_s(pid) for pid in pids),
        )

    def usage(self, a: CpuSample, b: CpuSample) -> Usage:
        ceph = {name: b.ceph[name] - a.ceph.get(name, b.ceph[name]) for name in b.ceph}
        own = (b.own + b.live) - (a.own + a.live)
        other = max(0.0, b.busy - a.busy - own - sum(ceph.values()))
        return Usage(b.t - a.t, own, ceph, other, self.cpus)

    def wait_for_quiet(self, limit_s: float, pids: tuple[int, ...] = ()) -> float:
        """Wait (at most ``limit_s``) for a half second in which others used under QUIET_FRACTION
        of the machine; the seconds waited."""
        start = time.monotonic()
        while True:
            a = self.sample(pids)
            time.sleep(0.5)
            if self.usage(a, self.sample(pids)).other_fraction <= QUIET_FRACTION:
                return time.monotonic() - start
            if time.monotonic() - start >= limit_s:
                return time.monotonic() - start


# ---------------------------------------------------------------------------- the workload


def workload_cmd(source: str, setup: Setup, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(WORKLOAD),
        "--source",
        source,
        "--samples",
        str(setup.samples),
        "--batch-size",
        str(setup.batch_size),
        "--epochs",
        str(setup.epochs),
        *extra,
    ]


def _run(cmd: list[str], env: dict, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"{what} did not finish within {timeout:.0f} s") from err
    if proc.returncode != 0:
        raise BenchError(f"{what} exited {proc.returncode}:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    return proc


def sources(env: dict, data: Path) -> dict[str, str]:
    endpoint = env["TRAINIO_S3_ENDPOINT"]
    return {
        "local": f"local:{data}",
        "rgw": f"rgw:{endpoint}/trainio-accuracy",
        "rgw-shards": f"rgw-shards:{endpoint}/trainio-accuracy/shards",
        "rados": "rados:trainpool/trainio-accuracy",
        "cephfs": "cephfs:/trainio-accuracy",
    }


def place_data(needed: set[str], where: dict[str, str], setup: Setup, data: Path, env: dict) -> None:
    for kind in ["local", *sorted(needed - {"local"})]:
        t0 = time.monotonic()
        proc = _run(
            workload_cmd(where[kind], setup, "--data", str(data), "--place"), env, 600, f"placing data on {kind}"
        )
        say(f"{proc.stdout.strip().splitlines()[-1]} ({time.monotonic() - t0:.1f} s)")


@dataclass(frozen=True)
class RunResult:
    measured_s: float
    processes: list[dict]
    usage: Usage
    waited_s: float
    """Waiting for a quiet machine before the start."""
    probe_ms: float
    """``cpu_probe_ms()`` just before the start."""

    def to_dict(self) -> dict:
        return {
            "measured_s": round(self.measured_s, 4),
            "per_process_s": [p["time_to_train_s"] for p in self.processes],
            "preload_s": [p["preload_s"] for p in self.processes],
            "samples": sum(p["samples"] for p in self.processes),
            "workload_cpu_s": round(sum(p["cpu_s"] for p in self.processes), 3),
            "waited_for_quiet_s": round(self.waited_s, 1),
            "cpu_probe_ms": round(self.probe_ms, 2),
            **self.usage.to_dict(),
        }


def run_condition(
    cond: Condition, setup: Setup, where: dict[str, str], env: dict, meter: CpuMeter, folder: Path, wait_s: float
) -> RunResult:
    """One real run of ``cond``: its processes get ready, wait for a quiet machine (at most
    ``wait_s``) and start together (a start barrier); the CPU the workload, the Ceph daemons and
    everything else used meanwhile is counted."""
    folder.mkdir(parents=True)
    extra = [
        "--world",
        str(cond.world),
        "--workers",
        str(cond.workers if cond.workers is not None else setup.workers),
        "--step-time",
        str(cond.step_time_s if cond.step_time_s is not None else setup.step_time_s),
        "--start-barrier",
        str(folder),
        *(["--preload"] if cond.preload else []),
    ]
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(cond.world):
            with open(folder / f"out-{rank}", "w") as out, open(folder / f"err-{rank}", "w") as err:
                cmd = workload_cmd(where[cond.source], setup, "--rank", str(rank), *extra)
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT))
        deadline = time.monotonic() + 180
        while not all((folder / f"ready-{rank}").exists() for rank in range(cond.world)):
            failed = [rank for rank, p in enumerate(procs) if p.poll() is not None]
            if failed or time.monotonic() > deadline:
                rank = failed[0] if failed else 0
                raise BenchError(
                    f"{cond.name}: rank {rank} exited or did not get ready: "
                    f"{(folder / f'err-{rank}').read_text()[-3000:]}"
                )
            time.sleep(0.01)
        pids = tuple(p.pid for p in procs)
        waited = meter.wait_for_quiet(wait_s, pids)
        probe = cpu_probe_ms()
        before = meter.sample(pids)
        (folder / "go").touch()
        for p in procs:
            p.wait(timeout=RUN_TIMEOUT_S)
        usage = meter.usage(before, meter.sample())
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"{cond.name}: a rank did not finish within {RUN_TIMEOUT_S} s") from err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    reports = []
    for rank, p in enumerate(procs):
        if p.returncode != 0:
            raise BenchError(
                f"{cond.name}: rank {rank} exited {p.returncode}: {(folder / f'err-{rank}').read_text()[-3000:]}"
            )
        lines = [line for line in (folder / f"out-{rank}").read_text().splitlines() if line.startswith("{")]
        if not lines:
            raise BenchError(f"{cond.name}: rank {rank} printed no result line")
        reports.append(json.loads(lines[-1]))
    start = min(r["start_monotonic"] for r in reports)
    end = max(r["end_monotonic"] for r in reports)
    return RunResult(measured_s=end - start, processes=reports, usage=usage, waited_s=waited, probe_ms=probe)


@dataclass(frozen=True)
class Patience:
    """How long a measurement waits for a quiet machine and how often a disturbed one is repeated;
    past ``deadline`` (monotonic seconds) it neither waits nor repeats."""

    gate_s: float
    attempts: int
    deadline: float

    def wait_s(self) -> float:
        return min(self.gate_s, max(0.0, self.deadline - time.monotonic()))

    def again(self, attempt: int) -> bool:
        """Whether a disturbed ``attempt`` (0-based) may be repeated."""
        return attempt + 1 < self.attempts and time.monotonic() < self.deadline


def quietly(meter: CpuMeter, what: str, patience: Patience, work: Callable[[], object]) -> tuple[object, Usage]:
    """Run ``work()`` after waiting for a quiet machine, again while others used more than
    DISTURBED_FRACTION of the machine meanwhile (as ``patience`` allows); the least disturbed
    result and its usage."""
    best = None
    for attempt in range(patience.attempts):
        meter.wait_for_quiet(patience.wait_s())
        before = meter.sample()
        value = work()
        usage = meter.usage(before, meter.sample())
        if best is None or usage.other_fraction < best[1].other_fraction:
            best = (value, usage)
        if usage.quiet or not patience.again(attempt):
            break
        say(f"{what}: others used {100 * usage.other_fraction:.0f}% of the machine meanwhile; again ({attempt + 2})")
    assert best is not None
    return best


# ---------------------------------------------------------------------------- profiles


def calibrate_profiles(
    needed: set[str],
    env: dict,
    data: Path,
    folder: Path,
    scratch: Path,
    budget_s: float,
    meter: CpuMeter,
    patience: Patience,
) -> tuple[dict[str, Path], dict[str, dict]]:
    """One profile per backend in ``folder``, measured by ``replay calibrate`` on a quiet machine
    (``--colocated`` for the Ceph targets: the daemons share this host's cores with the runs);
    ``scratch`` holds every try."""
    targets = {
        "local": str(data.parent),
        "rgw": f"rgw:{env['TRAINIO_S3_ENDPOINT']}/trainio-calibrate",
        "rados": "rados:trainpool",
        "cephfs": "cephfs:/trainio-calibrate",
    }
    paths, info = {}, {}
    saved = {name: os.environ.get(name) for name in ("CEPH_CONF", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({name: env[name] for name in saved})
    try:
        for name in sorted(needed):
            out = folder / f"calibrated-{name}.toml"
            say(f"calibrating {name}: {targets[name]} (budget {budget_s:.0f} s)")

            tries = iter(range(ATTEMPTS))

            # the Ceph daemons run on this host: their CPU per request is the training's too
            colocated = name != "local"

            def measure(
                target: str = targets[name], out: Path = out, tries: Iterator = tries, colocated: bool = colocated
            ) -> object:
                # each try writes its own file, so that the least disturbed one can be kept
                path = scratch / f"try-{next(tries)}" / out.name
                return calibrate(target, path, budget_s=budget_s, colocated=colocated)

            probe = cpu_probe_ms()
            cal, usage = quietly(meter, f"calibrating {name}", patience, measure)
            shutil.copyfile(cal.profile_path, out)
            print(render_calibration(cal), flush=True)
            paths[name] = out
            info[name] = {
                "source": "replay calibrate",
                "target": targets[name],
                "profile_file": out.name,
                "elapsed_s": round(cal.elapsed_s, 1),
                "notes": list(cal.notes),
                "machine_usage": usage.to_dict(),
                "cpu_probe_ms": round(probe, 2),
                **profile_numbers(load_profile(out)),
            }
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return paths, info


def builtin_profiles(needed: set[str], why: str) -> tuple[dict[str, Path], dict[str, dict]]:
    from trainio.models.backend import PROFILE_DIR

    paths = {name: PROFILE_DIR / f"{BUILTIN[name]}.toml" for name in needed}
    info = {
        name: {
            "source": f"built-in profile {BUILTIN[name]!r} ({why})",
            **profile_numbers(builtin_profile(BUILTIN[name])),
        }
        for name in needed
    }
    return paths, info


def profile_numbers(profile: BackendProfile) -> dict:
    numbers = {
        "name": profile.name,
        "access": profile.access,
        "shared": profile.shared,
        "page_cache": profile.page_cache,
    }
    for key in ("open_latency_s", "read_latency_s", "get_latency_s"):
        value = getattr(profile, key)
        if value is not None:
            numbers[key] = value
    for key in ("stream_bandwidth", "aggregate_bandwidth", "iops", "request_cpu_s", "colocated_cpu_s", "cpu_crowding"):
        numbers[key] = getattr(profile, key)
    return numbers


# ---------------------------------------------------------------------------- projections


def scenario(cond: Condition, setup: Setup, round_: dict, *, exact: bool = False, separate: bool = False) -> Scenario:
    """``cond`` as a what-if over ``round_``'s trace and profiles. A captured step is the emulated
    accelerator's sleep plus the training loop's own work per step (taking the batch, the sleep's
    overshoot); another step time changes the sleep only, so ``compute_scale`` scales the sleep
    and keeps the loop's part, as the trace measured it."""
    step = cond.step_time_s if cond.step_time_s is not None else setup.step_time_s
    captured_step = round_["baseline"]["mean_step_ms"] / 1e3
    loop = max(0.0, captured_step - setup.step_time_s)
    return Scenario(
        profile=round_["paths"][cond.profile],
        nodes=cond.world if separate else 1,
        gpus_per_node=1 if separate else cond.world,
        workers=cond.workers,
        format=cond.format,
        page_cache=cond.page_cache,
        compute_scale=(step + loop) / captured_step,
        exact=exact,
    )


def projection(trace: Path, sc: Scenario) -> dict:
    result, workload, warnings = project_trace(trace, sc)
    storage_cpu_s = float(result.bottleneck_evidence["node_storage_cpu_s"]) * result.nodes
    return {
        "time_to_train_s": result.time_to_train_s,
        "bottleneck": result.bottleneck,
        "per_epoch_s": [round(float(e), 4) for e in result.per_epoch_s],
        "preload_s": round(result.preload_s, 4),
        "stall_fraction": round(result.stall_fraction, 4),
        "read_ops_per_s": round(result.read_ops_per_s, 1),
        "cpu_utilization": round(float(result.bottleneck_evidence["cpu_utilization"]), 4),
        "iops_utilization": round(float(result.bottleneck_evidence["iops_utilization"]), 4),
        "storage_cpu_ms_per_sample": round(1e3 * storage_cpu_s / (workload.samples * workload.epochs), 3),
        "warnings": warnings,
    }


def cpu_per_sample(runs: list[RunResult]) -> dict[str, float]:
    """Medians over ``runs``: CPU milliseconds per sample of the workload (its processes and
    DataLoader workers; ``loop``: the training processes alone) and of the Ceph daemons, and the
    share of the cores they kept busy."""
    workload, loop, ceph, busy, probe = [], [], [], [], []
    for run in runs:
        probe.append(run.probe_ms)
        samples = sum(p["samples"] for p in run.processes)
        workload.append(1e3 * sum(p["cpu_s"] for p in run.processes) / samples)
        loop.append(1e3 * sum(p["main_cpu_s"] for p in run.processes) / samples)
        ceph.append(1e3 * sum(run.usage.ceph_cpu_s.values()) / samples)
        busy.append((run.usage.own_cpu_s + sum(run.usage.ceph_cpu_s.values())) / (run.usage.cpus * run.usage.window_s))
    return {
        "workload": round(statistics.median(workload), 3),
        "loop": round(statistics.median(loop), 3),
        "ceph": round(statistics.median(ceph), 3),
        "cores_busy": round(statistics.median(busy), 3),
        "cpu_probe_ms": round(statistics.median(probe), 2),
    }


def error_pct(projected: float, measured: float) -> float:
    return 100.0 * (projected - measured) / measured


def baseline_facts(trace: Path) -> dict:
    from trainio.models.workload import from_trace
    from trainio.tracefile.reader import open_trace

    workload = from_trace(open_trace(trace))
    return {
        "samples": workload.samples,
        "epochs": workload.epochs,
        "batch_size": workload.batch_size,
        "workers": workload.workers,
        "captured_time_to_train_s": workload.captured_duration_s,
        "mean_sample_bytes": round(float(workload.sample_bytes.mean()), 1),
        "mean_sample_cpu_ms": round(1e3 * float(workload.sample_cpu_s.mean()), 4),
        "mean_step_ms": round(1e3 * float(workload.step_compute_s.mean()), 4),
        "worker_start_ms": round(1e3 * workload.worker_start_s, 3),
        "epoch_gap_ms": round(1e3 * workload.epoch_gap_s, 3),
        "batch_receive_ms": round(1e3 * workload.batch_receive_s, 3),
        "files_per_sample": workload.files_per_sample,
        "reads_per_sample": workload.reads_per_sample,
        "stats_per_sample": workload.stats_per_sample,
    }


# ---------------------------------------------------------------------------- output


def markdown(result: dict) -> str:
    lines = [
        "# Projection accuracy (`bench/accuracy.py`)",
        "",
        f"{result['date']}, {result['machine']}. Baseline: {result['baseline']['command']}",
        f"(local disk, 1 node, one file per sample). Profiles: {result['profiles_from']}.",
        f"{len(result['baselines'])} round(s), each: calibrate, capture the baseline, project every condition "
        "from that trace and those profiles, run every condition once. Measured: the median of the rounds' runs; "
        "projected: the median of the rounds' projections (`replay what-if`, fast mode; exact mode beside it); "
        "round errors: each round's projection against its own run.",
        "",
        "| scenario | measured s | projected s | error | bottleneck | exact s | exact error | run spread "
        "| round errors |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for s in result["scenarios"]:
        lines.append(
            f"| {s['name']} | {s['measured_s']:.2f} | {s['projected_s']:.2f} | {s['error_pct']:+.1f}% | "
            f"{s['bottleneck']} | {s['projected_exact_s']:.2f} | {s['error_exact_pct']:+.1f}% | "
            f"{s['spread_pct']:.1f}% | {' '.join(f'{e:+.0f}%' for e in s['round_error_pct'])} |"
        )
    lines += [
        "",
        "Where the CPU went in the real runs (per sample, median of the runs counted), next to the "
        "projection's: the baselines' decode and transform time, "
        + " / ".join(f"{b['mean_sample_cpu_ms']:.2f}" for b in result["baselines"])
        + " ms in the rounds' captures, plus the storage requests' CPU (the client's and, "
        "with `--colocated` calibration, the Ceph daemons') that the calibrated profile charges per request.",
        "",
        "| scenario | workload CPU ms/sample | Ceph daemons CPU ms/sample | cores busy "
        "| projected storage CPU ms/sample | CPU probe ms |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {s['name']} | {s['cpu_ms_per_sample']['workload']:.2f} | {s['cpu_ms_per_sample']['ceph']:.2f} | "
            f"{100 * s['cpu_ms_per_sample']['cores_busy']:.0f}% | "
            f"{s['projection']['storage_cpu_ms_per_sample']:.2f} | {s['cpu_ms_per_sample']['cpu_probe_ms']:.1f} |"
            for s in result["scenarios"]
        ),
        "",
        "CPU probe (`cpu_probe_ms`: one core's time for a fixed piece of Python work; larger = a slower "
        "machine at that moment) before each calibration: "
        + (
            "; ".join(
                ", ".join(f"{name} {p['cpu_probe_ms']:.1f} ms" for name, p in profiles.items() if "cpu_probe_ms" in p)
                for profiles in result["profiles_rounds"]
                if any("cpu_probe_ms" in p for p in profiles.values())
            )
            or "not measured (no calibration)"
        )
        + ".",
    ]
    separate = [s for s in result["scenarios"] if "projected_separate_nodes_s" in s]
    if separate:
        lines += [
            "",
            "Nodes are processes on this one host, projected as one node with N ranks; projected as N separate "
            "nodes, each with the captured host's cores: "
            + "; ".join(
                f"{s['name']} {s['projected_separate_nodes_s']:.2f} s ({s['error_separate_nodes_pct']:+.1f}%)"
                for s in separate
            )
            + ".",
        ]
    lines += [
        "",
        f"Median |error| {result['median_abs_error_pct']:.1f}%, max {result['max_abs_error_pct']:.1f}% "
        f"(exact mode: {result['median_abs_error_exact_pct']:.1f}%, {result['max_abs_error_exact_pct']:.1f}%); "
        f"target median <= {TARGET_MEDIAN_PCT:.0f}%, max <= {TARGET_MAX_PCT:.0f}%. One round's projection against "
        f"its own run: median |error| {result['median_abs_round_error_pct']:.1f}%, "
        f"max {result['max_abs_round_error_pct']:.1f}%.",
        "",
        *(f"- {note}" for note in result["notes"]),
    ]
    return "\n".join(lines) + "\n"


def capture_baseline(
    where: dict[str, str], setup: Setup, data: Path, env: dict, folder: Path, meter: CpuMeter, patience: Patience
) -> tuple[Path, dict]:
    """One baseline trace (local disk, one node, as captured by a user) in ``folder``-TRY, on a
    quiet machine, and its facts with the as-captured self-check."""
    base_cmd = workload_cmd(
        where["local"], setup, "--workers", str(setup.workers), "--step-time", str(setup.step_time_s)
    )
    say("capturing the baseline: " + " ".join(base_cmd[1:]))
    tries = iter(range(ATTEMPTS))

    def capture() -> object:
        trace = folder.with_name(f"{folder.name}-try{next(tries)}")
        t0 = time.monotonic()
        _run(
            [sys.executable, "-m", "trainio.tracer", "capture", "--out", str(trace), "--", *base_cmd],
            env,
            600,
            "capture",
        )
        return trace, time.monotonic() - t0

    (trace, capture_s), usage = quietly(meter, "baseline capture", patience, capture)
    baseline = {
        "command": "tracer capture -- python examples/reference_train.py "
        + " ".join(base_cmd[2:]).replace(str(data), "DATA"),
        "capture_wall_s": round(capture_s, 2),
        "machine_usage": usage.to_dict(),
        **baseline_facts(trace),
    }
    as_captured = projection(trace, Scenario())
    baseline["self_check"] = {
        "as_captured_projected_s": round(as_captured["time_to_train_s"], 4),
        "error_pct": round(error_pct(as_captured["time_to_train_s"], baseline["captured_time_to_train_s"]), 2),
    }
    return trace, baseline


def round_projections(cond: Condition, setup: Setup, rounds: list[dict], **how: bool) -> list[dict]:
    """``cond`` projected from each round's trace and profiles (``how``: ``scenario``'s flags)."""
    return [projection(r["trace"], scenario(cond, setup, r, **how)) for r in rounds]


def median_projection(projections: list[dict]) -> dict:
    """The projection whose time to train is the median of the rounds' (the lower one of two)."""
    ranked = sorted(projections, key=lambda p: p["time_to_train_s"])
    return ranked[(len(ranked) - 1) // 2]


def machine() -> str:
    cpus = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {cpus} cpus, {memory:.0f} GiB, {platform.platform()}"


# ---------------------------------------------------------------------------- main


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    setup = SMOKE if args.smoke else FULL
    conditions = SMOKE_CONDITIONS if args.smoke else CONDITIONS
    needed_sources = {c.source for c in conditions}
    needed_profiles = {c.profile for c in conditions}
    notes: list[str] = []
    data = work / "data" / "reference"
    started = time.monotonic()
    gate_s, attempts = (SMOKE_GATE_WAIT_S, 1) if args.smoke else (GATE_WAIT_S, ATTEMPTS)
    patience = Patience(gate_s, attempts, started + args.time_budget)
    with ceph_cluster(work / "ceph") as (env, ceph):
        meter = CpuMeter(ceph)
        where = sources(env, data)
        place_data(needed_sources, where, setup, data, env)

        profile_root = args.out.parent / "accuracy-profiles"
        rounds: list[dict] = []
        runs: dict[str, list[RunResult]] = {c.name: [] for c in conditions}
        paired: dict[str, list[RunResult]] = {c.name: [] for c in conditions}
        count = 0
        for rep in range(args.repeats):
            if rep and time.monotonic() > patience.deadline:
                notes.append(f"out of --time-budget: {rep} of the {args.repeats} rounds ran")
                break
            say(f"round {rep + 1}/{args.repeats}")
            if args.smoke:
                paths, profiles = builtin_profiles(needed_profiles, "smoke: calibration skipped")
            else:
                profile_dir = profile_root / f"round-{rep + 1}"
                profile_dir.mkdir(parents=True, exist_ok=True)
                paths, profiles = calibrate_profiles(
                    needed_profiles,
                    env,
                    data,
                    profile_dir,
                    work / "calibration" / f"round-{rep + 1}",
                    args.calibrate_budget,
                    meter,
                    patience,
                )
            trace, baseline = capture_baseline(where, setup, data, env, work / f"baseline-{rep + 1}", meter, patience)
            rounds.append({"paths": paths, "profiles": profiles, "trace": trace, "baseline": baseline})
            for cond in conditions:
                for attempt in range(attempts):
                    folder = work / "runs" / str(count)
                    result = run_condition(cond, setup, where, env, meter, folder, patience.wait_s())
                    count += 1
                    runs[cond.name].append(result)
                    state = "" if result.usage.quiet else f" (others used {100 * result.usage.other_fraction:.0f}%)"
                    say(f"round {rep + 1}/{args.repeats} {cond.name}: {result.measured_s:.2f} s{state}")
                    if result.usage.quiet or not patience.again(attempt):
                        break
                paired[cond.name].append(result)
        if args.smoke:
            notes.append("smoke run: calibration skipped, the built-in profiles were used")
            profiles_from = "built-in (smoke: calibration skipped)"
        else:
            profiles_from = (
                f"`replay calibrate` on this machine's Ceph (`--colocated`), {args.calibrate_budget:.0f} s budget "
                "each, once per round"
            )

    scenarios = []
    for cond in conditions:
        quiet = [r.measured_s for r in runs[cond.name] if r.usage.quiet]
        measured = quiet or [r.measured_s for r in runs[cond.name]]
        median = statistics.median(measured)
        if len(quiet) < args.repeats:
            notes.append(f"{cond.name}: {len(quiet)} of the {args.repeats} wanted runs were on a quiet machine")
        counted = [r for r in runs[cond.name] if r.usage.quiet] or runs[cond.name]
        fasts = round_projections(cond, setup, rounds)
        fast, exact = median_projection(fasts), median_projection(round_projections(cond, setup, rounds, exact=True))
        row = {
            "name": cond.name,
            "measured_s": round(median, 4),
            "projected_s": round(fast["time_to_train_s"], 4),
            "error_pct": round(error_pct(fast["time_to_train_s"], median), 2),
            "bottleneck": fast["bottleneck"],
            "projected_exact_s": round(exact["time_to_train_s"], 4),
            "error_exact_pct": round(error_pct(exact["time_to_train_s"], median), 2),
            "spread_pct": round(100 * (max(measured) - min(measured)) / median, 2),
            "projected_rounds_s": [round(f["time_to_train_s"], 4) for f in fasts],
            "round_error_pct": [
                round(error_pct(f["time_to_train_s"], run.measured_s), 2)
                for f, run in zip(fasts, paired[cond.name], strict=True)
            ],
            "quiet_runs": len(quiet),
            "cpu_ms_per_sample": cpu_per_sample(counted),
            "projected_cpu_ms_per_sample": statistics.median(r["baseline"]["mean_sample_cpu_ms"] for r in rounds),
            "condition": {k: v for k, v in asdict(cond).items() if v is not None},
            "runs": [r.to_dict() for r in runs[cond.name]],
            "projection": fast,
            "projection_exact": exact,
        }
        if cond.world > 1:
            separate = median_projection(round_projections(cond, setup, rounds, separate=True))
            row["projected_separate_nodes_s"] = round(separate["time_to_train_s"], 4)
            row["error_separate_nodes_pct"] = round(error_pct(separate["time_to_train_s"], median), 2)
        scenarios.append(row)
        say(
            f"{cond.name}: measured {median:.2f} s, projected {fast['time_to_train_s']:.2f} s "
            f"({row['error_pct']:+.1f}%)"
        )

    errors = [abs(s["error_pct"]) for s in scenarios]
    exact_errors = [abs(s["error_exact_pct"]) for s in scenarios]
    round_errors = [abs(e) for s in scenarios for e in s["round_error_pct"]]
    return {
        "benchmark": "accuracy",
        "smoke": args.smoke,
        "scenarios": scenarios,
        "median_abs_error_pct": round(statistics.median(errors), 2),
        "max_abs_error_pct": round(max(errors), 2),
        "median_abs_error_exact_pct": round(statistics.median(exact_errors), 2),
        "max_abs_error_exact_pct": round(max(exact_errors), 2),
        "median_abs_round_error_pct": round(statistics.median(round_errors), 2),
        "max_abs_round_error_pct": round(max(round_errors), 2),
        "targets_pct": {
            "median": TARGET_MEDIAN_PCT,
            "max": TARGET_MAX_PCT,
            "goal_median": GOAL_MEDIAN_PCT,
            "goal_max": GOAL_MAX_PCT,
        },
        "setup": asdict(setup),
        "repeats": args.repeats,
        "quiet_rule": {
            "start_when_others_below": QUIET_FRACTION,
            "rerun_when_others_above": DISTURBED_FRACTION,
            "attempts": ATTEMPTS,
        },
        "baseline": rounds[0]["baseline"],
        "baselines": [r["baseline"] for r in rounds],
        "profiles_from": profiles_from,
        "profiles": rounds[0]["profiles"],
        "profiles_rounds": [r["profiles"] for r in rounds],
        "notes": notes,
        "runtime_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="one scenario, tiny data, built-in profile (CI)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "accuracy.json", help="result JSON; the .md goes beside it"
    )
    parser.add_argument("--repeats", type=int, help="real runs per condition (default 3; smoke 1)")
    parser.add_argument("--calibrate-budget", type=float, default=20.0, help="seconds of calibration per backend")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=1080.0,
        help="seconds from the start after which nothing waits for a quiet machine or is repeated, "
        "and no further round of runs starts",
    )
    parser.add_argument(
        "--work", type=Path, help="keep data, trace, Ceph logs and run outputs here (default: a temp dir)"
    )
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.smoke else 3)
    if args.repeats < 1:
        parser.error(f"--repeats(={args.repeats}) must be >= 1")
    # SIGTERM unwinds like Ctrl-C, so that the finally blocks stop the runs and the Ceph cluster.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    work = args.work or Path(tempfile.mkdtemp(prefix="trainio-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = benchmark(args, work)
    except BenchError as err:
        print(f"accuracy: error: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    md = args.out.with_suffix(".md")
    md.write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {args.out} and {md}\nnext: open {md}, or rerun one projection with replay what-if --profile FILE")


if __name__ == "__main__":
    main()
