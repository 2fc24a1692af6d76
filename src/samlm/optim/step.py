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

Under DDP (pass ``model``), the first pass, forward included, runs under ``no_sync()``
(no gradient all-reduce; :class:`SAM`'s ``distributed`` mode says whether the replicas
then average their ascent gradients) and so does every second-pass micro-batch but
the last, whose backward all-reduces the accumulated gradient in DDP's buckets. Under
FSDP2 the ascent is an ordinary backward (FSDP reduce-scatters it: the perturbation
is global), with the gradients the step has accumulated so far set aside meanwhile.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from . import comm
from .batching import batch_size, head, split_batch
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
) -> Tensor:
    """Zero the gradients, run one full optimizer step, return the loss.

    ``loss_fn(batch_slice)`` must return the mean loss over the slice (it runs the
    forward pass, under autocast if wanted). Returns ``L(w)`` on the ascent examples
    of a SAM step, or on the whole batch on a plain step (the schedule's other steps,
    and ``rho == 0``, cost one forward-backward). With ``scaler``, losses are scaled,
    the base step goes through ``scaler.step`` and ``scaler.update`` (skipped on inf,
    scale lowered). ``model`` is the wrapped model ``loss_fn`` runs (DDP or FSDP2), if any.
    ``m`` (chunks per micro-batch) or ``m_examples`` (examples per chunk, the paper's m):
    m-sharpness, see the module's description.
    """
    step_options(ascent_fraction, m, accumulation_steps, accumulation, m_examples)
    engine = optimizer.engine
    if engine.variant is not None:
        engine.variant.check_ascent_fraction(ascent_fraction)
    no_sync = replica_no_sync(optimizer, model)
    n = batch_size(batch)
    micro = split_batch(batch, accumulation_steps)
    scale = scaler.scale if scaler is not None else (lambda x: x)
    optimizer.zero_grad(set_to_none=True)

    def descend(unit: list[tuple[Any, int]], last: bool) -> Tensor:
        """Backward of every micro-batch; only the step's last one synchronises."""
        total: Tensor | float = 0.0
        for i, (mb, size) in enumerate(unit):
            with contextlib.nullcontext() if last and i == len(unit) - 1 else no_sync():
                loss = loss_fn(mb)
                scale(loss * (size / n)).backward()
            total = total + loss.detach() * (size / n)
        return total  # type: ignore[return-value]

    if not optimizer.is_sam_step():
        loss = descend(micro, last=True)
        engine.plain(loss)
        _base_step(optimizer, scaler)
        return loss

    grad_scale = 1.0 if scaler is None else scaler.get_scale()  # divided out of ||g||
    units = _units(micro, m, m_examples, accumulation)
    variant = engine.variant
    if variant is not None and len(units) > 1:
        option = (
            f"m={m}" if m != 1
            else f"m_examples={m_examples}" if m_examples is not None
            else f"accumulation='per_microbatch' with accumulation_steps={accumulation_steps}"
        )  # fmt: skip
        raise ValueError(
            f"{option} with {variant!r}: the variant needs one unit per step (the step's "
            "clean gradient next to its SAM gradient, or its whole gradient to decide by)"
        )
    if variant is not None and variant.decides_after_ascent:
        return _decide_after_ascent(optimizer, descend, micro, scaler, grad_scale)

    loss_w: Tensor | float = 0.0
    loss_p: Tensor | float = 0.0
    for index, unit in enumerate(units):
        done = engine.unit(
            lambda unit=unit: ascent_gradients(
                optimizer, loss_fn, unit, ascent_fraction, scale, no_sync
            ),
            lambda unit=unit, index=index: descend(unit, last=index == len(units) - 1),
            grad_scale=grad_scale,
        )
        loss_w = loss_w + done.loss * (sum(size for _, size in unit) / n)
        if done.skipped:
            _skip(optimizer, scaler, done.ascent_grads)  # type: ignore[arg-type]
            return loss_w  # type: ignore[return-value]
        loss_p = loss_p + done.loss_perturbed
    engine.record_losses(loss_w, loss_p, same_examples=ascent_fraction == 1.0)
    _base_step(optimizer, scaler)
    return loss_w  # type: ignore[return-value]


def _decide_after_ascent(
    optimizer: SAM,
    descend: Callable[[list[tuple[Any, int]], bool], Tensor],
    micro: list[tuple[Any, int]],
    scaler: torch.amp.GradScaler | None,
    grad_scale: float,
) -> Tensor:
    """A step of a variant that decides from the whole batch's gradient (AE-SAM): that
    gradient, in ``p.grad`` (accumulated over the micro-batches, averaged by DDP's own
    backward under DDP), is the plain step's, or the ascent of a SAM step."""
    engine = optimizer.engine

    def descent() -> Tensor:
        for p in optimizer.trainable_params():
            p.grad = None  # the ascent's gradients were in p.grad
        return descend(micro, True)

    done = engine.unit(
        lambda: (descend(micro, True), None),
        descent,
        ascent_in_grad=True,
        grad_scale=grad_scale,
    )
    engine.record_decided(done, done.loss)
    if done.skipped:
        _skip(optimizer, scaler, {})  # the non-finite gradients are in p.grad
    else:
        _base_step(optimizer, scaler)
    return done.loss


def _units(
    micro: list[tuple[Any, int]], m: int, m_examples: int | None, accumulation: str
) -> list[list[tuple[Any, int]]]:
    """The step's units: all micro-batches together, or every chunk of every micro-batch."""
    if accumulation == "global" and m == 1 and m_examples is None:
        return [micro]
    return [
        [chunk]
        for mb, size in micro
        for chunk in split_batch(mb, m if m_examples is None else math.ceil(size / m_examples))
    ]


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


def _base_step(optimizer: SAM, scaler: torch.amp.GradScaler | None) -> None:
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()


def _skip(
    optimizer: SAM, scaler: torch.amp.GradScaler | None, grads: dict[Tensor, Tensor | None]
) -> None:
    """A non-finite ascent gradient: no update.

    Without a scaler, ``step()`` ends the step (counted in ``skipped_steps``). With one,
    the scaler is shown the ascent gradients, finds the inf, skips and lowers the scale;
    like any step a GradScaler skips, it does not advance SAM's schedule clock.
    """
    if scaler is None:
        optimizer.step()
        return
    for p, g in grads.items():
        p.grad = g
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
