"""BAR, balancedness-aware regularization (Li, Zhang and He, NeurIPS 2024, "Implicit
Regularization of Sharpness-Aware Minimization for Scale-Invariant Problems", arXiv
2410.14802, Section 5.2 and Algorithms 2-3): SAM's implicit balancing of LoRA's two
factors made explicit, in place of SAM's second pass.

A LoRA layer adds ``X Y^T`` to its frozen weight; here ``X = B`` (out x r) and
``Y = A^T`` (in x r). Its balancedness ``(||X||^2 - ||Y||^2) / 2`` is constant under
plain gradient flow and driven towards 0 by SAM. BAR rescales the two factors of every
layer separately, "in the same manner as weight decay": once the step's gradients
``g_X``, ``g_Y`` are complete and before the optimizer's update (which uses those
gradients unchanged),

    nBAR (Alg. 2):  ||g_X|| >= ||g_Y||:  X <- (1 + a_t eta_t) X,  Y <- (1 - a_t eta_t) Y
                    otherwise            X <- (1 - a_t eta_t) X,  Y <- (1 + a_t eta_t) Y
    oBAR (Alg. 3):  ||X|| >= ||Y||:      X <- (1 - a_t eta_t) X,  Y <- (1 + a_t eta_t) Y
                    otherwise            X <- (1 + a_t eta_t) X,  Y <- (1 - a_t eta_t) Y

with ``eta_t`` the step's learning rate (each factor's parameter group's) and ``a_t =
mu_0 s(t / T)`` over the run's ``T`` optimizer steps: ``s`` linear ``1 - t/T``
(default), cosine ``(1 + cos(pi t/T)) / 2`` or constant 1 (the paper uses linear and
cosine in few-shot runs, linear and constant in GLUE fine-tuning). nBAR is the default:
the paper derives it for LoRA ("because LoRA is NOP inherently"), oBAR for
overparametrised problems.

``mu_0`` (``alpha`` here) was grid-searched per setting in the paper: {0.2, 0.5, 1.0}
for RoBERTa-large on GLUE (0.05 for QQP), {0.5, 1, 2} few-shot on RoBERTa-large,
{0.2, 0.5, 1, 2} on OPT-1.3B, {0.1, ..., 0.3} on GPT-2; the default 0.5 is in three of
those four grids. Cost: per layer the two gradients' norms (nBAR) or the two factors'
(oBAR) and two in-place scalings; one forward-backward per step. A step with any
gradient not finite (one a GradScaler will skip) rescales nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..optim.validation import non_negative
from .lora_layers import lora_layers

BAR_VARIANTS = ("nbar", "obar")
BAR_SCHEDULES = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class BAR:
    """BAR's ``mu_0`` (``alpha``), its variant and the schedule of ``a_t``."""

    alpha: float = 0.5
    variant: str = "nbar"
    schedule: str = "linear"

    def __post_init__(self) -> None:
        non_negative("alpha", self.alpha)
        for name, value, allowed in (
            ("variant", self.variant, BAR_VARIANTS),
            ("schedule", self.schedule, BAR_SCHEDULES),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} must be one of {', '.join(allowed)}")

    def alpha_at(self, step: int, total_steps: int) -> float:
        """``a_t = mu_0 s(t / T)``; ``mu_0`` while ``T`` is unknown, 0 from ``T`` on
        (linear and cosine)."""
        if total_steps <= 0 or self.schedule == "constant":
            return self.alpha
        frac = min(step / total_steps, 1.0)
        if self.schedule == "linear":
            return self.alpha * (1.0 - frac)
        return self.alpha * 0.5 * (1.0 + math.cos(math.pi * frac))

    def grows_b(self, a: Tensor, b: Tensor) -> bool | None:
        """Whether this step grows ``B`` (``X``) and shrinks ``A``; None: no decision (a
        factor without a gradient)."""
        if a.grad is None or b.grad is None:
            return None
        if self.variant == "nbar":
            return bool(b.grad.float().norm() >= a.grad.float().norm())
        return bool(b.float().norm() < a.float().norm())  # oBAR shrinks the larger factor

    @torch.no_grad()
    def rescale_(
        self, model: nn.Module, step: int, total_steps: int, lr: Callable[[Tensor], float]
    ) -> None:
        """Apply step ``step``'s rescaling to every LoRA layer of ``model``; ``lr(p)`` is
        the learning rate the optimizer's coming update gives ``p``. Nothing moves when
        any gradient of ``model`` is not finite (a step a GradScaler skips)."""
        alpha = self.alpha_at(step, total_steps)
        if alpha == 0:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.float().norm() for g in grads])).all():
            return
        for layer in lora_layers(model):
            a, b = layer.A, layer.B
            grow_b = self.grows_b(a, b)
            if grow_b is None:
                continue
            rates = alpha * lr(b), alpha * lr(a)
            if max(rates) >= 1.0:
                raise ValueError(
                    f"BAR's a_t * learning rate = {max(rates):g} must be < 1 (a factor would "
                    f"change sign): lower bar alpha ({self.alpha}) or the learning rate"
                )
            sign = 1.0 if grow_b else -1.0
            b.mul_(1.0 + sign * rates[0])
            a.mul_(1.0 - sign * rates[1])
