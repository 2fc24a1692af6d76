"""rho-sharpness by projected gradient ascent, with its m-sharpness and adaptive (ASAM)
variants.

For a ball ``B = {e : ||T^-1 e|| <= rho}`` (``T = I``; adaptive: ``T = diag(|w| + eta)``,
Kwon et al. 2021) the sharpness is ``S = max_{e in B} L(w + e) - L(w)``. Writing
``e = T z`` it is estimated by ``k`` steps of projected ascent on ``||z|| <= rho``::

    z_0 = 0            (or a seeded random point on the sphere ||z|| = rho)
    s_i = T grad L(w + T z_i)
    z_{i+1} = P(z_i + alpha s_i / ||s_i||),   P(z) = z min(1, rho / ||z||),   alpha = rho

From ``z_0 = 0``, ``k = 1`` gives SAM's own estimate ``e = rho g / ||g||`` (ASAM:
``e = rho T^2 g / ||T g||``). Every iterate lies in the ball, so the reported ``S`` is the
largest ``L(w + T z_i) - L(w)`` seen: a lower bound on the true maximum.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..optim.validation import optional_positive_int, positive_float, positive_int
from .objective import Objective, measure
from .progress import progress_bar
from .state import preserved, set_weights
from .vectors import Vector, gaussian, mul, norm, scale


@dataclass
class SharpnessResult:
    """A sharpness estimate. With ``m`` (m-sharpness, Foret et al. 2021) every field is
    the size-weighted mean over chunks ``c`` of ``m`` examples:
    ``S_m = sum_c (n_c / N) max_{e_c in B} [L_c(w + e_c) - L_c(w)]``."""

    sharpness: float  # S, the largest L(w + e_i) - L(w) seen
    loss: float  # L(w)
    perturbed_loss: float  # L(w + e*) at the best iterate e*
    perturbation_norm: float  # ||e*||
    rho: float
    steps: int
    step_size: float
    adaptive: bool
    eta: float | None
    m: int | None
    chunks: int
    random_starts: int  # chunks whose ascent began at a random point
    history: list[float] = field(default_factory=list)  # L(w + e_i) - L(w), i = 1..k

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Ascent:
    sharpness: float
    loss: float
    perturbed_loss: float
    perturbation_norm: float
    random_start: bool
    history: list[float]


@measure
def rho_sharpness(
    objective: Objective,
    *,
    rho: float = 0.05,
    steps: int = 1,
    step_size: float | None = None,
    m: int | None = None,
    adaptive: bool = False,
    eta: float = 0.01,
    random_start: bool | None = None,
    seed: int = 0,
    train: bool = False,
    progress: bool = True,
) -> SharpnessResult:
    """``S = max_{||T^-1 e|| <= rho} L(w + e) - L(w)`` by ``steps`` projected ascent steps
    of size ``step_size`` (default ``rho``) on the objective (see the module docstring;
    called as ``rho_sharpness(model, loss_fn, batches, ...)`` or on an :class:`Objective`).

    ``m``: m-sharpness, the mean over chunks of ``m`` examples, each with its own
    perturbation. ``adaptive``: the ASAM ball with ``T = |w| + eta``. ``random_start``:
    start from a random point on the sphere drawn from ``seed`` (None: only when the
    gradient at ``w`` is exactly zero, e.g. at the minimum of a quadratic, where ascent
    from the origin cannot move). Runs in eval mode unless ``train``; the model's
    weights, modes and the global RNG are left exactly as they were.
    """
    rho = positive_float("rho", rho)
    steps = positive_int("steps", steps)
    alpha = rho if step_size is None else positive_float("step_size", step_size)
    optional_positive_int("m", m)
    eta = positive_float("eta", eta, allow_zero=True)
    if not (random_start is None or isinstance(random_start, bool)):
        raise ValueError(f"random_start={random_start!r} must be None, True or False")
    parts = objective.chunks(m) if m is not None else [objective]
    generator = torch.Generator().manual_seed(seed)
    passes = sum(part.passes for part in parts) * (steps + 1 + (random_start is True))
    with (
        preserved(objective.model, train=train, seed=seed) as snap,
        progress_bar(
            passes, f"{'adaptive ' if adaptive else ''}{'m-' if m else ''}sharpness", progress
        ) as bar,
    ):
        base = [snap.original(p) for p in objective.params]
        t = [p.abs().float() + eta for p in base] if adaptive else None
        runs = [
            _ascent(part, base, t, rho, alpha, steps, random_start, generator, bar)
            for part in parts
        ]
    weights = [part.examples / objective.examples for part in parts]

    def mean(values: Iterable[float]) -> float:
        return float(sum(w * v for w, v in zip(weights, values, strict=True)))

    return SharpnessResult(
        sharpness=mean(r.sharpness for r in runs),
        loss=mean(r.loss for r in runs),
        perturbed_loss=mean(r.perturbed_loss for r in runs),
        perturbation_norm=mean(r.perturbation_norm for r in runs),
        rho=rho,
        steps=steps,
        step_size=alpha,
        adaptive=adaptive,
        eta=eta if adaptive else None,
        m=m,
        chunks=len(parts),
        random_starts=sum(r.random_start for r in runs),
        history=[mean(r.history[i] for r in runs) for i in range(steps)],
    )


def _projected_step(
    z: Vector | None, grad: Vector, t: list[Tensor] | None, alpha: float, rho: float
) -> Vector | None:
    """``P(z + alpha s / ||s||)`` with ``s = T grad``, ``P`` the projection on
    ``||z|| <= rho`` (``z = None``: the origin); ``z`` itself where ``s = 0`` (or NaN)."""
    s = mul(t, grad) if t is not None else grad
    ns = norm(s)
    if not ns > 0.0:
        return z
    step = scale(s, alpha / ns)
    z = step if z is None else [a + b for a, b in zip(z, step, strict=True)]
    nz = norm(z)
    return scale(z, rho / nz) if nz > rho else z


def _ascent(
    objective: Objective,
    base: list[Tensor],
    t: list[Tensor] | None,
    rho: float,
    alpha: float,
    steps: int,
    random_start: bool | None,
    generator: torch.Generator,
    bar: Any,
) -> _Ascent:
    """Projected ascent on one objective; ``base`` holds the unperturbed weights."""
    params = objective.params

    def perturbation(z: Vector) -> Vector:
        return mul(t, z) if t is not None else z

    def move_to(z: Vector | None) -> None:
        if z is None:
            set_weights(params, base)
        else:
            set_weights(params, base, (1.0, perturbation(z)))

    move_to(None)
    seen: list[tuple[float, Vector | None]] = []  # each L(w + e_i) - L(w) and its z_i
    if random_start is True:
        loss0, grad = objective.loss(bar), None
    else:
        loss0, grad = objective.loss_and_grad(bar)
    z: Vector | None = None
    started = False
    if random_start is True or (random_start is None and _norm_s(grad, t) == 0.0):
        started = True
        u = gaussian(params, generator)
        z = scale(u, rho / norm(u))
        move_to(z)
        loss, grad = objective.loss_and_grad(bar)
        if random_start is None:
            bar.total += objective.passes
            bar.refresh()
        seen.append((loss - loss0, z))
    history = []
    for i in range(1, steps + 1):
        z = _projected_step(z, grad, t, alpha, rho)
        move_to(z)
        if i < steps:
            loss, grad = objective.loss_and_grad(bar)
        else:
            loss = objective.loss(bar)
        history.append(loss - loss0)
        seen.append((loss - loss0, z))
    move_to(None)
    value, z_best = max(seen, key=lambda entry: entry[0])  # the first of equal ones
    e_norm = 0.0 if z_best is None else norm(perturbation(z_best))
    return _Ascent(value, loss0, loss0 + value, e_norm, started, history)


def _norm_s(grad: Vector | None, t: list[Tensor] | None) -> float:
    if grad is None:
        return 0.0
    return norm(mul(t, grad) if t is not None else grad)
