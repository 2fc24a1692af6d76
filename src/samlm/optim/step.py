"""One SAM step from a batch and a loss function: quarter-batch ascent, m-sharpness,
gradient accumulation and GradScaler, so nobody slices batches by hand.

The batch (``n`` examples) is split into ``accumulation_steps`` micro-batches and
then into *units*, each perturbed on its own:

* ``accumulation="global"`` (and ``m == 1``): one unit of all micro-batches. Clean
  gradients of all micro-batches give one ``e``; all micro-batches run again at
  ``w + e``. Cost: 2k forward-backward passes of micro-batch size, peak memory of one.
* ``accumulation="per_microbatch"``, or ``m > 1`` (m-sharpness): each micro-batch is
  split into ``m`` chunks and every chunk is a unit (perturb, backward, restore).
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
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from . import comm
from .batching import batch_size, head, split_batch
from .rng import RNGReplay
from .sam import SAM
from .stats import SAMStats

ACCUMULATION_MODES = ("global", "per_microbatch")


def validate_step_options(
    ascent_fraction: float, m: int, accumulation_steps: int, accumulation: str
) -> None:
    if not 0.0 < ascent_fraction <= 1.0:
        raise ValueError(f"ascent_fraction={ascent_fraction!r} must be in (0, 1]")
    if not (isinstance(m, int) and m >= 1):
        raise ValueError(f"m={m!r} must be an integer >= 1")
    if not (isinstance(accumulation_steps, int) and accumulation_steps >= 1):
        raise ValueError(f"accumulation_steps={accumulation_steps!r} must be an integer >= 1")
    if accumulation not in ACCUMULATION_MODES:
        raise ValueError(
            f"accumulation={accumulation!r} must be one of {', '.join(ACCUMULATION_MODES)}"
        )
    if m > 1 and accumulation_steps > 1 and accumulation == "global":
        raise ValueError(
            f"m={m} with accumulation='global' and accumulation_steps={accumulation_steps}: "
            "m-sharpness perturbs chunks separately; use accumulation='per_microbatch'"
        )


def sam_step(
    optimizer: SAM,
    loss_fn: Callable[[Any], Tensor],
    batch: Any,
    *,
    ascent_fraction: float = 1.0,
    m: int = 1,
    accumulation_steps: int = 1,
    accumulation: str = "global",
    scaler: torch.amp.GradScaler | None = None,
    model: nn.Module | None = None,
) -> Tensor:
    """Zero the gradients, run one full optimizer step, return the loss.

    ``loss_fn(batch_slice)`` must return the mean loss over the slice (it runs the
    forward pass, under autocast if wanted). Returns ``L(w)`` on the ascent examples
    of a SAM step, or on the whole batch on a plain step (the schedule's other steps
    cost one forward-backward). With ``scaler``, losses are scaled, the base step goes
    through ``scaler.step`` and ``scaler.update`` (skipped on inf, scale lowered).
    ``model`` is the wrapped model ``loss_fn`` runs (DDP or FSDP2), if any.
    """
    validate_step_options(ascent_fraction, m, accumulation_steps, accumulation)
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
        optimizer.last_stats = SAMStats(skipped_steps=optimizer.skipped_steps, loss=loss)
        _base_step(optimizer, scaler)
        return loss

    if accumulation == "global" and m == 1:
        units = [micro]
    else:
        units = [[chunk] for mb, _ in micro for chunk in split_batch(mb, m)]
    loss_w: Tensor | float = 0.0
    loss_p: Tensor | float = 0.0
    for index, unit in enumerate(units):
        rng = RNGReplay(optimizer.devices()) if optimizer.same_dropout else None
        unit_loss, grads = ascend(optimizer, loss_fn, unit, ascent_fraction, scale, no_sync)
        loss_w = loss_w + unit_loss * (sum(size for _, size in unit) / n)
        if optimizer.step_skipped:
            _skip(optimizer, scaler, grads)
            return loss_w  # type: ignore[return-value]
        del grads  # free before the second pass, whose gradients can reuse the memory
        if optimizer.is_perturbed and rng is not None:
            rng.replay()
        loss_p = loss_p + descend(unit, last=index == len(units) - 1)
        if optimizer.is_perturbed and rng is not None:
            rng.resume()
        optimizer.restore()
    optimizer.last_stats.loss = loss_w
    optimizer.last_stats.loss_perturbed = loss_p
    optimizer.last_stats.same_examples = ascent_fraction == 1.0
    _base_step(optimizer, scaler)
    return loss_w  # type: ignore[return-value]


def ascend(
    optimizer: SAM,
    loss_fn: Callable[[Any], Tensor],
    unit: list[tuple[Any, int]],
    ascent_fraction: float = 1.0,
    scale: Callable[[Tensor], Tensor] = lambda x: x,
    no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[Tensor, dict[Tensor, Tensor | None]]:
    """The ascent half of a SAM step: ``e`` from the first ``ascent_fraction`` of each
    ``(batch, size)`` in ``unit`` (weighted by size), then ``optimizer.perturb``.

    The gradients come from ``torch.autograd.grad``, so ``p.grad`` (which may hold
    accumulated SAM gradients) is untouched; each forward and backward runs under
    ``no_sync()``. Sharded (FSDP2) parameters take their gradients from FSDP's own
    backward instead, with ``p.grad`` set aside and put back. Returns the size-weighted
    mean ascent loss and the ascent gradients (a caller shows them to a GradScaler when
    the step is skipped); ``optimizer.is_perturbed`` tells whether a second pass is due.
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
            sub, _ = head(mb, ascent_fraction)
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
    grad_map = dict(zip(params, grads or [], strict=True))
    optimizer.perturb(grad_map)
    return loss_w, grad_map  # type: ignore[return-value]


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
