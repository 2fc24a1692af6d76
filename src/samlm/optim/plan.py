"""The step plan: which passes a SAM step runs, on which examples, in which order.

Both drivers, :func:`samlm.sam_step` and ``SAMTrainer``, execute a :class:`StepPlan`;
they differ only in how a pass runs (their :class:`Passes`). A plan holds the step's
*units* (each a list of ``(batch, n_i)`` pieces, ``n`` examples in all) and runs:

* a plain step (the schedule's other steps, ``rho == 0``): one backward of every
  piece, weighted ``n_i / n``; ``L(w)`` recorded;
* a variant that decides from the whole batch's gradient (AE-SAM): that backward, in
  ``p.grad``, is the ascent; ``||g||`` decides; a flat region keeps it as a plain
  step's gradient, else ``p.grad`` is cleared and every piece runs again at ``w + e``;
* otherwise, for every unit (Foret et al. 2021; Bahri et al. 2022 for the fraction)::

      L_u, g_u = ascent(first ascent_fraction of each piece)   (p.grad untouched)
      e_u      = rho g_u / ||g_u||                              (skip if not finite)
      p.grad  += sum_{i in u} (n_i / n) grad L_i(w + e_u)        (restore w after)

  and ``L(w) = sum_u (n_u / n) L_u``, ``L(w + e)`` the weighted sum of the second passes.
  A per-task variant (TaskSAM) has one unit per task: every micro-batch is ``tasks[0]``
  examples of the first task, ``tasks[1]`` of the second, ..., and task ``i``'s unit is
  its slice of every micro-batch, so ``e_i`` is its own and ``p.grad`` sums
  ``(n_i / n) grad L_i(w + e_i)``.

Before a SAM step's passes, a variant that refreshes from the loss (Eigen-SAM) gets
Hessian-vector products of the step's loss ``sum_i (n_i / n) L_i`` over the perturbed
parameters, under ``no_sync``: with one micro-batch, one forward and backward kept as
a graph and one double backward per product; with several, a forward, backward and
double backward per micro-batch and product (one graph alive at a time). The refresh's
forwards run scaled dot-product attention on its math backend (the fused CPU and CUDA
kernels have no double backward); a model whose forward has another op without one
(``attn_implementation="flash_attention_2"``) is refused by name.

A non-finite ascent gradient ends the step there, with that gradient in ``p.grad`` (a
GradScaler, or :meth:`Engine.finish`'s check, then skips the update). When the plan's
last backward completes the step's gradient it settles the variant's direction
(LookSAM's reuse step), so whoever clips next clips the direction that is applied.
The driver then finishes the step: the base step (``sam_step``), or the Trainer's
clipping and ``optimizer.step()``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from .batching import batch_size, slice_batch, split_batch
from .engine import Engine, Grads
from .hessian import HVP, gradient_graph, hvp

Piece = tuple[Any, int]  # a micro-batch (or a chunk of one) and its number of examples


class Passes(Protocol):
    """How a driver runs a pass; the plan says which pass, on which pieces."""

    def ascent(self, pieces: list[Piece], fraction: float) -> tuple[Any, Grads]:
        """``(L(w), {p: g})`` on the first ``fraction`` of each piece (weighted by size),
        by ``torch.autograd.grad``: ``p.grad`` untouched; the replicas not synchronised."""
        ...

    def backward(self, pieces: list[tuple[Any, float]], last: bool) -> Any:
        """Backward of each ``(batch, weight)`` into ``p.grad``, its loss weighted by
        ``weight`` (``n_i / n``); returns ``sum_i weight_i L_i``. Only the last piece of a
        ``last`` call synchronises the replicas (DDP's all-reduce)."""
        ...

    def grad_scale(self) -> float:
        """The loss scale the gradients carry (a GradScaler's), 1 without one."""
        ...

    def loss_fn(self, batch: Any) -> Tensor:
        """The mean loss of ``batch`` with its graph (unscaled; no backward)."""
        ...

    def no_sync(self) -> contextlib.AbstractContextManager:
        """Where a pass must not synchronise the replicas (DDP's ``no_sync``)."""
        ...


@dataclass
class Outcome:
    """What a plan's run gave: ``L(w)`` (on the ascent examples of a SAM step), ``L(w + e)``
    (``None`` when no pass ran at ``w + e``), whether the step is skipped, and whether
    ``L(w)`` is the first backward's (a plain step, or AE-SAM's whole-batch ascent)."""

    loss: Any
    loss_perturbed: Any = None
    skipped: bool = False
    loss_from_backward: bool = False


@dataclass
class StepPlan:
    """One step's passes (or, for a driver that accumulates micro-batch by micro-batch,
    one micro-batch's): its micro-batches ``micro``, split into units by ``chunks``
    (``None``: all of them in one unit; else each micro-batch of ``n_i`` examples into
    ``chunks(n_i)`` units, m-sharpness), the ``ascent_fraction`` of each piece the
    ascent takes, whether the plan's last backward completes the step's gradient, and
    ``tasks``, each task's examples in every micro-batch, in order (a per-task variant's
    layout; ``None`` otherwise). A plain step, and a whole-batch ascent, run the
    micro-batches as they are."""

    micro: list[Piece]
    chunks: Callable[[int], int] | None = None
    ascent_fraction: float = 1.0
    completes_step: bool = True
    tasks: tuple[int, ...] | None = None
    n: int = field(init=False)

    def __post_init__(self) -> None:
        self.n = sum(size for _, size in self.micro)
        if self.tasks is not None:
            if self.chunks is not None:
                raise ValueError("a per-task plan's units are its tasks: no m-sharpness")
            sizes = sorted({batch_size(mb) for mb, _ in self.micro} | {n for _, n in self.micro})
            if sizes != [sum(self.tasks)]:
                raise ValueError(
                    f"micro-batches of {sizes} examples, but the tasks' counts "
                    f"{list(self.tasks)} sum to {sum(self.tasks)}: each micro-batch must hold "
                    "that many of each task, task after task (a task-stratified draw)"
                )

    @functools.cached_property
    def units(self) -> list[list[Piece]]:
        """The units of a SAM step, each perturbed on its own (one chunk: as it is; one
        task: its slice of every micro-batch)."""
        if self.tasks is not None:
            starts = [sum(self.tasks[:i]) for i in range(len(self.tasks))]
            return [
                [(slice_batch(mb, start, start + count), count) for mb, _ in self.micro]
                for start, count in zip(starts, self.tasks, strict=True)
            ]
        if self.chunks is None:
            return [self.micro]
        return [
            [piece]
            for mb, size in self.micro
            for piece in (
                [(mb, size)] if self.chunks(size) == 1 else split_batch(mb, self.chunks(size))
            )
        ]

    def run(self, engine: Engine, passes: Passes) -> Outcome:
        """Run the step's passes in the plan's order and record its losses."""
        per_task = engine.variant is not None and engine.variant.per_task
        if per_task != (self.tasks is not None):
            raise ValueError(
                f"{engine.variant!r} needs each task's examples per micro-batch: pass "
                "task_sizes to samlm.sam_step or SAMTrainer"
                if per_task
                else f"task_sizes given, but {engine.variant!r} is not a per-task variant "
                "(TaskSAM), which alone perturbs task by task"
            )
        if not engine.is_sam_step():
            loss = passes.backward(self._weighted(self.micro), last=True)
            engine.record_plain(loss)
            outcome = Outcome(loss, loss_from_backward=True)
        else:
            if engine.refresh_due():
                self._refresh(engine, passes)
            if engine.variant is not None and engine.variant.decides_after_ascent:
                outcome = self._decide_after_ascent(engine, passes)
            else:
                outcome = self._sam_units(engine, passes)
        if self.completes_step and not outcome.skipped:
            engine.settle_direction()
        return outcome

    def _refresh(self, engine: Engine, passes: Passes) -> None:
        """Hand the variant the products ``v -> H v`` of the step's loss (all its
        micro-batches, weighted)."""
        pieces = self._weighted(self.micro)

        def graph(params: list[Tensor], batch: Any, weight: float) -> list[Tensor | None]:
            with sdpa_kernel(SDPBackend.MATH):  # differentiable twice
                return gradient_graph(passes.loss_fn(batch) * weight, params)

        def product_of(params: list[Tensor]) -> HVP:
            if len(pieces) == 1:
                kept = graph(params, *pieces[0])
                return lambda v: hvp(kept, params, v, keep=True)

            def product(v: list[Tensor]) -> list[Tensor]:
                total = [torch.zeros_like(p) for p in params]
                for batch, weight in pieces:
                    torch._foreach_add_(
                        total, hvp(graph(params, batch, weight), params, v, keep=False)
                    )
                return total

            return product

        try:
            with passes.no_sync():
                engine.refresh_variant(product_of)
        except RuntimeError as err:
            if "derivative for" not in str(err):
                raise
            raise ValueError(
                f"{engine.variant!r} needs Hessian-vector products (a double backward), and "
                f"an op of the model's forward has no second derivative ({err}); load the "
                "model with attn_implementation='eager' or 'sdpa' (not 'flash_attention_2')"
            ) from err

    def _weighted(self, pieces: list[Piece]) -> list[tuple[Any, float]]:
        return [(batch, size / self.n) for batch, size in pieces]

    def _sam_units(self, engine: Engine, passes: Passes) -> Outcome:
        """Every unit: ascent, perturb, second pass, restore; a skip ends the step."""
        grad_scale = passes.grad_scale()
        loss_w: Any = 0.0
        loss_p: Any = 0.0
        for index, unit in enumerate(self.units):
            last = index == len(self.units) - 1
            done = engine.unit(
                lambda unit=unit: passes.ascent(unit, self.ascent_fraction),
                lambda unit=unit, last=last: passes.backward(self._weighted(unit), last),
                grad_scale=grad_scale,
            )
            loss_w = loss_w + done.loss * (sum(size for _, size in unit) / self.n)
            if done.skipped:
                for p, g in (done.ascent_grads or {}).items():  # what a scaler must see
                    p.grad = g
                return Outcome(loss_w, skipped=True)
            loss_p = loss_p + done.loss_perturbed
        engine.record_losses(loss_w, loss_p, same_examples=self.ascent_fraction == 1.0)
        return Outcome(loss_w, loss_p)

    def _decide_after_ascent(self, engine: Engine, passes: Passes) -> Outcome:
        """The whole batch's backward at ``w`` is the ascent; the variant decides from it
        (a plain step keeps it); a SAM step clears it and runs every piece at ``w + e``."""
        pieces = self._weighted(self.micro)

        def descent() -> Any:
            engine.clear_grads()  # the ascent's gradients were in p.grad
            return passes.backward(pieces, last=True)

        done = engine.unit(
            lambda: (passes.backward(pieces, last=True), None),
            descent,
            ascent_in_grad=True,
            grad_scale=passes.grad_scale(),
        )
        if done.loss_perturbed is not None:
            engine.record_losses(done.loss, done.loss_perturbed, same_examples=True)
        elif not done.skipped:
            engine.record_plain(done.loss)  # a flat region: a plain step, its one pass
        return Outcome(done.loss, done.loss_perturbed, done.skipped, loss_from_backward=True)
