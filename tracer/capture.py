"""``tracer capture``: run a command unchanged with the recorder injected into all its processes.

The capture becomes the command's child subreaper, so every process of the run ends up reaped by
itself or by an ancestor inside the run. Before reaping a finished process it reads the kernel's
``/proc/PID/io`` of the zombie, whose counters include every descendant it reaped: the total that
the traced bytes are checked against, however each process ended.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trainio
from trainio.tracefile import hostcpu
from trainio.tracefile.layout import MANIFEST, SPOOL_DIR
from trainio.tracefile.redact import Redactor
from trainio.tracer import recorder, signals, stdfds, usage
from trainio.tracer.clock import now_ns
from trainio.tracer.errors import CaptureError, CommandError, FinalizeError
from trainio.tracer.interposer import InterposerError, library_path
from trainio.tracer.manifest import new_manifest, write_manifest
from trainio.tracer.messages import tell
from trainio.tracer.spool import live_processes

BOOTSTRAP_DIR = Path(__file__).parent / "bootstrap"
TRAINIO_PACKAGE = Path(trainio.__file__).parent
"""The ``trainio`` package folder the injected bootstrap imports from, whatever Python the command runs."""
PR_SET_CHILD_SUBREAPER = 36
BALLAST = ".reserve"
BALLAST_BYTES = 4 << 20
"""Disk space held back during the run, freed at its end so that the manifest and its exit code land."""
LEFTOVER_GRACE_S = 10.0
"""How long the capture waits for traced processes the command left running."""
IO_COUNTERS = ("rchar", "wchar", "syscr", "read_bytes")


@dataclass
class CaptureResult:
    exit_code: int
    """As a shell gives it: the command's exit status, or 128 + N when signal N killed it."""
    trace_dir: Path | None
    """None when tracing could not start (the command still ran)."""
    problems: list[str]
    manifest: dict | None = None
    summary: dict | None = None
    """``tracer summary --json`` of the finished trace (None when it was not finalized)."""
    killed_by: int | None = None
    """The signal that killed the command, if one did."""


def default_out() -> Path:
    return Path(f"trainio-trace-{time.strftime('%Y%m%d-%H%M%S')}")


def new_trace_dir(out: Path | None) -> tuple[Path, list[Path]]:
    """Create the trace directory and claim it by creating its ``spool/``, atomically, so that two
    captures never share one; without ``out`` a name taken in the same second gets ``-2``, ``-3``...

    Returns the directory and the folders this created (deepest first). Raises CaptureError for an
    ``out`` that holds anything, OSError when the directory cannot be written.
    """
    if out is None:
        stem = default_out().resolve()
        for n in itertools.count(1):
            trace_dir = stem.with_name(f"{stem.name}-{n}") if n > 1 else stem
            try:
                os.mkdir(trace_dir)
                break
            except FileExistsError:
                continue
        made = [trace_dir]
    else:
        trace_dir = out.resolve()
        if trace_dir.is_dir() and os.access(trace_dir, os.R_OK) and any(trace_dir.iterdir()):
            raise CaptureError(f"--out {trace_dir} is not empty: choose a new directory")
        made = [p for p in (trace_dir, *trace_dir.parents) if not p.exists()]
        trace_dir.mkdir(parents=True, exist_ok=True)
    try:
        (trace_dir / SPOOL_DIR).mkdir()
    except FileExistsError as exc:  # another capture claimed it since
        raise CaptureError(f"--out {trace_dir} is not empty: choose a new directory") from exc
    return trace_dir, made


def discard_trace_dir(trace_dir: Path, made: list[Path]) -> None:
    """Remove what the capture wrote into a trace directory whose command never started, and the
    folders it created, if they hold nothing else."""
    for name in (f"{SPOOL_DIR}/{BALLAST}", MANIFEST, Path(MANIFEST).with_suffix(".tmp").name):
        (trace_dir / name).unlink(missing_ok=True)
    for folder in (trace_dir / SPOOL_DIR, *made):
        try:
            folder.rmdir()
        except OSError:
            return  # something else is in there: it stays


