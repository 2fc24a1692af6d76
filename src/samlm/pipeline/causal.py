"""A task for a decoder-only (causal) LM: each example as prompt + completion.

The prompt is the task's text-to-text source (with the tokenizer's own special tokens,
e.g. Llama's BOS), the completion ``" " + target`` then eos; the loss is on the
completion tokens only (prompt and padding labelled -100). Evaluation generates from
the prompt alone (``training.generation``) and scores the completion as text-to-text
predictions are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from ..tasks import Example, Task

IGNORE = -100  # the label the loss skips


def encode_causal(
    task: Task,
    examples: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_length: int,
    max_target_length: int,
    training: bool,
) -> Dataset:
    """``input_ids`` = prompt + completion + eos and ``labels`` = -100 on the prompt,
    the completion's ids on the rest. The prompt keeps its first ``max_length`` tokens,
    the completion with its eos at most ``max_target_length``. Pairs as for text2text:
    every training pair in training, one per example in evaluation."""
    pairs = (
        [p for ex in examples for p in task.training_pairs(ex)]
        if training
        else [task.text2text(ex) for ex in examples]
    )
    prompts = tokenizer([s for s, _ in pairs], truncation=True, max_length=max_length)
    completions = tokenizer([" " + t for _, t in pairs], add_special_tokens=False)
    eos = [tokenizer.eos_token_id]
    ids, labels = [], []
    for prompt, completion in zip(prompts["input_ids"], completions["input_ids"], strict=True):
        completion = completion[: max_target_length - 1] + eos
        ids.append(prompt + completion)
        labels.append([IGNORE] * len(prompt) + completion)
    return Dataset.from_dict(
        {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "labels": labels}
    )


@dataclass(frozen=True)
class CausalCollator:
    """Pads prompt + completion rows on the right (inputs with ``pad_token_id``, the
    attention mask with 0, labels with -100): positions count from 0 in training as in
    the left-padded prompts ``generate`` continues (it derives positions from the mask)."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            rows = [list(f[key]) + [value] * (width - len(f[key])) for f in features]
            return torch.tensor(rows, dtype=torch.long)

        return {
            "input_ids": pad("input_ids", self.pad_token_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", IGNORE),
        }
