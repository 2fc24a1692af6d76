"""Task mixtures as T5 mixes them (Raffel et al. 2020, Section 3.5.2), and a seeded,
resumable sampler over them.

With ``e_m`` training examples in task ``m`` and an artificial limit ``K``:

* ``proportional``: ``r_m = min(e_m, K) / sum_n min(e_n, K)``
* ``temperature``:  ``r_m`` as above, then ``r_m^(1/T)`` renormalised (``T = 1`` is
  proportional; a large ``T`` approaches equal mixing)
* ``equal``:        ``r_m = 1 / M``

A sample of ``N`` examples drawn at those rates (what ``samlm sharpness`` measures a
mixture run on) takes :func:`sample_counts` of each task.

The sampler's draw ``i`` is a pure function of ``(seed, i)``: tasks are drawn in blocks
of :data:`BLOCK` with their own seed per block, and each task serves its examples in
epochs, each a permutation seeded by ``(seed, task, epoch)``. A run resumed at position
``i`` therefore draws exactly what the uninterrupted run drew from ``i`` on.

A task-stratified draw (TaskSAM's: :meth:`MixtureSampler.draw_stratified`) fills every
batch with :func:`batch_counts` examples of each task, task after task, each task's
taken in order from its own epochs of permutations: block ``b`` is again a pure function
of ``(seed, b)``.
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


def sample_counts(sizes: Sequence[int], rates: Sequence[float], total: int) -> list[int]:
    """How many of each task's ``sizes`` examples a sample of ``total`` (at most their sum)
    takes at ``rates``: the largest-remainder quotas of ``total * r_m`` (ties to the larger
    rate, then the earlier task). A task with fewer examples than its quota gives all it
    has and the rest is shared among the others at their rates, renormalised; every task
    gets at least one example when ``total`` allows. A pure function of its arguments."""
    if len(sizes) != len(rates) or not sizes:
        raise ValueError("sizes and rates must be non-empty and of one length")
    if any(not isinstance(n, int) or n < 0 for n in sizes) or min(rates) < 0:
        raise ValueError(f"sizes={list(sizes)!r} and rates={list(rates)!r} must be >= 0")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError(f"total={total!r} must be an integer >= 0")
    left = min(total, sum(sizes))
    counts = [0] * len(sizes)
    open_ = [m for m, n in enumerate(sizes) if n > 0]
    while open_ and left:
        weight = sum(rates[m] for m in open_)
        share = {m: rates[m] / weight if weight > 0 else 1 / len(open_) for m in open_}
        exact = {m: left * share[m] for m in open_}
        quota = {m: math.floor(q) for m, q in exact.items()}
        order = sorted(open_, key=lambda m: (-(exact[m] - quota[m]), -share[m], m))
        for m in order[: left - sum(quota.values())]:
            quota[m] += 1
        full = [m for m in open_ if quota[m] >= sizes[m]]
        if not full:
            for m in open_:
                counts[m] = quota[m]
            break
        for m in full:  # all of it, and the rest again among the others
            counts[m] = sizes[m]
            left -= sizes[m]
            open_.remove(m)
    if min(total, sum(sizes)) >= sum(1 for n in sizes if n > 0):
        for m in sorted(range(len(sizes)), key=lambda m: (rates[m], m)):
            if counts[m] == 0 and sizes[m] > 0:  # one from the task with the most
                donor = max(range(len(sizes)), key=lambda d: (counts[d], -d))
                counts[donor] -= 1
                counts[m] = 1
    return counts


def batch_counts(rates: Sequence[float], batch: int) -> list[int]:
    """Each task's examples in a stratified batch of ``batch``: the largest-remainder
    quotas of ``batch * r_m`` (:func:`sample_counts`), every task at least one (equal
    rates and a batch divisible by the tasks: equal counts)."""
    if batch < len(rates):
        raise ValueError(
            f"a batch of {batch} examples cannot hold one of each of {len(rates)} tasks: "
            f"raise --batch-size to at least {len(rates)}"
        )
    return sample_counts([batch] * len(rates), rates, batch)


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
            out.append((task, self._nth(task, int(seen[task]), orders)))
            seen[task] += 1
        return out

    def _nth(self, task: int, position: int, orders: dict[tuple[int, int], np.ndarray]) -> int:
        """The example at ``position`` of task ``task``'s stream (``orders``: a cache)."""
        epoch, pos = divmod(position, self.sizes[task])
        order = orders.get((task, epoch))
        if order is None:
            order = orders[(task, epoch)] = self._order(task, epoch)
        return int(order[pos])

    def draw_stratified(
        self, start: int, count: int, counts: Sequence[int]
    ) -> list[tuple[int, int]]:
        """Blocks ``start .. start + count - 1`` of a stratified draw: block ``b`` is
        ``counts[0]`` examples of task 0, then ``counts[1]`` of task 1, ...; task ``t``'s
        are draws ``b * counts[t] ..`` of its own stream (epochs, as :meth:`draw`'s)."""
        if start < 0 or count < 0 or len(counts) != len(self.sizes):
            raise ValueError(f"start={start}, count={count}, counts={list(counts)}")
        out = []
        orders: dict[tuple[int, int], np.ndarray] = {}
        for block in range(start, start + count):
            for task, n in enumerate(counts):
                out += [
                    (task, self._nth(task, i, orders)) for i in range(block * n, (block + 1) * n)
                ]
        return out
