"""``replay sweep`` / ``replay report`` / ``what-if --plot`` as a user runs them: real processes, a real
Ray head on 127.0.0.1, and the report opened in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT, run_cli
from trainio.replay.projection.engines import LocalPool
from trainio.replay.projection.grid import Grid
from trainio.replay.projection.scenario import load_trace
from trainio.replay.projection.sweepfile import read_sweep

TRACE = ROOT / "traces" / "imagenet_jpeg-cpu"
GRID = ("--nodes", "1,4,16", "--backend", "local-nvme,rgw", "--format", "files,shards:256MiB")


def _one_line_error(proc: subprocess.CompletedProcess, says: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "sweep.parquet"
    proc = run_cli("replay", "sweep", "--trace", TRACE, *GRID, "--jobs", "2", "--out", out, "--csv", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "12 ran, 0 reused" in proc.stdout and f"replay report --sweep {out}" in proc.stdout
    assert "[#" not in proc.stderr  # no progress bar when stderr is not a terminal
    return out


def test_a_sweep_writes_parquet_and_csv_and_a_rerun_reuses_every_row(sweep_file):
    rows = read_sweep(sweep_file).rows
    assert len(rows) == 12 and all(r["error"] is None for r in rows)
    header = sweep_file.with_suffix(".csv").read_text().splitlines()[0]
    assert '"time_to_train_s"' in header and '"error"' in header and '"wall_s"' in header
    again = run_cli("replay", "sweep", "--trace", TRACE, *GRID, "--out", sweep_file, timeout=120)
    assert again.returncode == 0 and "0 ran, 12 reused" in again.stdout


def test_a_sweep_over_stage_in_reports_copy_then_train_against_training_from_shared_storage(tmp_path):
    out = tmp_path / "sweep.parquet"
    grid = ("--nodes", "1,2,4", "--backend", "rgw,cephfs", "--stage-in", "none,local-nvme", "--epochs", "4")
    proc = run_cli("replay", "sweep", "--trace", TRACE, *grid, "--jobs", "2", "--out", out, timeout=300)
    assert proc.returncode == 0 and "12 ran" in proc.stdout, proc.stderr
    rows = read_sweep(out).rows
    for row in rows:
        pair = [r for r in rows if (r["backend"], r["nodes"]) == (row["backend"], row["nodes"])]
        best = min(pair, key=lambda r: r["time_to_value_s"])
        assert row["time_to_value_winner"] == (best["stage_in"] or "none")
    report = tmp_path / "report"
    assert run_cli("replay", "report", "--sweep", out, "--out", report, timeout=120).returncode == 0
    page = (report / "report.md").read_text()
    assert "## Copy then train vs train from shared storage" in page and "(time_to_value.png)" in page
    assert (report / "time_to_value.png").read_bytes().startswith(b"\x89PNG")


def test_the_pool_ships_the_trace_once_and_never_rereads_it(tmp_path):
    copy = tmp_path / "trace"
    shutil.copytree(TRACE, copy)
    loaded = load_trace(copy)
    shutil.rmtree(copy)  # the workers can only have what was handed to them
    configs = Grid.parse({"nodes": "1,2,4,8"}).configurations()
    results = dict(LocalPool(2).run(loaded, configs))
    assert sorted(results) == [0, 1, 2, 3] and all(r["error"] is None for r in results.values())


def test_ctrl_c_keeps_finished_rows_and_the_same_command_finishes(tmp_path):
    out = tmp_path / "sweep.parquet"
    # Exact mode on a larger data set: about a second per configuration; the first result is saved
    # at once, and Ctrl-C follows it while the others run.
    args = ("sweep", "--trace", TRACE, "--nodes", "1,2,3,4,5,6,7,8", "--backend", "rgw")
    args += ("--epochs", "2", "--dataset-samples", "8000", "--exact", "--jobs", "2", "--out", out)
    child = subprocess.Popen(
        [sys.executable, "-m", "trainio.replay", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:  # the first result
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, stderr
    kept = len(read_sweep(out).rows)
    assert 0 < kept < 8 and f"interrupted: {kept} of 8 configurations kept" in stderr
    assert "Traceback" not in stderr
    rest = run_cli("replay", *args, timeout=300)
    assert rest.returncode == 0 and f"{8 - kept} ran, {kept} reused" in rest.stdout, rest.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--nodes", ""), "--nodes '' lists no value: the grid would be empty"),
        (("--backend", "rgw,lustre"), "'lustre' is not a known backend"),
        (("--engine", "ray", "--address", "127.0.0.1:1"), "cannot reach Ray at 127.0.0.1:1"),
    ],
)
def test_bad_sweeps_are_one_line_errors(tmp_path, args, says):
    started = time.monotonic()
    proc = run_cli("replay", "sweep", "--trace", TRACE, *args, "--out", tmp_path / "s.parquet", timeout=60)
    _one_line_error(proc, says)
    assert time.monotonic() - started < 30
    assert not (tmp_path / "s.parquet").exists()


def test_report_refuses_what_is_not_a_sweep_of_its_version(sweep_file, tmp_path):
    trace_file = sorted((TRACE / "io").glob("*.parquet"))[0]
    _one_line_error(run_cli("replay", "report", "--sweep", trace_file, "--out", tmp_path), "not a sweep file")
    _one_line_error(run_cli("replay", "report", "--sweep", TRACE / "manifest.json", "--out", tmp_path), "Parquet")
    table = pq.read_table(sweep_file)
    future = tmp_path / "future.parquet"
    metadata = {**table.schema.metadata, b"trainio.format_version": b"2.0"}
    pq.write_table(table.replace_schema_metadata(metadata), future)
    _one_line_error(run_cli("replay", "report", "--sweep", future, "--out", tmp_path), "sweep format version 2.0")
    assert not (tmp_path / "index.html").exists()


def test_a_report_whose_target_nobody_meets_says_so(sweep_file, tmp_path):
    proc = run_cli("replay", "report", "--sweep", sweep_file, "--out", tmp_path / "r", "--deadline", "0.1s")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("No configuration meets a 0.1 s deadline. The closest: ")


def test_what_if_plot_draws_the_timeline(tmp_path):
    plot = tmp_path / "timeline.png"
    proc = run_cli("replay", "what-if", "--trace", TRACE, "--nodes", "4", "--backend", "rgw", "--plot", plot)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(plot) as image:
        assert image.width > 800 and image.height > 400


def test_a_small_grid_on_a_real_ray_head(tmp_path):
    out = tmp_path / "sweep.parquet"
    script = ROOT / "scripts" / "with-ray-head.sh"
    command = (
        f"{sys.executable} -m trainio.replay sweep --trace {TRACE} --nodes 1,4 --backend local-nvme,rgw "
        f'--engine ray --address "$RAY_HEAD" --out {out}'
    )
    proc = subprocess.run(
        [str(script), "2", "--", "bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(Ray, 2 at once)" in proc.stderr and "4 ran, 0 reused" in proc.stdout
    local = tmp_path / "local.parquet"
    run_cli(
        "replay",
        "sweep",
        "--trace",
        TRACE,
        "--nodes",
        "1,4",
        "--backend",
        "local-nvme,rgw",
        "--jobs",
        "1",
        "--out",
        local,
        check=True,
    )
    on_ray = {r["key"]: r["time_to_train_s"] for r in read_sweep(out).rows}
    here = {r["key"]: r["time_to_train_s"] for r in read_sweep(local).rows}
    assert on_ray == here  # the same configurations, the same projections


CHECK_IMAGES = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.setAttribute("data-images", loaded + "/" + images.length);
});
</script>
"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (scripts/install-system-deps.sh installs it)"
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}",
        ]  # fmt: skip
        return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=120)


def test_the_report_opens_in_a_headless_browser_with_every_image(sweep_file, tmp_path):
    out = tmp_path / "report"
    proc = run_cli("replay", "report", "--sweep", sweep_file, "--out", out, "--deadline", "10min", check=True)
    assert "index.html" in proc.stdout
    page = (out / "index.html").read_text()
    images = page.count("<img ")
    assert images == 4
    probe = tmp_path / "probe.html"  # the page as written, plus a script that reports what loaded
    probe.write_text(page.replace("</body>", CHECK_IMAGES + "</body>"))
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert f'data-images="{images}/{images}"' in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1200,1600", f"--screenshot={shot}", (out / "index.html").as_uri())
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is blank"
