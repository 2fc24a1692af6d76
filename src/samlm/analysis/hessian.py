"""Curvature of the training loss from Hessian-vector products ``H v`` (double backward):
the largest eigenvalue by power iteration and the trace by Hutchinson's estimator."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..optim.validation import positive_float, positive_int
from .objective import Objective, measure
from .progress import progress_bar
from .state import preserved
from .vectors import Vector, axpy, dot, gaussian, norm, rademacher, scale


@dataclass
class EigenResult:
    """``lambda_max(H)`` and how power iteration converged (iterations, the last
    relative change ``|lambda_t - lambda_{t-1}| / |lambda_t|``, whether it fell below
    ``tol``). ``dominant`` is the eigenvalue of largest magnitude found first; when it is
    negative, ``value`` comes from a second run on ``H - dominant I``."""

    value: float
    iterations: int
    relative_change: float
    converged: bool
    dominant: float
    shifted: bool
    tol: float
    history: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TraceResult:
    """Hutchinson's ``tr(H) ~ (1/n) sum_j z_j^T H z_j`` with Rademacher ``z_j``, and its
    standard error ``sd(z_j^T H z_j) / sqrt(n)`` (NaN for one probe)."""

    value: float
    stderr: float
    probes: int
    samples: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _power(
    hvp: Callable[[Vector], Vector], v: Vector, iters: int, tol: float, shift: float
) -> tuple[float, int, float, bool, list[float]]:
    """Power iteration on ``H - shift I``: ``v <- (H - shift I) v / ||.||``, with the
    Rayleigh quotient ``lambda = v^T (H - shift I) v`` (``||v|| = 1``)."""
    v = scale(v, 1.0 / norm(v))
    history: list[float] = []
    change = math.inf
    for it in range(1, iters + 1):
        hv = hvp(v)
        if shift:
            hv = axpy(hv, -shift, v)
        value = dot(v, hv)
        history.append(value)
        if len(history) > 1:
            change = abs(value - history[-2]) / max(abs(value), 1e-30)
        size = norm(hv)
        if size == 0.0:  # v is in the null space: H - shift I vanishes along it
            return value, it, 0.0, True, history
        v = scale(hv, 1.0 / size)
        if change < tol:
            return value, it, change, True, history
    return history[-1], iters, change, False, history


@measure
def top_eigenvalue(
    objective: Objective,
    *,
    iters: int = 20,
    tol: float = 1e-3,
    seed: int = 0,
    train: bool = False,
    progress: bool = True,
) -> EigenResult:
    """``lambda_max`` of ``H = d^2 L / dw^2`` by power iteration from a seeded Gaussian
    ``v_0``: ``v_{t+1} = H v_t / ||H v_t||``, ``lambda_t = v_t^T H v_t``, stopping when
    the relative change falls below ``tol`` or after ``iters`` products. Power iteration
    finds the eigenvalue of largest magnitude; if that is negative, a second run on
    ``H - lambda I`` (spectrum in ``[0, lambda_max - lambda]``) yields ``lambda_max``."""
    iters = positive_int("iters", iters)
    tol = positive_float("tol", tol)
    generator = torch.Generator().manual_seed(seed)
    with (
        preserved(objective.model, train=train, seed=seed),
        progress_bar(objective.passes * iters, "hessian eigenvalue", progress) as bar,
    ):

        def hvp(v: Vector) -> Vector:
            return objective.hvp(v, bar)

        v0 = gaussian(objective.params, generator)
        value, used, change, converged, history = _power(hvp, v0, iters, tol, 0.0)
        dominant, shifted = value, value < 0
        if shifted:
            bar.total += objective.passes * iters
            bar.refresh()
            top, more, change, converged, extra = _power(hvp, v0, iters, tol, dominant)
            value, used, history = (
                top + dominant,
                used + more,
                history + [x + dominant for x in extra],
            )
    return EigenResult(value, used, change, converged, dominant, shifted, tol, history)


@measure
def hessian_trace(
    objective: Objective,
    *,
    probes: int = 10,
    seed: int = 0,
    train: bool = False,
    progress: bool = True,
) -> TraceResult:
    """``tr(H) = E[z^T H z]`` for Rademacher ``z`` (Hutchinson 1989), averaged over
    ``probes`` seeded probes, with the standard error of that mean."""
    probes = positive_int("probes", probes)
    generator = torch.Generator().manual_seed(seed)
    samples = []
    with (
        preserved(objective.model, train=train, seed=seed),
        progress_bar(objective.passes * probes, "hessian trace", progress) as bar,
    ):
        for _ in range(probes):
            z = rademacher(objective.params, generator)
            samples.append(dot(z, objective.hvp(z, bar)))
    mean = sum(samples) / probes
    if probes > 1:
        var = sum((x - mean) ** 2 for x in samples) / (probes - 1)
        stderr = math.sqrt(var / probes)
    else:
        stderr = math.nan
    return TraceResult(mean, stderr, probes, samples)
