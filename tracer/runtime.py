"""The in-process recorder: one per traced process, started from the injected ``sitecustomize``.

Each process drains the interposer's C buffer and its own Python-level events into two Arrow IPC
stream files in ``spool/`` at least every ``FLUSH_INTERVAL_S`` and at exit. A stream keeps every
completed batch when the process is killed; ``tracer finalize`` compacts the streams to Parquet.

Fail-open: any error inside the recorder is printed once, written to the process's info file and
stops tracing in that process; the training itself never sees an exception from here.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from trainio import __version__
from trainio.tracefile.format import EVENTS_SPOOL_SCHEMA, IO_SPOOL_SCHEMA, SPOOL_DIR, file_metadata
from trainio.tracer import importhook
from trainio.tracer.interposer import KIND_NAMES, OP_NAMES, RECORD_DTYPE, Interposer, InterposerError

ENV_TRACE_DIR = "TRAINIO_TRACE_DIR"
ENV_CAPTURE_PID = "TRAINIO_CAPTURE_PID"
ENV_PACKAGE = "TRAINIO_PACKAGE"
"""The ``trainio`` package folder that the injected ``sitecustomize`` imports the recorder from."""
ENV_INTERPOSER = "TRAINIO_INTERPOSER"
"""``0`` when the capture runs without the C interposer (``tracer capture --no-interposer``)."""
FLUSH_INTERVAL_S = 1.0
READ_OP_CODES = np.array([2, 3, 4, 5, 6])  # read, pread, readv, preadv, fread
OPEN_OP_CODES = np.array([1, 11])  # open, fopen
_OPS = pa.array(OP_NAMES.tolist(), pa.string())
_KINDS = pa.array(KIND_NAMES.tolist(), pa.string())

RECORDER: Recorder | None = None


now_ns = time.monotonic_ns  # the run's one clock (CLOCK_MONOTONIC); an alias, not a wrapper: hot path


def read_proc_io(pid: int | str = "self") -> dict[str, int]:
    """The kernel's I/O counters for a process (``/proc/PID/io``)."""
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f.read().splitlines())}


