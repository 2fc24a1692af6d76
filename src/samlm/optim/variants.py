"""SAM variants that change the update direction or the steps that perturb, plugged
into the step engine.

With ``g`` the clean gradient (the ascent's, at ``w``) and ``g_s`` the SAM gradient (at
``w + e``, ``e = rho g / ||g||``), both over the perturbed parameters, and
``proj_u(v) = (<v, u> / ||u||^2) u``:

* GSAM (Zhuang et al., ICLR 2022, Algorithm 1): ``g_s - alpha * (g - proj_{g_s}(g))``
  on every step.
* LookSAM (Liu et al., CVPR 2022, Algorithm 1): a SAM step every ``k`` steps keeps
  ``g_v = g_s - proj_g(g_s)``; the steps between cost one pass and step with
  ``g + alpha * (||g|| / ||g_v||) * g_v``.
* AE-SAM (Jiang et al., ICLR 2023): a SAM step only when ``||g||^2`` is
  high against its running mean and deviation; otherwise a plain step with ``g``.
* Eigen-SAM (Luo et al., NeurIPS 2024): the perturbation
  ``e = rho [g_hat + alpha sign(<g, v>) (v - <v, g_hat> g_hat)]``, ``g_hat = g / ||g||``,
  with ``v`` the Hessian's top eigenvector, refreshed by a power iteration every
  ``refresh`` steps.
* TaskSAM (per-task sharpness for a mixture, as DGSAM argues, Song et al. 2025):
  each task ``i`` of the step's batch perturbed on its own, ``e_i = rho g_i / ||g_i||``,
  and ``sum_i (n_i / n) grad L_i(w + e_i)`` as the step's gradient.

Each class says its equation, its defaults and where it departs from the paper. Norms
and inner products are global over the perturbed parameters (summed over the shards of
sharded ones), as in the papers' equations. GSAM and LookSAM need the clean gradient
next to the SAM gradient, AE-SAM decides from the whole step's gradient: a step is one
unit on the whole batch (no m-sharpness, no per-micro-batch accumulation, no partial
ascent: :meth:`Variant.check_ascent_fraction`), and the replicas of a DDP run
must share ``g`` (``distributed="synchronized"``; per-replica gradients would make the
replicas step, or decide, each its own way).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from . import functional as F
from .hessian import HVP, power_iteration
from .validation import finite, in_interval, positive_float, positive_int

Reduce = Callable[[Tensor], Tensor]  # a sum over the shards of a scalar (identity unsharded)


def _dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """``<a, b>`` over lists of tensors, in fp32 (fp64 for fp64 tensors), as a 0-dim tensor."""
    if not a:
        return torch.zeros((), dtype=torch.float32)
    wide = any(t.dtype == torch.float64 for t in a)
    dtype = torch.float64 if wide else torch.float32
    prods = torch._foreach_mul([x.to(dtype) for x in a], [y.to(dtype) for y in b])
    return torch.stack([p.sum() for p in prods]).sum()


class Variant:
    """What a variant adds to the engine: a change of the SAM gradient after the second
    pass, a change of a plain step's gradient, its own state. A subclass sets ``name``
    (how ``SAMConfig``, checkpoints and logs call it); the base class has none."""

    name: ClassVar[str]
    interval: int | None = None  # the SAM steps' period, when the variant sets it
    needs_clean_gradient = True  # g kept next to g_s through the second pass
    decides_after_ascent = False  # whether a step perturbs is known from ||g|| only
    changes_ascent = False  # ascent_direction replaces SAM's direction g (Eigen-SAM)
    needs_loss = False  # the step plan must hand it the step's loss (Eigen-SAM's refresh)
    per_task = False  # a step's units are its tasks' sub-batches, one perturbation each (TaskSAM)
    # state_dict entries mapping a parameter's index to a tensor shaped like its gradient
    # (its local shard under FSDP), which checkpoints save and shard like the parameter
    param_buffers: tuple[str, ...] = ()
    # why a step's ascent must be its whole batch (ascent_fraction < 1 is refused)
    whole_batch = (
        "its rule combines the clean and the SAM gradient of one batch, and a partial ascent "
        "would mix the clean gradient of the ascent's examples with the SAM gradient of all"
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "name", None), str) or not cls.name:
            raise TypeError(f"{cls.__name__} must set name, the variant's name in checkpoints")

    def check_ascent_fraction(self, ascent_fraction: float) -> None:
        """Refuse ``ascent_fraction < 1`` by name, saying why."""
        if ascent_fraction != 1.0:
            raise ValueError(
                f"ascent_fraction={ascent_fraction} with variant={self.name!r}: {self.whole_batch}"
            )

    def triggers(self, g_sq: float, step: int) -> bool:
        """Whether step ``step``, with ``||g||^2 = g_sq``, perturbs (after the schedule)."""
        return True

    def sam_gradient_(
        self, params: list[Tensor], clean: list[Tensor], sam: list[Tensor], reduce: Reduce
    ) -> tuple[float, float, float]:
        """Adjust ``sam`` (the SAM gradients, in ``p.grad``) in place, given ``clean``;
        return ``(||g||^2, <g, g_s>, ||g_s||^2)`` (the cosine statistic's inputs).
        Called only when ``needs_clean_gradient``."""
        return _inner_products(clean, sam, reduce)

    def plain_gradient_(self, params: list[Tensor], grads: list[Tensor], reduce: Reduce) -> None:
        """Adjust a plain step's gradients in place (default: leave them); ``params`` are
        the perturbed groups' parameters with a gradient, ``grads`` their gradients."""

    def ascent_direction(
        self, params: list[Tensor], grads: list[Tensor], reduce: Reduce
    ) -> list[Tensor] | None:
        """``D`` with ``e = rho D / ||g||`` in place of SAM's ``D = g`` (new tensors, one
        per gradient), or ``None`` to keep SAM's. Called only when ``changes_ascent``."""
        return None

    def refresh_due(self, clock: int) -> bool:
        """Whether a SAM step at ``clock`` must first call :meth:`refresh_`."""
        return False

    def refresh_(self, params: list[Tensor], product: HVP, clock: int) -> None:
        """Refresh the variant's state from Hessian-vector products ``v -> H v`` over
        ``params`` (the perturbed parameters) on the step's batch."""

    def state_dict(self, index: dict[Tensor, int]) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any], params: dict[int, Tensor]) -> None:
        """Load what :meth:`state_dict` gave (missing keys keep their defaults)."""


