"""Per-step SAM statistics, kept as device tensors until somebody reads them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import Tensor


def _value(x: Tensor | float | None) -> float:
    if x is None:
        return math.nan
    return float(x.item()) if isinstance(x, Tensor) else float(x)


@dataclass
class SAMStats:
    """What one step measured. Reading a field as a number costs one host sync.

    * ``loss``: L(w) from the first (ascent) pass; ``loss_perturbed``: L(w + e) from the
      second; ``sharpness`` is their difference, SAM's own estimate of
      ``max_{||e|| <= rho} L(w + e) - L(w)``; it is NaN when the two losses were taken
      on different examples (``same_examples=False``, an ascent on part of the batch).
    * ``grad_norm``: ||g|| over the perturbed parameters, unscaled (a GradScaler's scale
      divided out); ``perturbation_norm``: ||e||.
    * ``cosine``: cos(g, g_sam) between the gradient at w and the gradient at w + e, over
      the perturbed parameters (NaN unless ``SAM(track_cosine=True)``).
    * ``skipped_steps``: steps skipped so far because a gradient was not finite.
    * ``hvps``: Hessian-vector products the step ran (Eigen-SAM's refresh).
    """

    sam_step: bool = False
    rho: float = 0.0
    grad_norm: float = math.nan
    perturbation_norm: float = math.nan
    skipped_steps: int = 0
    loss: Tensor | float | None = None
    loss_perturbed: Tensor | float | None = None
    same_examples: bool = True
    hvps: int = 0
    _polarisation: tuple[Tensor, float, Tensor] | None = field(default=None, repr=False)

    @property
    def cosine(self) -> float:
        if self._polarisation is None:
            return math.nan
        sum_sq, first_sq, second_sq = (_value(x) for x in self._polarisation)
        denom = 2.0 * math.sqrt(first_sq * second_sq)
        if denom == 0.0:
            return math.nan
        return (sum_sq - first_sq - second_sq) / denom

    def as_dict(self) -> dict[str, float]:
        loss, loss_p = _value(self.loss), _value(self.loss_perturbed)
        return {
            "sam_step": float(self.sam_step),
            "rho": self.rho,
            "loss": loss,
            "loss_perturbed": loss_p,
            "sharpness": loss_p - loss if self.same_examples else math.nan,
            "grad_norm": self.grad_norm,
            "perturbation_norm": self.perturbation_norm,
            "cosine": self.cosine,
            "skipped_steps": float(self.skipped_steps),
        }
