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


class _IterState:
    __slots__ = ("loader_id", "epoch", "batch", "last_return_ns")

    def __init__(self, loader_id: int, epoch: int) -> None:
        self.loader_id, self.epoch, self.batch = loader_id, epoch, 0
        self.last_return_ns: int | None = None


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
        try:
            data = orig_next(self)
        except StopIteration:
            t1 = now_ns()
            if state.last_return_ns is not None:
                last = state.batch - 1
                rec.event(
                    "step",
                    loader_id=state.loader_id,
                    epoch=state.epoch,
                    batch=last,
                    start_ns=state.last_return_ns,
                    end_ns=t0,
                )
            rec.event(
                "epoch_end", loader_id=state.loader_id, epoch=state.epoch, batch=state.batch, start_ns=t0, end_ns=t1
            )
            state.last_return_ns = None
            raise
        # The step on the previous batch and the wait for this one, in one record.
        rec.batch(state.loader_id, state.epoch, state.batch, state.last_return_ns, t0, t1 := now_ns())
        state.batch += 1
        state.last_return_ns = t1
        return data

    patches.replace(loader_cls, "__iter__", __iter__)
    patches.replace(iter_cls, "__next__", __next__)


class _TimedDataset:
    """Stands in for the dataset during one fetch so that each ``dataset[i]`` is timed."""

    __slots__ = ("_dataset", "times")

    def __init__(self, dataset) -> None:
        self._dataset = dataset
        self.times: list[tuple[int, int, int]] = []

    def __getitem__(self, index):
        t0 = now_ns()
        item = self._dataset[index]
        self.times.append((index if type(index) is int else -1, t0, now_ns()))
        return item

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)

    def __len__(self) -> int:
        return len(self._dataset)


def patch_fetch(module: ModuleType, rec: Recorder, patches: Patches) -> None:
    def wrap(cls, map_style: bool) -> None:
        original = cls.fetch

        def fetch(self, possibly_batched_index):
            info = _worker_info()
            worker_id = info.id if info is not None else None
            if worker_id is not None and rec.worker_id is None:
                rec.set_worker(worker_id)  # a worker whose WorkerInfo was built before the patch
            dataset = self.dataset
            timed = _TimedDataset(dataset) if map_style else None
            if timed is not None:
                self.dataset = timed
            t0 = now_ns()
            try:
                return original(self, possibly_batched_index)
            finally:
                self.dataset = dataset
                indices = possibly_batched_index if isinstance(possibly_batched_index, list) else None
                if timed is not None:  # the samples carry the indices
                    rec.fetch(worker_id, indices, t0, now_ns(), timed.times)
                else:
                    rec.fetch(worker_id, _ints(indices), t0, now_ns(), None)

        patches.replace(cls, "fetch", fetch)

    wrap(module._MapDatasetFetcher, True)
    wrap(module._IterableDatasetFetcher, False)


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


def _worker_info():
    return sys.modules["torch.utils.data._utils.worker"].get_worker_info()


def _ints(indices: list | None) -> list[int] | None:
    if indices is None:
        return None
    try:
        return [int(i) for i in indices]
    except (TypeError, ValueError):
        return None
