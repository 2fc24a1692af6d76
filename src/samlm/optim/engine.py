"""The SAM step engine: a step's state (clock, decision, skip, backups, statistics) and
the primitives a step is made of.

A SAM step is zero or more *units* (one perturbation each), then ``finish``. One unit
(Foret et al. 2021), :meth:`Engine.unit`:

    L, g  = ascent()                         g = grad L(w): a map, or left in p.grad
    e     = rho * g / ||g||                  (ASAM: rho * T^2 g / ||T g||, T = |w| + eta)
            -- a non-finite ||g|| marks the step skipped; the unit stops here
    w    <- w + e                            (w saved to a backup buffer)
    L_p   = descent()                        at w + e, the same dropout masks if asked;
                                             its gradients accumulate in p.grad
    w    <- backup                           (restore, bitwise)

``finish``: settle a variant's plain-step direction, clip ``p.grad`` (``max_grad_norm``),
skip on a non-finite gradient, let the base optimizer step, advance the clock. A plain
step (the schedule's other steps, or ``rho == 0``) has no unit: one forward-backward,
its loss recorded (:meth:`Engine.record_plain`), then ``finish``.

:meth:`Engine.perturb` is itself three parts: collect the perturbed groups' gradients,
make their norms global (:class:`comm.Reduction`), apply ``e``. Which units a step
has, on which examples, and what is recorded is :class:`samlm.optim.plan.StepPlan`'s,
which :func:`samlm.sam_step` and ``SAMTrainer`` execute; ``SAM.step(closure)`` is
:meth:`Engine.closure_step`, and the two-phase API (``perturb``, ``restore``, ``step``)
calls the primitives directly.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributed.tensor import DTensor

from . import comm
from . import functional as F
from .hessian import HVP
from .rng import RNGReplay
from .schedule import Schedule
from .stats import SAMStats
from .variants import Variant

Grads = Mapping[Tensor, Tensor | None]


@dataclass
class Unit:
    """What one unit gave: ``L(w)`` (as the ascent returned it), ``L(w + e)`` (``None``
    when no second pass ran), and, when the step was skipped, the ascent gradients (a
    GradScaler must see them to lower its scale)."""

    loss: Any
    loss_perturbed: Any = None
    skipped: bool = False
    ascent_grads: Grads | None = None


@dataclass
class _Group:
    """A perturbed group's share of the ascent, as collected."""

    params: list[Tensor]
    grads: list[Tensor]
    rho: float
    eta: float | None  # None: SAM; a float: ASAM's eta


@dataclass
class _Perturbation:
    """What ``restore`` needs: the perturbed parameters, the tensors holding their values
    (the local shards of sharded parameters), the saved values, and (for the cosine
    statistic) the first-pass gradients with their squared norm."""

    params: list[Tensor]
    weights: list[Tensor]
    backups: list[Tensor]
    first_grads: list[Tensor] | None
    first_sq: float


def _own_work(method: Callable[..., Any]) -> Callable[..., Any]:
    """Add the wall time of ``method`` to ``Engine.own_seconds`` when ``Engine.timing``
    (the outermost timed call only, so ``finish`` calling ``restore`` counts once)."""

    @functools.wraps(method)
    def timed(self: Engine, *args: Any, **kwargs: Any) -> Any:
        if not self.timing or self._timing_depth:
            return method(self, *args, **kwargs)
        self._timing_depth += 1
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.own_seconds += time.perf_counter() - start
            self._timing_depth -= 1

    return timed


def _detach(loss: Any) -> Any:
    return loss.detach() if isinstance(loss, Tensor) else loss


