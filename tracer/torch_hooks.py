"""DataLoader instrumentation: epochs, batches (wait = data stall), steps, worker fetches, samples,
and which process is a DataLoader worker.

Each ``patch_*`` is handed the recorder and the record of originals. The wrappers record around
the original call and never alter its arguments, result or exceptions.
"""

from __future__ import annotations

import itertools
import json
import sys
import weakref
from types import ModuleType

from trainio.tracer.clock import now_ns
from trainio.tracer.patches import Patches
from trainio.tracer.recorder import Recorder
from trainio.tracer.spool import SAMPLE
from trainio.tracer.usage import EXACT, GATE_MASK, delta, thread_cpu_ns, thread_usage


class _IterState:
    __slots__ = ("loader_id", "epoch", "batch", "last_return_ns", "last_return_cpu")

    def __init__(self, loader_id: int, epoch: int) -> None:
        self.loader_id, self.epoch, self.batch = loader_id, epoch, 0
        self.last_return_ns: int | None = None
        self.last_return_cpu = 0


def _config(loader) -> str:
    try:
        length = len(loader.dataset)
    except TypeError:
        length = None
    sampler = loader.sampler
    ctx = loader.multiprocessing_context
    return json.dumps(
        {
            "dataset": type(loader.dataset).__name__,
            "dataset_length": length,
            "batch_size": loader.batch_size,
            "num_workers": loader.num_workers,
            "prefetch_factor": loader.prefetch_factor,
            "pin_memory": loader.pin_memory,
            "persistent_workers": loader.persistent_workers,
            "sampler": type(sampler).__name__,
            "shuffle": bool(getattr(sampler, "shuffle", type(sampler).__name__ == "RandomSampler")),
            "drop_last": loader.drop_last,
            "start_method": ctx.get_start_method() if hasattr(ctx, "get_start_method") else ctx,
        }
    )


