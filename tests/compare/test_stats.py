"""The statistics against hand-computed cases."""

from __future__ import annotations

import pytest

from samlm.compare.stats import benchmark_scores, paired_gain, summarize


def test_summary():
    s = summarize([1.0, 2.0, 6.0])
    assert (s.mean, s.n) == (3.0, 3)
    assert s.std == pytest.approx(((4 + 1 + 9) / 2) ** 0.5)  # sample sd: sum sq dev / (n-1)
    assert summarize([5.0]).std == 0.0


def test_paired_differences_and_win_rate():
    g = paired_gain({0: 71.0, 1: 70.0, 2: 75.0, 3: 60.0}, {0: 70.0, 1: 71.0, 2: 73.0, 3: 60.0})
    assert g.differences == (1.0, -1.0, 2.0, 0.0)
    assert g.mean == 0.5
    assert g.win_rate == pytest.approx((2 + 0.5) / 4)  # two wins, one tie counted half


def test_bootstrap_interval_of_two_seeds_is_hand_computable():
    """d = (0, 10): a resample's mean is 0 (p 1/4), 5 (p 1/2) or 10 (p 1/4), so the 2.5th
    and 97.5th percentiles of 10,000 resampled means are 0 and 10."""
    g = paired_gain({0: 50.0, 1: 60.0}, {0: 50.0, 1: 50.0}, n_boot=10_000, seed=0)
    assert (g.low, g.mean, g.high) == (0.0, 5.0, 10.0)
    assert not g.significant and "not significant" in g.verdict()


def test_bootstrap_is_seeded_and_brackets_the_mean():
    method = {s: 70.0 + s for s in range(5)}
    base = {s: 69.0 + 0.5 * s for s in range(5)}
    a, b = paired_gain(method, base, seed=3), paired_gain(method, base, seed=3)
    assert (a.low, a.high) == (b.low, b.high)
    assert min(a.differences) <= a.low <= a.mean <= a.high <= max(a.differences)
    assert a.significant and "significantly better" in a.verdict()  # every d >= 1


def test_one_seed_is_never_significant():
    g = paired_gain({0: 80.0}, {0: 70.0})
    assert not g.significant and "one seed" in g.verdict()


def test_only_shared_seeds_are_paired():
    g = paired_gain({0: 1.0, 1: 2.0, 2: 9.0}, {1: 1.0, 2: 1.0, 3: 5.0})
    assert g.differences == (1.0, 8.0)
    with pytest.raises(ValueError, match="no seed"):
        paired_gain({0: 1.0}, {1: 1.0})


def test_benchmark_average_per_seed():
    per_task = {"a": {0: 60.0, 1: 70.0}, "b": {0: 80.0}, "c": {0: 50.0, 1: 50.0}}
    bench = {"a": "glue", "b": "glue", "c": "superglue"}
    # glue needs both a and b: only seed 0 has both -> (60 + 80) / 2; superglue has one task
    assert benchmark_scores(per_task, bench) == {"glue": {0: 70.0}}
