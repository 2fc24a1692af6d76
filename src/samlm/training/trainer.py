"""SAM inside ``transformers.Trainer``: the Trainer keeps its loop, SAM takes each micro-batch.

Each ``training_step`` runs the step plan of :mod:`samlm.optim.plan` (the one
``sam_step`` runs) with the Trainer's passes. For every micro-batch of a SAM step (with
gradient accumulation, ``SAMConfig``'s default for SAM and ASAM:
``sam_accumulation="per_microbatch"``):

    e    = rho * g / ||g||,  g = grad L(w) on the first ``ascent_fraction`` of it
                             (under DDP's ``no_sync``; per replica or averaged over the
                             replicas as ``SAMConfig.distributed`` says)
    grad += grad L(w + e)    (the Trainer's own ``training_step``: loss scaling for
                              accumulation, fp16 scaler, backward; with m chunks, DDP
                              all-reduces once, after the last)
    w    <- w                (exact restore)

then the Trainer clips (``max_grad_norm``; a variant's plain-step direction, LookSAM's,
is settled first, so the clipped gradient is the one applied), steps the optimizer (the
base optimizer inside :class:`samlm.SAM`), steps the LR scheduler, logs, evaluates and
saves as usual.

With ``sam_accumulation="global"`` (the variants' mode) the step's micro-batches wait until
its last one: then ``g`` is their size-weighted gradient, one perturbation, and the
Trainer's own step runs on each of them at ``w + e`` (DDP all-reduces after the last):
the whole batch's SAM step, 2k passes for k micro-batches. The waiting micro-batches
report a loss of 0 and the last one the window's, so the Trainer's logged sum is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import Seq2SeqTrainer, Trainer, TrainerCallback

from ..optim.batching import batch_size
from ..optim.engine import Grads
from ..optim.groups import head_parameters, sam_param_groups
from ..optim.plan import Outcome, Piece, StepPlan
from ..optim.sam import SAM
from ..optim.stats import SAMStats
from ..optim.step import ascent_gradients
from .config import SAMConfig

STAT_KEYS = ("loss_perturbed", "sharpness", "grad_norm", "perturbation_norm", "cosine")


class _EndOfStep(TrainerCallback):
    """Closes SAM's step even when a GradScaler skipped ``optimizer.step()``."""

    def __init__(self, trainer: SAMTrainerMixin) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer.sam_optimizer is not None:
            self.trainer.sam_optimizer.zero_grad(set_to_none=True)  # clears a pending skip


@dataclass
class _PassLoss:
    """One pass's weight on the Trainer's loss, and the loss it saw (unweighted)."""

    weight: float
    loss: Tensor | None = None


class _TrainerPasses:
    """SAMTrainer's passes for :class:`~samlm.optim.plan.StepPlan`: the ascent by
    ``compute_loss`` under ``accelerator.no_sync``, every backward by the Trainer's own
    ``training_step`` (its loss scaling for accumulation and ``num_items_in_batch``,
    fp16's scaler, backward). A chunk or a task's slice of a micro-batch is weighted by
    its share, without ``num_items_in_batch``; a whole micro-batch is exactly the
    Trainer's step."""

    def __init__(self, trainer: SAMTrainerMixin, model: nn.Module, window: list) -> None:
        self.trainer, self.model = trainer, model
        self.items = {id(mb): items for mb, items in window}  # num_items_in_batch
        self.reported: list[Tensor] = []  # each backward's losses, on the Trainer's scale
        self.scaler = getattr(trainer.accelerator, "scaler", None)  # fp16's GradScaler

    def no_sync(self) -> contextlib.AbstractContextManager:
        return self.trainer.accelerator.no_sync(self.model)

    def loss_fn(self, batch: dict[str, Any]) -> Tensor:
        with self.trainer.compute_loss_context_manager():
            return self.trainer.compute_loss(self.model, batch)

    def ascent(self, pieces: list[Piece], fraction: float) -> tuple[Tensor, Grads]:
        scale = self.scaler.scale if self.scaler is not None else (lambda x: x)
        sam = self.trainer.sam_optimizer
        return ascent_gradients(sam, self.loss_fn, pieces, fraction, scale, self.no_sync)

    def backward(self, pieces: list[tuple[Any, float]], last: bool) -> Tensor:
        trainer_step = super(SAMTrainerMixin, self.trainer).training_step  # type: ignore[misc]
        total: Tensor | float = 0.0
        reported: Tensor | float = 0.0
        for i, (mb, weight) in enumerate(pieces):
            sync = contextlib.nullcontext() if last and i == len(pieces) - 1 else self.no_sync()
            # a slice (a chunk, a task's examples) is weighted by its share of its
            # micro-batch: the Trainer divides each micro-batch's loss by the window's length
            share = 1.0 if id(mb) in self.items else weight * len(self.items)
            with sync, self.trainer._sam_pass(share) as seen:
                reported = reported + trainer_step(self.model, mb, self.items.get(id(mb)))
            total = total + seen.loss * weight
        self.reported.append(reported)  # type: ignore[arg-type]
        return total  # type: ignore[return-value]

    def grad_scale(self) -> float:
        """The factor ``S`` the gradients carry (divided out of ``||g||`` and AE-SAM's
        statistic), 1 without a scaler."""
        return 1.0 if self.scaler is None else self.scaler.get_scale()

    def reported_loss(self, outcome: Outcome) -> Tensor:
        """``L(w)`` on the scale the Trainer gives its losses (accumulation, num_items):
        the first backward's when it ran at ``w`` on the whole window, else the ascent's
        ``L(w)`` rescaled as the second passes were."""
        if outcome.skipped:
            return torch.full((), float("nan"), device=self.trainer.args.device)
        if outcome.loss_from_backward:
            return self.reported[0]
        return (outcome.loss * (sum(self.reported) / outcome.loss_perturbed)).detach()