class Recorder:
    """Buffers this process's records and spools them; survives fork (a new spool per child)."""

    def __init__(self, trace_dir: Path) -> None:
        self.trace_dir = trace_dir
        self.spool = trace_dir / SPOOL_DIR
        self.forked = False
        self.interposer: Interposer | None = None
        self.interposer_error: str | None = None
        self.preloaded = _preloaded()
        if os.environ.get(ENV_INTERPOSER) == "0":
            self.interposer_error = "disabled by --no-interposer"
        else:
            try:
                self.interposer = Interposer()
            except InterposerError as exc:
                self.interposer_error = str(exc)
        self._abandoned: list = []
        self._start_process()
        self._warm_up()

    # -- per-process state (also re-made in a forked child) ------------------------------------
    def _start_process(self) -> None:
        self.pid = os.getpid()
        self.start_ns = now_ns()
        self.tag = f"{self.pid}-{self.start_ns}"
        self.lock = threading.Lock()
        self.events: list[tuple] = []
        self.samples: list[tuple] = []
        self.objects: list[tuple] = []
        self.io_writer = None
        self.events_writer = None
        self.errors: list[str] = []
        self.broken = False
        self.closed = False
        self.exit_via: str | None = None
        self.worker_id: int | None = None
        self.role = "main" if str(os.getppid()) == os.environ.get(ENV_CAPTURE_PID) else "child"
        self.rank = _env_int("RANK")
        self._stop = threading.Event()
        self.write_info()
        self._thread = threading.Thread(target=self._flush_loop, name="trainio-flush", daemon=True)
        self._thread.start()

    def _warm_up(self) -> None:
        """Pay pyarrow's one-off lazy set-up (~50 ms) here, once, rather than in every forked
        DataLoader worker's first flush: forked children inherit it."""
        self._samples_batch([(0, None, [(0, 0, 0)])])
        self._records_batch(np.zeros(1, dtype=RECORD_DTYPE), b"")

    def before_fork(self) -> None:
        self.lock.acquire()

    def after_fork_parent(self) -> None:
        self.lock.release()

    def after_fork_child(self) -> None:
        # The parent's writers and buffered events belong to the parent: never close them here.
        self._abandoned.extend([self.io_writer, self.events_writer, self.lock])
        self.forked = True  # inherited fds carry file ids whose paths are in the parent's trace
        try:
            self._start_process()
        except Exception as exc:  # noqa: BLE001 - fail open in the child too
            self._fail(f"cannot start tracing after fork: {exc}")

    # -- recording --------------------------------------------------------------------------------
    def event(
        self,
        event: str,
        *,
        loader_id: int | None = None,
        epoch: int | None = None,
        batch: int | None = None,
        worker_id: int | None = None,
        sample: int | None = None,
        indices: list[int] | None = None,
        start_ns: int,
        end_ns: int,
        info: str | None = None,
    ) -> None:
        if not (self.closed or self.broken):
            self.events.append(
                (
                    threading.get_native_id(),
                    event,
                    loader_id,
                    epoch,
                    batch,
                    worker_id,
                    sample,
                    indices,
                    start_ns,
                    end_ns,
                    info,
                )
            )

    def add_samples(self, worker_id: int | None, samples: list[tuple[int, int, int]]) -> None:
        """(index or -1, start_ns, end_ns) of each ``dataset[index]`` call of one fetch (hot path: cheap)."""
        if not (self.closed or self.broken):
            self.samples.append((threading.get_native_id(), worker_id, samples))

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
        if not (self.closed or self.broken):
            self.objects.append(
                (
                    threading.get_native_id(),
                    op,
                    path,
                    bucket,
                    key,
                    offset,
                    requested,
                    returned,
                    result,
                    start_ns,
                    end_ns - start_ns,
                )
            )

    # -- spooling ---------------------------------------------------------------------------------
    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        with self.lock:
            if self.broken:
                return
            try:
                self._write_io()
                self._write_events()
            except Exception as exc:  # noqa: BLE001 - fail open: never let tracing break training
                self._fail(f"cannot write spool in {self.spool}: {exc}")

    def _fail(self, reason: str) -> None:
        self.broken = True
        self.errors.append(reason)
        if self.interposer is not None:
            self.interposer.lib.trainio_set_enabled(0)
        print(f"trainio: tracing stopped in process {self.pid}: {reason} (training continues)", file=sys.stderr)

    def _writer(self, kind: str, schema: pa.Schema):
        sink = pa.OSFile(str(self.spool / f"{kind}-{self.tag}.arrows"), "wb")
        meta = file_metadata(kind, __version__, **{"trainio.pid": str(self.pid), "trainio.clock": "CLOCK_MONOTONIC ns"})
        return pa.ipc.new_stream(sink, schema.with_metadata(meta))

    def _write_io(self) -> None:
        batches = []
        if self.interposer is not None:
            batches = [self._records_batch(recs, arena) for recs, arena in self.interposer.drain()]
        if self.objects:
            objects, self.objects = self.objects, []
            batches.append(self._objects_batch(objects))
        if not batches:
            return
        if self.io_writer is None:
            self.io_writer = self._writer("io", IO_SPOOL_SCHEMA)
        for batch in batches:
            self.io_writer.write_batch(batch)

    def _write_events(self) -> None:
        if not (self.events or self.samples):
            return
        events, self.events = self.events, []
        samples, self.samples = self.samples, []
        if self.events_writer is None:
            self.events_writer = self._writer("events", EVENTS_SPOOL_SCHEMA)
        if events:
            columns = list(zip(*events, strict=True))
            arrays = [pa.array([self.pid] * len(events), pa.int32())]
            fields = list(EVENTS_SPOOL_SCHEMA)[1:]
            arrays += [pa.array(col, field.type) for col, field in zip(columns, fields, strict=True)]
            self.events_writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=EVENTS_SPOOL_SCHEMA))
        if samples:
            self.events_writer.write_batch(self._samples_batch(samples))

    def _samples_batch(self, fetches: list[tuple[int, int | None, list[tuple]]]) -> pa.RecordBatch:
        """One ``sample`` row per dataset[i] call, built column-wise (there is one per sample)."""
        sizes = np.array([len(times) for _, _, times in fetches])
        times = np.array(list(itertools.chain.from_iterable(ts for _, _, ts in fetches)), dtype=np.int64).reshape(-1, 3)
        n = len(times)
        index = times[:, 0]
        worker = np.repeat(np.array([-1 if w is None else w for _, w, _ in fetches], dtype=np.int32), sizes)
        arrays = [
            pa.array(np.full(n, self.pid, dtype=np.int32)),
            pa.array(np.repeat(np.array([tid for tid, _, _ in fetches], dtype=np.int32), sizes)),
            pa.array(["sample"]).take(np.zeros(n, dtype=np.int64)),
            pa.nulls(n, pa.int32()),
            pa.nulls(n, pa.int32()),
            pa.nulls(n, pa.int64()),
            pa.array(worker, mask=worker < 0),
            pa.array(index, mask=index < 0),
            pa.nulls(n, pa.list_(pa.int64())),
            pa.array(times[:, 1]),
            pa.array(times[:, 2]),
            pa.nulls(n, pa.string()),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=EVENTS_SPOOL_SCHEMA)

    def _records_batch(self, recs: np.ndarray, arena: bytes) -> pa.RecordBatch:
        """C records to Arrow without a per-record Python loop.

        Paths are sliced zero-copy out of the arena (records are packed in order); reads carry only
        the file id of their open, and finalize resolves ids to paths.
        """
        n = len(recs)
        has_path = recs["path_len"] > 0
        offsets = np.append(recs["path_off"], recs["path_off"][-1] + recs["path_len"][-1]).astype(np.int32)
        paths = pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets), pa.py_buffer(arena), pa.py_buffer(np.packbits(has_path, bitorder="little"))
        )
        op = recs["op"]
        is_read = np.isin(op, READ_OP_CODES)
        is_open = np.isin(op, OPEN_OP_CODES)
        returned = recs["returned"]
        fd = np.where(is_open, np.where(returned >= 0, returned, -1), recs["fd"]).astype(np.int32)
        arrays = [
            pa.array(np.full(n, self.pid, dtype=np.int32)),
            pa.array(recs["tid"]),
            _OPS.take(pa.array(op.astype(np.int32))),
            pa.array(fd),
            pa.array(recs["file_id"].astype(np.int64)),
            paths,
            _KINDS.take(pa.array(recs["kind"].astype(np.int32))),
            pa.array(recs["offset"], mask=recs["offset"] < 0),
            pa.array(recs["requested"], mask=~(is_read | (op == 10))),
            pa.array(returned, mask=~is_read | (returned < 0)),
            pa.array(returned),
            pa.array(recs["start_ns"]),
            pa.array(recs["dur_ns"]),
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.string()),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=IO_SPOOL_SCHEMA)

    def _objects_batch(self, objects: list[tuple]) -> pa.RecordBatch:
        tid, op, path, bucket, key, offset, requested, returned, result, start, dur = zip(*objects, strict=True)
        n = len(objects)
        arrays = [
            pa.array([self.pid] * n, pa.int32()),
            pa.array(tid, pa.int32()),
            pa.array(op, pa.string()),
            pa.array([-1] * n, pa.int32()),
            pa.array([0] * n, pa.int64()),
            pa.array(path, pa.string()),
            pa.array(["object"] * n, pa.string()),
            pa.array(offset, pa.int64()),
            pa.array(requested, pa.int64()),
            pa.array(returned, pa.int64()),
            pa.array(result, pa.int64()),
            pa.array(start, pa.int64()),
            pa.array(dur, pa.int64()),
            pa.array(bucket, pa.string()),
            pa.array(key, pa.string()),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=IO_SPOOL_SCHEMA)

    # -- process facts ----------------------------------------------------------------------------
    def write_info(self, counters: dict[str, int] | None = None) -> None:
        info = {
            "pid": self.pid,
            "ppid": os.getppid(),
            "tag": self.tag,
            "argv": list(sys.argv) if hasattr(sys, "argv") else [],
            "executable": sys.executable,
            "role": self.role,
            "forked": self.forked,
            "rank": self.rank,
            "worker_id": self.worker_id,
            "start_ns": self.start_ns,
            "end_ns": now_ns() if counters is not None else None,
            "exit_via": self.exit_via,
            "python": sys.version.split()[0],
            "python_prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}),
            "interposer": {
                "loaded": self.interposer is not None,
                "preloaded": self.preloaded,
                "error": self.interposer_error,
                "dropped_records": self.interposer.dropped() if self.interposer is not None else 0,
            },
            "rchar_before_start": self.interposer.start_rchar() if self.interposer is not None else 0,
            "errors": self.errors,
            **_torch_facts(),
            **(counters or {}),
        }
        path = self.spool / f"proc-{self.tag}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, path)

    def close(self, via: str) -> None:
        """The one exit routine: final drain, counters, stream end-of-file. Safe to call twice."""
        if self.closed or os.getpid() != self.pid:
            return
        self.exit_via = via
        self._stop.set()
        try:
            counters = read_proc_io()
        except OSError as exc:
            counters = {}
            self.errors.append(f"cannot read /proc/self/io: {exc}")
        self.flush()
        self.closed = True
        with self.lock:
            try:
                for writer in (self.io_writer, self.events_writer):
                    if writer is not None:
                        writer.close()
                self.write_info({k: counters[k] for k in ("rchar", "read_bytes", "syscr") if k in counters})
            except Exception as exc:  # noqa: BLE001 - fail open at exit too
                print(f"trainio: cannot finish the trace of process {self.pid}: {exc}", file=sys.stderr)


