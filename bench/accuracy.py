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
    CONDITIONS,
    FULL,
    GOAL_MAX_PCT,
    GOAL_MEDIAN_PCT,
    SMOKE,
    SMOKE_CONDITIONS,
    TARGET_MAX_PCT,
    TARGET_MEDIAN_PCT,
    BenchError,
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
from accuracylib.profiles import builtin_profiles, calibrate_profiles  # noqa: E402
from accuracylib.projections import error_pct, median_projection, round_projections  # noqa: E402
from accuracylib.report import markdown  # noqa: E402
from accuracylib.runs import RunResult, capture_baseline, cpu_per_sample, place_data, run_condition, sources  # noqa: E402

from scripts.ceph_dev import CephDevError, cluster  # noqa: E402

RESULTS = HERE / "results"
PORT_BASES = (32400, 32600, 32800, 33000)
"""Ceph port bases tried in turn (mon BASE, BASE+1, RGW BASE+2, daemons BASE+10..99): away from
Ceph's defaults, scripts/ceph-dev.sh's default and the tests' bases."""
MEMSTORE_BYTES = 1 << 30


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
    ceph = cluster(
        work / "ceph",
        PORT_BASES,
        up_timeout_s=90,
        memstore_bytes=MEMSTORE_BYTES,
        say=say,
        on_stop_failure=lambda message: print(f"accuracy: {message}", file=sys.stderr),
    )
    with ceph as dev:
        env = dev.env
        meter = CpuMeter(dev.folder)
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
    except (BenchError, CephDevError) as err:
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
