"""Hooks go in and come out in one place, handed the recorder; what they record lands in the spool
(a real DataLoader in this process: integration, for the torch import)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from trainio.tracer import runtime
from trainio.tracer.recorder import ENV_INTERPOSER, Recorder
from trainio.tracer.spoolread import read_py_spool


class Squares(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(i * i)


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_INTERPOSER, "0")  # this test process has no interposer preloaded
    (tmp_path / "spool").mkdir()
    rec = Recorder(str(tmp_path))
    yield rec
    runtime.uninstall_all()


def test_install_all_then_uninstall_all_restores_every_original(recorder):
    def current():
        return (os._exit, os.execv, os.execve, os.waitpid, DataLoader.__iter__, signal.getsignal(signal.SIGTERM))

    originals = current()
    runtime.install_all(recorder)
    assert os._exit is not originals[0] and os.waitpid is not originals[3] and DataLoader.__iter__ is not originals[4]
    with pytest.raises(RuntimeError, match="already installed"):
        runtime.install_all(recorder)
    runtime.uninstall_all()
    assert current() == originals
    assert recorder.closed and not recorder.active


def test_a_dataloader_run_lands_in_the_spool_as_it_happens(recorder, tmp_path):
    runtime.install_all(recorder)
    total = sum(int(batch.sum()) for _ in range(2) for batch in DataLoader(Squares(), batch_size=4))
    assert total == 2 * sum(i * i for i in range(10))  # the training's result is unchanged
    # Read while the process lives: nothing waits for a flush.
    [spool] = (tmp_path / "spool").glob("py-*.spool")
    events = read_py_spool(Path(spool)).events.to_pylist()
    kinds = [e["event"] for e in events]
    assert kinds.count("epoch_start") == 2 and kinds.count("epoch_end") == 2
    assert kinds.count("batch") == 6 and kinds.count("step") == 6 and kinds.count("fetch") == 6
    assert sorted(e["sample"] for e in events if e["event"] == "sample") == sorted(list(range(10)) * 2)
    fetches = [e["indices"] for e in events if e["event"] == "fetch"]
    assert sorted(i for f in fetches for i in f) == sorted(list(range(10)) * 2)
    # CPU time next to wall time: every fetch, step and wait; the first fetch's samples all measured.
    assert all(e["cpu_ns"] is not None and e["cpu_ns"] >= 0 for e in events if e["event"] in ("fetch", "step", "batch"))
    first = min((e for e in events if e["event"] == "fetch"), key=lambda e: e["start_ns"])
    inside = [e for e in events if e["event"] == "sample" and first["start_ns"] <= e["start_ns"] <= first["end_ns"]]
    assert len(inside) == 4 and all(e["cpu_ns"] is not None and e["minflt"] is not None for e in inside)


def test_an_iterable_dataset_batching_inside_its_pipeline_yields_one_sample_per_item(recorder, tmp_path):
    """A datapipe that batches by 3 itself, under a DataLoader that does not batch: each yielded
    batch is one sample event, numbered along the stream, that says it holds 3 samples."""
    from torch.utils.data.datapipes.iter import IterableWrapper

    runtime.install_all(recorder)
    items = list(DataLoader(IterableWrapper(range(12)).batch(3), batch_size=None))
    assert [list(i) for i in items] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    [spool] = (tmp_path / "spool").glob("py-*.spool")
    samples = [e for e in read_py_spool(Path(spool)).events.to_pylist() if e["event"] == "sample"]
    assert [(e["sample"], e["info"]) for e in samples] == [(i, '{"batched": 3}') for i in range(4)]


def test_the_batch_size_inside_a_hugging_face_iterable_dataset_is_found():
    import datasets

    from trainio.tracer.torch_hooks import inner_batch_size

    plain = datasets.Dataset.from_dict({"x": list(range(8))}).to_iterable_dataset()
    assert inner_batch_size(plain.batch(4)) == 4 and inner_batch_size(plain) == 0
