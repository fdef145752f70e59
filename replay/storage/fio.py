"""fio, run and read: one runner (:func:`run_fio`) and a typed reader of its ``--output-format=json``
output (:func:`read_fio_json`).

The reader reads only the fields trainio uses and tolerates every other one. Malformed or
truncated JSON, stray text around it and missing or mistyped fields raise :class:`FioOutputError`,
one line naming the file and what is wrong. fio's own ``fio: ...`` lines before or after the JSON
(fio writes them into the ``--output`` file when a job fails) are kept in
:attr:`FioResult.messages`; its ``exec_prerun`` / ``exec_postrun`` notices are dropped. See
docs/replay.md.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainio.replay.storage.errors import ReplayError, tail

FIO_MESSAGE_PREFIX = "fio: "
EXEC_NOTICE = re.compile(r"^\S+ : Saving output of (prerun|postrun) in \S+\.txt$")
"""What fio writes into its output for each exec_prerun / exec_postrun of a job run as a thread."""
INSTALL_FIO = "install fio (Debian: apt-get install fio, or scripts/install-system-deps.sh)"


class FioOutputError(ValueError):
    """fio output that cannot be read; ``source`` is the file (or ``<text>``)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"cannot read fio output {source}: {reason}")


@dataclass(frozen=True)
class FioLatency:
    """One latency distribution in nanoseconds; ``percentile`` maps e.g. 99.0 to its value."""

    min: float
    max: float
    mean: float
    stddev: float
    percentile: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FioDirection:
    """What one job did in one direction (read or write)."""

    io_bytes: int
    bw_bytes: int
    """Bytes per second."""
    iops: float
    total_ios: int
    short_ios: int
    lat_ns: FioLatency
    clat_ns: FioLatency
    slat_ns: FioLatency


@dataclass(frozen=True)
class FioJob:
    jobname: str
    error: int
    """errno of the job's first error; 0 when the job succeeded."""
    job_runtime_ms: int
    usr_cpu: float
    """Percent of one CPU."""
    sys_cpu: float
    read: FioDirection
    write: FioDirection


@dataclass(frozen=True)
class FioResult:
    fio_version: str
    timestamp: int
    """Unix seconds when fio wrote the report."""
    jobs: tuple[FioJob, ...]
    messages: tuple[str, ...] = ()
    """fio's own ``fio: ...`` lines found before or after the JSON, in order."""


