"""Seeded, stratified low-data subsets."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from samlm.tasks import Example, subsample
from samlm.tasks.sampling import allocate, split_sample


def _examples(counts: dict[int, int]) -> list[Example]:
    labels = [label for label, n in counts.items() for _ in range(n)]
    random.Random(0).shuffle(labels)  # classes interleaved, not sorted by label
    return [Example({"sentence": f"s{i}"}, y, idx=i) for i, y in enumerate(labels)]


def test_exact_proportional_counts():
    data = _examples({0: 600, 1: 300, 2: 100})
    sub = subsample(data, size=100, seed=3)
    assert len(sub) == 100
    assert Counter(ex.label for ex in sub) == {0: 60, 1: 30, 2: 10}


def test_largest_remainder_rounding_keeps_the_total():
    # quotas 10 * (5, 3, 2) / 10 ... with size 7: 3.5, 2.1, 1.4 -> 3 + 2 + 1 = 6, +1 to class 0
    assert allocate({0: 5, 1: 3, 2: 2}, 7) == {0: 4, 1: 2, 2: 1}
    assert allocate({0: 1, 1: 1, 2: 1}, 2) == {0: 1, 1: 1, 2: 0}
    for size in range(1, 51):
        assert sum(allocate({0: 37, 1: 11, 2: 2}, size).values()) == size


def test_every_class_gets_one_when_size_allows():
    data = _examples({0: 990, 1: 5, 2: 5})
    sub = subsample(data, size=10, seed=0)
    assert Counter(ex.label for ex in sub) == {0: 8, 1: 1, 2: 1}
    assert len(subsample(data, size=3, seed=0)) == 3
    assert {ex.label for ex in subsample(data, size=3, seed=0)} == {0, 1, 2}


def test_deterministic_and_seed_dependent():
    data = _examples({0: 500, 1: 500})
    a = subsample(data, size=32, seed=1)
    b = subsample(list(data), size=32, seed=1)
    c = subsample(data, size=32, seed=2)
    assert [ex.idx for ex in a] == [ex.idx for ex in b]
    assert [ex.idx for ex in a] != [ex.idx for ex in c]
    assert Counter(ex.label for ex in c) == {0: 16, 1: 16}


def test_pinned_subset():
    """The subset is a pure function of (seed, positions, labels): pinned here so that a
    change of algorithm, Python version or platform cannot silently move it."""
    data = [Example({"s": str(i)}, i % 2, idx=i) for i in range(12)]
    assert [ex.idx for ex in subsample(data, size=4, seed=0)] == [3, 4, 7, 8]
    assert [ex.idx for ex in subsample(data, size=4, seed=1)] == [0, 7, 8, 9]


def test_original_order_and_nesting():
    data = _examples({0: 300, 1: 100})
    small = subsample(data, size=20, seed=5)
    large = subsample(data, size=200, seed=5)
    assert [ex.idx for ex in small] == sorted(ex.idx for ex in small)
    assert {ex.idx for ex in small} <= {ex.idx for ex in large}


def test_fraction_and_unstratified():
    data = _examples({0: 30, 1: 10})
    assert len(subsample(data, fraction=0.25)) == 10
    assert len(subsample(data, fraction=1.0)) == 40
    assert len(subsample(data, fraction=0.001)) == 1
    plain = subsample(data, size=8, seed=0, stratify=False)
    assert len(plain) == 8
    qa = [Example({"question": str(i)}, None, ("a",), idx=i) for i in range(50)]
    assert len(subsample(qa, size=7, seed=0)) == 7
    stsb = [Example({"sentence1": "a"}, i / 10, idx=i) for i in range(50)]
    assert len(subsample(stsb, fraction=0.5)) == 25


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 41}, "size=41 is larger than the 40 examples available"),
        ({"size": 0}, "size=0 must be a positive integer"),
        ({"size": 2.5}, "must be a positive integer"),
        ({"fraction": 0.0}, r"fraction=0.0 must be in \(0, 1\]"),
        ({"fraction": 1.5}, r"fraction=1.5 must be in \(0, 1\]"),
        ({}, "exactly one of size= or fraction="),
        ({"size": 3, "fraction": 0.5}, "exactly one of size= or fraction="),
    ],
)
def test_argument_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        subsample(_examples({0: 30, 1: 10}), **kwargs)


def _reference(labels: list, size: int, seed: int, stratify: bool) -> list[int]:
    """The subset's rule written plainly: positions ranked by blake2b("seed:position")'s
    8 bytes, the first ``allocate``'s quota of each class (classes in order of first
    appearance), the positions returned in order."""
    import hashlib

    def rank(i: int) -> bytes:
        return hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest()

    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    if not stratify or len(by_class) < 2:
        return sorted(sorted(range(len(labels)), key=rank)[:size])
    quota = allocate({c: len(ix) for c, ix in by_class.items()}, size)
    return sorted(i for c, ix in by_class.items() for i in sorted(ix, key=rank)[: quota[c]])


@pytest.mark.parametrize("seed", [0, 7, 1_000_003])
def test_the_same_subset_as_the_plain_rule(seed):
    rng = random.Random(seed)
    for n, classes in ((1, 1), (9, 3), (200, 2), (3000, 7)):
        labels = [rng.choice([0, 0, 0, 1, 2, 3, 4, 5, 6][: classes + 2]) for _ in range(n)]
        labels = [y % classes for y in labels]
        data = [Example({"s": str(i)}, y, idx=i) for i, y in enumerate(labels)]
        for size in {1, max(1, n // 3), n}:
            for stratify in (True, False):
                got = [ex.idx for ex in subsample(data, size=size, seed=seed, stratify=stratify)]
                assert got == _reference(labels, size, seed, stratify), (n, size, stratify)


def test_split_sample_holds_out_the_subset():
    data = _examples({0: 40, 1: 20})
    held, rest = split_sample(data, size=15, seed=4, stratify=True)
    assert [ex.idx for ex in held] == [ex.idx for ex in subsample(data, size=15, seed=4)]
    assert sorted(ex.idx for ex in held + rest) == list(range(60))
    assert [ex.idx for ex in rest] == sorted(ex.idx for ex in rest)
