"""One SAM step from a batch and a loss function: quarter-batch ascent, m-sharpness,
gradient accumulation and GradScaler, so nobody slices batches by hand.

The batch (``n`` examples) is split into ``accumulation_steps`` micro-batches and
then into *units*, each perturbed on its own:

* ``accumulation="global"`` (and ``m == 1``): one unit of all micro-batches. Clean
  gradients of all micro-batches give one ``e``; all micro-batches run again at
  ``w + e``. Cost: 2k forward-backward passes of micro-batch size (one micro-batch's
  activations at a time).
* ``accumulation="per_microbatch"``, or m-sharpness: each micro-batch is split into
  chunks and every chunk is a unit (perturb, backward, restore). ``m_examples`` is
  Foret et al.'s m, the examples per chunk (a micro-batch of ``b`` examples gives
  ``ceil(b / m_examples)`` chunks); ``m`` is the number of chunks per micro-batch.
  Cost: 2km passes of chunk size; the ascent gradients of different units are
  never summed, so the first pass needs one transient gradient buffer.

In each unit the ascent gradient is taken on the first ``ascent_fraction`` of each of
its micro-batches (Bahri et al. 2022 use 0.25), the SAM gradient on all of it,
weighted ``n_i / n`` so the accumulated gradient is the batch mean:

    grad = sum_units sum_{i in unit} (n_i / n) grad L_i(w + e_unit)

The order of the passes is :class:`samlm.optim.plan.StepPlan`'s (SAMTrainer runs the
same plan); this module supplies the passes (``loss_fn``, backward, the GradScaler)
and finishes the step (the base step, through the scaler if any).

Under DDP (pass ``model``), the first pass, forward included, runs under ``no_sync()``
(no gradient all-reduce; :class:`SAM`'s ``distributed`` mode says whether the replicas
then average their ascent gradients) and so does every second-pass micro-batch but
the last, whose backward all-reduces the accumulated gradient in DDP's buckets. Under
FSDP2 the ascent is an ordinary backward (FSDP reduce-scatters it: the perturbation
is global), with the gradients the step has accumulated so far set aside meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from . import comm
from .batching import head, split_batch
from .engine import Grads
from .plan import Piece, StepPlan
from .sam import SAM
from .validation import step_options


def sam_step(
    optimizer: SAM,
    loss_fn: Callable[[Any], Tensor],
    batch: Any,
    *,
    ascent_fraction: float = 1.0,
    m: int = 1,
    m_examples: int | None = None,
    accumulation_steps: int = 1,
    accumulation: str = "global",
    scaler: torch.amp.GradScaler | None = None,
    model: nn.Module | None = None,
    task_sizes: Sequence[int] | None = None,
) -> Tensor:
    """Zero the gradients, run one full optimizer step, return the loss.

    ``loss_fn(batch_slice)`` must return the mean loss over the slice (it runs the
    forward pass, under autocast if wanted). Returns ``L(w)`` on the ascent examples
    of a SAM step, or on the whole batch on a plain step (the schedule's other steps,
    and ``rho == 0``, cost one forward-backward). With ``scaler``, losses are scaled,
    the base step goes through ``scaler.step`` and ``scaler.update`` (skipped on inf,
    scale lowered). ``model`` is the wrapped model ``loss_fn`` runs (DDP or FSDP2), if any.
    ``m`` (chunks per micro-batch) or ``m_examples`` (examples per chunk, the paper's m):
    m-sharpness, see the module's description. ``task_sizes``: with a per-task variant
    (TaskSAM), each micro-batch's examples of each task, task after task.
    """
    step_options(ascent_fraction, m, accumulation_steps, accumulation, m_examples)
    variant = optimizer.engine.variant
    if variant is not None:
        variant.check_ascent_fraction(ascent_fraction)
    chunks = None
    if accumulation != "global" or m != 1 or m_examples is not None:
        chunks = functools.partial(_chunks, m=m, m_examples=m_examples)
    micro = split_batch(batch, accumulation_steps)
    plan = StepPlan(micro, chunks, ascent_fraction)
    if variant is not None and len(plan.units) > 1:
        option = (
            f"m={m}" if m != 1
            else f"m_examples={m_examples}" if m_examples is not None
            else f"accumulation='per_microbatch' with accumulation_steps={accumulation_steps}"
        )  # fmt: skip
        why = (
            "its units are the step's tasks" if variant.per_task
            else "the variant needs one unit per step (the step's clean gradient next to its "
            "SAM gradient, or its whole gradient to decide by)"
        )  # fmt: skip
        raise ValueError(f"{option} with {variant!r}: {why}")
    if task_sizes is not None:  # the units are the tasks
        plan = StepPlan(micro, None, ascent_fraction, tasks=tuple(task_sizes))
    passes = _LoopPasses(optimizer, loss_fn, scaler, replica_no_sync(optimizer, model))
    optimizer.zero_grad(set_to_none=True)
    outcome = plan.run(optimizer.engine, passes)
    if scaler is None:
        optimizer.step()  # a skipped step: no update, counted in skipped_steps
    else:  # a non-finite gradient: the scaler skips, lowers its scale; the clock waits
        scaler.step(optimizer)
        scaler.update()
        if outcome.skipped:
            optimizer.zero_grad(set_to_none=True)
    return outcome.loss


def _chunks(size: int, m: int, m_examples: int | None) -> int:
    """The units a micro-batch of ``size`` examples is split into (m-sharpness)."""
    return m if m_examples is None else math.ceil(size / m_examples)


class _LoopPasses:
    """``sam_step``'s passes: ``loss_fn`` and ``backward``, scaled by ``scaler``, under
    ``no_sync`` (DDP) for all but the step's last backward."""

    def __init__(
        self,
        optimizer: SAM,
        loss_fn: Callable[[Any], Tensor],
        scaler: torch.amp.GradScaler | None,
        no_sync: Callable[[], contextlib.AbstractContextManager],
    ) -> None:
        self.optimizer, self.loss_fn, self.no_sync = optimizer, loss_fn, no_sync
        self.scaler = scaler
        self.scale = scaler.scale if scaler is not None else (lambda x: x)

    def ascent(self, pieces: list[Piece], fraction: float) -> tuple[Tensor, Grads]:
        return ascent_gradients(
            self.optimizer, self.loss_fn, pieces, fraction, self.scale, self.no_sync
        )

    def backward(self, pieces: list[tuple[Any, float]], last: bool) -> Tensor:
        total: Tensor | float = 0.0
        for i, (mb, weight) in enumerate(pieces):
            with contextlib.nullcontext() if last and i == len(pieces) - 1 else self.no_sync():
                loss = self.loss_fn(mb)
                self.scale(loss * weight).backward()
            total = total + loss.detach() * weight
        return total  # type: ignore[return-value]

    def grad_scale(self) -> float:
        return 1.0 if self.scaler is None else self.scaler.get_scale()


def ascend(
    optimizer: SAM,
    loss_fn: Callable[[Any], Tensor],
    unit: list[tuple[Any, int]],
    ascent_fraction: float = 1.0,
    scale: Callable[[Tensor], Tensor] = lambda x: x,
    no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    *,
    grad_scale: float = 1.0,
) -> tuple[Tensor, dict[Tensor, Tensor | None]]:
    """The ascent half of a SAM step, for a loop of one's own: :func:`ascent_gradients`,
    then ``optimizer.perturb`` with them (``optimizer.is_perturbed`` then tells whether
    a second pass is due; ``optimizer.step_skipped`` whether the gradient was not finite).
    ``grad_scale``: the loss scale ``scale`` applies (``scaler.get_scale()``), see
    :meth:`samlm.SAM.perturb`. Returns what :func:`ascent_gradients` returns."""
    loss, grads = ascent_gradients(optimizer, loss_fn, unit, ascent_fraction, scale, no_sync)
    optimizer.perturb(grads, grad_scale=grad_scale)
    return loss, grads


def ascent_gradients(
    optimizer: SAM,
    loss_fn: Callable[[Any], Tensor],
    unit: list[tuple[Any, int]],
    ascent_fraction: float = 1.0,
    scale: Callable[[Tensor], Tensor] = lambda x: x,
    no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[Tensor, dict[Tensor, Tensor | None]]:
    """The ascent pass of a unit: the gradient of the first ``ascent_fraction`` of each
    ``(batch, size)`` in ``unit`` (weighted by size); returns ``(L(w), {p: g})``.

    The gradients come from ``torch.autograd.grad``, so ``p.grad`` (which may hold
    accumulated SAM gradients) is untouched; each forward and backward runs under
    ``no_sync()``. Sharded (FSDP2) parameters take their gradients from FSDP's own
    backward instead, with ``p.grad`` set aside and put back.
    """
    params = optimizer.trainable_params()
    sharded = comm.shard_group(params) is not None
    kept = [p.grad for p in params] if sharded else []
    total = sum(size for _, size in unit)
    loss_w: Tensor | float = 0.0
    grads: list[Tensor | None] | None = None
    try:
        for p in params if sharded else []:
            p.grad = None
        for mb, size in unit:
            sub = mb if ascent_fraction == 1.0 else head(mb, ascent_fraction)[0]
            with no_sync():
                loss = loss_fn(sub)
                if sharded:
                    scale(loss * (size / total)).backward()
                else:
                    g = torch.autograd.grad(scale(loss * (size / total)), params, allow_unused=True)
                    grads = list(g) if grads is None else list(map(_add, grads, g))
            loss_w = loss_w + loss.detach() * (size / total)
        if sharded:
            grads = [p.grad for p in params]
    finally:
        for p, g in zip(params if sharded else [], kept, strict=True):
            p.grad = g
    return loss_w, dict(zip(params, grads or [], strict=True))  # type: ignore[return-value]


def replica_no_sync(
    optimizer: SAM, model: nn.Module | None
) -> Callable[[], contextlib.AbstractContextManager]:
    """``model.no_sync`` for a DDP model (a no-op context otherwise), after checking that
    a DDP model has a distributed SAM."""
    if isinstance(model, DistributedDataParallel):
        if optimizer.distributed is None:
            raise ValueError(
                "the model is DistributedDataParallel but SAM(distributed=None): choose "
                "SAM(..., distributed='per_replica') (each replica perturbs with its own "
                "gradient) or 'synchronized' (one perturbation from the global gradient)"
            )
        return model.no_sync
    return contextlib.nullcontext  # FSDP: SAM.perturb refuses per_replica on shards


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a.add_(b)
