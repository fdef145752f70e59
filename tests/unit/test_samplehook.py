"""The per-sample timing of the DataLoader hooks, in C and in Python: one layout, one set of rules."""

from __future__ import annotations

import time

import pytest

from trainio.tracer import spool, torch_hooks

DATASETS = [torch_hooks.TimedDataset, torch_hooks.PyTimedDataset]
ITERATORS = [torch_hooks.TimedIter, torch_hooks.PyTimedIter]


class Squares:
    def __getitem__(self, i):
        if i == 13:
            raise KeyError(i)
        return i * i

    def __len__(self) -> int:
        return 20


def _rows(packed: bytes) -> list[tuple]:
    return [spool.SAMPLE.unpack_from(packed, o) for o in range(0, len(packed), spool.SAMPLE.size)]


def test_the_c_hook_is_built_and_in_use():
    assert torch_hooks.TimedDataset.__module__ == torch_hooks.TimedIter.__module__ == "trainio.tracer._samplehook"


@pytest.mark.parametrize("cls", DATASETS)
def test_each_item_is_a_sample_timed_from_the_fetch_start_measured_when_the_gate_says(cls):
    base = time.monotonic_ns()
    everything = cls(Squares(), 1024, base, False)
    assert everything[3] == 9 and everything[4] == 16 and len(everything) == 20
    assert everything.__getitems__ is None  # torch's fetcher then asks item by item
    rows = _rows(everything.take())
    assert [r[0] for r in rows] == [3, 4] and all(0 <= r[1] <= r[2] < 10**9 for r in rows)
    assert all(r[3] >= 0 and r[4] >= 0 and r[5] >= 0 and r[6] >= 0 for r in rows)
    assert everything.take() == b""  # taken once
    nothing = cls(Squares(), 0, base, False)
    assert nothing[5] == 25
    [row] = _rows(nothing.take())
    assert row[0] == 5 and row[3:] == (-1, -1, -1, -1)


@pytest.mark.parametrize("cls", DATASETS)
def test_an_item_that_raises_is_no_sample_and_the_error_is_the_datasets(cls):
    timed = cls(Squares(), 1024, time.monotonic_ns(), True)
    with pytest.raises(KeyError):
        timed[13]
    assert timed.take() == b""


@pytest.mark.parametrize("cls", ITERATORS)
def test_an_iterators_items_are_numbered_along_its_stream(cls):
    it = cls(iter("abcde"), 0, 8, False)
    it.base = time.monotonic_ns()
    assert [next(it), next(it)] == ["a", "b"]
    first = _rows(it.take())
    it.base, it.threshold = time.monotonic_ns(), 1024  # the next fetch, measured
    assert list(it) == ["c", "d", "e"] and it.index == 5 and it.batched == 8
    second = _rows(it.take())
    assert [r[0] for r in first + second] == [0, 1, 2, 3, 4]
    assert all(r[3] == -1 for r in first) and all(r[3] >= 0 for r in second)