def _saved(buffers: dict[Tensor, Tensor], index: dict[Tensor, int]) -> dict[int, Tensor]:
    """A per-parameter buffer (``param_buffers``) keyed by the parameter's index."""
    return {index[p]: v for p, v in buffers.items() if p in index}


def _loaded(saved: dict[int, Tensor], params: dict[int, Tensor]) -> dict[Tensor, Tensor]:
    """:func:`_saved`'s buffers back, each a copy on its parameter's device."""
    return {params[i]: v.to(device=params[i].device, copy=True) for i, v in saved.items()}


def _inner_products(
    clean: list[Tensor], sam: list[Tensor], reduce: Reduce
) -> tuple[float, float, float]:
    squares = torch.stack(
        [F.squared_norms(clean), _dot(clean, sam).to(torch.float64), F.squared_norms(sam)]
        if clean
        else [torch.zeros((), dtype=torch.float64)] * 3
    )
    g_sq, dot, s_sq = reduce(squares.to(torch.float64)).cpu().tolist()
    return g_sq, dot, s_sq


class GSAM(Variant):
    """GSAM: every step is a SAM step along ``g_s - alpha * g_perp``,
    ``g_perp = g - proj_{g_s}(g)`` (Algorithm 1, step 4): an ascent on the surrogate gap
    ``L(w + e) - L(w)`` that leaves ``L(w + e)`` unchanged to first order.

    ``alpha`` in [0, 1]; ``alpha = 0`` is SAM. The paper tunes it per model (Table 4:
    0.005-0.01 for ResNets, 0.4-1.0 for ViTs); the default 0.4 is its ViT-B/16 and
    ViT-S/32 value. Its radius follows the learning rate (Algorithm 1, step 0:
    ``rho_t = rho_min + (rho_max - rho_min)(lr - lr_min) / (lr_max - lr_min)``):
    ``SAM(rho_schedule="lr", rho_min=...)``, with ``rho`` as ``rho_max``.

    Departures from the paper: the schedule takes ``lr_min = 0`` (the paper's runs end
    at ``lr_max / 100``, so our rho ends 1% of ``rho - rho_min`` above ``rho_min``); no
    ``epsilon`` in ``||g|| + epsilon`` (a zero gradient does not perturb); with
    ``adaptive=True`` the ascent is ASAM's (Kwon et al.), not the paper's ``e * |w|``.
    When ``||g_s|| = 0`` the direction is left as ``g_s`` (the projection is undefined).
    """

    name = "gsam"

    def __init__(self, alpha: float = 0.4) -> None:
        self.alpha = in_interval("alpha", alpha, 0.0, 1.0)

    def sam_gradient_(self, params, clean, sam, reduce):
        g_sq, dot, s_sq = _inner_products(clean, sam, reduce)
        if s_sq > 0.0 and self.alpha > 0.0:
            # g_s - alpha (g - (dot / s_sq) g_s) = (1 + alpha dot / s_sq) g_s - alpha g
            torch._foreach_mul_(sam, 1.0 + self.alpha * dot / s_sq)
            torch._foreach_add_(sam, clean, alpha=-self.alpha)
        return g_sq, dot, s_sq

    def __repr__(self) -> str:
        return f"GSAM(alpha={self.alpha})"


