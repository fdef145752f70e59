"""Projection accuracy: `replay what-if` against real runs of the same training on a real Ceph.

    python bench/accuracy.py            # about 15 min on 2 cores -> bench/results/accuracy.json and accuracy.md
    python bench/accuracy.py --smoke --out out/bench-smoke/accuracy.json      # about a minute, for CI
    python bench/accuracy.py --reproject    # the committed runs against projections from the committed
                                            # baselines and profiles (seconds; no Ceph, nothing run)

Four sets of conditions, each projected from a baseline of its own and reported apart:

* the development set (12 conditions: backend, record format, 1/2/4 nodes, 1/2/4 workers, bulk
  preload, 2/20/50 ms steps) of the reference training (examples/reference_train.py: a real
  DataLoader reading and decoding 2000 real JPEGs, batch 32, 2 epochs, the accelerator step
  emulated by a sleep per batch): the model has been adjusted against these;
* the held-out set, a workload the model is never adjusted against: 600 samples, half JPEGs
  decoded and half raw bytes handed on undecoded (--raw-share 0.5), batch 16, 2 epochs; its
  conditions: local as captured, RGW with 2, 1 and 4 workers, RGW with a 2 ms step, and two ranks
  on the host (`--gpus-per-node 2 --workers 1`);
* the held-out record formats: the held-out workload captured reading WebDataset-style tar shards
  from local disk (an iterable dataset with a shuffle buffer, `--source local-shards`), projected
  as captured onto one file per sample (`--format files`) and run so;
* the held-out memory mapping: the held-out workload with its samples packed in one file read
  through a memory mapping (`--source memmap`), captured on local disk and projected onto the
  calibrated CephFS profile, against the same run with the file on CephFS mounted by ceph-fuse.

The benchmark runs ``--repeats`` rounds (3). Each round is what a user does, then what really
happens: each set's baseline is captured (`tracer capture`, local disk, one node, one file per
sample, 2 workers, 20 ms step); `replay calibrate --cpu` probes this host's CPU crowding;
`replay calibrate --trace BASELINE` measures every backend a set needs, its streams paced as that
baseline's loaders left gaps between requests (--colocated for the Ceph targets: the daemons share
this host's cores with the runs); every condition is projected from its set's trace with
``project_trace(baseline, Scenario(profile=..., cpu_profile=..., ...))`` and that round's profiles,
and run for real once. ``measured_s`` is the median of the rounds' runs and ``projected_s`` the
median of the rounds' projections: on a shared machine the CPU a request or a decode costs drifts by
tens of percent from one minute to the next, and a single calibration or capture catches one moment
of it, as a single run does. Each round's own projection against its own run (same minutes) is
reported too (``round_error_pct``).

Nothing is fitted to the real runs: the profiles come from calibrate, the workload from the
baseline trace, and a condition only sets what it changes (backend, format, workers, nodes, step
time as ``compute_scale`` on the accelerator's share of the step). Time to train counts, in both,
from the start of data loading (the preload or the first batch request) to the end of the last
step; with several processes, from the first one's start to the last one's end.

The benchmark starts its own single-node Ceph (scripts/ceph-dev.sh, memstore OSD, its own port
base) and tears it down at the end, also on failure. Each round's profiles are kept in
``accuracy-profiles/round-N/`` and its baseline traces in ``accuracy-baselines/round-N/SET/`` beside
the result, so that ``--reproject`` can project the committed runs again after a model change.

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

Results: the development set's scenarios under the keys the benchmark always had (per scenario
``name``, ``measured_s``, ``projected_s`` (``replay what-if``'s default fast mode), ``error_pct``
(projected vs measured), ``bottleneck`` (the projection's), and more: every real run, the
exact-mode projection, the CPU the workload, the Ceph daemons and the rest of the machine used
during each run; then ``median_abs_error_pct``, ``max_abs_error_pct`` and the same for exact mode),
the held-out set's under ``held_out``, the held-out record formats' under ``held_out_formats`` and the
memory mapping's under ``held_out_memmap``, with the same keys, the profiles used, the baselines,
``machine`` and ``date``. ``--smoke`` runs one condition of each set on tiny data sets, with the
built-in ``rgw`` profile instead of calibrating (the result says so), to check that everything
runs end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the documented command runs from a checkout

from accuracylib.conditions import (  # noqa: E402
    GOAL_MAX_PCT,
    GOAL_MEDIAN_PCT,
    SETS,
    SMOKE_SETS,
    TARGET_MAX_PCT,
    TARGET_MEDIAN_PCT,
    BenchError,
    BenchSet,
    say,
)
from accuracylib.machine import (  # noqa: E402
    ATTEMPTS,
    DISTURBED_FRACTION,
    GATE_WAIT_S,
    QUIET_FRACTION,
    SMOKE_GATE_WAIT_S,
    CpuMeter,
    Patience,
    machine,
)
from accuracylib.profiles import builtin_profiles, calibrate_cpu_profile, calibrate_profiles  # noqa: E402
from accuracylib.projections import baseline_facts, projected_fields, summary  # noqa: E402
from accuracylib.report import markdown  # noqa: E402
from accuracylib.runs import (  # noqa: E402
    RunResult,
    capture_baseline,
    cephfs_mount,
    cpu_per_sample,
    place_data,
    run_condition,
    sources,
)

from scripts.ceph_dev import CephDevError, cluster  # noqa: E402

RESULTS = HERE / "results"
PORT_BASES = (32400, 32600, 32800, 33000)
"""Ceph port bases tried in turn (mon BASE, BASE+1, RGW BASE+2, daemons BASE+10..99): away from
Ceph's defaults, scripts/ceph-dev.sh's default and the tests' bases."""
MEMSTORE_BYTES = 1 << 30


