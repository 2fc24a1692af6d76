"""Evaluation by greedy generation for decoder-only (causal) LMs in the Trainer.

Evaluation batches are training rows (prompt + completion, right-padded, labels -100 on
the prompt and padding): the loss is the completion's, as in training; the prompts (the
tokens before the first label) are re-padded on the left and continued greedily for at
most ``args.generation_max_length`` new tokens (default 32). Predictions are the new
tokens only, so ``compute_metrics`` decodes the completion alone.

Evaluation runs between optimizer steps, never inside SAM's step: a perturbed model is
refused rather than scored.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from transformers import Trainer

from .trainer import SAMTrainerMixin

DEFAULT_NEW_TOKENS = 32


def left_padded_prompts(
    input_ids: Tensor, labels: Tensor, pad_token_id: int
) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` of each row's prompt (the tokens before its first
    label other than -100), right-aligned in a batch as wide as the longest prompt."""
    lengths = (labels != -100).int().argmax(-1).tolist()
    width = max(lengths)
    ids = torch.full((len(lengths), width), pad_token_id, dtype=input_ids.dtype)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, width - n :] = input_ids[row, :n]
        mask[row, width - n :] = 1
    return ids.to(input_ids.device), mask.to(input_ids.device)


class CausalGenerationMixin:
    """``prediction_step``: the completion's loss, and the greedy completion of each
    prompt as the prediction (padded with the pad token to the batch's longest)."""

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        sam = getattr(self, "sam_optimizer", None)
        if sam is not None and sam.is_perturbed:
            raise RuntimeError("evaluation while SAM's perturbation is applied")
        loss, _, _ = super().prediction_step(model, inputs, True, ignore_keys)
        if prediction_loss_only:
            return loss, None, None
        inputs = self._prepare_inputs(inputs)
        tokenizer = self.processing_class
        ids, mask = left_padded_prompts(
            inputs["input_ids"], inputs["labels"], tokenizer.pad_token_id
        )
        new_tokens = getattr(self.args, "generation_max_length", None) or DEFAULT_NEW_TOKENS
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        return loss, out[:, ids.shape[1] :], inputs["labels"]


class CausalLMTrainer(CausalGenerationMixin, Trainer):
    """``transformers.Trainer`` that evaluates a causal LM by greedy generation."""


class SAMCausalLMTrainer(CausalGenerationMixin, SAMTrainerMixin, Trainer):
    """:class:`SAMTrainer` that evaluates a causal LM by greedy generation."""