class LookSAM(Variant):
    """LookSAM: a SAM step every ``k`` steps (clock ``t`` with ``t % k == 0``) keeps
    ``g_v = g_s - proj_g(g_s) = g_s - ||g_s|| cos(g, g_s) g / ||g||``, the part of the
    SAM gradient orthogonal to the clean one (one gradient-sized buffer); each step in
    between costs one forward-backward and steps with
    ``g + alpha * (||g|| / ||g_v||) * g_v`` (Algorithm 1). The paper's adaptive ratio
    ``||g|| / ||g_v||`` is kept as it is: ``alpha`` sets the reused component's norm
    relative to ``||g||``.

    ``k >= 1`` (``k = 1`` is SAM), ``alpha >= 0`` (``alpha = 0`` makes the steps between
    plain). Defaults ``k = 5``, ``alpha = 0.7``, as in public ports of the paper
    (unverified against its text).

    Departures from the paper: no Look-LayerSAM (the layer-wise rescaling for large
    batches). A step between with no ``g_v`` (before the first SAM step, which
    ``sam_start_step`` can delay, or after a SAM step whose gradient was not finite) is
    a plain step. ``g_v`` and the norms are global over the parameters, as in the
    paper's equations (some ports take them per tensor).
    """

    name = "looksam"
    param_buffers = ("g_v",)

    def __init__(self, k: int = 5, alpha: float = 0.7) -> None:
        self.interval = positive_int("k", k)
        self.alpha = positive_float("alpha", alpha, allow_zero=True)
        self.g_v: dict[Tensor, Tensor] = {}
        self.g_v_sq = 0.0

    def sam_gradient_(self, params, clean, sam, reduce):
        g_sq, dot, s_sq = _inner_products(clean, sam, reduce)
        ratio = dot / g_sq if g_sq > 0.0 else 0.0  # g_v = g_s - (<g_s, g> / ||g||^2) g
        fresh: dict[Tensor, Tensor] = {}  # a parameter without a gradient now has g_v = 0
        for p, s in zip(params, sam, strict=True):
            buf = self.g_v.get(p)
            if buf is None or buf.shape != s.shape or buf.dtype != s.dtype:
                buf = torch.empty_like(s)
            fresh[p] = buf
        self.g_v = fresh
        kept = list(fresh.values())
        torch._foreach_copy_(kept, sam)
        torch._foreach_add_(kept, clean, alpha=-ratio)
        g_v_sq = reduce(F.squared_norms(kept).to(torch.float64)).item()
        # a non-finite SAM gradient (a step the scaler or the check will skip) leaves inf or
        # NaN in the buffers: then reuse nothing until the next SAM step refreshes them
        self.g_v_sq = g_v_sq if math.isfinite(g_v_sq) else 0.0
        return g_sq, dot, s_sq

    def plain_gradient_(self, params, grads, reduce):
        # ||g|| over every perturbed gradient; a parameter missing from g_v has g_v = 0
        pairs = [(g, self.g_v[p]) for p, g in zip(params, grads, strict=True) if p in self.g_v]
        if not pairs or self.g_v_sq <= 0.0 or self.alpha == 0.0:
            return
        g_sq = reduce(F.squared_norms(grads).to(torch.float64)).item()
        scale = self.alpha * (g_sq / self.g_v_sq) ** 0.5
        torch._foreach_add_([g for g, _ in pairs], [v for _, v in pairs], alpha=scale)

    def state_dict(self, index):
        return {"g_v": _saved(self.g_v, index), "g_v_sq": self.g_v_sq}

    def load_state_dict(self, state, params):
        self.g_v = _loaded(state.get("g_v", {}), params)
        self.g_v_sq = float(state.get("g_v_sq", 0.0))

    def __repr__(self) -> str:
        return f"LookSAM(k={self.interval}, alpha={self.alpha})"