class Engine:
    """One SAM optimizer's step state (clock, skip flag, backups, statistics) and the
    step sequence over it.

    ``groups()`` returns the live parameter groups (with ``rho``, ``adaptive``, ``eta``,
    ``perturb``); ``base_step()`` is the base optimizer's step.

    With ``timing = True``, ``own_seconds`` accumulates the wall time of SAM's own work
    (``perturb``, ``restore``, ``finish`` less the base optimizer's step); the passes
    the caller runs are not in it. ``backup_bytes()`` is SAM's own memory.
    """

    def __init__(
        self,
        groups: Callable[[], list[dict[str, Any]]],
        base_step: Callable[[], Any],
        schedule: Schedule,
        *,
        seed: int = 0,
        same_dropout: bool = False,
        max_grad_norm: float | None = None,
        track_cosine: bool = False,
        distributed: str | None = None,
        process_group: Any = None,
        variant: Variant | None = None,
    ) -> None:
        self.groups = groups
        self.base_step = base_step
        self.schedule = schedule
        self.same_dropout = same_dropout
        self.max_grad_norm = max_grad_norm
        self.track_cosine = track_cosine
        self.distributed = distributed
        self.process_group = process_group
        self.variant = variant
        self.generator = torch.Generator().manual_seed(int(seed))
        self.clock = 0  # steps taken or skipped: the schedules' clock
        self.skipped_steps = 0  # steps skipped because a gradient was not finite
        self.sam_steps = 0  # steps that perturbed (the rest were plain or skipped)
        self.stats = SAMStats()
        self._decision: bool | None = None  # is the current step a SAM step (cached)
        self._recorded = False  # perturb() or record_plain() began this step's statistics
        self._settled = False  # the variant's change of a plain step's gradient is applied
        self._skip_pending = False
        self._units = 0  # units begun in the current step
        self._planned = False  # a step plan runs this step (it can refresh a variant)
        self._hvps = 0  # Hessian-vector products of the current step (a variant's refresh)
        self._backups: dict[Tensor, Tensor] = {}
        self._pending: _Perturbation | None = None
        self.timing = False
        self.own_seconds = 0.0
        self._timing_depth = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def skip_pending(self) -> bool:
        return self._skip_pending

    @property
    def perturbed(self) -> bool:
        return self._pending is not None

    def devices(self) -> set[torch.device]:
        return {p.device for g in self.groups() for p in g["params"]}

    def backup_bytes(self) -> int:
        """Bytes of the buffers holding ``w`` during a perturbation (SAM's own memory)."""
        return sum(b.numel() * b.element_size() for b in self._backups.values())

    def new_step(self) -> None:
        """Forget a pending skip: the start of a new step (``zero_grad``)."""
        self._skip_pending = False
        self._units = 0

    def reset(self, clock: int, skipped_steps: int, sam_steps: int) -> None:
        """Set the counters (a loaded checkpoint) and forget the current step."""
        self.clock, self.skipped_steps, self.sam_steps = clock, skipped_steps, sam_steps
        self._end_step()

    def clear_grads(self) -> None:
        """``p.grad = None`` for every trainable parameter of every group."""
        for group in self.groups():
            for p in group["params"]:
                if p.requires_grad:
                    p.grad = None

    def is_sam_step(self) -> bool:
        """Whether the current step perturbs: the schedule says so (decided once per step)
        and some perturbed group has a radius > 0 (else it is a plain step)."""
        if self._decision is None:
            sam = self.schedule.is_sam_step(self.clock, self.generator)  # draws first, always
            self._decision = sam and any(
                g["perturb"] and self.schedule.rho(g, self.clock) > 0.0 for g in self.groups()
            )
        return self._decision

    # -- the sequence -----------------------------------------------------------------------

    def closure_step(self, closure: Callable[[], Any]) -> Any:
        """A whole step from a closure (zero grads, forward, backward, return the loss)."""
        closure = torch.enable_grad()(closure)
        if not self.is_sam_step():
            loss = closure()
            self.record_plain(loss)
        else:
            loss = self.unit(lambda: (closure(), None), closure, ascent_in_grad=True).loss
        self.finish()
        return loss

    def unit(
        self,
        ascent: Callable[[], tuple[Any, Grads | None]],
        descent: Callable[[], Any],
        *,
        ascent_in_grad: bool = False,
        grad_scale: float = 1.0,
    ) -> Unit:
        """One unit: ``ascent()`` returns ``(L(w), grads)`` (``grads=None``: they are in
        ``p.grad``), ``descent()`` runs the second pass and returns ``L(w + e)``.

        Without a perturbation (a zero gradient) the descent still runs at ``w``, unless
        ``ascent_in_grad``: then the ascent's own gradients, in ``p.grad``, are the step's.
        ``grad_scale``: see :meth:`perturb`.
        """
        self._units += 1
        if self.variant is not None and self._units > 1 and not self.variant.per_task:
            raise ValueError(
                f"{self.variant!r} needs the step's clean and SAM gradients side by side: one "
                "unit per step (no m-sharpness, no per-micro-batch accumulation)"
            )
        rng = RNGReplay(self.devices()) if self.same_dropout else None
        loss, grads = ascent()
        perturbed = self.perturb(grads, loss=_detach(loss), grad_scale=grad_scale)
        if self._skip_pending:
            return Unit(loss, skipped=True, ascent_grads=grads)
        if not perturbed and ascent_in_grad:
            return Unit(loss)
        del grads  # free before the second pass, whose gradients can reuse the memory
        with rng.again() if rng is not None and perturbed else contextlib.nullcontext():
            loss_perturbed = descent()
        self.restore(loss=loss_perturbed)
        return Unit(loss, loss_perturbed)

    def record_plain(self, loss: Any) -> None:
        """Record a plain step's statistics: its loss (its one pass); no step is taken."""
        self._recorded = True
        self.stats = SAMStats(skipped_steps=self.skipped_steps, loss=_detach(loss))

    def record_losses(self, loss: Any, loss_perturbed: Any, same_examples: bool) -> None:
        """Record a SAM step's losses over all its units (size-weighted means)."""
        self.stats.loss, self.stats.loss_perturbed = loss, loss_perturbed
        self.stats.same_examples = same_examples

    # -- perturb: collect, norm, apply ------------------------------------------------------

    @_own_work
    @torch.no_grad()
    def perturb(
        self, grads: Grads | None = None, *, loss: Any = None, grad_scale: float = 1.0
    ) -> bool:
        """Move the weights to ``w + e``; see :meth:`samlm.SAM.perturb`. ``grad_scale`` is
        the loss scale the gradients carry (a GradScaler's), divided out of what is
        reported and decided: ``grad_norm = ||g|| / grad_scale``, and a variant's trigger
        sees ``||g||^2 / grad_scale^2`` (``e``, ``perturbation_norm`` and the cosine are
        ratios, free of it). A variant that decides from the ascent gradient
        (AE-SAM) steps with it on a plain step, so under DDP that gradient is DDP's own
        average (a backward outside ``no_sync``): it is not averaged again, and the
        replicas are checked to agree on it and on the decision."""
        if self._pending is not None:
            raise RuntimeError("SAM.perturb() called twice: call restore() or step() first")
        self._recorded = True
        stats = self.stats = SAMStats(skipped_steps=self.skipped_steps, loss=loss, hvps=self._hvps)
        if not self.is_sam_step():
            return False
        chosen = self._collect(grads)
        reduction = comm.Reduction.of(
            [p for c in chosen for p in c.params], self.distributed, self.process_group
        )
        decides = self.variant is not None and self.variant.decides_after_ascent
        if not decides:
            reduction.gradients_([g for c in chosen for g in c.grads])
        ascents = [
            F.ascent_group([comm.local(p) for p in c.params], [comm.local(g) for g in c.grads],
                           c.rho, c.eta)
            for c in chosen
        ]  # fmt: skip
        if self.variant is not None:
            self._variant_ascent(chosen, ascents)
        rows = [torch.stack([a.grad_sq, a.scaled_sq, a.direction_sq]) for a in ascents]
        squares = reduction.squares(torch.stack(rows) if rows else torch.zeros(0, 3))
        host = squares.cpu().tolist()  # the ascent's one host synchronisation
        if not all(math.isfinite(x) for row in host for x in row):
            self.skipped_steps += 1
            stats.skipped_steps = self.skipped_steps
            self._skip_pending = True
            return False
        scaled_norm = math.sqrt(sum(row[1] for row in host))
        if scaled_norm == 0.0 and not reduction.lockstep:
            return False
        g_sq = sum(row[0] for row in host)  # in the gradients' (scaled) units
        if decides:
            sam = self.variant.triggers(g_sq / grad_scale**2, self.clock)  # type: ignore[union-attr]
            if not reduction.agree(squares.new_tensor([g_sq, float(sam)], dtype=torch.float64)):
                raise RuntimeError(
                    f"{self.variant!r}: the replicas' gradient norms or decisions differ; "
                    "with distributed='synchronized' its first pass must be DDP's averaged "
                    "backward (outside no_sync), which a plain step then uses"
                )
            if not sam:
                return False  # AE-SAM: a flat region, a plain step with this gradient
        # (lockstep: a replica with g = 0 stays at w but still takes the second pass)
        self._pending = self._apply(chosen, ascents, scaled_norm, g_sq)
        stats.sam_step = True
        stats.rho = max(a.rho for a in ascents) if ascents else 0.0
        stats.grad_norm = math.sqrt(g_sq) / grad_scale
        e_sq = sum(a.rho**2 * row[2] for a, row in zip(ascents, host, strict=True))
        stats.perturbation_norm = math.sqrt(e_sq) / (scaled_norm or 1.0)
        return True

    def _variant_ascent(self, chosen: list[_Group], ascents: list[F.AscentGroup]) -> None:
        """Replace SAM's ascent direction ``g`` by the variant's (Eigen-SAM's), group by
        group (each keeps its ``rho``); ``||g||`` stays the normaliser. A variant that
        needs the step's loss, or a per-task one, is refused outside a step plan."""
        variant: Variant = self.variant  # type: ignore[assignment]
        needs = (
            "refreshes from the step's loss" if variant.needs_loss
            else "perturbs each task's sub-batch on its own" if variant.per_task
            else None
        )  # fmt: skip
        if needs and not self._planned:
            raise ValueError(
                f"{self.variant!r} {needs}, which SAM.step(closure) and perturb() cannot "
                "see: step with samlm.sam_step or SAMTrainer"
            )
        if not self.variant.changes_ascent:  # type: ignore[union-attr]
            return
        if any(c.eta is not None for c in chosen):
            raise ValueError(
                f"{self.variant!r} with adaptive=True (ASAM): its perturbation is defined "
                "on SAM's ball; use adaptive=False"
            )
        params = [p for c in chosen for p in c.params]
        reduce = comm.Reduction.of(params, None, None).total
        grads = [g for a in ascents for g in a.grads]
        direction = self.variant.ascent_direction(params, grads, reduce)  # type: ignore[union-attr]
        at = 0
        for a in ascents if direction is not None else ():
            a.direction = direction[at : at + len(a.grads)]  # type: ignore[index]
            a.direction_sq = F.squared_norms(a.direction)
            at += len(a.grads)

    def refresh_due(self) -> bool:
        """Whether the variant refreshes before this (SAM) step's passes."""
        self._planned = True  # asked by the plan, which can hand the variant the loss
        return self.variant is not None and self.variant.refresh_due(self.clock)

    def refresh_variant(self, product_of: Callable[[list[Tensor]], HVP]) -> None:
        """Refresh the variant (Eigen-SAM's ``v``) from ``product_of(params)``, the
        Hessian-vector products of the step's loss over the perturbed parameters;
        under DDP (``synchronized``) each product is averaged over the replicas, as the
        ascent gradients are."""
        params = [
            p
            for g in self.groups()
            if g["perturb"] and self.schedule.rho(g, self.clock) > 0.0
            for p in g["params"]
            if p.requires_grad
        ]
        reduction = comm.Reduction.of(params, self.distributed, self.process_group)
        if reduction.case == "sharded":
            raise ValueError(
                f"{self.variant!r} with sharded (FSDP) parameters: its Hessian-vector "
                "products are not supported on shards; use DDP"
            )
        product = product_of(params)

        def averaged(v: list[Tensor]) -> list[Tensor]:
            self._hvps += 1
            hv = product(v)
            reduction.gradients_(hv)
            return hv

        self.variant.refresh_(params, averaged, self.clock)  # type: ignore[union-attr]

    def _collect(self, grads: Grads | None) -> list[_Group]:
        """The perturbed groups with a radius > 0, and their parameters that have a
        gradient (from ``grads``, else ``p.grad``)."""
        chosen = []
        for group in self.groups():
            rho = self.schedule.rho(group, self.clock)
            if not group["perturb"] or rho == 0.0:
                continue
            params, gs = [], []
            for p in group["params"]:
                g = p.grad if grads is None else grads.get(p)
                if g is not None:
                    params.append(p)
                    gs.append(g)
            if params:
                eta = float(group["eta"]) if group["adaptive"] else None
                chosen.append(_Group(params, gs, rho, eta))
        return chosen

    def _apply(
        self, chosen: list[_Group], ascents: list[F.AscentGroup], scaled_norm: float, g_sq: float
    ) -> _Perturbation:
        """``backup <- w``, ``w <- w + e`` for every collected group (none when ``||s|| = 0``)."""
        keep = self.track_cosine or (  # g, next to g_s after pass two
            self.variant is not None and self.variant.needs_clean_gradient
        )
        done = _Perturbation([], [], [], [] if keep else None, g_sq)
        for c, a in zip(chosen, ascents, strict=True) if scaled_norm > 0.0 else ():
            backups = [self._backup_of(p, w) for p, w in zip(c.params, a.params, strict=True)]
            F.backup_and_perturb(a, backups, scaled_norm)
            done.params += c.params
            done.weights += a.params
            done.backups += backups
            if done.first_grads is not None:
                done.first_grads += a.grads
        return done

    def _backup_of(self, p: Tensor, weight: Tensor) -> Tensor:
        """The buffer saving parameter ``p``, shaped like ``weight`` (its local shard)."""
        buf = self._backups.get(p)
        if (
            buf is None
            or buf.shape != weight.shape
            or buf.dtype != weight.dtype
            or buf.device != weight.device
        ):
            buf = torch.empty_like(weight, memory_format=torch.preserve_format)
            self._backups[p] = buf
        return buf

    # -- restore and finish -----------------------------------------------------------------

    @_own_work
    @torch.no_grad()
    def restore(self, *, loss: Any = None) -> None:
        """Copy the saved weights back (bitwise exact); no-op when not perturbed."""
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        if loss is not None:
            self.stats.loss_perturbed = _detach(loss)
        try:
            if state.first_grads is not None and self.variant and self.variant.needs_clean_gradient:
                self._variant_sam_gradient(state)
            elif state.first_grads is not None:
                self._polarise(state)
        finally:  # w, whatever happened
            F.restore(state.weights, state.backups)

    def _polarise(self, state: _Perturbation) -> None:
        """The cosine statistic's inputs, from the first-pass gradients (dead after the
        perturbation: reused in place, unless zero_grad(set_to_none=False) made the second
        pass accumulate into them)."""
        second = [None if p.grad is None else comm.local(p.grad) for p in state.params]
        if all(
            g is not None and g is not f for g, f in zip(second, state.first_grads, strict=True)
        ):
            sum_sq, second_sq = F.polarise_(state.first_grads, second)  # type: ignore[arg-type]
            self.stats._polarisation = (sum_sq, state.first_sq, second_sq)

    def _variant_sam_gradient(self, state: _Perturbation) -> None:
        """The variant's change of the SAM gradient (in ``p.grad``), given the clean one."""
        pairs = list(zip(state.params, state.first_grads or [], strict=True))
        if any(p.grad is f for p, f in pairs):
            raise RuntimeError(
                f"{self.variant!r} needs the clean gradient next to the SAM gradient, but the "
                "second pass accumulated into it: zero the gradients with "
                "zero_grad(set_to_none=True) (the default) before the second backward"
            )
        rows = [(p, f, comm.local(p.grad)) for p, f in pairs if p.grad is not None]
        reduce = comm.Reduction.of(state.params, None, None).total
        g_sq, dot, s_sq = self.variant.sam_gradient_(  # type: ignore[union-attr]
            [p for p, _, _ in rows], [f for _, f, _ in rows], [s for _, _, s in rows], reduce
        )
        self.stats._polarisation = (g_sq + 2.0 * dot + s_sq, g_sq, s_sq)

    def _perturbed_params(self) -> list[Tensor]:
        """The parameters with a gradient in the groups a SAM step would perturb now."""
        return [
            p
            for g in self.groups()
            if g["perturb"] and self.schedule.rho(g, self.clock) > 0.0
            for p in g["params"]
            if p.grad is not None
        ]

    @torch.no_grad()
    def settle_direction(self) -> None:
        """Apply the variant's change of a plain step's gradient (LookSAM's reused
        direction) to ``p.grad`` now, once per step: a caller that clips before
        ``step()`` (the Trainer) then clips the direction the base optimizer applies.
        ``finish`` calls it; a SAM step or a skipped one has nothing to settle."""
        if self._settled or self._skip_pending or self.stats.sam_step or self.variant is None:
            return
        self._settled = True
        params = self._perturbed_params()
        reduce = comm.Reduction.of(params, None, None).total
        self.variant.plain_gradient_(params, [comm.local(p.grad) for p in params], reduce)

    @_own_work
    @torch.no_grad()
    def finish(self) -> None:
        """Restore if perturbed; settle the direction, clip, check, and let the base
        optimizer step with the gradients in ``p.grad`` (no step when they, or the
        ascent's, were not finite)."""
        self.restore()
        if not self._recorded:  # neither perturb() nor record_plain(): a plain step
            self.stats = SAMStats(skipped_steps=self.skipped_steps)
        skip = self._skip_pending
        if not skip:
            self.settle_direction()
            params = [p for g in self.groups() for p in g["params"] if p.grad is not None]
            if self.max_grad_norm is not None:
                total = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm, foreach=True)
                if isinstance(total, DTensor):
                    total = total.full_tensor()  # all ranks see the global norm
            else:
                reduce = comm.Reduction.of(params, None, None).total
                total = reduce(F.squared_norms([comm.local(p.grad) for p in params]))
            if not math.isfinite(total.item()):
                skip = True
                self.skipped_steps += 1
        if not skip:
            self.sam_steps += self.stats.sam_step
            start = time.perf_counter()
            self.base_step()
            if self.timing:
                self.own_seconds -= time.perf_counter() - start  # the base step is not SAM's
        self.stats.skipped_steps = self.skipped_steps
        self._end_step()
        self.clock += 1

    def _end_step(self) -> None:
        """Forget the current step's decision, records and pending skip."""
        self._skip_pending = False
        self._decision = None
        self._recorded = False
        self._settled = False
        self._units = 0
        self._planned = False
        self._hvps = 0
