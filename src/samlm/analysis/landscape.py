"""The loss along filter-normalised random directions (Li et al. 2018, "Visualizing the
loss landscape of neural nets"): ``f(a) = L(w + a d)`` and ``f(a, b) = L(w + a d1 + b d2)``.

A direction ``d`` is Gaussian, then each filter (a slice ``[i]`` along the first dimension
of a weight matrix or kernel: an output unit, an embedding row) is rescaled to the norm of
the same filter of ``w``: ``d[i] <- d[i] ||w[i]|| / ||d[i]||``. One-dimensional parameters
(biases, normalisation weights) get ``d = 0`` (``include_1d=True``: ``d = w``), as in the
paper's code. With one seed the 1-D direction is the 2-D plot's first axis, so the line is
the ``b = 0`` row of the contour plot.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from ..optim.validation import positive_float, positive_int
from .objective import Objective, measure
from .progress import progress_bar
from .state import preserved, set_weights
from .vectors import Vector


@dataclass
class Landscape1D:
    """``losses[i] = L(w + alphas[i] d)``; ``loss_at_origin = L(w)``."""

    alphas: list[float]
    losses: list[float]
    loss_at_origin: float
    span: float
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Landscape2D:
    """``losses[i][j] = L(w + alphas[i] d1 + betas[j] d2)``; ``loss_at_origin = L(w)``."""

    alphas: list[float]
    betas: list[float]
    losses: list[list[float]]
    loss_at_origin: float
    span: float
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def filter_normalized_direction(
    params: Sequence[Tensor], generator: torch.Generator, *, include_1d: bool = False
) -> Vector:
    """A random ``d`` with ``||d[i]|| = ||w[i]||`` for every filter ``i`` of every
    parameter of two or more dimensions; for 1-D parameters ``d = 0`` (or ``w``)."""
    out = []
    for p in params:
        w = p.detach().float()
        d = torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device)
        if p.dim() <= 1:
            d = w.clone() if include_1d else torch.zeros_like(d)
        else:
            w_norm = w.reshape(w.shape[0], -1).norm(dim=1)
            d_norm = d.reshape(d.shape[0], -1).norm(dim=1)
            factor = w_norm / d_norm.clamp_min(1e-12)
            d = d * factor.reshape(-1, *([1] * (d.dim() - 1)))
        out.append(d)
    return out


def grid(points: int, span: float) -> list[float]:
    """``points`` evenly spaced values in ``[-span, span]``; an odd count includes 0
    exactly."""
    if points == 1:
        return [0.0]
    return [span * (2 * i / (points - 1) - 1) for i in range(points)]


def _check(points: int, span: float) -> tuple[int, float]:
    return positive_int("points", points), positive_float("span", span)


@measure
def landscape_1d(
    objective: Objective,
    *,
    points: int = 21,
    span: float = 1.0,
    seed: int = 0,
    include_1d: bool = False,
    train: bool = False,
    progress: bool = True,
) -> Landscape1D:
    """``f(a) = L(w + a d)`` for ``a`` in ``grid(points, span)``, ``d`` filter-normalised
    and drawn from ``seed``."""
    points, span = _check(points, span)
    alphas, losses, origin = _scan(objective, 1, points, span, seed, include_1d, train, progress)
    return Landscape1D(alphas, losses, origin, span, seed)


@measure
def landscape_2d(
    objective: Objective,
    *,
    points: int = 11,
    span: float = 1.0,
    seed: int = 0,
    include_1d: bool = False,
    train: bool = False,
    progress: bool = True,
) -> Landscape2D:
    """``f(a, b) = L(w + a d1 + b d2)`` on the ``points x points`` grid over
    ``[-span, span]^2``, ``d1`` then ``d2`` filter-normalised and drawn from ``seed``."""
    points, span = _check(points, span)
    alphas, losses, origin = _scan(objective, 2, points, span, seed, include_1d, train, progress)
    rows = [losses[i * points : (i + 1) * points] for i in range(points)]
    return Landscape2D(alphas, list(alphas), rows, origin, span, seed)


def _scan(
    objective: Objective,
    axes: int,
    points: int,
    span: float,
    seed: int,
    include_1d: bool,
    train: bool,
    progress: bool,
) -> tuple[list[float], list[float], float]:
    """``(alphas, losses, L(w))``: ``L(w + sum_j c_j d_j)`` at every point ``c`` of the
    ``axes``-dimensional grid (the last coordinate varying fastest), the directions
    ``d_1, d_2, ...`` filter-normalised and drawn in turn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    alphas = grid(points, span)
    coordinates = list(itertools.product(alphas, repeat=axes))
    total = objective.passes * (len(coordinates) + 1)
    with (
        preserved(objective.model, train=train, seed=seed) as snap,
        progress_bar(total, f"landscape {axes}-D", progress) as bar,
    ):
        base = [snap.original(p) for p in objective.params]
        directions = [
            filter_normalized_direction(base, generator, include_1d=include_1d) for _ in range(axes)
        ]
        origin = objective.loss(bar)
        losses = []
        for c in coordinates:
            set_weights(objective.params, base, *zip(c, directions, strict=True))
            losses.append(objective.loss(bar))
    return alphas, losses, origin