class AESAM(Variant):
    """AE-SAM: step ``t`` is a SAM step when ``s_t >= mu_t + c_t * sigma_t``, with
    ``s_t = ||g_t||^2`` (the step's whole-batch gradient),
    ``mu_t = delta mu_{t-1} + (1 - delta) s_t``,
    ``sigma_t^2 = delta sigma_{t-1}^2 + (1 - delta) (s_t - mu_t)^2`` and
    ``c_t = (t / T) lambda_1 + (1 - t / T) lambda_2``; otherwise a plain step with
    ``g_t`` (one forward-backward). ``c_t`` runs from ``lambda_2`` to ``lambda_1``, so
    with ``lambda_1 < lambda_2`` SAM steps grow more frequent as training goes on.

    ``delta`` in (0, 1); ``lambda_1``, ``lambda_2`` any finite numbers (the default
    ``lambda_1 = -1`` is negative: late in the run a step perturbs when ``s_t`` is above
    ``mu_t - sigma_t``). Defaults ``delta = 0.9``, ``lambda_1 = -1``, ``lambda_2 = 1``
    (unverified against the paper's text). ``T`` is ``total_steps``, which may be
    set later (``SAMTrainer`` sets it to the run's steps); until it is, ``c_t =
    lambda_2``. ``t`` is SAM's clock (saved with ``mu`` and ``sigma^2``).

    Departures from the paper: ``mu`` and ``sigma^2`` start at 0 (so the first step is
    a SAM step); a constant ``c_t`` while ``T`` is unknown; no AE-LookSAM. With a
    GradScaler ``s_t`` is taken unscaled; under DDP it is the replicas' averaged
    gradient's (``distributed="synchronized"``, every rank takes the same decision).
    """

    name = "aesam"
    needs_clean_gradient = False
    decides_after_ascent = True
    whole_batch = (
        "it decides from the whole batch's gradient, which a plain step then uses (a "
        "partial ascent would cost a plain step a second pass)"
    )

    def __init__(
        self,
        delta: float = 0.9,
        lambda_1: float = -1.0,
        lambda_2: float = 1.0,
        total_steps: int | None = None,
    ) -> None:
        # delta = 1: the statistics would never move
        self.delta = in_interval("delta", delta, 0.0, 1.0, open_low=True, open_high=True)
        self.lambda_1 = finite("lambda_1", lambda_1)
        self.lambda_2 = finite("lambda_2", lambda_2)
        self.total_steps = None if total_steps is None else positive_int("total_steps", total_steps)
        self.mean = 0.0
        self.var = 0.0

    def threshold_factor(self, step: int) -> float:
        """``c_t``: from lambda_2 at the start to lambda_1 at step ``T``."""
        if self.total_steps is None:
            return self.lambda_2
        frac = min(step / self.total_steps, 1.0)
        return frac * self.lambda_1 + (1.0 - frac) * self.lambda_2

    def triggers(self, g_sq: float, step: int) -> bool:
        self.mean = self.delta * self.mean + (1.0 - self.delta) * g_sq
        self.var = self.delta * self.var + (1.0 - self.delta) * (g_sq - self.mean) ** 2
        return g_sq >= self.mean + self.threshold_factor(step) * math.sqrt(self.var)

    def state_dict(self, index):
        return {"mean": self.mean, "var": self.var}

    def load_state_dict(self, state, params):
        self.mean = float(state.get("mean", 0.0))
        self.var = float(state.get("var", 0.0))

    def __repr__(self) -> str:
        return (
            f"AESAM(delta={self.delta}, lambda_1={self.lambda_1}, lambda_2={self.lambda_2}, "
            f"total_steps={self.total_steps})"
        )


