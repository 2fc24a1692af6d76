"""Hessian-vector products by double backward, and the power iteration on them.

For a loss ``L`` and parameters ``w`` (a list of tensors), ``H v = d/dw <grad L(w), v>``:
one backward with ``create_graph=True`` gives ``grad L`` as a graph, each further
``torch.autograd.grad(grad L, w, v)`` one product (a double backward). The power
iteration ``v <- H v / ||H v||`` (global norm over the list) converges to the
eigenvector of the eigenvalue of largest magnitude, at the rate
``|lambda_2 / lambda_1|`` per iteration.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from . import functional as F

HVP = Callable[[list[Tensor]], list[Tensor]]  # v -> H v, over one list of parameters


def gradient_graph(loss: Tensor, params: list[Tensor]) -> list[Tensor | None]:
    """``grad L(w)`` with its graph kept for products (``None`` where ``L`` does not
    depend on a parameter, or its gradient does not depend on ``w``: a zero Hessian row)."""
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    return [g if g is not None and g.requires_grad else None for g in grads]


def hvp(
    grads: list[Tensor | None], params: list[Tensor], v: list[Tensor], *, keep: bool
) -> list[Tensor]:
    """``H v`` from a gradient graph (``keep``: keep the graph for another product)."""
    pairs = [(g, p, x) for g, p, x in zip(grads, params, v, strict=True) if g is not None]
    out = [torch.zeros_like(p) for p in params]
    if not pairs:
        return out
    made = torch.autograd.grad(
        [g for g, _, _ in pairs],
        params,
        grad_outputs=[x for _, _, x in pairs],
        retain_graph=keep,
        allow_unused=True,
    )
    return [o if m is None else m.detach() for o, m in zip(out, made, strict=True)]


def normalized(v: list[Tensor]) -> list[Tensor] | None:
    """``v / ||v||`` (global norm), or ``None`` when ``||v||`` is 0 or not finite."""
    norm = math.sqrt(F.squared_norms(v).item()) if v else 0.0
    if not math.isfinite(norm) or norm == 0.0:
        return None
    return torch._foreach_div(v, norm)


def power_iteration(product: HVP, v: list[Tensor], iterations: int) -> list[Tensor] | None:
    """``iterations`` steps of ``v <- H v / ||H v||`` from ``v`` (any non-zero start);
    ``None`` when a product is zero or not finite (the estimate is then unusable)."""
    for _ in range(iterations):
        nxt = normalized(product(v))
        if nxt is None:
            return None
        v = nxt
    return v
