"""Seeded, label-stratified subsets of a training set (the low-data experiments).

Each example is ranked by a hash of ``(seed, position)``, so a subset depends only on the
seed, the size and the labels: the same for every caller, Python version and platform,
and, within a class, a smaller subset is contained in a larger one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Example
from .rows import Rows, label_values, take


def _rank(seed: int, index: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()


BLOCK = 65_536  # positions hashed at a time


def _ranks(seed: int, n: int) -> np.ndarray:
    """Each position's rank (:func:`_rank`) as a big-endian 64-bit integer, which orders
    as the hash's bytes do."""
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        digests = b"".join(_rank(seed, i) for i in range(start, stop))
        out[start:stop] = np.frombuffer(digests, dtype=">u8")
    return out


def _pick(indices: np.ndarray, k: int, ranks: np.ndarray) -> np.ndarray:
    """The ``k`` of ``indices`` ranked first (ties: the earlier position)."""
    return indices[np.argsort(ranks[indices], kind="stable")[:k]]


def _classes(labels: Sequence[Any] | np.ndarray) -> dict[int, np.ndarray]:
    """Each class's positions (ascending), classes in order of first appearance; empty
    unless every label is an integer class id (not a bool)."""
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            return {}
    elif not all(isinstance(y, int) and not isinstance(y, bool) for y in labels):
        return {}
    ids = np.asarray(labels, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    values, groups = ordered[starts].tolist(), np.split(order, cuts)
    first = order[starts]  # each class's first position
    return {values[j]: groups[j] for j in np.argsort(first)}


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


def _labels(examples: Sequence[Example]) -> Sequence[Any] | np.ndarray:
    """The examples' labels (a user's rows: their array, no Examples made)."""
    if isinstance(examples, Rows) and examples.labels is not None:
        return examples.labels
    return label_values(examples)


def subsample_indices(
    labels: Sequence[Any] | np.ndarray,
    *,
    size: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    stratify: bool = True,
) -> np.ndarray:
    """The positions (ascending) of :func:`subsample`'s choice among examples with
    ``labels``."""
    n = len(labels)
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
    ranks = _ranks(seed, n)
    by_class = _classes(labels) if stratify else {}
    if len(by_class) < 2:
        return np.sort(np.argsort(ranks, kind="stable")[:size])
    quota = allocate({c: len(ix) for c, ix in by_class.items()}, size)
    return np.sort(np.concatenate([_pick(ix, quota[c], ranks) for c, ix in by_class.items()]))


def subsample(
    examples: Sequence[Example],
    *,
    size: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    stratify: bool = True,
) -> Sequence[Example]:
    """``size`` examples (or ``round(fraction * len)``, at least 1) chosen by ``seed``, in
    their original order (a list; a user's :class:`~samlm.tasks.rows.Rows` stay rows).
    With ``stratify`` and integer labels (classification, COPA, MultiRC options) each
    class keeps its share (see :func:`allocate`); otherwise (QA, STS-B) a plain seeded
    sample."""
    chosen = subsample_indices(
        _labels(examples), size=size, fraction=fraction, seed=seed, stratify=stratify
    )
    return take(examples, chosen)


def split_sample(
    examples: Sequence[Example], *, size: int, seed: int, stratify: bool
) -> tuple[Sequence[Example], Sequence[Example]]:
    """``(held, rest)``: :func:`subsample`'s ``size`` examples and the others, both in
    their original order."""
    chosen = subsample_indices(_labels(examples), size=size, seed=seed, stratify=stratify)
    rest = np.ones(len(examples), dtype=bool)
    rest[chosen] = False
    return take(examples, chosen), take(examples, np.flatnonzero(rest))
