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
    originals = (os._exit, os.execv, os.execve, DataLoader.__iter__, signal.getsignal(signal.SIGTERM))
    runtime.install_all(recorder)
    assert os._exit is not originals[0] and DataLoader.__iter__ is not originals[3]
    with pytest.raises(RuntimeError, match="already installed"):
        runtime.install_all(recorder)
    runtime.uninstall_all()
    assert (os._exit, os.execv, os.execve, DataLoader.__iter__, signal.getsignal(signal.SIGTERM)) == originals
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