def traced_env(base: dict[str, str], trace_dir: Path, problems: list[str], interposer: bool = True) -> dict[str, str]:
    """The child's environment: the user's own PYTHONPATH and LD_PRELOAD are kept, ours go first."""
    env = dict(base)
    env[recorder.ENV_TRACE_DIR] = str(trace_dir)
    env[recorder.ENV_CAPTURE_PID] = str(os.getpid())
    env[recorder.ENV_PACKAGE] = str(TRAINIO_PACKAGE)
    env[usage.ENV_EXACT] = "1" if usage.rusage_cpu_is_exact() else "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BOOTSTRAP_DIR), base.get("PYTHONPATH")) if p)
    if not interposer:
        env[recorder.ENV_INTERPOSER] = "0"
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


def _killed_by(returncode: int) -> int | None:
    return -returncode if returncode < 0 else None


def _zombie_io(pid: int) -> dict[str, int]:
    """``/proc/PID/io`` of a process that has exited but is not reaped yet."""
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        counters = dict(line.split(": ") for line in f.read().splitlines())
    return {k: int(counters[k]) for k in IO_COUNTERS if k in counters}


class _Tree:
    """The kernel's I/O counters of every process the run reaped, summed as they are reaped."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(IO_COUNTERS, 0)
        self.processes = 0
        self.errors: list[str] = []
        self.reaped: list[dict] = []
        """Each reaped process's own CPU time, read from its zombie."""

    def reap(self, pid: int) -> int:
        """Read a waitable zombie's counters, then reap it; returns its wait status."""
        try:
            for key, value in _zombie_io(pid).items():
                self.counters[key] += value
            self.processes += 1
            name, utime, stime = usage.stat_cpu(f"/proc/{pid}/stat")
            self.reaped.append({"pid": pid, "name": name, "utime_s": round(utime, 3), "stime_s": round(stime, 3)})
        except (OSError, ValueError, IndexError) as exc:
            self.errors.append(f"cannot read /proc/{pid}/io and stat of the exited process: {exc}")
        return os.waitpid(pid, 0)[1]

    def reap_leftovers(self, spool: Path, warn: Callable[[str], None]) -> None:
        """Reap orphans the command left (reparented to us), waiting a while for traced ones."""
        deadline = time.monotonic() + LEFTOVER_GRACE_S
        told = False
        while True:
            try:
                found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if found is not None and found.si_pid:
                self.reap(found.si_pid)
                continue
            if not live_processes(spool) or time.monotonic() > deadline:
                return
            if not told:
                warn(f"trainio: waiting up to {LEFTOVER_GRACE_S:.0f} s for traced processes the command left running")
                told = True
            time.sleep(0.05)

    def as_manifest(self) -> dict | None:
        if not self.processes:
            return None
        return {**self.counters, "processes": self.processes, "source": "/proc/PID/io of each reaped zombie"}


def _set_subreaper(problems: list[str]) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as exc:
        problems.append(f"cannot become the run's subreaper ({exc}): orphaned processes' reads may miss the coverage")


def _run(command: list[str], env: dict[str, str], tree: _Tree | None, delivery: signals.Delivery) -> int:
    """Run the child, each signal reaching it as often as without the capture (``delivery``);
    return its Popen return code (-N: killed by signal N)."""
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as exc:
        raise CommandError(command[0], exc) from exc
    delivery.started(child.pid)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: the pid is still its own
    delivery.ended()
    if tree is None:
        return child.wait()
    return os.waitstatus_to_exitcode(tree.reap(child.pid))


def _untraced(command: list[str], where: Path, exc: OSError, warn: Callable[[str], None]) -> CaptureResult:
    """The trace cannot be written: the command runs all the same, and the problem is said once."""
    warn(f"trainio: cannot write the trace to {where}: {exc.strerror or exc}; running untraced")
    with signals.Delivery() as delivery:
        returncode = _run(command, dict(os.environ), None, delivery)
    return CaptureResult(_exit_code(returncode), None, [str(exc)], killed_by=_killed_by(returncode))


def _cpu_counters(problems: list[str], warn: Callable[[str], None]) -> hostcpu.CpuCounters | None:
    try:
        return hostcpu.read_counters()
    except (OSError, ValueError) as exc:
        problem = f"cannot read the host's CPU counters ({exc}): the host's CPU load during the capture is not recorded"
        warn(f"trainio: {problem}")
        problems.append(problem)
        return None


