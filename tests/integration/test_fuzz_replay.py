"""A seeded fuzz of the ``replay`` commands: odd option values, malformed, truncated, binary and
future-version traces and profiles, odd paths, targets, buckets and keys. Every case must end in one of
three ways: success (exit 0), a failure (exit 1) or bad input (exit 2), the last two with exactly one
error line on stderr and never a traceback. Bounded for CI: a fixed number of cases, in process (click's
runner), plus a few as real processes; it prints cases run, exit codes and tracebacks found."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tests.helpers import run_cli
from tests.unit.synthetic import event_row, io_row, make_trace
from trainio.replay.cli import main
from trainio.tracefile.format import file_metadata

SEED = 13
CASES = 1000
PROCESS_CASES = 8
ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "models" / "profiles" / "cephfs.toml"
ODD_VALUES = [
    "",
    " ",
    "-1",
    "0",
    "0.0",
    "1e400",
    "-1e400",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "1e-300",
    "99999999999999999999999",
    "1000000000",
    "abc",
    "1.5",
    "3",
    "--json",
    "ü",
    "\t",
    "0x10",
    "1_000",
    "2 GB",
    "shards:",
    "shards:0",
    "shards:-1MiB",
    "shards:1e400B",
    "shards:64MiB",
    "preload",
    "files",
]
BUCKETS = ["", "UPPER", "a", "x" * 100, "../..", "b/c", "ü", "b b", "trainio-data", "-"]


def _trace(root: Path) -> Path:
    """Three files read whole by one process, with DataLoader events (a what-if can project it)."""
    rows, events = [], []
    for i, size in enumerate((3000, 5000, 700)):
        path, t = f"/data/set/f{i}.bin", 1_000_000 * (i + 1)
        rows += [
            io_row(1, path, 0, t, op="open") | {"bytes_returned": None, "result": 3},
            io_row(1, path, size, t + 1000),
            io_row(1, path, 0, t + 2000, op="close") | {"bytes_returned": None, "result": 0},
        ]
    for b in range(3):
        events.append(event_row(1, "batch", 1_000_000 * (b + 1) - 500, 1_000_000 * (b + 1) + 3000, batch=b))
        events.append(event_row(1, "step", 1_000_000 * (b + 1) + 3000, 1_000_000 * (b + 1) + 9000, batch=b))
    return make_trace(root, [], events=events, io_rows=rows)


def _damaged_traces(base: Path, folder: Path) -> list[Path]:
    """Copies of ``base``, each broken one way; plus paths that are no trace at all."""
    made = []

    def copy(name: str) -> Path:
        trace = folder / name
        shutil.copytree(base, trace)
        made.append(trace)
        return trace

    manifest = json.loads((base / "manifest.json").read_text())
    part = next((base / "io").glob("*.parquet")).name
    for name, text in {
        "manifest-truncated": (base / "manifest.json").read_bytes()[:40],
        "manifest-binary": bytes(range(256)),
        "manifest-empty": b"",
        "manifest-list": b"[1, 2, 3]",
        "manifest-future": json.dumps({**manifest, "format_version": "9.0"}).encode(),
        "manifest-foreign": json.dumps({**manifest, "format": "not-trainio"}).encode(),
        "manifest-huge-numbers": json.dumps({**manifest, "host": {"cpus": 1e308, "memory_bytes": -1}}).encode(),
    }.items():
        (copy(name) / "manifest.json").write_bytes(text)
    (copy("io-truncated") / "io" / part).write_bytes((base / "io" / part).read_bytes()[:100])
    (copy("io-binary") / "io" / part).write_bytes(random.Random(SEED).randbytes(5000))
    (copy("io-empty") / "io" / part).write_bytes(b"")
    table = pq.read_table(base / "io" / part)
    future = {**file_metadata("io", "test"), b"trainio.format_version": b"9.0"}
    pq.write_table(table.replace_schema_metadata(future), copy("io-future") / "io" / part)
    pq.write_table(table.replace_schema_metadata({}), copy("io-foreign") / "io" / part)
    pq.write_table(pa.table({"x": [1]}), copy("io-no-columns") / "io" / part)
    shutil.rmtree(copy("no-io") / "io")
    spool = copy("not-finalized")
    (spool / "io").rename(spool / "spool")
    (folder / "a-file").write_text("x")
    (folder / "empty-dir").mkdir()
    return [*made, folder / "a-file", folder / "empty-dir", folder / "nowhere", base / "io" / part]


def _damaged_profiles(folder: Path) -> list[Path]:
    text = PROFILE.read_text()
    profiles = {
        "binary": bytes(range(256)) * 3,
        "truncated": text.encode()[: len(text) // 2],
        "empty": b"",
        "unknown-table": (text + "\n[extra]\nx = 1\n").encode(),
        "number-not-unit": text.replace('"1.5 GB/s"', "1.5").encode(),
        "overflow": text.replace('"4400000 IOPS"', '"1e400 IOPS"').encode(),
        "absurd": text.replace('"0.5 ms"', '"1e300 s"', 1).encode(),
        "negative": text.replace('"0.5 ms"', '"-3 ms"', 1).encode(),
        "bad-bool": text.replace("shared = true", 'shared = "yes"').encode(),
        "unicode-unit": text.replace('"1.5 GB/s"', '"1.5 ＧB/s"').encode(),
    }
    paths = []
    for name, data in profiles.items():
        (folder / f"{name}.toml").write_bytes(data)
        paths.append(folder / f"{name}.toml")
    (folder / "a-folder.toml").mkdir()
    return [*paths, folder / "a-folder.toml", folder / "nowhere.toml"]


def _targets(folder: Path) -> list[str]:
    (folder / "a-file").write_text("x")
    outside = folder / "outside"
    outside.mkdir()
    (folder / "linked").mkdir()
    (folder / "linked" / "f0.bin").symlink_to(outside / "f0.bin")
    return [
        "",
        " ",
        "-",
        "rbd:",
        "rbd:p",
        "rbd:p/",
        "rbd:/i",
        "rbd:p/i/j",
        "rados:",
        "rados:a/b",
        "cephfs:",
        "cephfs:/",
        "cephfs://x",
        "cephfs:rel",
        "rgw:",
        "rgw:ftp://h/b",
        "rgw:http://h",
        "s3:http://127.0.0.1:1/b",
        "nfs:/x",
        "rados:trainpool",
        "cephfs:/x",
        str(folder / "a-file"),
        str(folder / "with space"),
        str(folder / "ünïcode"),
        str(folder / ("x" * 300)),
        str(folder / "linked"),
        "/proc/self",
        "/dev/null",
    ]


def _case(rng: random.Random, traces: list[Path], good: Path, profiles: list[Path], targets: list[str], tmp: Path):
    """One command line: mostly valid, with one or more parts broken."""
    command = rng.choice(["what-if", "what-if", "fio", "fio", "s3", "calibrate", "emulate", "backends"])
    trace = str(rng.choice(traces) if rng.random() < 0.5 else good)
    odd = rng.choice
    n = rng.randrange(1000)
    if command == "what-if":
        args = ["what-if", "--trace", trace]
        options = ["--nodes", "--gpus-per-node", "--format", "--epochs", "--dataset-samples", "--workers"]
        options += ["--batch-size", "--compute-scale", "--model-bytes", "--cpus-per-node", "--node-memory", "--nic"]
        options += ["--interconnect", "--backend", "--seed"]
        for option in rng.sample(options, rng.randint(1, 3)):
            args += [option, odd(ODD_VALUES)]
        if rng.random() < 0.4:
            args += ["--profile", str(odd(profiles))]
    elif command == "fio":
        args = ["fio", "--trace", trace, "--target", odd([*targets, str(tmp / f"new{n}")]), "--no-stall"]
        for option in rng.sample(["--nodes", "--time-scale", "--workdir"], rng.randint(0, 2)):
            args += [option, odd(ODD_VALUES) if option != "--workdir" else odd([*targets, str(tmp / f"w{n}")])]
    elif command == "s3":
        args = ["s3", "--trace", trace, "--endpoint", odd(["http://127.0.0.1:1", "ftp://x", "", "http://"])]
        args += ["--bucket", odd(BUCKETS), "--connect-timeout", odd(["0.2", *ODD_VALUES[:8]])]
        if rng.random() < 0.5:
            args += [odd(["--nodes", "--time-scale", "--read-timeout"]), odd(ODD_VALUES)]
    elif command == "emulate":
        # the good trace has no per-sample events: a valid command line ends in one line too, quickly
        args = ["emulate", "--trace", trace, "--target", odd([*targets, str(tmp / f"e{n}"), "s3://b/p"])]
        options = ["--nodes", "--format", "--epochs", "--compute-scale", "--workers", "--batch-size", "--seed"]
        for option in rng.sample([*options, "--endpoint", "--read-timeout", "--backend"], rng.randint(1, 3)):
            args += [option, odd(ODD_VALUES)]
        if rng.random() < 0.3:
            args += ["--profile", str(odd(profiles))]
    elif command == "calibrate":
        kinds = [t for t in targets if not os.path.isdir(t)]  # a real directory would run a whole calibration
        args = ["calibrate", "--target", odd(kinds), "--out", str(odd([tmp / f"p{n}.toml", tmp / "a-file", tmp]))]
        if rng.random() < 0.5:
            args += [odd(["--budget-s", "--read-timeout", "--connect-timeout"]), odd(ODD_VALUES)]
    else:
        args = ["backends", *(["--json"] if rng.random() < 0.5 else []), *(["--nodes", "1"] if n % 3 == 0 else [])]
    return args


def _error_lines(stderr: str) -> list[str]:
    """The lines that are neither progress (``replay fio: ...``) nor warnings."""
    kept = []
    for line in stderr.splitlines():
        head, sep, rest = line.partition(": ")
        if sep and head.startswith("replay") and not rest.startswith(("error:", "failed:")):
            continue
        kept.append(line)
    return kept


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    good = _trace(folder / "good")
    (folder / "broken").mkdir()
    traces = _damaged_traces(good, folder / "broken")
    (folder / "profiles").mkdir()
    (folder / "targets").mkdir()
    return good, traces, _damaged_profiles(folder / "profiles"), _targets(folder / "targets"), folder


@pytest.mark.slow
def test_fuzzed_replay_commands_end_in_one_line_and_an_exit_code_never_a_traceback(corpus, monkeypatch):
    good, traces, profiles, targets, folder = corpus
    env = {
        "CEPH_CONF": str(folder / "no-ceph.conf"),
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "TRAINIO_S3_ENDPOINT": "",
        "TMPDIR": str(folder),
    }
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.chdir(folder)  # relative targets ("-", " ") land in the fuzz's folder
    rng = random.Random(SEED)
    runner = CliRunner()
    codes: collections.Counter = collections.Counter()
    tracebacks, bad = [], []
    started = time.monotonic()
    for _ in range(CASES):
        args = _case(rng, traces, good, profiles, targets, folder / "out")
        result = runner.invoke(main, args, env=env)
        codes[result.exit_code] += 1
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            tracebacks.append((args, repr(result.exception)))
        elif result.exit_code not in (0, 1, 2) or (result.exit_code and len(_error_lines(result.stderr)) != 1):
            bad.append((args, result.exit_code, result.stderr[-500:]))
    print(
        f"fuzz: {CASES} cases in {time.monotonic() - started:.0f} s, exit codes {dict(sorted(codes.items()))}, "
        f"tracebacks {len(tracebacks)}, other failures {len(bad)}"
    )
    assert tracebacks == [], "\n".join(f"{args}: {error}" for args, error in tracebacks)
    assert bad == [], "\n".join(map(str, bad))
    assert codes[2] > CASES / 3 and codes[0] > 0  # mostly bad input, some valid


@pytest.mark.slow
def test_fuzzed_cases_as_real_processes_print_no_traceback(corpus):
    good, traces, profiles, targets, folder = corpus
    rng = random.Random(SEED + 1)
    for _ in range(PROCESS_CASES):
        args = _case(rng, traces, good, profiles, targets, folder / "out-processes")
        proc = run_cli("replay", *args, env={"CEPH_CONF": str(folder / "no-ceph.conf")}, timeout=120, cwd=folder)
        assert proc.returncode in (0, 1, 2) and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert proc.returncode == 0 or len(_error_lines(proc.stderr)) == 1, (args, proc.stderr)
