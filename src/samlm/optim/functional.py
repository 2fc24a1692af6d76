"""Functional kernels of the SAM family, on lists of tensors with ``torch._foreach_*`` ops.

Notation, for one parameter group with weights ``w``, gradients ``g`` and radius ``rho``:

* SAM (Foret et al. 2021):   ``s = g``,            ``e = rho * g / ||s||``
* ASAM (Kwon et al. 2021):   ``T = |w| + eta``,    ``s = T g``,  ``e = rho * T^2 g / ||s||``

``||s||`` is one global L2 norm over every perturbed group, accumulated in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def squared_norms(tensors: list[Tensor]) -> Tensor:
    """``sum_i ||x_i||^2`` as a 0-dim tensor (no host synchronisation), accumulated in
    fp32, or in fp64 when a tensor is fp64."""
    if not tensors:
        return torch.zeros((), dtype=torch.float32)
    wide = any(t.dtype == torch.float64 for t in tensors)
    norms = torch._foreach_norm(tensors, 2, dtype=torch.float64 if wide else torch.float32)
    device = norms[0].device
    return torch.stack([n.to(device) for n in norms]).square().sum()


@dataclass
class AscentGroup:
    """One parameter group's share of the ascent: ``e = rho * direction / ||s||``."""

    params: list[Tensor]
    grads: list[Tensor]
    direction: list[Tensor]  # g for SAM, T^2 g for ASAM
    rho: float
    grad_sq: Tensor  # ||g||^2 of the group
    scaled_sq: Tensor  # ||s||^2 of the group
    direction_sq: Tensor  # ||direction||^2 of the group


def ascent_group(
    params: list[Tensor], grads: list[Tensor], rho: float, eta: float | None
) -> AscentGroup:
    """Prepare a group's ascent direction; ``eta=None`` is SAM, a float is ASAM with that eta.

    For SAM the direction aliases the gradients (no copy). For ASAM it is a new list
    ``T^2 g`` with ``T = |w| + eta``, built from two transient foreach products.
    """
    grad_sq = squared_norms(grads)
    if eta is None:
        return AscentGroup(params, grads, grads, rho, grad_sq, grad_sq, grad_sq)
    t = torch._foreach_abs(params)
    torch._foreach_add_(t, eta)
    s = torch._foreach_mul(grads, t)
    scaled_sq = squared_norms(s)
    torch._foreach_mul_(s, t)  # s <- T^2 g
    return AscentGroup(params, grads, s, rho, grad_sq, scaled_sq, squared_norms(s))


def backup_and_perturb(group: AscentGroup, backups: list[Tensor], scaled_norm: float) -> None:
    """``backup <- w``; ``w <- w + rho * direction / ||s||`` (in place, one foreach add)."""
    torch._foreach_copy_(backups, group.params)
    torch._foreach_add_(group.params, group.direction, alpha=group.rho / scaled_norm)


def restore(params: list[Tensor], backups: list[Tensor]) -> None:
    """``w <- backup``: an exact copy, bitwise in every dtype (never ``w - e``)."""
    torch._foreach_copy_(params, backups)


def polarise_(first: list[Tensor], second: list[Tensor]) -> tuple[Tensor, Tensor]:
    """``(||a + b||^2, ||b||^2)``, overwriting ``first`` (a) with ``a + b``.

    With ``||a||^2`` known, ``<a, b> = (||a + b||^2 - ||a||^2 - ||b||^2) / 2``: a dot
    product from two foreach passes, with no per-tensor loop and no new buffer.
    """
    second_sq = squared_norms(second)
    torch._foreach_add_(first, second)
    return squared_norms(first), second_sq