class SAMTrainerMixin:
    """What turns a Trainer class into a SAM one; see :class:`SAMTrainer`."""

    def __init__(
        self,
        *args: Any,
        sam_config: SAMConfig | None = None,
        task_sizes: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sam_config = sam_config or SAMConfig()
        # a per-task variant's layout: each micro-batch's examples of each task, in order
        self.task_sizes = None if task_sizes is None else tuple(task_sizes)
        if self.sam_config.exclude_head and self.model is not None:
            head_parameters(self.model)  # a model without a task head fails here, not later
        self.sam_optimizer: SAM | None = None
        self._sam_records: list[SAMStats] = []
        self._sam_pass_loss: _PassLoss | None = None  # see _sam_pass
        self._sam_window: list[tuple[dict[str, Any], Any]] = []  # global accumulation
        self.add_callback(_EndOfStep(self))

    # -- optimizer ------------------------------------------------------------------------

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            raise ValueError(
                "SAMTrainer does not support FSDP or DeepSpeed through the Trainer yet: use "
                "DDP (torchrun / accelerate launch without --fsdp), or a loop with "
                "samlm.sam_step on a fully_shard model (see the README)"
            )
        base = super().create_optimizer(model)
        if isinstance(base, SAM):
            self.sam_optimizer = base
            return base
        cfg = self.sam_config
        plain = {
            id(p)
            for g in sam_param_groups(
                self.model,
                exclude_bias_and_norm=cfg.exclude_bias_and_norm,
                exclude_embeddings=cfg.exclude_embeddings,
                exclude_head=cfg.exclude_head,
            )
            if not g["perturb"]
            for p in g["params"]
        }
        # split each of the Trainer's groups (decay / no decay) by perturbation; the base
        # optimizer has no state yet, so its group list can be rebuilt in place
        groups = []
        for group in base.param_groups:
            for perturb in (True, False):
                params = [p for p in group["params"] if (id(p) not in plain) == perturb]
                if params:
                    groups.append({**group, "params": params, "perturb": perturb})
        base.param_groups[:] = groups
        distributed = cfg.distributed_sam if self.args.world_size > 1 else None
        self.optimizer = self.sam_optimizer = SAM(
            base, **cfg.optimizer_kwargs(), distributed=distributed
        )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """The Trainer's scheduler; AE-SAM's threshold schedule learns the run's length."""
        variant = self.sam_optimizer.engine.variant if self.sam_optimizer else None
        if variant is not None and getattr(variant, "total_steps", 0) is None:
            variant.total_steps = num_training_steps
        return super().create_scheduler(num_training_steps, optimizer)

    # -- the step -------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The Trainer's loss; inside :meth:`_sam_pass`, also recorded (unweighted) and
        weighted by the pass's weight (a chunk's share of its micro-batch)."""
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        record = self._sam_pass_loss
        if record is None:
            return out
        loss = out[0] if return_outputs else out
        record.loss = loss.detach()
        if record.weight != 1.0:
            loss = loss * record.weight
            out = (loss, *out[1:]) if return_outputs else loss
        return out

    @contextlib.contextmanager
    def _sam_pass(self, weight: float) -> Iterator[_PassLoss]:
        """The scope of one of SAM's passes through the Trainer's own ``training_step``."""
        self._sam_pass_loss = record = _PassLoss(weight)
        try:
            yield record
        finally:
            self._sam_pass_loss = None

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None):
        """The step plan of :mod:`samlm.optim.plan` on this call's micro-batch (or, with
        ``sam_accumulation="global"``, on the step's micro-batches once the last arrives),
        each pass through the Trainer's own ``training_step``; returns ``L(w)`` on the
        Trainer's scale (NaN for a skipped step)."""
        sam = self.sam_optimizer
        if sam is None:
            return super().training_step(model, inputs, num_items_in_batch)
        window = self._sam_window_of(inputs, num_items_in_batch)
        if window is None:  # a global step waits for its last micro-batch
            return torch.zeros((), device=self.args.device)
        model.train()
        window = [(self._prepare_inputs(mb), items) for mb, items in window]
        passes = _TrainerPasses(self, model, window)
        outcome = self._sam_plan(window).run(sam.engine, passes)
        self._record(sam.last_stats)
        return passes.reported_loss(outcome)

    def _sam_window_of(self, inputs: dict[str, Any], items: Any) -> list[tuple[Any, Any]] | None:
        """The micro-batches this call steps on: its own; with ``sam_accumulation="global"``
        on a SAM step, all the step's once its last one is here (``None`` before)."""
        globally = (
            self.args.gradient_accumulation_steps > 1 and self.sam_config.accumulates_globally
        )
        if not (globally and self.sam_optimizer.is_sam_step()):  # type: ignore[union-attr]
            return [(inputs, items)]
        self._sam_window.append((inputs, items))
        if not self.accelerator.sync_gradients:
            return None
        window, self._sam_window = self._sam_window, []
        return window

    def _sam_plan(self, window: list[tuple[Any, Any]]) -> StepPlan:
        """The plan of ``window``: one unit of its micro-batches, or (m-sharpness) the
        chunks of its one micro-batch, each a unit, or (``task_sizes``, TaskSAM) each
        task's slices, a unit per task; a lone micro-batch is not measured (a packed
        batch has no example count), its weight being 1, unless split by task."""
        cfg = self.sam_config
        chunked = len(window) == 1 and (cfg.m != 1 or cfg.m_examples is not None)
        sized = len(window) > 1 or chunked or self.task_sizes is not None
        micro = [(mb, batch_size(mb) if sized else 1) for mb, _ in window]
        return StepPlan(
            micro,
            cfg.chunks if chunked else None,
            cfg.ascent_fraction,
            completes_step=self.accelerator.sync_gradients,  # settled before the Trainer clips
            tasks=self.task_sizes,
        )

    # -- logging --------------------------------------------------------------------------

    def _record(self, stats: SAMStats) -> None:
        self._sam_records.append(stats)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._sam_records:
            rows = [s.as_dict() for s in self._sam_records]
            sam_rows = [r for r in rows if r["sam_step"]]
            logs["sam_steps"] = len(sam_rows) / len(rows)
            for key in STAT_KEYS:
                values = [r[key] for r in sam_rows if r[key] == r[key]]  # drop NaN
                if values:
                    logs[f"sam_{key}"] = sum(values) / len(values)
            logs["sam_skipped_steps"] = rows[-1]["skipped_steps"]
            self._sam_records.clear()
        super().log(logs, *args, **kwargs)


class SAMTrainer(SAMTrainerMixin, Trainer):
    """``transformers.Trainer`` with SAM: swap the class name, pass ``sam_config`` (and,
    for TaskSAM, ``task_sizes``: each micro-batch's examples of each task, task after
    task, which the training data must then deliver: ``samlm train`` draws them so).

    Everything the Trainer offers keeps working: ``TrainingArguments`` (gradient
    accumulation runs SAM per micro-batch, or once per step with
    ``SAMConfig(sam_accumulation="global")``, the variants' mode; bf16/fp16;
    ``max_grad_norm`` clips the SAM gradient; LR schedulers drive the base optimizer),
    evaluation, checkpoints (SAM's state rides in the optimizer's state dict) and logs,
    which gain ``sam_*`` entries:
    the loss at w + e, sharpness, ||g||, ||e||, cosine, the share of SAM steps and
    the skipped steps.
    """


class SAMSeq2SeqTrainer(SAMTrainerMixin, Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer`` with SAM (text-to-text models such as T5)."""
