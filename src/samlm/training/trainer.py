"""SAM inside ``transformers.Trainer``: the Trainer keeps its loop, SAM takes each micro-batch.

For every micro-batch of a SAM step (with gradient accumulation, ``SAMConfig``'s
default for SAM and ASAM: ``accumulation="per_microbatch"``):

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

With ``accumulation="global"`` (the variants' mode) the step's micro-batches wait until
its last one: then ``g`` is their size-weighted gradient, one perturbation, and the
Trainer's own step runs on each of them at ``w + e`` (DDP all-reduces after the last):
the whole batch's SAM step, 2k passes for k micro-batches. The waiting micro-batches
report a loss of 0 and the last one the window's, so the Trainer's logged sum is the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from transformers import Seq2SeqTrainer, Trainer, TrainerCallback

from ..optim.batching import batch_size, split_batch
from ..optim.groups import head_parameters, sam_param_groups
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


class SAMTrainerMixin:
    """What turns a Trainer class into a SAM one; see :class:`SAMTrainer`."""

    def __init__(self, *args: Any, sam_config: SAMConfig | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sam_config = sam_config or SAMConfig()
        if self.sam_config.exclude_head and self.model is not None:
            head_parameters(self.model)  # a model without a task head fails here, not later
        self.sam_optimizer: SAM | None = None
        self._sam_records: list[SAMStats] = []
        self._sam_loss_weight = 1.0
        self._sam_raw_loss: Tensor | None = None
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
        distributed = cfg.distributed if self.args.world_size > 1 else None
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
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = out[0] if return_outputs else out
        self._sam_raw_loss = loss.detach()
        if self._sam_loss_weight != 1.0:
            loss = loss * self._sam_loss_weight
            out = (loss, *out[1:]) if return_outputs else loss
        return out

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None):
        sam = self.sam_optimizer
        if sam is None or not sam.is_sam_step():
            loss = super().training_step(model, inputs, num_items_in_batch)
            if sam is not None:
                sam.engine.plain(self._sam_raw_loss)
                if self.accelerator.sync_gradients:  # the step's gradient is complete:
                    sam.engine.settle_direction()  # settled before the Trainer clips it
                self._record(sam.last_stats)
            return loss
        window = [(inputs, num_items_in_batch)]
        if self.args.gradient_accumulation_steps > 1 and self.sam_config.accumulates_globally:
            self._sam_window.append((inputs, num_items_in_batch))
            if not self.accelerator.sync_gradients:  # it runs with the step's last micro-batch
                return torch.zeros((), device=self.args.device)
            window, self._sam_window = self._sam_window, []
        if sam.engine.variant is not None and sam.engine.variant.decides_after_ascent:
            return self._decide_after_ascent(model, window)
        if len(window) > 1:
            return self._global_step(model, window)
        model.train()
        inputs = self._prepare_inputs(inputs)
        cfg = self.sam_config
        if cfg.ascent_fraction == 1.0 and cfg.m == 1 and cfg.m_examples is None:
            n, chunks = 1, [(inputs, 1)]  # the micro-batch as it is (packed batches too)
        else:
            n = batch_size(inputs)
            chunks = split_batch(inputs, cfg.chunks(n))
        scale, grad_scale = self._loss_scale()

        def no_sync():  # the first pass never all-reduces (DDP); SAM's mode does the rest
            return self.accelerator.no_sync(model)

        def loss_fn(batch: dict[str, Any]) -> Tensor:
            with self.compute_loss_context_manager():
                return self.compute_loss(model, batch)

        def descent(chunk: dict[str, Any], size: int, last: bool) -> Tensor:
            """The Trainer's own step at w + e (loss scaling, fp16 scaler, backward); one
            chunk: exactly the Trainer's; m chunks: mean losses weighted by size, and DDP
            all-reduces once per micro-batch, after its last chunk."""
            self._sam_loss_weight = 1.0 if len(chunks) == 1 else size / n
            try:
                with contextlib.nullcontext() if last else no_sync():
                    reported = super(SAMTrainerMixin, self).training_step(
                        model, chunk, num_items_in_batch if len(chunks) == 1 else None
                    )
            finally:
                self._sam_loss_weight = 1.0
            return reported

        loss_w: Tensor | float = 0.0
        loss_p: Tensor | float = 0.0
        reported: Tensor | float = 0.0
        for index, (chunk, size) in enumerate(chunks):
            done = sam.engine.unit(
                lambda chunk=chunk, size=size: ascent_gradients(
                    sam, loss_fn, [(chunk, size)], cfg.ascent_fraction, scale, no_sync
                ),
                lambda chunk=chunk, size=size, index=index: descent(
                    chunk, size, index == len(chunks) - 1
                ),
                grad_scale=grad_scale,
            )
            loss_w = loss_w + done.loss * (size / n)
            if done.skipped:
                for p, g in done.ascent_grads.items():  # the scaler (or the step's check) sees it
                    p.grad = g
                self._record(sam.last_stats)
                return torch.full((), float("nan"), device=done.loss.device)
            reported = reported + done.loss_perturbed
            loss_p = loss_p + self._sam_raw_loss * (size / n)
        sam.engine.record_losses(loss_w, loss_p, same_examples=cfg.ascent_fraction == 1.0)
        self._record(sam.last_stats)
        # the Trainer logs L(w), on the scale it gives its own losses (accumulation, num_items)
        return (loss_w * (reported / loss_p)).detach()

    def _loss_scale(self) -> tuple[Callable[[Tensor], Tensor], float]:
        """The fp16 GradScaler's ``scale`` (what the Trainer's backward applies) and its
        current factor ``S`` (the gradients carry ``S g``; SAM divides it out of ``||g||``
        and AE-SAM's statistic); the identity and 1 without a scaler."""
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is None:
            return (lambda x: x), 1.0
        return scaler.scale, scaler.get_scale()

    def _window_passes(
        self, model: nn.Module, window: list[tuple[dict[str, Any], Any]]
    ) -> tuple[Tensor, Tensor]:
        """The Trainer's own step on each micro-batch of ``window`` (DDP all-reduces after
        the last); returns the sum of the losses it reports and the size-weighted mean of
        the raw losses."""
        trainer_step = super().training_step
        sizes = [1] if len(window) == 1 else [batch_size(mb) for mb, _ in window]
        reported: Tensor | float = 0.0
        raw: Tensor | float = 0.0
        for index, (mb, items) in enumerate(window):
            last = index == len(window) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                reported = reported + trainer_step(model, mb, items)
            raw = raw + self._sam_raw_loss * (sizes[index] / sum(sizes))
        return reported, raw  # type: ignore[return-value]

    def _global_step(self, model: nn.Module, window: list[tuple[dict[str, Any], Any]]) -> Tensor:
        """One SAM step over all the micro-batches of ``window`` (``accumulation="global"``):
        the ascent gradient of all of them, one perturbation, then the Trainer's step on
        each at ``w + e``."""
        sam = self.sam_optimizer
        cfg = self.sam_config
        model.train()
        window = [(self._prepare_inputs(mb), items) for mb, items in window]
        unit = [(mb, batch_size(mb)) for mb, _ in window]
        scale, grad_scale = self._loss_scale()
        reported: dict[str, Tensor] = {}

        def no_sync():
            return self.accelerator.no_sync(model)

        def loss_fn(batch: dict[str, Any]) -> Tensor:
            with self.compute_loss_context_manager():
                return self.compute_loss(model, batch)

        def descent() -> Tensor:
            reported["p"], raw = self._window_passes(model, window)
            return raw

        done = sam.engine.unit(
            lambda: ascent_gradients(sam, loss_fn, unit, cfg.ascent_fraction, scale, no_sync),
            descent,
            grad_scale=grad_scale,
        )
        if done.skipped:
            for p, g in done.ascent_grads.items():  # the scaler (or the step's check) sees it
                p.grad = g
            self._record(sam.last_stats)
            return torch.full((), float("nan"), device=done.loss.device)
        sam.engine.record_losses(
            done.loss, done.loss_perturbed, same_examples=cfg.ascent_fraction == 1.0
        )
        self._record(sam.last_stats)
        # L(w) on the scale the Trainer gives its losses (accumulation, num_items)
        return (done.loss * (reported["p"] / done.loss_perturbed)).detach()

    def _decide_after_ascent(
        self, model: nn.Module, window: list[tuple[dict[str, Any], Any]]
    ) -> Tensor:
        """AE-SAM: the Trainer's own step at w on the step's micro-batches gives the
        gradient whose norm decides (unscaled under fp16); a SAM step then runs them all
        again at w + e."""
        sam = self.sam_optimizer
        raw: dict[str, Tensor] = {}

        def ascent():
            reported, raw["w"] = self._window_passes(model, window)
            return reported, None

        def descent():
            for p in sam.trainable_params():
                p.grad = None  # the first pass's gradients were in p.grad
            return self._window_passes(model, window)[1]

        done = sam.engine.unit(
            ascent, descent, ascent_in_grad=True, grad_scale=self._loss_scale()[1]
        )
        sam.engine.record_decided(done, raw["w"])
        self._record(sam.last_stats)
        return done.loss

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
    """``transformers.Trainer`` with SAM: swap the class name, pass ``sam_config``.

    Everything the Trainer offers keeps working: ``TrainingArguments`` (gradient
    accumulation runs SAM per micro-batch, or once per step with
    ``SAMConfig(accumulation="global")``, the variants' mode; bf16/fp16;
    ``max_grad_norm`` clips the SAM gradient; LR schedulers drive the base optimizer),
    evaluation, checkpoints (SAM's state rides in the optimizer's state dict) and logs,
    which gain ``sam_*`` entries:
    the loss at w + e, sharpness, ||g||, ||e||, cosine, the share of SAM steps and
    the skipped steps.
    """


class SAMSeq2SeqTrainer(SAMTrainerMixin, Seq2SeqTrainer):
    """``transformers.Seq2SeqTrainer`` with SAM (text-to-text models such as T5)."""
