"""Seeded, label-stratified subsets of a training set (the low-data experiments).

Each example is ranked by a hash of ``(seed, position)``, so a subset depends only on the
seed, the size and the labels: the same for every caller, Python version and platform,
and, within a class, a smaller subset is contained in a larger one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from .base import Example


def _rank(seed: int, index: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()


def _pick(indices: list[int], k: int, seed: int) -> list[int]:
    return sorted(indices, key=lambda i: _rank(seed, i))[:k]


def allocate(counts: dict[int, int], size: int) -> dict[int, int]:
    """Proportional quotas summing to ``size`` (largest remainder; ties to the larger class,
    then the smaller label); every class gets one when ``size`` allows."""
    total = sum(counts.values())
    exact = {c: size * n / total for c, n in counts.items()}
    quota = {c: math.floor(q) for c, q in exact.items()}
    order = sorted(counts, key=lambda c: (-(exact[c] - quota[c]), -counts[c], c))
    for c in order[: size - sum(quota.values())]:
        quota[c] += 1
    if size >= len(counts):
        for c in sorted(counts, key=lambda c: counts[c]):
            if quota[c] == 0:
                donor = max(quota, key=lambda d: (quota[d], -d))
                quota[donor] -= 1
                quota[c] = 1
    return quota


def subsample(
    examples: Sequence[Example],
    *,
    size: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    stratify: bool = True,
) -> list[Example]:
    """``size`` examples (or ``round(fraction * len)``, at least 1) chosen by ``seed``, in
    their original order. With ``stratify`` and integer labels (classification, COPA,
    MultiRC options) each class keeps its share (see :func:`allocate`); otherwise (QA,
    STS-B) a plain seeded sample."""
    n = len(examples)
    if (size is None) == (fraction is None):
        raise ValueError("give exactly one of size= or fraction=")
    if fraction is not None:
        if isinstance(fraction, bool) or not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction={fraction} must be in (0, 1]")
        size = max(1, math.floor(fraction * n + 0.5)) if n else 0
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size={size!r} must be a positive integer")
    if size > n:
        raise ValueError(f"size={size} is larger than the {n} examples available")
    labels = [ex.label for ex in examples]
    by_class: dict[int, list[int]] = {}
    if stratify and all(isinstance(y, int) and not isinstance(y, bool) for y in labels):
        for i, y in enumerate(labels):
            by_class.setdefault(y, []).append(i)  # type: ignore[arg-type]
    if len(by_class) < 2:
        chosen = _pick(list(range(n)), size, seed)
    else:
        quota = allocate({c: len(ix) for c, ix in by_class.items()}, size)
        chosen = [i for c, ix in by_class.items() for i in _pick(ix, quota[c], seed)]
    return [examples[i] for i in sorted(chosen)]