CPU_PROBE_BUDGET_S = 12.0
PROFILE_DIR, BASELINE_DIR = "accuracy-profiles", "accuracy-baselines"


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    sets = SMOKE_SETS if args.smoke else SETS
    notes: list[str] = []
    started = time.monotonic()
    gate_s, attempts = (SMOKE_GATE_WAIT_S, 1) if args.smoke else (GATE_WAIT_S, ATTEMPTS)
    patience = Patience(gate_s, attempts, started + args.time_budget)
    ceph = cluster(
        work / "ceph",
        PORT_BASES,
        up_timeout_s=90,
        memstore_bytes=MEMSTORE_BYTES,
        say=say,
        on_stop_failure=lambda message: print(f"accuracy: {message}", file=sys.stderr),
    )
    data = {s.name: work / "data" / s.dataset for s in sets}
    rounds: dict[str, list[dict]] = {s.name: [] for s in sets}
    runs: dict[str, dict[str, list[RunResult]]] = {s.name: {c.name: [] for c in s.conditions} for s in sets}
    paired: dict[str, dict[str, list[RunResult]]] = {s.name: {c.name: [] for c in s.conditions} for s in sets}
    mapped_cephfs = any("memmap-cephfs" in s.sources for s in sets)
    with ceph as dev, cephfs_mount(dev.env, work / "cephfs-mount", mapped_cephfs) as mount:
        env = dev.env
        meter = CpuMeter(dev.folder)
        where = {s.name: sources(env, data[s.name], s.dataset, mount) for s in sets}
        for s in sets:
            place_data(s.sources, where[s.name], s.setup, data[s.name], env)
        if not args.smoke:  # the rounds' profiles replace the last run's, all of them
            shutil.rmtree(args.out.parent / PROFILE_DIR, ignore_errors=True)
        count = 0
        for rep in range(args.repeats):
            if rep and time.monotonic() > patience.deadline:
                notes.append(f"out of --time-budget: {rep} of the {args.repeats} rounds ran")
                break
            say(f"round {rep + 1}/{args.repeats}")
            profile_dir = args.out.parent / PROFILE_DIR / f"round-{rep + 1}"
            cpu_profile = None
            if not args.smoke:
                profile_dir.mkdir(parents=True, exist_ok=True)
                scratch = work / "calibration" / f"round-{rep + 1}"
                calibrate_cpu_profile(profile_dir / "cpu.toml", scratch / "cpu", CPU_PROBE_BUDGET_S, meter, patience)
                cpu_profile = profile_dir / "cpu.toml"
            for s in sets:
                folder = work / f"baseline-{s.name}-{rep + 1}"
                trace, baseline = capture_baseline(
                    where[s.name], s.setup, data[s.name], env, folder, meter, patience, s.baseline_source
                )
                if args.smoke:
                    paths, profiles = builtin_profiles(s.profiles, "smoke: calibration skipped")
                else:
                    paths, profiles = calibrate_profiles(
                        s.profiles,
                        env,
                        data[s.name],
                        profile_dir,
                        work / "calibration" / f"round-{rep + 1}" / s.name,
                        args.calibrate_budget,
                        meter,
                        patience,
                        trace=trace,
                        prefix="calibrated" if s.adjusted else s.name,
                    )
                rounds[s.name].append(
                    {
                        "paths": paths,
                        "profiles": profiles,
                        "trace": trace,
                        "baseline": baseline,
                        "cpu_profile": cpu_profile,
                    }
                )
            for s in sets:
                for cond in s.conditions:
                    for attempt in range(attempts):
                        folder = work / "runs" / str(count)
                        result = run_condition(cond, s.setup, where[s.name], env, meter, folder, patience.wait_s())
                        count += 1
                        runs[s.name][cond.name].append(result)
                        quiet = "" if result.usage.quiet else f" (others used {100 * result.usage.other_fraction:.0f}%)"
                        say(f"round {rep + 1}/{args.repeats} {s.name} {cond.name}: {result.measured_s:.2f} s{quiet}")
                        if result.usage.quiet or not patience.again(attempt):
                            break
                    paired[s.name][cond.name].append(result)
        if not args.smoke:
            keep_baselines(args.out.parent / BASELINE_DIR, rounds)
    if args.smoke:
        notes.append("smoke run: calibration skipped, the built-in profiles were used")
        profiles_from = "built-in (smoke: calibration skipped)"
    else:
        profiles_from = (
            "`replay calibrate --trace BASELINE` on this machine's Ceph (`--colocated`), "
            f"{args.calibrate_budget:.0f} s budget each, and `replay calibrate --cpu`, once per round"
        )
    results = {s.name: set_result(s, rounds[s.name], runs[s.name], paired[s.name], args.repeats, notes) for s in sets}
    return {
        "benchmark": "accuracy",
        "smoke": args.smoke,
        **results[sets[0].name],
        **{s.key: results[s.name] for s in sets[1:]},
        "targets_pct": {
            "median": TARGET_MEDIAN_PCT,
            "max": TARGET_MAX_PCT,
            "goal_median": GOAL_MEDIAN_PCT,
            "goal_max": GOAL_MAX_PCT,
        },
        "repeats": args.repeats,
        "quiet_rule": {
            "start_when_others_below": QUIET_FRACTION,
            "rerun_when_others_above": DISTURBED_FRACTION,
            "attempts": ATTEMPTS,
        },
        "profiles_from": profiles_from,
        "cpu_profiles": [
            str(r["cpu_profile"].relative_to(args.out.parent)) for r in rounds[sets[0].name] if r["cpu_profile"]
        ],
        "notes": notes,
        "runtime_s": round(time.monotonic() - started, 1),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def set_result(
    bench: BenchSet,
    rounds: list[dict],
    runs: dict[str, list[RunResult]],
    paired: dict[str, list[RunResult]],
    repeats: int,
    notes: list[str],
) -> dict:
    """One set's scenarios (measured and projected) and their summary."""
    scenarios = []
    for cond in bench.conditions:
        quiet = [r for r in runs[cond.name] if r.usage.quiet]
        counted = quiet or runs[cond.name]
        measured = statistics.median(r.measured_s for r in counted)
        if len(quiet) < repeats:
            notes.append(
                f"{bench.name}: {cond.name}: {len(quiet)} of the {repeats} wanted runs were on a quiet machine"
            )
        row = {
            "name": cond.name,
            "measured_s": round(measured, 4),
            "spread_pct": round(
                100 * (max(r.measured_s for r in counted) - min(r.measured_s for r in counted)) / measured, 2
            ),
            "paired_measured_s": [round(r.measured_s, 4) for r in paired[cond.name]],
            "quiet_runs": len(quiet),
            "cpu_ms_per_sample": cpu_per_sample(counted),
            "condition": {k: v for k, v in asdict(cond).items() if v is not None},
            "runs": [r.to_dict() for r in runs[cond.name]],
        }
        row.update(projected_fields(cond, bench.setup, rounds, row["measured_s"], row["paired_measured_s"]))
        scenarios.append(row)
        say(
            f"{bench.name}: {cond.name}: measured {measured:.2f} s, projected {row['projected_s']:.2f} s "
            f"({row['error_pct']:+.1f}%)"
        )
    return {
        "set": bench.name,
        "adjusted_against": bench.adjusted,
        "scenarios": scenarios,
        **summary(scenarios),
        "setup": asdict(bench.setup),
        "baseline": rounds[0]["baseline"],
        "baselines": [r["baseline"] for r in rounds],
        "profiles": rounds[0]["profiles"],
        "profiles_rounds": [r["profiles"] for r in rounds],
    }


def keep_baselines(root: Path, rounds: dict[str, list[dict]]) -> None:
    """Each round's baseline traces under ``root/round-N/SET/``, so that ``--reproject`` can use them."""
    shutil.rmtree(root, ignore_errors=True)
    for name, per_round in rounds.items():
        for number, round_ in enumerate(per_round, start=1):
            shutil.copytree(round_["trace"], root / f"round-{number}" / name)


def reproject(result_path: Path) -> dict:
    """The committed result with every projection made again from the committed baselines and profiles
    beside it (after a model change); the runs and their times stay as measured."""
    result = json.loads(result_path.read_text())
    folder = result_path.parent
    sets = SMOKE_SETS if result["smoke"] else SETS
    for bench in sets:
        part = result.get(bench.key) if bench.key else result
        if part is None:  # a set the committed result predates
            result["notes"] = [*result["notes"], f"--reproject: no {bench.name} set in the committed result"]
            continue
        rounds = []
        for number in range(1, len(part["baselines"]) + 1):
            trace = folder / BASELINE_DIR / f"round-{number}" / bench.name
            profiles = folder / PROFILE_DIR / f"round-{number}"
            if not trace.is_dir():
                raise BenchError(f"--reproject: no baseline trace {trace}: run the benchmark to make one")
            prefix = "calibrated" if bench.adjusted else bench.name
            cpu = profiles / "cpu.toml"
            rounds.append(
                {
                    "paths": {name: profiles / f"{prefix}-{name}.toml" for name in bench.profiles},
                    "trace": trace,
                    "baseline": baseline_facts(trace),
                    "cpu_profile": cpu if cpu.is_file() else None,
                }
            )
        conditions = {c.name: c for c in bench.conditions}
        for row in part["scenarios"]:
            row.update(
                projected_fields(
                    conditions[row["name"]], bench.setup, rounds, row["measured_s"], row["paired_measured_s"]
                )
            )
        part.update(summary(part["scenarios"]))
    result["notes"] = [
        *result["notes"],
        f"re-projected on {time.strftime('%Y-%m-%d')} (--reproject): the runs as measured",
    ]
    return result


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
    parser.add_argument(
        "--reproject",
        action="store_true",
        help="run nothing: project the runs of --out again from the baselines and profiles beside it, "
        "and rewrite --out and its .md",
    )
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.smoke else 3)
    if args.repeats < 1:
        parser.error(f"--repeats(={args.repeats}) must be >= 1")
    if args.reproject:
        try:
            result = reproject(args.out)
        except (OSError, ValueError, KeyError, BenchError) as err:
            print(f"accuracy: error: cannot re-project {args.out}: {err}", file=sys.stderr)
            sys.exit(2)
        write_result(args.out, result)
        return
    # SIGTERM unwinds like Ctrl-C, so that the finally blocks stop the runs and the Ceph cluster.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    work = args.work or Path(tempfile.mkdtemp(prefix="trainio-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = benchmark(args, work)
    except (BenchError, CephDevError) as err:
        print(f"accuracy: error: {err}", file=sys.stderr)
        sys.exit(1)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    write_result(args.out, result)


def write_result(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    md = out.with_suffix(".md")
    md.write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {out} and {md}\nnext: open {md}, or rerun one projection with replay what-if --profile FILE")


if __name__ == "__main__":
    main()