class EigenSAM(Variant):
    """Eigen-SAM: the ascent leans towards the Hessian's top eigenvector ``v`` (unit norm,
    largest ``|lambda|``): ``e = rho [g_hat + alpha s (v - <v, g_hat> g_hat)]``,
    ``g_hat = g / ||g||``, ``s = sign(<g, v>)`` (0 when ``<g, v> = 0``), not
    renormalised; then SAM's second pass and base step. With several groups each takes
    its own ``rho`` times its share of the bracket. ``v`` is refreshed on the first SAM
    step at least ``refresh`` steps of SAM's clock after the last refresh (or step 0):
    ``iterations`` power iterations ``v <- H v / ||H v||`` by double backward on the
    step's batch, over the perturbed parameters, warm-started from the previous ``v``,
    before the step's own passes. Cost of a refresh: one forward and backward (kept as a
    graph) and ``iterations`` Hessian-vector products (with accumulation, a forward,
    backward and product per micro-batch and iteration).

    ``alpha >= 0`` (``alpha = 0`` is SAM: no refresh, no product); defaults
    ``alpha = 0.2``, ``refresh = 100``, ``iterations = 5``: the authors' code
    (RitianLuo/EigenSAM, ``train.py``'s ``--alpha``, ``--freq``, ``steps=5``).

    Departures from the authors' code: until the first ``v`` exists the step is SAM's,
    ``e = rho g / ||g||`` (the code perturbs by ``rho g``, unnormalised); the refresh
    counts SAM's clock (the code: the step index within the epoch, ``step % freq == 0
    and step > 0``, so every epoch restarts it); the refresh runs in the mode the
    step's passes run (training: dropout on, one mask for the refresh's forward, shared
    by its iterations; the code switches to eval mode); the first ``v`` starts from a
    Gaussian of a fixed seed (the code: unseeded); no ``1e-12`` in the norms (a zero
    ``g`` does not perturb; a zero or non-finite ``H v`` keeps the previous ``v``). No
    ASAM (``adaptive=True`` is refused), no FSDP (refused by name); under DDP the
    products are averaged over the replicas like the ascent gradients
    (``distributed="synchronized"``).
    """

    name = "eigensam"
    needs_clean_gradient = False
    changes_ascent = True
    needs_loss = True
    param_buffers = ("v",)
    whole_batch = (
        "its perturbation uses the gradient of the batch whose Hessian it estimates, and a "
        "partial ascent would perturb from part of the batch"
    )
    SEED = 0  # of the first v's Gaussian start

    def __init__(self, alpha: float = 0.2, refresh: int = 100, iterations: int = 5) -> None:
        self.alpha = positive_float("alpha", alpha, allow_zero=True)
        self.refresh = positive_int("refresh", refresh)
        self.iterations = positive_int("iterations", iterations)
        self.v: dict[Tensor, Tensor] = {}
        self.refreshed_at = 0  # SAM's clock at the last refresh

    def refresh_due(self, clock):
        return self.alpha > 0.0 and clock - self.refreshed_at >= self.refresh

    def refresh_(self, params, product, clock):
        warm = [self.v.get(p) for p in params]
        if any(v is None or v.shape != p.shape for v, p in zip(warm, params, strict=True)):
            gen = torch.Generator().manual_seed(self.SEED)
            warm = [torch.randn(p.shape, generator=gen).to(p) for p in params]
        fresh = power_iteration(product, warm, self.iterations)  # type: ignore[arg-type]
        self.refreshed_at = clock
        if fresh is not None:  # else keep the last v (none before the first)
            self.v = dict(zip(params, fresh, strict=True))

    def ascent_direction(self, params, grads, reduce):
        # e = rho/||g|| [(1 - alpha s <v, g>/||g||) g + alpha s ||g|| v]
        vs = [self.v.get(p) for p in params]
        pairs = [(g, v) for g, v in zip(grads, vs, strict=True) if v is not None]
        if not pairs or self.alpha == 0.0:
            return None
        dot = _dot([g for g, _ in pairs], [v for _, v in pairs]).to(torch.float64)
        squares = torch.stack([F.squared_norms(grads).to(torch.float64), dot])
        g_sq, gv = reduce(squares).cpu().tolist()
        if not (math.isfinite(g_sq) and math.isfinite(gv)) or g_sq == 0.0:
            return None  # a skipped step, or no perturbation
        norm, sign = math.sqrt(g_sq), float((gv > 0) - (gv < 0))
        direction = torch._foreach_mul(grads, 1.0 - self.alpha * sign * gv / norm)
        lean = [(d, v) for d, v in zip(direction, vs, strict=True) if v is not None]
        lean_by = self.alpha * sign * norm
        torch._foreach_add_([d for d, _ in lean], [v for _, v in lean], alpha=lean_by)
        return direction

    def state_dict(self, index):
        return {"v": _saved(self.v, index), "refreshed_at": self.refreshed_at}

    def load_state_dict(self, state, params):
        self.v = _loaded(state.get("v", {}), params)
        self.refreshed_at = int(state.get("refreshed_at", 0))

    def __repr__(self) -> str:
        return f"EigenSAM(alpha={self.alpha}, refresh={self.refresh}, iterations={self.iterations})"


