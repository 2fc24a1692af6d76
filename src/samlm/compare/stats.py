"""Statistics that do not oversell: per-method summaries, paired gains with bootstrap
intervals, win rates and benchmark-style averages.

For one task and training-set size, with scores ``s_m(seed)`` of method ``m`` and the
baseline ``b`` on the same seeds (same subset, same initialisation):

    d(seed) = s_m(seed) - s_b(seed)
    gain    = mean_seed d(seed),  95% CI = percentiles 2.5 / 97.5 of the mean of d
              over ``n_boot`` resamples of the seeds with replacement (seeded)
    win rate = share of seeds with d > 0 (a tie counts one half)

A gain whose interval includes zero is reported as not significant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for one value
    n: int


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("summarize() needs at least one value")
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return Summary(float(arr.mean()), std, len(arr))


@dataclass(frozen=True)
class PairedGain:
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    win_rate: float

    @property
    def significant(self) -> bool:
        """The 95% interval excludes zero (never with a single seed)."""
        return len(self.differences) > 1 and (self.low > 0 or self.high < 0)

    def verdict(self) -> str:
        """The gain in words, with its interval."""
        sign = "+" if self.mean >= 0 else ""
        interval = f"95% CI [{self.low:+.2f}, {self.high:+.2f}]"
        if len(self.differences) < 2:
            return f"{sign}{self.mean:.2f} (one seed: no interval, not significant)"
        if not self.significant:
            return f"{sign}{self.mean:.2f}, not significant ({interval} includes zero)"
        direction = "better" if self.mean > 0 else "worse"
        return f"{sign}{self.mean:.2f}, significantly {direction} ({interval})"


def paired_gain(
    method: dict[int, float], baseline: dict[int, float], *, n_boot: int = 10_000, seed: int = 0
) -> PairedGain:
    """Paired gain of ``method`` over ``baseline`` on the seeds both have."""
    seeds = sorted(set(method) & set(baseline))
    if not seeds:
        raise ValueError("no seed has both a method and a baseline result")
    d = np.array([method[s] - baseline[s] for s in seeds], dtype=float)
    mean = float(d.mean())
    if len(d) > 1:
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
        low, high = (float(x) for x in np.percentile(means, [2.5, 97.5]))
    else:
        low = high = mean
    wins = float(np.sum(d > 0) + 0.5 * np.sum(d == 0)) / len(d)
    return PairedGain(tuple(float(x) for x in d), mean, low, high, wins)


def benchmark_scores(
    per_task: dict[str, dict[int, float]], benchmark_of: dict[str, str]
) -> dict[str, dict[int, float]]:
    """Per benchmark and seed, the unweighted mean of the task scores of the seeds that
    have every task of that benchmark in the grid (GLUE/SuperGLUE style)."""
    out: dict[str, dict[int, float]] = {}
    for bench in sorted(set(benchmark_of.values())):
        tasks = [t for t in per_task if benchmark_of[t] == bench]
        if len(tasks) < 2:
            continue
        seeds = set.intersection(*(set(per_task[t]) for t in tasks))
        out[bench] = {s: float(np.mean([per_task[t][s] for t in tasks])) for s in sorted(seeds)}
    return out
