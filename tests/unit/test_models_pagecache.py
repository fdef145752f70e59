import pytest

from trainio.models.pagecache import hit_ratios


def test_without_shuffle_a_share_that_fits_is_served_from_memory_after_the_first_epoch():
    assert hit_ratios(3, 100e9, 4, 30e9, shuffle=False) == [0.0, 1.0, 1.0]


def test_without_shuffle_a_share_larger_than_memory_never_hits():
    assert hit_ratios(3, 100e9, 2, 30e9, shuffle=False) == [0.0, 0.0, 0.0]


def test_with_shuffle_and_the_whole_data_set_in_memory_a_node_hits_what_it_has_seen():
    # every epoch a node reads a fresh random quarter: it has seen 1 - (3/4)^k of the data set
    ratios = hit_ratios(4, 100e9, 4, 200e9, shuffle=True)
    assert ratios == pytest.approx([0.0, 0.25, 0.4375, 0.578125])


def test_with_shuffle_a_cache_of_half_the_data_set_hits_far_less_than_half():
    ratios = hit_ratios(6, 100e9, 1, 50e9, shuffle=True)
    assert ratios[0] == 0.0
    assert 0.10 < ratios[-1] < 0.20  # a fresh permutation evicts most of it before reuse


def test_a_disabled_cache_never_hits():
    assert hit_ratios(3, 1e9, 1, 1e12, shuffle=True, enabled=False) == [0.0, 0.0, 0.0]