class TaskSAM(Variant):
    """TaskSAM: every task of a mixture perturbed on its own. A step's batch holds ``n_i``
    examples of task ``i`` (a task-stratified draw, the same counts every step); with
    ``g_i = grad L_i(w)`` on task ``i``'s examples::

        e_i    = rho g_i / ||g_i||                    (0 when g_i = 0)
        p.grad = sum_i (n_i / n) grad L_i(w + e_i)    (n = sum_i n_i)

    then the base step (clipping, the learning-rate schedule and loss scaling act on this
    final direction only; ``rho`` follows SAM's schedule). It minimises
    ``sum_i (n_i / n) max_{||e_i|| <= rho} L_i(w + e_i)``, each task's own sharpness
    instead of the pooled loss's: the "individual sharpness" DGSAM minimises (Song,
    Hwang, Lee, Lee, Lim, arXiv 2503.23430; its abstract), in the per-task form issue 35
    names; the paper's exact objective and domain weights are unverified. Equal counts
    (``--mixing equal``) weight the tasks equally. With one task it is SAM.

    Not DGSAM's algorithm: the paper's abstract describes "gradual domain-wise
    perturbations" at less cost than SAM (issue 35: domain by domain in a random order
    each step, reusing the ascent gradients); its Algorithm 1 could not be read here, so
    that schedule is neither implemented nor verified. TaskSAM computes each task's
    perturbation independently (no order enters the rule; tasks run in their order in
    the batch) and costs two passes of each task's sub-batch: a SAM step's examples
    twice, in ``2 M`` smaller passes for ``M`` tasks.

    The step plan makes the units (:class:`samlm.optim.plan.StepPlan` with ``tasks``):
    each micro-batch is ``tasks[0]`` examples of the first task, then ``tasks[1]`` of the
    second, ...; with gradient accumulation a task's unit spans its slices of every
    micro-batch (one ``e_i`` per task per step). Under DDP each ``g_i`` is averaged over
    the replicas before its norm (``distributed="synchronized"``). No partial ascent, no
    m-sharpness (the units are the tasks); ASAM's ball is allowed (``adaptive=True``
    replaces each ``e_i`` by ASAM's). A non-finite ``g_i`` skips the whole step. In
    ``last_stats`` the losses are the weighted sums over the tasks, ``grad_norm`` and
    ``perturbation_norm`` the last task's (as m-sharpness reports its last chunk's).
    """

    name = "tasksam"
    needs_clean_gradient = False
    per_task = True
    whole_batch = "each task's perturbation is taken on all of that task's examples"

    def __repr__(self) -> str:
        return "TaskSAM()"


VARIANTS = {
    "gsam": GSAM,
    "looksam": LookSAM,
    "aesam": AESAM,
    "eigensam": EigenSAM,
    "tasksam": TaskSAM,
}