def patch_dataloader(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    loader_cls, iter_cls = module.DataLoader, module._BaseDataLoaderIter
    orig_iter, orig_next = loader_cls.__iter__, iter_cls.__next__
    loader_ids = itertools.count()
    loaders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    iters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __iter__(self):
        it = orig_iter(self)
        loader_id, epoch = loaders.get(self, (next(loader_ids), -1))
        loaders[self] = (loader_id, epoch + 1)
        iters[it] = _IterState(loader_id, epoch + 1)
        t = now_ns()
        rec.event("epoch_start", loader_id=loader_id, epoch=epoch + 1, start_ns=t, end_ns=t, info=_config(self))
        return it

    def __next__(self):
        state = iters.get(self)
        if state is None:
            return orig_next(self)
        t0 = now_ns()
        cpu0 = thread_cpu_ns()
        step_cpu = cpu0 - state.last_return_cpu if state.last_return_ns is not None else None
        try:
            data = orig_next(self)
        except StopIteration:
            t1 = now_ns()
            if state.last_return_ns is not None:
                rec.event(
                    "step",
                    loader_id=state.loader_id,
                    epoch=state.epoch,
                    batch=state.batch - 1,
                    start_ns=state.last_return_ns,
                    end_ns=t0,
                    cpu_ns=step_cpu,
                )
            rec.event(
                "epoch_end", loader_id=state.loader_id, epoch=state.epoch, batch=state.batch, start_ns=t0, end_ns=t1
            )
            state.last_return_ns = None
            raise
        # The step on the previous batch and the wait for this one, in one record.
        cpu1 = thread_cpu_ns()
        t1 = now_ns()
        rec.batch(state.loader_id, state.epoch, state.batch, state.last_return_ns, t0, t1, step_cpu, cpu1 - cpu0)
        state.batch += 1
        state.last_return_ns, state.last_return_cpu = t1, cpu1
        return data

    patches.replace(loader_cls, "__iter__", __iter__)
    patches.replace(iter_cls, "__next__", __next__)


_pack = SAMPLE.pack
NOT_MEASURED = (-1, -1, -1, -1)
"""A sample's usage when it was not measured (small numbers pack fast; usage is never negative)."""


class PyTimedDataset:
    """Stands in for a map-style dataset during one fetch so that each ``dataset[i]`` is timed, and
    measured when the gate picks it; its samples are packed (spool.SAMPLE, times from the fetch's
    start: small numbers pack fast) as they run. No ``__getattr__``: torch's fetcher only indexes it,
    and the hook would slow down every attribute read here. ``_samplehook.TimedDataset`` is the
    same in C; this one serves an interpreter it was not built for."""

    __slots__ = ("_dataset", "_threshold", "_base", "_samples", "_extend")
    __getitems__ = None  # torch's fetcher then calls __getitem__ per index (checked without an exception)

    def __init__(self, dataset, threshold: int, base: int, exact: bool) -> None:
        self._dataset, self._threshold, self._base = dataset, threshold, base
        self._samples = bytearray()
        self._extend = self._samples.extend

    def __getitem__(self, index):
        start = now_ns() - self._base
        if start & GATE_MASK >= self._threshold:  # -1: not measured
            item = self._dataset[index]
            self._extend(_pack(index if type(index) is int else -1, start, now_ns() - self._base, -1, -1, -1, -1))
            return item
        u0 = thread_usage()
        item = self._dataset[index]
        u1 = thread_usage()
        i = index if type(index) is int else -1
        end = now_ns() - self._base
        self._extend(_pack(i, start, end, u1[0] - u0[0], u1[1] - u0[1], u1[2] - u0[2], u1[3] - u0[3]))
        return item

    def __len__(self) -> int:
        return len(self._dataset)

    def take(self) -> bytes:
        taken = bytes(self._samples)
        self._samples.clear()
        return taken


class PyTimedIter:
    """Stands in for an iterable dataset's iterator in a worker: each item it yields is a sample,
    numbered from 0 along the worker's stream, timed and measured like a map-style sample
    (``_samplehook.TimedIter`` in C)."""

    __slots__ = ("_it", "_samples", "threshold", "index", "batched", "base")

    def __init__(self, iterator, threshold: int, batched: int, exact: bool) -> None:
        self._it, self.threshold, self.batched = iterator, threshold, batched
        self._samples = bytearray()
        self.index = self.base = 0

    def __iter__(self):
        return self

    def __next__(self):
        start = now_ns() - self.base
        if start & GATE_MASK >= self.threshold:
            item = next(self._it)
            used = NOT_MEASURED
        else:
            u0 = thread_usage()
            item = next(self._it)
            u1 = thread_usage()
            used = (u1[0] - u0[0], u1[1] - u0[1], u1[2] - u0[2], u1[3] - u0[3])
        self._samples += _pack(self.index, start, now_ns() - self.base, *used)
        self.index += 1
        return item

    def take(self) -> bytes:
        taken = bytes(self._samples)
        self._samples.clear()
        return taken


try:
    from trainio.tracer._samplehook import TimedDataset, TimedIter
except ImportError:  # not built, or built for another Python
    TimedDataset, TimedIter = PyTimedDataset, PyTimedIter  # type: ignore[misc]


def inner_batch_size(dataset) -> int:
    """Batch size of batching done inside an iterable dataset's pipeline (webdataset ``.batched(n)``,
    a datapipe's ``.batch(n)``, Hugging Face ``IterableDataset.batch(n)``); 0 when none is found."""
    todo, seen = [dataset], 0
    while todo and seen < 64:
        node = todo.pop()
        seen += 1
        stage = getattr(node, "f", None)  # a webdataset pipeline stage
        if getattr(stage, "__name__", None) == "_batched":
            return int(node.args[0] if node.args else node.kw["batchsize"])
        if getattr(getattr(node, "function", None), "__name__", None) == "_batch_fn":  # Hugging Face
            return int(node.batch_size)
        if type(node).__name__ == "BatcherIterDataPipe":
            return int(node.batch_size)
        pipeline = getattr(node, "pipeline", None)
        if isinstance(pipeline, list):
            todo.extend(pipeline)
        for name in ("_ex_iterable", "ex_iterable", "_datapipe", "datapipe", "source_datapipe"):
            child = getattr(node, name, None)
            if child is not None:
                todo.append(child)
    return 0


def patch_fetch(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    map_original = module._MapDatasetFetcher.fetch
    iter_original = module._IterableDatasetFetcher.fetch

    def map_fetch(self, possibly_batched_index):
        worker_id = _worker_id(rec)
        dataset = self.dataset
        indices = possibly_batched_index if type(possibly_batched_index) is list else None
        batched_read = getattr(dataset, "__getitems__", None)  # one call reads the batch: no per-sample times
        u0 = thread_usage()
        t0 = now_ns()
        timed = None if batched_read else TimedDataset(dataset, rec.gate.threshold, t0, EXACT)
        if timed is not None:
            self.dataset = timed
        try:
            return map_original(self, possibly_batched_index)
        finally:
            t1 = now_ns()
            used = delta(u0, thread_usage())
            if timed is not None:
                self.dataset = dataset
                samples = timed.take()
                rec.gate.after_fetch(used[0], len(samples) // SAMPLE.size)
                rec.fetch(worker_id, t0, t1, used, samples, None, indices is not None)
            else:
                rec.fetch(worker_id, t0, t1, used, b"", _ints(indices), False)

    def iter_fetch(self, possibly_batched_index):
        worker_id = _worker_id(rec)
        it = self.dataset_iter
        if type(it) is not TimedIter:
            batched = 0 if self.auto_collation else _fail_open(inner_batch_size, self.dataset)
            it = self.dataset_iter = TimedIter(it, rec.gate.threshold, batched, EXACT)
        u0 = thread_usage()
        t0 = it.base = now_ns()
        it.threshold = rec.gate.threshold
        try:
            return iter_original(self, possibly_batched_index)
        finally:
            t1 = now_ns()
            samples = it.take()
            used = delta(u0, thread_usage())
            rec.gate.after_fetch(used[0], len(samples) // SAMPLE.size)
            rec.fetch(worker_id, t0, t1, used, samples, None, False, it.batched)

    patches.replace(module._MapDatasetFetcher, "fetch", map_fetch)
    patches.replace(module._IterableDatasetFetcher, "fetch", iter_fetch)


def _worker_id(rec: Recorder) -> int | None:
    info = _worker_info()
    worker_id = info.id if info is not None else None
    if worker_id is not None and rec.worker_id is None:
        rec.set_worker(worker_id)  # a worker whose WorkerInfo was built before the patch
    return worker_id


def _fail_open(function, *args) -> int:
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - an unknown pipeline only loses the batch size inside it
        return 0


def patch_worker(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    """A DataLoader worker process builds its ``WorkerInfo`` first thing, whatever wraps the loader
    (DLIO, Lightning, a custom ``worker_init_fn``, persistent or not): that makes it a worker."""
    cls = module.WorkerInfo
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if getattr(self, "worker_method", "multiprocessing") == "multiprocessing":
            rec.set_worker(self.id)

    patches.replace(cls, "__init__", __init__)


def patch_pin_memory(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    """The pin-memory thread's CPU time, recorded as it ends (it is joined before the process exits)."""
    original = module._pin_memory_loop

    def _pin_memory_loop(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        finally:
            rec.thread_ended("pin_memory")

    patches.replace(module, "_pin_memory_loop", _pin_memory_loop)


def _worker_info():
    return sys.modules["torch.utils.data._utils.worker"].get_worker_info()


def _ints(indices: list | None) -> list[int] | None:
    if indices is None:
        return None
    try:
        return [int(i) for i in indices]
    except (TypeError, ValueError):
        return None