def _hold_ballast(spool: Path) -> Path | None:
    path = spool / BALLAST
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, BALLAST_BYTES)
        finally:
            os.close(fd)
    except OSError:
        return None  # best effort: without it a full disk may also cost the manifest's last update
    return path


def capture(
    command: list[str],
    out: Path | None = None,
    *,
    interposer: bool = True,
    redact: tuple[str, ...] = (),
    warn: Callable[[str], None] = tell,
) -> CaptureResult:
    """Run ``command`` traced into ``out``; tracing problems are reported through ``warn``, never raised.

    ``redact``: more names of options and environment variables whose values are secret. Raises
    CaptureError before anything runs (no command, ``out`` not empty) and CommandError when the
    command cannot be started (its trace directory is then removed again).
    """
    if not command:
        raise CaptureError("no command given: use `tracer capture -- python train.py ...`")
    stdfds.hold()  # for the capture's life: a closed stdin/stdout/stderr stays closed for the command
    redactor = Redactor(redact, os.environ)
    try:
        trace_dir, made = new_trace_dir(out)
    except OSError as exc:
        return _untraced(command, out.resolve() if out is not None else Path.cwd(), exc, warn)
    problems: list[str] = []
    manifest = new_manifest(command, dict(os.environ), redactor)
    manifest["capture_pid"] = os.getpid()
    spool = trace_dir / SPOOL_DIR
    try:
        write_manifest(trace_dir, manifest)
    except OSError as exc:
        discard_trace_dir(trace_dir, made)
        return _untraced(command, trace_dir, exc, warn)
    ballast = _hold_ballast(spool)
    env = traced_env(dict(os.environ), trace_dir, problems, interposer)
    _set_subreaper(problems)
    for problem in problems:
        warn(f"trainio: {problem}")
    manifest["lost"] = problems
    write_manifest(trace_dir, manifest)
    cpu_before = _cpu_counters(problems, warn)
    tree = _Tree()
    with signals.Delivery() as delivery:
        try:
            returncode = _run(command, env, tree, delivery)
        except CommandError:
            discard_trace_dir(trace_dir, made)
            raise
        code, killed_by = _exit_code(returncode), _killed_by(returncode)
        end_ns, end_time = now_ns(), time.time()
        cpu_after = _cpu_counters(problems, warn) if cpu_before is not None else None
        if ballast is not None:
            ballast.unlink(missing_ok=True)
        manifest.update(exit_code=code, signals=delivery.log)
        if cpu_before is not None and cpu_after is not None:
            manifest["host_cpu"] = hostcpu.host_cpu(cpu_before, cpu_after)
        unfinished = f"the spool is kept, run `tracer finalize {trace_dir}`"
        try:
            delivery.finished()  # a signal now stops the finalizing, never the exit code
            write_manifest(trace_dir, manifest)  # the exit code first: a `tracer finalize` later keeps it
            tree.reap_leftovers(spool, warn)
            manifest["tree_io"] = tree.as_manifest()
            manifest["reaped"] = tree.reaped
            manifest["host"]["cpu"]["thread_cpu_clock"] = (
                "getrusage" if env.get(usage.ENV_EXACT) == "1" else "CLOCK_THREAD_CPUTIME_ID"
            )
            problems.extend(tree.errors)
            write_manifest(trace_dir, manifest)
            from trainio.tracer.finalize import finalize  # pyarrow: loaded once the command has ended

            done = finalize(trace_dir, exit_code=code, end_monotonic_ns=end_ns, end_time=end_time)
        except KeyboardInterrupt as exc:
            warn(f"trainio: stopped by {exc} before the trace was finalized; {unfinished}")
            return CaptureResult(code, trace_dir, problems + [f"interrupted by {exc}"], killed_by=killed_by)
        except (FinalizeError, OSError) as exc:
            warn(f"trainio: could not finalize {trace_dir}: {exc}")
            return CaptureResult(code, trace_dir, problems + [str(exc)], killed_by=killed_by)
        except Exception as exc:  # noqa: BLE001 - the training's result stands whatever finalize does
            warn(f"trainio: could not finalize {trace_dir}: {exc!r}; {unfinished}")
            return CaptureResult(code, trace_dir, problems + [str(exc)], killed_by=killed_by)
    return CaptureResult(code, trace_dir, problems, done.manifest, done.summary, killed_by)
