"""The in-process recorder: one per traced Python process, writing straight into its spool.

Stdlib and ctypes only (not even pathlib; the per-sample timing has an optional C twin), so that a
traced process starts nearly as fast as an untraced one and a foreign interpreter (another venv) can
be traced without numpy or pyarrow. Every event goes into the memory-mapped spool at once: nothing is
buffered, nothing is flushed, and a kill loses at most the event being written. Fail-open: an error
stops tracing in this process, never the training.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import sys
import threading

from trainio.tracer import spool as sp
from trainio.tracer import usage
from trainio.tracer.clock import now_ns
from trainio.tracer.interposer import Interposer, InterposerError
from trainio.tracer.messages import tell

ENV_TRACE_DIR = "TRAINIO_TRACE_DIR"
ENV_CAPTURE_PID = "TRAINIO_CAPTURE_PID"
ENV_PACKAGE = "TRAINIO_PACKAGE"
"""The ``trainio`` package folder that the injected ``sitecustomize`` imports the recorder from."""
ENV_INTERPOSER = "TRAINIO_INTERPOSER"
"""``0`` when the capture runs without the C interposer (``tracer capture --no-interposer``)."""
SPOOL_DIR = "spool"


class Recorder:
    """This process's recorder; after a fork the child continues in a spool of its own."""

    def __init__(self, trace_dir: str) -> None:
        self.spool_dir = os.path.join(trace_dir, SPOOL_DIR)
        self.interposer: Interposer | None = None
        self.interposer_error: str | None = None
        if os.environ.get(ENV_INTERPOSER) == "0":
            self.interposer_error = "disabled by --no-interposer"
        else:
            try:
                self.interposer = Interposer()
            except InterposerError as exc:
                self.interposer_error = str(exc)
        self.active = True
        self.forked = False
        self._start_process()

    def _start_process(self) -> None:
        self.pid = os.getpid()
        self.start_ns = now_ns()
        self.closed = False
        self.broken = False
        self.worker_id: int | None = None
        self.gate = usage.SampleGate()
        self.role = "main" if str(os.getppid()) == os.environ.get(ENV_CAPTURE_PID) else "child"
        tag = self.interposer.tag() if self.interposer is not None else None
        self.tag = tag or f"{self.pid}-{self.start_ns}"
        path = os.path.join(self.spool_dir, f"py-{self.tag}.spool")
        self.spool = sp.PySpool(path, self.pid, os.getppid(), self.start_ns)
        self.spool.facts(
            pid=self.pid,
            ppid=os.getppid(),
            tag=self.tag,
            argv=list(getattr(sys, "argv", [])),
            executable=sys.executable,
            role=self.role,
            forked=self.forked,
            rank=_env_int("RANK"),
            worker_id=None,
            start_ns=self.start_ns,
            python=sys.version.split()[0],
            python_prefixes=sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}),
            interposer={
                "loaded": self.interposer is not None,
                "preloaded": self.interposer is not None,
                "error": self.interposer_error,
            },
        )

    def after_fork_child(self) -> None:
        """A forked child (DataLoader worker): the parent's spool is the parent's; open our own."""
        with _no_collection():
            self._after_fork_child()

    def _after_fork_child(self) -> None:
        self.spool.abandon()
        self.forked = True  # inherited fds carry file ids whose paths are in the parent's trace
        try:
            self._start_process()
        except sp.SpoolFullError:
            self.broken = True  # its empty spool file says so; the capture reports a full disk once
        except Exception as exc:  # noqa: BLE001 - fail open in the child too
            self._fail(f"cannot start tracing after fork: {exc}")

    # -- recording (hot paths: cheap, and never raising into the training) -------------------------
    def event(
        self,
        event: str,
        *,
        loader_id: int | None = None,
        epoch: int | None = None,
        batch: int | None = None,
        worker_id: int | None = None,
        indices: list[int] | None = None,
        start_ns: int,
        end_ns: int,
        info: str | None = None,
        cpu_ns: int | None = None,
    ) -> None:
        if self.closed or self.broken:
            return
        try:
            self.spool.event(
                threading.get_native_id(),
                sp.EVENT_CODES[event],
                loader_id,
                epoch,
                batch,
                worker_id,
                None,
                start_ns,
                end_ns,
                indices,
                info,
                cpu_ns,
            )
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record a {event} event: {exc!r}")

    def fetch(
        self,
        worker_id: int | None,
        start_ns: int,
        end_ns: int,
        used: tuple,
        samples: bytes,
        indices: list[int] | None,
        indices_are_samples: bool,
        batched: int = 0,
    ) -> None:
        """One fetch: its thread's usage delta, and ``samples`` (packed spool.SAMPLEs of each of its
        ``dataset[i]`` or ``next()`` calls); ``indices`` when the samples do not carry them."""
        if self.closed or self.broken:
            return
        try:
            self.spool.fetch(
                threading.get_native_id(),
                worker_id,
                start_ns,
                end_ns,
                used,
                samples,
                indices,
                indices_are_samples,
                batched,
            )
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record a fetch: {exc!r}")

    def batch(
        self,
        loader_id: int,
        epoch: int,
        batch: int,
        step_start_ns: int | None,
        start_ns: int,
        end_ns: int,
        step_cpu_ns: int | None,
        cpu_ns: int,
    ) -> None:
        """The training loop waited from ``start_ns`` to ``end_ns`` for batch ``batch`` (using
        ``cpu_ns`` of CPU); the step before it ran from ``step_start_ns`` to ``start_ns``."""
        if self.closed or self.broken:
            return
        try:
            self.spool.batch(
                threading.get_native_id(), loader_id, epoch, batch, step_start_ns, start_ns, end_ns, step_cpu_ns, cpu_ns
            )
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record a batch: {exc!r}")

    def object_op(
        self,
        op: str,
        path: str,
        bucket: str | None,
        key: str | None,
        offset: int | None,
        requested: int | None,
        returned: int | None,
        result: int,
        start_ns: int,
        end_ns: int,
    ) -> None:
        if self.closed or self.broken:
            return
        try:
            tid = threading.get_native_id()
            dur = end_ns - start_ns
            self.spool.object_op(tid, op, path, bucket, key, offset, requested, returned, result, start_ns, dur)
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record an object {op}: {exc!r}")

    def note_client(self, client: str, hooked: bool = True) -> None:
        """This process loaded an object-store client (``hooked``: its reads are recorded)."""
        if self.broken:
            return
        try:
            self.spool.facts(object_clients=[{"client": client, "hooked": hooked}])
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record an object client: {exc!r}")

    def set_worker(self, worker_id: int) -> None:
        """This process is DataLoader worker ``worker_id`` (recorded at once: workers are often killed)."""
        if self.worker_id == worker_id or self.closed or self.broken:
            return
        self.worker_id, self.role = worker_id, "worker"
        try:
            self.spool.facts(role="worker", worker_id=worker_id)
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record the worker id: {exc!r}")

    def _fail(self, reason: str) -> None:
        if self.broken:
            return
        self.broken = True
        if self.interposer is not None:
            self.interposer.set_enabled(False)
        try:
            self.spool.facts(errors=[reason])
            unsaid = ""
        except Exception as exc:  # noqa: BLE001 - this message is then the only trace of it
            unsaid = f"; the trace cannot say so ({exc!r})"
        tell(f"trainio: tracing stopped in process {self.pid}: {reason}{unsaid} (training continues)")

    def close(self, via: str) -> None:
        """The one exit routine: how the process ended and its kernel counters. Safe to call twice."""
        if self.closed or not self.active or os.getpid() != self.pid:
            return
        self.closed = True
        with _no_collection():
            self._write_exit_facts(via)

    def _write_exit_facts(self, via: str) -> None:
        facts: dict = {"exit_via": via, "end_ns": now_ns()}
        try:
            facts.update(read_io_counters(self.pid))
        except (OSError, ValueError) as exc:
            facts["errors"] = [f"cannot read /proc/self/io: {exc}"]
        own = resource.getrusage(resource.RUSAGE_SELF)
        facts.update(utime_s=round(own.ru_utime, 6), stime_s=round(own.ru_stime, 6))
        try:
            names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
            facts["threads"] = usage.threads_cpu(self.pid, names)
        except OSError as exc:
            facts["errors"] = facts.get("errors", []) + [f"cannot read the threads' CPU time: {exc}"]
        facts.update(_torch_facts())
        try:
            self.spool.facts(**facts)
        except Exception as exc:  # noqa: BLE001 - fail open at exit too
            tell(f"trainio: cannot finish the trace of process {self.pid}: {exc}")

    def thread_ended(self, name: str) -> None:
        """The calling thread (e.g. the DataLoader's pin-memory thread) is about to end: its CPU time."""
        if self.broken or os.getpid() != self.pid:
            return
        try:
            self.spool.facts(ended_threads=[usage.this_thread_cpu(name)])
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record a thread's CPU time: {exc!r}")

    def reaped(self, pid: int, before: resource.struct_rusage) -> None:
        """A child was just reaped through os.waitpid (multiprocessing joining a DataLoader worker,
        even one killed at exit): its CPU time is what the reaping added to ours for children."""
        if self.broken or os.getpid() != self.pid:
            return
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = {
            "pid": pid,
            "utime_s": round(after.ru_utime - before.ru_utime, 6),
            "stime_s": round(after.ru_stime - before.ru_stime, 6),
        }
        try:
            self.spool.facts(reaped=[child])
        except Exception as exc:  # noqa: BLE001 - fail open
            self._fail(f"cannot record a reaped child: {exc!r}")


@contextlib.contextmanager
def _no_collection():
    """No garbage collection set off by the recorder's own allocations: in a forked DataLoader worker
    a collection of the oldest generation scans, and copies page by page, every object it inherited."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


IO_COUNTERS = ("rchar", "read_bytes", "syscr")


def read_io_counters(pid: int) -> dict[str, int]:
    """rchar, read_bytes and syscr from ``/proc/PID/io`` (a zombie's included)."""
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        counters = dict(line.split(": ") for line in f.read().splitlines())
    return {k: int(counters[k]) for k in IO_COUNTERS if k in counters}


def _env_int(name: str) -> int | None:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        return None


def _torch_facts() -> dict:
    """torch version, visible GPUs (only if this process already initialised CUDA) and rank."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    facts: dict = {"torch": getattr(torch, "__version__", None)}
    try:
        if torch.cuda.is_initialized():
            facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            facts["rank"] = torch.distributed.get_rank()
    except Exception as exc:  # noqa: BLE001 - facts are best effort, at exit
        facts["torch_error"] = str(exc)
    return facts
