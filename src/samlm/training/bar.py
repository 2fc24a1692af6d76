"""BAR, balancedness-aware regularization (Li, Zhang and He, NeurIPS 2024, "Implicit
Regularization of Sharpness-Aware Minimization for Scale-Invariant Problems", arXiv
2410.14802): SAM's implicit effect on LoRA made explicit, in place of its second pass.

For a LoRA layer ``W + s B A`` the paper's balancedness is the difference of the two
factors' squared norms, ``b = (||A||_F^2 - ||B||_F^2) / 2``. Plain gradient flow keeps
it constant (``<A, g_A> = <B, g_B>``: the loss sees ``B A`` only); SAM with radius
``rho`` moves it, to first order in ``rho``, as

    db/dt = rho (||g_A||^2 - ||g_B||^2) / ||g||

(``g`` the whole gradient, which SAM's ``e = rho g / ||g||`` normalises): SAM promotes
balance, more strongly where the gradients are large (the paper's data-responsive
regularization). BAR adds that drift from the step's one gradient. Here, per layer,

    R = -(k / 2) (||A||_F^2 - ||B||_F^2),
    k = alpha_t (||g_A||^2 - ||g_B||^2) / (||g|| (||A||_F^2 + ||B||_F^2))

with ``k`` held fixed (no gradient through it): ``-k A`` is added to ``g_A`` and
``+k B`` to ``g_B`` once the step's gradients are complete (after the last micro-batch,
before clipping and the optimizer step), so that one SGD step of size ``eta`` changes
``b`` by ``eta alpha_t (||g_A||^2 - ||g_B||^2) / ||g||``, SAM's drift with
``rho = alpha_t``. ``alpha_t = alpha (1 - t / T)`` decays linearly to 0 over the run's
``T`` optimizer steps. ``||g||`` is over every parameter with a gradient (the adapters
and, on encoders, the task head), as SAM's is.

Cost: one forward-backward per step, as plain LoRA, plus the norms of the adapters and
of their gradients (the paper: 95% of SAM's overhead saved).

Not checked against the paper's text: the sources at hand gave its abstract (the
balancedness, SAM's promotion of it, BAR replacing SAM's second pass) but not its
algorithm. The drift above is derived here from SAM's step on ``f(B A)``; the
normalisation of ``k`` by ``||A||^2 + ||B||^2`` and the linear decay of ``alpha_t``
(as in public code of gBAR, a generalisation of BAR to more factors) are this
implementation's choices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..optim.validation import non_negative
from .lora_layers import lora_layers


@dataclass(frozen=True)
class BAR:
    """BAR's coefficient ``alpha`` (the ``rho`` of the SAM drift it imitates)."""

    alpha: float = 0.05

    def __post_init__(self) -> None:
        non_negative("alpha", self.alpha)

    def alpha_at(self, step: int, total_steps: int) -> float:
        """``alpha (1 - t / T)``, 0 from ``T`` on."""
        if total_steps <= 0:
            return self.alpha
        return self.alpha * max(0.0, 1 - step / total_steps)

    @torch.no_grad()
    def add_gradient(self, model: nn.Module, step: int, total_steps: int) -> None:
        """Add the regulariser's gradient to the LoRA factors' ``.grad`` (which hold the
        step's gradient, in whatever scale the loss had: a GradScaler's ``S`` cancels)."""
        alpha = self.alpha_at(step, total_steps)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if alpha == 0 or not grads:
            return
        total = torch.sqrt(sum(g.float().pow(2).sum() for g in grads))
        for layer in lora_layers(model):
            a, b = layer.A, layer.B
            if a.grad is None or b.grad is None:
                continue
            gap = a.grad.float().pow(2).sum() - b.grad.float().pow(2).sum()
            size = a.float().pow(2).sum() + b.float().pow(2).sum()
            k = alpha * gap / (total * size).clamp_min(torch.finfo(torch.float32).tiny)
            a.grad.add_((-k * a.float()).to(a.grad.dtype))
            b.grad.add_((k * b.float()).to(b.grad.dtype))
