"""Nothing that can authenticate leaves the machine in a trace or its exports; an anonymized copy
keeps what a projection needs and none of the names (issue 13, item 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT, run_cli, summary_json
from trainio.tracefile import open_trace

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
SECRET_ENV = {
    "DATABASE_URL": "postgres://trainer:dbpw4711@db.internal:5432/runs",
    "MYSQL_PWD": "mysqlpw4711",
    "PGPASSWORD": "pgpw4711",
    "GITHUB_PAT": "ghpat4711",
    "HF_AUTH": "hfauth4711",
    "RUN_CONFIG_BLOB": JWT,
    "MY_SETTING": "usersetting4711",
}
SECRET_ARGS = [
    "--password",
    "argpw4711",
    "--api-key=apikey4711",
    "--url",
    "https://alice:urlpw4711@data.example.com/train?X-Amz-Signature=sig4711&X-Amz-Credential=cred4711&part=1",
    "--my-setting",
    "opt4711",
    "--hf",
    "hfauth4711",  # an environment secret repeated on the command line
]
SECRETS = [
    "dbpw4711",
    "mysqlpw4711",
    "pgpw4711",
    "ghpat4711",
    "hfauth4711",
    JWT,
    "usersetting4711",
    "argpw4711",
    "apikey4711",
    "urlpw4711",
    "sig4711",
    "cred4711",
    "opt4711",
]
TRAIN = """
import subprocess, sys
data = sys.argv[sys.argv.index("--data") + 1]
for name in ("a.bin", "b.bin"):
    with open(f"{data}/{name}", "rb") as f:
        f.read()
if "--child" not in sys.argv:  # a Python child with the same secrets in its own argv
    subprocess.run([sys.executable, *sys.argv, "--child"], check=True)
"""


def _leaks(paths: list[Path]) -> list[str]:
    """Secrets found in any byte of these files."""
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [f"{s} in {path.name}" for s in SECRETS if s.encode() in data]
    return found


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _setup(tmp_path: Path) -> tuple[Path, list[str]]:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.bin", "b.bin"):
        (data / name).write_bytes(os.urandom(4096))
    (tmp_path / "train.py").write_text(TRAIN)
    return data, [sys.executable, str(tmp_path / "train.py"), "--data", str(data), *SECRET_ARGS]


def test_no_secret_of_the_command_lines_or_the_environment_is_in_the_trace_or_its_exports(tmp_path):
    data, command = _setup(tmp_path)
    trace = tmp_path / "trace"
    proc = run_cli("tracer", "capture", "--redact", "my-setting", "--out", trace, "--", *command, env=SECRET_ENV)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((trace / "manifest.json").read_text())
    mains = [p for p in manifest["processes"] if p["executable"] == sys.executable]
    assert len(mains) == 2 and all("<redacted>" in p["argv"] for p in mains)
    assert manifest["env"]["DATABASE_URL"] == "postgres://<redacted>@db.internal:5432/runs"
    assert manifest["redact"] == ["MY_SETTING"]
    chrome = tmp_path / "run.json"
    run_cli("tracer", "export", trace, "--chrome", chrome, "--all-io", check=True)
    (tmp_path / "summary.json").write_text(json.dumps(summary_json(trace)))
    assert _leaks([*_files(trace), chrome, tmp_path / "summary.json"]) == []
    assert summary_json(trace)["bytes_read"] >= 2 * 2 * 4096  # the trace itself is whole


def test_a_trace_finalized_after_the_capture_was_killed_has_its_command_lines_redacted(tmp_path):
    data, command = _setup(tmp_path)
    (tmp_path / "train.py").write_text("import time; time.sleep(1.5)\n" + TRAIN)
    trace = tmp_path / "trace"
    capture = [sys.executable, "-m", "trainio.tracer", "capture", "--redact", "MY_SETTING", "--out", str(trace)]
    capture += ["--", *command]
    env = {**os.environ, **SECRET_ENV}
    proc = subprocess.Popen(capture, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list((trace / "spool").glob("py-*.spool")):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # the tracer only: the training goes on
    proc.wait(timeout=30)
    while (fin := run_cli("tracer", "finalize", trace, env=SECRET_ENV)).returncode == 2:
        assert time.monotonic() < deadline, fin.stderr
        time.sleep(0.2)
    assert fin.returncode == 0, fin.stderr
    assert _leaks(_files(trace)) == []
    argvs = [p["argv"] for p in json.loads((trace / "manifest.json").read_text())["processes"]]
    assert sum("<redacted>" in a for a in argvs) == 2, argvs


def test_an_anonymized_copy_hides_every_name_and_projects_as_the_original(tmp_path):
    original = ROOT / "traces" / "imagenet_jpeg-cpu"
    paths = {p for p in open_trace(original).io["path"].to_pylist() if p}
    parts = {part.rsplit(".", 1)[0] for p in paths for part in p.split("/")} - {""}
    copies = [tmp_path / "copy1", tmp_path / "copy2"]
    outs = [
        run_cli("tracer", "export", original, "--anonymize", "--out", c, "--chrome", c.with_suffix(".json"), check=True)
        for c in copies
    ]
    assert "kept:" in outs[0].stdout and "dropped the command line" in outs[0].stdout
    copy = open_trace(copies[0])
    hashed = {p for p in copy.io["path"].to_pylist() if p}
    assert len(hashed) == len(paths)
    assert not {part.rsplit(".", 1)[0] for p in hashed for part in p.split("/")} & parts
    texts = [(copies[0] / "manifest.json").read_text(), copies[0].with_suffix(".json").read_text()]
    distinctive = ("imagenet_jpeg", "trainio-examples", *[p for p in sorted(parts) if len(p) > 6][:50])
    assert not [name for name in distinctive if any(name in text for text in texts)]
    assert copy.manifest["env"] == {} and "anonymized" in copy.manifest
    before, after = summary_json(original), summary_json(copies[0])
    for key in ("bytes_read", "read_ops", "distinct_files", "samples", "batches", "pattern", "reread_bytes"):
        assert after[key] == before[key], key
    assert len(after["data_roots"]) == len(before["data_roots"])
    assert after["data_roots"][0].count("/") == before["data_roots"][0].count("/")  # the shape is kept
    assert after["data_roots"] != summary_json(copies[1])["data_roots"]  # a new salt for each export
    whatif = ["what-if", "--backend", "as-captured", "--json", "--trace"]
    projected = [json.loads(run_cli("replay", *whatif, t, check=True).stdout) for t in (original, copies[0])]
    assert projected[1]["time_to_train_s"] == projected[0]["time_to_train_s"]
    assert projected[1]["bottleneck"] == projected[0]["bottleneck"]


def test_export_needs_something_to_write(tmp_path):
    original = ROOT / "traces" / "imagenet_jpeg-cpu"
    for args in ([], ["--out", str(tmp_path / "c")], ["--anonymize"]):
        proc = run_cli("tracer", "export", original, *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