def read_fio_json(path_or_text: str | Path, *, name: str | None = None) -> FioResult:
    """Read fio's JSON output from a file, or from text.

    A :class:`~pathlib.Path`, or a ``str`` without a newline that does not start with ``{``, is a
    file name; any other ``str`` is the output itself (``name`` then names it in errors).
    """
    if isinstance(path_or_text, Path) or ("\n" not in path_or_text and not path_or_text.lstrip().startswith("{")):
        source = name or str(path_or_text)
        try:
            text = Path(path_or_text).read_text(encoding="utf-8")
        except OSError as exc:
            raise FioOutputError(source, exc.strerror or str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise FioOutputError(source, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    else:
        source = name or "<text>"
        text = path_or_text
    document, messages = _split(source, text)
    return _result(source, document, messages)


def _split(source: str, text: str) -> tuple[dict, tuple[str, ...]]:
    """The JSON object (it starts at the first line that starts with ``{``) and fio's message
    lines around it."""
    if not text.strip():
        raise FioOutputError(source, "empty (fio wrote no output)")
    lines = text.splitlines(keepends=True)
    messages = []
    start = 0
    for lineno, line in enumerate(lines, 1):
        if line.startswith("{"):
            break
        if line.strip() and not line.startswith(FIO_MESSAGE_PREFIX) and not EXEC_NOTICE.match(line.strip()):
            raise FioOutputError(source, f"text before the JSON at line {lineno}: {_quote(line)}")
        if line.startswith(FIO_MESSAGE_PREFIX):
            messages.append(line.strip())
        start += len(line)
    else:
        raise FioOutputError(source, "no JSON object (was fio run with --output-format=json?)")
    try:
        document, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        if not text[exc.pos :].strip():
            raise FioOutputError(source, f"truncated: the JSON ends at line {exc.lineno} ({exc.msg})") from exc
        bad = text.split("\n")[exc.lineno - 1]
        raise FioOutputError(source, f"malformed JSON at line {exc.lineno}: {exc.msg}: {_quote(bad)}") from exc
    end_line = text.count("\n", 0, end) + 1
    for i, line in enumerate(text[end:].split("\n")):
        if not line.strip() or (i > 0 and EXEC_NOTICE.match(line.strip())):
            continue
        if i == 0 or not line.startswith(FIO_MESSAGE_PREFIX):
            raise FioOutputError(source, f"text after the JSON at line {end_line + i}: {_quote(line)}")
        messages.append(line.strip())
    return document, tuple(messages)


def _quote(line: str, limit: int = 80) -> str:
    line = line.strip()
    return repr(line if len(line) <= limit else line[:limit] + "...")


class _Fields:
    """Typed access to one JSON object; errors name the field's path (``jobs[1].read.iops``)."""

    def __init__(self, source: str, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise FioOutputError(source, f"{where or 'the report'} is not a JSON object")
        self.source, self.obj, self.where = source, obj, where

    def _get(self, key: str) -> object:
        if key not in self.obj:
            raise FioOutputError(self.source, f"missing field {self._path(key)!r}")
        return self.obj[key]

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _bad(self, key: str, expected: str, value: object) -> FioOutputError:
        return FioOutputError(self.source, f"field {self._path(key)!r} is {value!r}, expected {expected}")

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string", value)
        return value

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer", value)
        return value

    def number(self, key: str) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._bad(key, "a number", value)
        return float(value)

    def sub(self, key: str) -> _Fields:
        return _Fields(self.source, self._get(key), self._path(key))

    def items(self, key: str) -> list:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list", value)
        return value


def _latency(f: _Fields) -> FioLatency:
    percentile = {}
    if "percentile" in f.obj:
        pct = f.sub("percentile")
        for key in pct.obj:
            try:
                level = float(key)
            except ValueError:
                raise FioOutputError(f.source, f"percentile key {key!r} in {pct.where!r} is not a number") from None
            percentile[level] = pct.number(key)
    return FioLatency(f.number("min"), f.number("max"), f.number("mean"), f.number("stddev"), percentile)


def _direction(f: _Fields) -> FioDirection:
    return FioDirection(
        io_bytes=f.integer("io_bytes"),
        bw_bytes=f.integer("bw_bytes"),
        iops=f.number("iops"),
        total_ios=f.integer("total_ios"),
        short_ios=f.integer("short_ios"),
        lat_ns=_latency(f.sub("lat_ns")),
        clat_ns=_latency(f.sub("clat_ns")),
        slat_ns=_latency(f.sub("slat_ns")),
    )


def _job(f: _Fields) -> FioJob:
    return FioJob(
        jobname=f.text("jobname"),
        error=f.integer("error"),
        job_runtime_ms=f.integer("job_runtime"),
        usr_cpu=f.number("usr_cpu"),
        sys_cpu=f.number("sys_cpu"),
        read=_direction(f.sub("read")),
        write=_direction(f.sub("write")),
    )


def _result(source: str, document: dict, messages: tuple[str, ...]) -> FioResult:
    top = _Fields(source, document, "")
    jobs = tuple(_job(_Fields(source, job, f"jobs[{i}]")) for i, job in enumerate(top.items("jobs")))
    return FioResult(top.text("fio version"), top.integer("timestamp"), jobs, messages)


# ---------------------------------------------------------------------------- per-I/O latency logs

LAT_LOG_MAX_LINE = 200
"""A latency log line is a few numbers: anything longer is not one."""


def lat_log_options(prefix: Path) -> list[str]:
    """Job options that make fio log every I/O's completion time (Unix epoch milliseconds) and total
    latency to ``PREFIX_lat.N.log`` (N: the job's place in the job file, from 1), with its
    ``_clat``/``_slat`` siblings: fio 3.33's JSON has no job start times, its per-I/O log has the I/Os'."""
    return [f"write_lat_log={prefix}", "log_unix_epoch=1"]


@dataclass(frozen=True)
class IoSpan:
    """One job's I/O as fio's per-I/O latency log saw it (Unix seconds, millisecond resolution)."""

    ios: int
    first_issue_s: float
    """The first I/O's completion less its latency."""
    last_issue_s: float
    last_end_s: float


def read_lat_log(path: Path) -> IoSpan | None:
    """One job's span from its latency log (lines ``time_ms, latency_ns, ddir, bs, offset[, prio]``);
    None when the job logged no I/O. :class:`FioOutputError` for a log that is not one."""
    first: tuple[float, float] | None = None
    last = (0.0, 0.0)
    count = 0
    try:
        with open(path, encoding="ascii", errors="strict") as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split(",")
                try:
                    if len(line) > LAT_LOG_MAX_LINE or len(fields) < 5:
                        raise ValueError(line)
                    end_s, latency_s = int(fields[0]) / 1e3, int(fields[1]) / 1e9
                except ValueError:
                    raise FioOutputError(
                        str(path), f"line {lineno} is not a latency log line: {_quote(line)}"
                    ) from None
                first = first or (end_s, latency_s)
                last = (end_s, latency_s)
                count += 1
    except OSError as exc:
        raise FioOutputError(str(path), exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise FioOutputError(str(path), f"not text (byte {exc.start})") from exc
    if first is None:
        return None
    return IoSpan(count, first[0] - first[1], last[0] - last[1], last[0])


def job_spans(prefix: Path, jobs: int) -> list[IoSpan | None]:
    """The span of each of ``jobs`` jobs (in job-file order) from the logs :func:`lat_log_options` asked for."""
    spans = []
    for number in range(1, jobs + 1):
        path = prefix.with_name(f"{prefix.name}_lat.{number}.log")
        spans.append(read_lat_log(path) if path.exists() else None)
    return spans


# ---------------------------------------------------------------------------- running fio


def find_fio() -> str:
    """The fio on PATH; :class:`ReplayError` saying how to install it when there is none."""
    fio = shutil.which("fio")
    if fio is None:
        raise ReplayError(f"fio not found on PATH: {INSTALL_FIO}")
    return fio


@dataclass(frozen=True)
class FioRun:
    """One fio command: its report, how it exited and how long it took."""

    result: FioResult
    returncode: int
    stderr: str
    wall_s: float
    """The command's wall time, fio's start-up included."""


def run_fio(
    job_file: Path,
    output: Path,
    *,
    readonly: bool,
    timeout_s: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> FioRun:
    """Run ``fio --output-format=json --output=OUTPUT JOB_FILE`` (``--readonly`` unless writing) and
    read its report. Raises :class:`ReplayError` when fio is missing, runs past ``timeout_s`` or
    leaves no report it can read; the caller judges the jobs' errors and the exit status."""
    fio = find_fio()
    output.unlink(missing_ok=True)
    args = [fio, *(["--readonly"] if readonly else []), "--output-format=json", f"--output={output}", str(job_file)]
    start = time.monotonic()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"fio did not finish within {timeout_s:.0f} s: {job_file}") from exc
    wall = time.monotonic() - start
    try:
        result = read_fio_json(output)
    except FioOutputError as exc:
        raise ReplayError(f"fio exited {proc.returncode} without a report ({exc}): {tail(proc.stderr)}") from exc
    return FioRun(result, proc.returncode, proc.stderr, wall)
