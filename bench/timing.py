"""Timing and memory helpers for the benchmarks (used by ``bench/step_overhead.py``).

* statistics: :func:`median_ci` (the median with a distribution-free confidence
  interval), :func:`verdict` (a target against that interval), :func:`paired_ratios`;
* round-robin timing: :func:`time_variants` calls every variant once per round, in a
  fresh seeded order each round (:func:`shuffled`, :func:`run_round`);
* own-work meters: :class:`EngineTime` reads samlm's ``SAM.engine.timing`` /
  ``own_seconds``; :class:`OwnWork` wraps public methods of any other optimizer;
* memory: :func:`storage_bytes`, :func:`tensors_in`, and for samlm's SAM
  :func:`sam_extra_bytes` and :func:`perturbed_bytes`; :func:`extra_state_bytes` for
  per-parameter state entries a wrapper keeps beyond its base optimizer's.

The method these serve is in ``bench/results/step_overhead_method.md``.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any, Protocol

import scipy.stats
import torch
from torch import Tensor
from tqdm import tqdm

if TYPE_CHECKING:
    import samlm

Step = Callable[[], Any]
Timings = dict[str, list[float]]


# -- statistics --------------------------------------------------------------------------


def median_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the distribution-free interval for the median.

    With ``n`` values sorted, ``[x_(j), x_(n-j+1)]`` covers the median with probability
    ``1 - 2 P(B <= j - 1)``, ``B ~ Binomial(n, 1/2)``; ``j`` is the largest index keeping
    that at least ``level``. Fewer than 6 values give an infinite interval.
    """
    xs = sorted(values)
    n = len(xs)
    j = int(scipy.stats.binom.ppf((1 - level) / 2, n, 0.5))  # smallest k: P(B <= k) >= a/2
    if scipy.stats.binom.cdf(j, n, 0.5) > (1 - level) / 2:
        j -= 1  # now the largest k with P(B <= k) <= a/2, that is j - 1 in the formula
    median = statistics.median(xs)
    if j < 0:
        return median, -math.inf, math.inf
    return median, xs[j], xs[n - 1 - j]


def verdict(low: float, high: float, target: float) -> str:
    """PASS when the whole interval is under the target, MISS when all above, else UNSURE."""
    return "PASS" if high <= target else "MISS" if low > target else "UNSURE"


def paired_ratios(times: Timings, num: Iterable[str], den: Iterable[str]) -> list[float]:
    """Per round, the summed times of ``num`` over those of ``den`` (noise common to a
    round cancels)."""
    num, den = list(num), list(den)
    rounds = len(times[num[0]])
    return [sum(times[n][r] for n in num) / sum(times[d][r] for d in den) for r in range(rounds)]


# -- own-work meters ---------------------------------------------------------------------


class Meter(Protocol):
    def take(self) -> float:
        """The own time since the last ``take()``, and reset."""
        ...


class OwnWork:
    """Wall time an optimizer spends in its own code during a step.

    ``own = sum(time inside methods) - time inside base.step()``: the listed (public)
    methods of ``opt`` are wrapped on the instance (calls through ``self`` find the
    wrapper), and the base optimizer's step is timed by its
    ``register_step_pre_hook``/``post_hook``.
    """

    def __init__(self, opt: Any, methods: Iterable[str], base: torch.optim.Optimizer) -> None:
        self.total = 0.0
        self._base_start = 0.0
        self._depth = 0
        for name in methods:
            setattr(opt, name, self._timed(getattr(opt, name)))
        base.register_step_pre_hook(self._pre)
        base.register_step_post_hook(self._post)

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t0

        return wrapper

    def _pre(self, *_: Any) -> None:
        # a subclass's step calling its parent's, both hooked, runs the hooks twice, nested
        if self._depth == 0:
            self._base_start = time.perf_counter()
        self._depth += 1

    def _post(self, *_: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.total -= time.perf_counter() - self._base_start

    def take(self) -> float:
        """The own time since the last ``take()``, and reset."""
        total, self.total = self.total, 0.0
        return total


class EngineTime:
    """samlm SAM's own time as its engine measures it: ``engine.timing = True`` makes
    ``engine.own_seconds`` accumulate perturb, restore and finish less the base step."""

    def __init__(self, opt: samlm.SAM) -> None:
        self.engine = opt.engine
        self.engine.timing = True

    def take(self) -> float:
        """The own time since the last ``take()``, and reset."""
        total, self.engine.own_seconds = self.engine.own_seconds, 0.0
        return total


# -- round-robin timing ------------------------------------------------------------------


def shuffled(names: list[str], k: int, seed: int = 0) -> list[str]:
    """Round ``k``'s order: a seeded permutation, so no variant always follows another."""
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed + k))
    return [names[i] for i in order.tolist()]


