"""Flat-LoRA and BAR in a Trainer: ``with_lora_flatness(Trainer)`` (or ``SAMTrainer``,
``SAMSFTTrainer``...) is that class taking ``flat_lora=FlatLoRA(...)`` and/or
``bar=BAR(...)``.

Each micro-batch's step (the Trainer's, or SAM's two passes) runs with Flat-LoRA's
noise on the merged weights, drawn for the optimizer step ``state.global_step`` and
removed (bitwise) right after; once the step's gradients are complete (its last
micro-batch), BAR rescales the adapters' factors at the learning rate of the coming
optimizer step (its parameter group's), before clipping and the optimizer step. Both
follow the step counter (BAR also the scheduled learning rate, which a checkpoint
restores), so a resumed run continues as the uninterrupted one.
Passes per step: Flat-LoRA and BAR one forward-backward (two with SAM; BAR is refused
with SAM, whose second pass it replaces).
"""

from __future__ import annotations

import contextlib
from typing import Any

from torch import nn

from .bar import BAR
from .flat_lora import FlatLoRA
from .lora_layers import lora_layers


class LoRAFlatnessMixin:
    """What :func:`with_lora_flatness` puts in front of a Trainer class."""

    def __init__(
        self, *args: Any, flat_lora: FlatLoRA | None = None, bar: BAR | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.flat_lora, self.bar = flat_lora, bar
        if bar is not None and getattr(self, "sam_config", None) is not None:
            raise ValueError("bar with SAM: BAR replaces SAM's second pass; use a plain Trainer")
        if flat_lora is not None or bar is not None:
            lora_layers(self.model)  # a model without LoRA layers fails here, not mid-run

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch=None):
        step, total = self.state.global_step, self.state.max_steps
        noise = self.flat_lora.perturbed(model, step, total) if self.flat_lora else None
        with noise or contextlib.nullcontext():
            loss = super().training_step(model, inputs, num_items_in_batch)
        if self.bar is not None and self.accelerator.sync_gradients:
            lrs = {p: g["lr"] for g in self.optimizer.param_groups for p in g["params"]}
            self.bar.rescale_(model, step, total, lrs.__getitem__)
        return loss


def with_lora_flatness(trainer_cls: type) -> type:
    """``trainer_cls`` taking ``flat_lora=`` and ``bar=`` (see the module's docstring)."""
    return type(f"LoRAFlatness{trainer_cls.__name__}", (LoRAFlatnessMixin, trainer_cls), {})
