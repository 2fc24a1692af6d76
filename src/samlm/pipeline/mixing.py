"""Task mixtures as T5 mixes them (Raffel et al. 2020, Section 3.5.2), and a seeded,
resumable sampler over them.

With ``e_m`` training examples in task ``m`` and an artificial limit ``K``:

* ``proportional``: ``r_m = min(e_m, K) / sum_n min(e_n, K)``
* ``temperature``:  ``r_m`` as above, then ``r_m^(1/T)`` renormalised (``T = 1`` is
  proportional; a large ``T`` approaches equal mixing)
* ``equal``:        ``r_m = 1 / M``

The sampler's draw ``i`` is a pure function of ``(seed, i)``: tasks are drawn in blocks
of :data:`BLOCK` with their own seed per block, and each task serves its examples in
epochs, each a permutation seeded by ``(seed, task, epoch)``. A run resumed at position
``i`` therefore draws exactly what the uninterrupted run drew from ``i`` on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIXINGS = ("proportional", "temperature", "equal")
MIXTURES = ("glue", "superglue")  # named mixtures: a benchmark's tasks whose data is found
BLOCK = 4096  # task draws per seeded block


def mixing_rates(
    sizes: Sequence[int],
    mixing: str = "proportional",
    *,
    limit: int | None = None,
    temperature: float = 1.0,
) -> list[float]:
    """The rate of each task (summing to 1); ``limit`` is K (None: no limit)."""
    if mixing not in MIXINGS:
        raise ValueError(f"mixing={mixing!r} must be one of {', '.join(MIXINGS)}")
    if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
        raise ValueError(f"sizes={list(sizes)!r} must be task sizes >= 1")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"mixing_limit={limit!r} must be an integer >= 1")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r} must be a finite number > 0")
    if mixing == "equal":
        return [1.0 / len(sizes)] * len(sizes)
    capped = [min(n, limit) if limit is not None else n for n in sizes]
    total = sum(capped)
    rates = [c / total for c in capped]
    if mixing == "temperature":
        scaled = [r ** (1.0 / temperature) for r in rates]
        rates = [s / sum(scaled) for s in scaled]
    return rates


@dataclass(frozen=True)
class MixtureSampler:
    """``(task, example)`` index pairs drawn by ``rates``; see the module docstring."""

    sizes: tuple[int, ...]
    rates: tuple[float, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.rates) or not self.sizes:
            raise ValueError("sizes and rates must be non-empty and of one length")
        if abs(sum(self.rates) - 1.0) > 1e-9 or min(self.rates) < 0:
            raise ValueError(f"rates={list(self.rates)} must be >= 0 and sum to 1")

    def _tasks(self, block: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, block])
        return rng.choice(len(self.sizes), size=BLOCK, p=np.asarray(self.rates))

    def _order(self, task: int, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 1 + task, epoch]).permutation(self.sizes[task])

    def draw(self, start: int, count: int) -> list[tuple[int, int]]:
        """Draws ``start .. start + count - 1``."""
        if start < 0 or count < 0:
            raise ValueError(f"start={start} and count={count} must be >= 0")
        first, last = start // BLOCK, (start + count - 1) // BLOCK if count else start // BLOCK
        tasks = np.concatenate([self._tasks(b) for b in range(first, last + 1)])
        offset = start - first * BLOCK
        # how many times each task was drawn before ``start``: its cursor
        seen = np.zeros(len(self.sizes), dtype=np.int64)
        for b in range(first):
            seen += np.bincount(self._tasks(b), minlength=len(self.sizes))
        seen += np.bincount(tasks[:offset], minlength=len(self.sizes))
        out = []
        orders: dict[tuple[int, int], np.ndarray] = {}
        for task in tasks[offset : offset + count].tolist():
            epoch, pos = divmod(int(seen[task]), self.sizes[task])
            order = orders.get((task, epoch))
            if order is None:
                order = orders[(task, epoch)] = self._order(task, epoch)
            out.append((task, int(order[pos])))
            seen[task] += 1
        return out
