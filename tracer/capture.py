"""``tracer capture``: run a command unchanged with the recorder injected into all its processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trainio
from trainio.tracefile import hostcpu
from trainio.tracefile.format import SPOOL_DIR
from trainio.tracer import runtime
from trainio.tracer.finalize import finalize
from trainio.tracer.interposer import InterposerError, library_path
from trainio.tracer.manifest import new_manifest, write_manifest

BOOTSTRAP_DIR = Path(__file__).parent / "bootstrap"
TRAINIO_PACKAGE = Path(trainio.__file__).parent
"""The ``trainio`` package folder the injected bootstrap imports from, whatever Python the command runs."""


class CaptureError(Exception):
    """The command could not be started at all (not found, not executable)."""


@dataclass
class CaptureResult:
    exit_code: int
    trace_dir: Path | None
    """None when tracing could not start (the command still ran)."""
    problems: list[str]
    manifest: dict | None = None


def default_out() -> Path:
    return Path(f"trainio-trace-{time.strftime('%Y%m%d-%H%M%S')}")


def traced_env(base: dict[str, str], trace_dir: Path, problems: list[str], interposer: bool = True) -> dict[str, str]:
    """The child's environment: the user's own PYTHONPATH and LD_PRELOAD are kept, ours go first."""
    env = dict(base)
    env[runtime.ENV_TRACE_DIR] = str(trace_dir)
    env[runtime.ENV_CAPTURE_PID] = str(os.getpid())
    env[runtime.ENV_PACKAGE] = str(TRAINIO_PACKAGE)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BOOTSTRAP_DIR), base.get("PYTHONPATH")) if p)
    if not interposer:
        env[runtime.ENV_INTERPOSER] = "0"
        problems.append(
            "interposer disabled (--no-interposer): file reads are not traced, only DataLoader events "
            "and boto3 object reads"
        )
        return env
    try:
        lib = library_path()
        env["LD_PRELOAD"] = " ".join(p for p in (str(lib), base.get("LD_PRELOAD")) if p)
    except InterposerError as exc:
        problems.append(f"{exc}: C-level reads (numpy.fromfile, HDF5, native decoders) are not traced")
    return env


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _run(command: list[str], env: dict[str, str]) -> int:
    """Run the child, forwarding SIGINT/SIGTERM, and return its exit code as a shell would."""
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        raise CaptureError(f"cannot run {command[0]!r}: {exc.strerror or exc}") from exc

    def forward(signum: int, frame) -> None:
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _exit_code(child.wait())
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _cpu_counters(problems: list[str], warn: Callable[[str], None]) -> hostcpu.CpuCounters | None:
    try:
        return hostcpu.read_counters()
    except (OSError, ValueError) as exc:
        problem = f"cannot read the host's CPU counters ({exc}): the host's CPU load during the capture is not recorded"
        warn(f"trainio: {problem}")
        problems.append(problem)
        return None


def capture(
    command: list[str],
    out: Path | None = None,
    *,
    interposer: bool = True,
    warn=lambda msg: print(msg, file=sys.stderr),
) -> CaptureResult:
    """Run ``command`` traced into ``out``; tracing problems are reported through ``warn``, never raised."""
    if not command:
        raise CaptureError("no command given: use `tracer capture -- python train.py ...`")
    trace_dir = (out or default_out()).resolve()
    if trace_dir.is_dir() and os.access(trace_dir, os.R_OK) and any(trace_dir.iterdir()):
        raise CaptureError(f"--out {trace_dir} is not empty: choose a new directory")
    problems: list[str] = []
    manifest = new_manifest(command, dict(os.environ))
    try:
        (trace_dir / SPOOL_DIR).mkdir(parents=True, exist_ok=True)
        write_manifest(trace_dir, manifest)
    except OSError as exc:
        warn(f"trainio: cannot write the trace to {trace_dir}: {exc.strerror or exc}; running untraced")
        return CaptureResult(_run(command, dict(os.environ)), None, [str(exc)])
    env = traced_env(dict(os.environ), trace_dir, problems, interposer)
    for problem in problems:
        warn(f"trainio: {problem}")
    manifest["lost"] = problems
    write_manifest(trace_dir, manifest)
    cpu_before = _cpu_counters(problems, warn)
    code = _run(command, env)
    end_ns, end_time = time.monotonic_ns(), time.time()
    cpu_after = _cpu_counters(problems, warn) if cpu_before is not None else None
    try:
        if cpu_after is not None:
            manifest["host_cpu"] = hostcpu.host_cpu(cpu_before, cpu_after)
        write_manifest(trace_dir, manifest)  # before finalize: a `tracer finalize` after a failure keeps it
        manifest = finalize(trace_dir, exit_code=code, end_monotonic_ns=end_ns, end_time=end_time)
    except Exception as exc:  # noqa: BLE001 - the training's result stands whatever finalize does
        warn(f"trainio: could not finalize {trace_dir}: {exc}; the spool is kept, run `tracer finalize {trace_dir}`")
        return CaptureResult(code, trace_dir, problems + [str(exc)])
    return CaptureResult(code, trace_dir, problems, manifest)