def _preloaded() -> bool:
    """Whether the interposer came in through LD_PRELOAD (mapped before Python loaded it)."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            return "/_interpose" in f.read()
    except OSError:
        return False


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


# -- install / uninstall: every hook goes in here and comes out here -----------------------------
_real_exit = os._exit
_real_execv = os.execv
_real_execve = os.execve


def _exit(code: int) -> None:
    shutdown("os._exit")
    _real_exit(code)


def _execv(path, args) -> None:
    shutdown("exec")
    _real_execv(path, args)


def _execve(path, args, env) -> None:
    shutdown("exec")
    _real_execve(path, args, env)


def _on_sigterm(signum: int, frame) -> None:
    shutdown("SIGTERM")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def shutdown(via: str = "exit") -> None:
    if RECORDER is not None:
        RECORDER.close(via)


def install(trace_dir: Path) -> Recorder:
    """Start recording in this process (idempotent)."""
    global RECORDER
    if RECORDER is not None:
        return RECORDER
    RECORDER = Recorder(trace_dir)
    os.register_at_fork(
        before=lambda: RECORDER and RECORDER.before_fork(),
        after_in_parent=lambda: RECORDER and RECORDER.after_fork_parent(),
        after_in_child=lambda: RECORDER and RECORDER.after_fork_child(),
    )
    atexit.register(shutdown, "exit")
    os._exit, os.execv, os.execve = _exit, _execv, _execve
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    from trainio.tracer import boto_hooks, torch_hooks

    importhook.when_imported("torch.utils.data.dataloader", torch_hooks.patch_dataloader)
    importhook.when_imported("torch.utils.data._utils.fetch", torch_hooks.patch_fetch)
    importhook.when_imported("botocore.client", boto_hooks.patch_client)
    return RECORDER


def uninstall() -> None:
    """Undo ``install`` (tests; fork handlers cannot be unregistered and become no-ops)."""
    global RECORDER
    from trainio.tracer import boto_hooks, torch_hooks

    shutdown("uninstall")
    importhook.remove()
    torch_hooks.unpatch()
    boto_hooks.unpatch()
    os._exit, os.execv, os.execve = _real_exit, _real_execv, _real_execve
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    atexit.unregister(shutdown)
    RECORDER = None


def start_from_env() -> None:
    """Entry point of the injected sitecustomize: trace if the capture set TRAINIO_TRACE_DIR."""
    trace_dir = os.environ.get(ENV_TRACE_DIR)
    if not trace_dir:
        return
    try:
        install(Path(trace_dir))
    except Exception as exc:  # noqa: BLE001 - fail open: the training must start regardless
        print(f"trainio: tracing disabled in process {os.getpid()}: {exc} (training continues)", file=sys.stderr)
