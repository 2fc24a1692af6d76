"""T5's mixing rates on hand-computed sizes; the mixture sampler is seeded and resumable;
a sample's per-task counts follow the rates."""

from __future__ import annotations

from collections import Counter

import pytest

from samlm.pipeline.mixing import (
    BLOCK,
    MixtureSampler,
    batch_counts,
    mixing_rates,
    sample_counts,
)


def test_proportional_rates_with_and_without_the_limit():
    assert mixing_rates([100, 300]) == pytest.approx([0.25, 0.75])
    # K = 200 caps the second task: min(100, 200) = 100, min(300, 200) = 200
    assert mixing_rates([100, 300], limit=200) == pytest.approx([1 / 3, 2 / 3])


def test_temperature_rates_and_their_limits():
    # T = 2 on rates 0.2 / 0.8: sqrt(0.2) / (sqrt(0.2) + sqrt(0.8)) = 1/3
    rates = mixing_rates([200, 800], "temperature", temperature=2.0)
    assert rates == pytest.approx([1 / 3, 2 / 3])
    assert mixing_rates([200, 800], "temperature", temperature=1.0) == pytest.approx([0.2, 0.8])
    far = mixing_rates([200, 800], "temperature", temperature=1e6)
    assert far == pytest.approx([0.5, 0.5], abs=1e-5)  # large T: equal mixing
    assert mixing_rates([200, 800, 5], "equal") == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mixing": "uniform"}, "mixing='uniform'"),
        ({"limit": 0}, "mixing_limit=0"),
        ({"temperature": 0.0}, "temperature=0.0"),
    ],
)
def test_bad_mixing_options_name_themselves(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mixing_rates([10, 20], **kwargs)


def test_the_sampler_draws_by_the_rates_and_serves_each_task_in_epochs():
    sampler = MixtureSampler((7, 50), (0.3, 0.7), seed=1)
    draws = sampler.draw(0, 2000)
    counts = Counter(t for t, _ in draws)
    assert abs(counts[0] / 2000 - 0.3) < 0.04
    first_task = [i for t, i in draws if t == 0]
    for epoch in range(len(first_task) // 7):  # every epoch is a permutation of the task
        assert sorted(first_task[7 * epoch : 7 * epoch + 7]) == list(range(7))
    assert draws == MixtureSampler((7, 50), (0.3, 0.7), seed=1).draw(0, 2000)  # seeded
    assert draws != MixtureSampler((7, 50), (0.3, 0.7), seed=2).draw(0, 2000)


@pytest.mark.parametrize("start", [0, 1, 333, BLOCK - 3, BLOCK, BLOCK + 17])
def test_a_resumed_sampler_draws_what_the_uninterrupted_one_drew(start):
    sampler = MixtureSampler((5, 11, 3), (0.2, 0.5, 0.3), seed=4)
    whole = sampler.draw(0, BLOCK + 60)
    assert sampler.draw(start, 40) == whole[start : start + 40]


def test_sample_counts_follow_the_rates_within_each_tasks_size():
    assert sample_counts([25, 249], [0.2, 0.8], 20) == [4, 16]
    assert sample_counts([24, 24], [0.5, 0.5], 7) == [4, 3]  # a tie: the earlier task
    assert sample_counts([10, 10, 10], [0.5, 0.3, 0.2], 10) == [5, 3, 2]
    # a task with fewer examples than its share gives them all, the rest goes to the others
    assert sample_counts([24, 250, 250], [0.5, 0.25, 0.25], 100) == [24, 38, 38]
    assert sample_counts([24, 250], [0.5, 0.5], 1000) == [24, 250]  # at most everything
    # every task gets one when the total allows (largest remainder gave the third none)
    assert sample_counts([100, 100, 100], [0.49, 0.49, 0.02], 10) == [4, 5, 1]
    assert sample_counts([100, 100, 100], [0.49, 0.49, 0.02], 2) == [1, 1, 0]
    for total in range(0, 60):
        counts = sample_counts([7, 30, 12], [0.1, 0.6, 0.3], total)
        assert sum(counts) == min(total, 49) and all(
            0 <= c <= n for c, n in zip(counts, [7, 30, 12], strict=True)
        )
    with pytest.raises(ValueError, match="total=-1"):
        sample_counts([3], [1.0], -1)


def test_a_stratified_draw_fills_each_batch_task_after_task_and_resumes():
    """TaskSAM's batches: batch_counts of each task in every block, each task's examples
    in epochs of its own permutations; block b a pure function of (seed, b)."""
    assert batch_counts([0.5, 0.5], 8) == [4, 4]
    assert batch_counts([0.2, 0.8], 8) == [2, 6]  # largest remainder of 1.6 and 6.4
    assert batch_counts([0.01, 0.99], 4) == [1, 3]  # every task at least one
    with pytest.raises(ValueError, match="batch of 2 examples cannot hold one of each of 3"):
        batch_counts([0.2, 0.3, 0.5], 2)
    sampler = MixtureSampler((5, 11, 3), (0.2, 0.5, 0.3), seed=4)
    counts = (2, 3, 1)
    whole = sampler.draw_stratified(0, 12, counts)
    assert len(whole) == 12 * 6
    for block in range(12):
        tasks = [t for t, _ in whole[6 * block : 6 * block + 6]]
        assert tasks == [0, 0, 1, 1, 1, 2]
    first = [i for t, i in whole if t == 0]  # 24 draws of a task of 5: 4 whole epochs
    for epoch in range(4):
        assert sorted(first[5 * epoch : 5 * epoch + 5]) == list(range(5))
    assert sampler.draw_stratified(7, 5, counts) == whole[6 * 7 :]
    assert whole != MixtureSampler((5, 11, 3), (0.2, 0.5, 0.3), seed=5).draw_stratified(
        0, 12, counts
    )
