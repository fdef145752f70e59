"""Replay the bundled imagenet trace's file reads with real fio on a local copy of the data set."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from trainio.replay.real.iolog import layout_dataset, write_iologs
from trainio.replay.storage.fio import read_fio_json
from trainio.tracefile import open_trace

BUNDLED = Path(__file__).resolve().parents[2] / "traces" / "imagenet_jpeg-cpu"
READ_OPS = ["read", "pread", "readv", "preadv", "fread"]


def _fio() -> str:
    fio = shutil.which("fio")
    if fio is None:
        pytest.fail("fio is not installed: run scripts/install-system-deps.sh")
    return fio


def _traced_reads(trace) -> tuple[int, int]:
    """Bytes and count of the trace's data reads from files that returned data."""
    io = trace.io
    reads = io.filter(
        pc.and_(
            pc.and_(pc.equal(io["io_class"], "data"), pc.equal(io["kind"], "file")),
            pc.and_(pc.is_in(io["op"], value_set=pa.array(READ_OPS)), pc.greater(io["bytes_returned"], 0)),
        )
    )
    return pc.sum(reads["bytes_returned"]).as_py(), reads.num_rows


def _traced_span_s(iologs: list[Path], job_file: Path) -> dict[str, tuple[float, float]]:
    """Per job: (start delay, traced span from its first to its last op) in seconds, from the files."""
    delays = {}
    job = None
    for line in job_file.read_text().splitlines():
        if line.startswith("[pid-"):
            job = line.strip("[]")
            delays[job] = 0.0
        elif line.startswith("startdelay="):
            delays[job] = int(line.removeprefix("startdelay=").removesuffix("us")) / 1e6
    return {
        path.stem: (delays[path.stem], (int(path.read_text().splitlines()[-1].split()[0]) - 1) / 1e6) for path in iologs
    }


@pytest.mark.slow
def test_fio_replays_exactly_the_traced_data_reads_at_the_traced_pace(tmp_path):
    fio = _fio()
    trace = open_trace(BUNDLED)
    target = tmp_path / "dataset"
    layout = layout_dataset(trace, target)
    written = write_iologs(trace, tmp_path / "replay", target)
    job_file = written[-1]

    out = tmp_path / "result.json"
    proc = subprocess.run(
        [fio, "--readonly", "--output-format=json", f"--output={out}", str(job_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"fio exited {proc.returncode}: {proc.stderr or out.read_text()}"
    result = read_fio_json(out)
    assert [job.error for job in result.jobs] == [0] * len(written[:-1]), result.messages

    # Every traced read that returned data is one fio read of the same length (EOF probes that
    # returned 0 bytes are not replayed), so bytes and counts match exactly.
    want_bytes, want_ios = _traced_reads(trace)
    assert sum(job.read.io_bytes for job in result.jobs) == want_bytes
    assert sum(job.read.total_ios for job in result.jobs) == want_ios
    assert sum(job.read.short_ios for job in result.jobs) == 0
    assert sum(job.write.io_bytes for job in result.jobs) == 0
    # Two epochs read each of the 1024 images once; the main process read the DONE marker once.
    done = (target / "DONE").stat().st_size
    assert layout.files == 1025 and want_bytes == 2 * (layout.bytes - done) + done

    # Paced replay: each job runs about as long as its process did (fio sleeps the traced gaps;
    # on this data set the reads themselves take microseconds), and the whole run spans about
    # what the trace spans once the start delays are added.
    spans = _traced_span_s(written[:-1], job_file)
    runtime = {job.jobname: job.job_runtime_ms / 1000 for job in result.jobs}
    for name, (_, traced) in spans.items():
        if traced > 0.5:
            assert 0.9 * traced <= runtime[name] <= 3 * traced + 0.5, (name, traced, runtime[name])
    traced_total = max(delay + span for delay, span in spans.values())
    replay_total = max(spans[name][0] + runtime[name] for name in spans)
    assert 0.9 * traced_total <= replay_total <= 3 * traced_total + 0.5, (traced_total, replay_total)
    print(
        f"fio replay: {want_bytes} bytes in {want_ios} reads; "
        f"replayed {replay_total:.2f} s vs traced {traced_total:.2f} s; per job {runtime} vs {spans}"
    )