def run_round(
    steps: dict[str, Step],
    meters: dict[str, Meter],
    order: list[str],
    seed: int,
    sync: Callable[[], Any] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """One call of each variant in ``order``, each after ``torch.manual_seed(seed)`` (the
    same dropout stream for all): (wall times, own-work times of the metered). ``sync``
    (``torch.cuda.synchronize`` on a GPU) runs before and after each timed call, so the
    time covers the call's queued kernels and no earlier ones."""
    wall, own = {}, {}
    for name in order:
        torch.manual_seed(seed)
        if sync:
            sync()
        t0 = time.perf_counter()
        steps[name]()
        if sync:
            sync()
        wall[name] = time.perf_counter() - t0
        if name in meters:
            own[name] = meters[name].take()
    return wall, own


def time_variants(
    steps: dict[str, Step],
    meters: dict[str, Meter],
    repeats: int,
    warmup: int,
    seed: int = 0,
    sync: Callable[[], Any] | None = None,
) -> tuple[Timings, Timings]:
    """``warmup`` untimed rounds, then ``repeats`` timed ones, over the variants of
    ``steps`` (round ``k`` in the order ``shuffled(names, k, seed)``, timed rounds from
    ``k = 1000``). Returns per variant the wall time of every timed call, and per
    metered variant its own work in those calls (``sync``: see :func:`run_round`)."""
    names = list(steps)
    for w in tqdm(range(warmup), desc="warm-up rounds", leave=False):
        run_round(steps, meters, shuffled(names, w, seed), seed + w, sync)
    wall: Timings = {name: [] for name in names}
    own: Timings = {name: [] for name in meters}
    for r in tqdm(range(repeats), desc="timed rounds", leave=False):
        k = 1000 + r
        order = shuffled(names, k, seed)
        round_wall, round_own = run_round(steps, meters, order, seed + k, sync)
        for name, t in round_wall.items():
            wall[name].append(t)
        for name, t in round_own.items():
            own[name].append(t)
    return wall, own


# -- memory ------------------------------------------------------------------------------


def tensors_in(obj: Any, seen: set[int] | None = None) -> Iterable[Tensor]:
    """Tensors reachable from ``obj`` through dicts, lists, tuples, sets and dataclasses."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors_in(k, seen)
            yield from tensors_in(v, seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from tensors_in(v, seen)
    elif is_dataclass(obj) and not isinstance(obj, type):
        for f in fields(obj):
            yield from tensors_in(getattr(obj, f.name), seen)


def storage_bytes(tensors: Iterable[Tensor], exclude: Iterable[Tensor] = ()) -> int:
    """Bytes of the distinct storages behind ``tensors``, leaving out those of ``exclude``."""
    excluded = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}
    for t in tensors:
        s = t.untyped_storage()
        if s.data_ptr() not in excluded:
            storages[s.data_ptr()] = s.nbytes()
    return sum(storages.values())


def sam_extra_bytes(opt: samlm.SAM) -> tuple[int, int]:
    """(``opt.backup_bytes()``, bytes of every tensor SAM holds beyond the base optimizer).

    The second walks the attributes of the wrapper and of its engine, except the base
    optimizer and the engine's views of it (its groups and step), leaving out the
    parameters and their gradients, which the model owns.
    """
    params = opt.trainable_params()
    grads = [p.grad for p in params if p.grad is not None]
    held = [v for k, v in vars(opt).items() if k not in {"base_optimizer", "engine"}]
    held += [v for k, v in vars(opt.engine).items() if k not in {"groups", "base_step"}]
    total = storage_bytes(tensors_in(held), exclude=[*params, *grads])
    return opt.backup_bytes(), total


def perturbed_bytes(opt: samlm.SAM) -> int:
    """Bytes of the trainable parameters in ``opt``'s perturbed groups."""
    return sum(
        p.numel() * p.element_size()
        for g in opt.param_groups
        if g["perturb"]
        for p in g["params"]
        if p.requires_grad
    )


def extra_state_bytes(opt: Any, base_keys: set[str]) -> tuple[int, list[str]]:
    """Bytes of ``opt.state``'s per-parameter tensor entries whose keys are not in
    ``base_keys`` (the base optimizer's own entries), and those keys, sorted."""
    extra, keys = [], set()
    for st in opt.state.values():
        for k, v in st.items():
            if k not in base_keys and isinstance(v, Tensor):
                extra.append(v)
                keys.add(k)
    return storage_bytes(extra), sorted(keys)
