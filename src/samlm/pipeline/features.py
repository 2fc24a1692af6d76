"""Examples to model inputs (tokenised datasets and collators) and predictions to scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from datasets import Dataset
from transformers import (
    DataCollatorForMultipleChoice,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..tasks import Example, Task
from ..tasks.base import TEXT_MODELLING
from .causal import CausalCollator, encode_causal


def encode(
    task: Task,
    examples: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    modelling: str,
    *,
    max_length: int,
    max_target_length: int,
    training: bool,
) -> Dataset:
    """A tokenised ``Dataset``: encoder inputs with ``labels``, T5 source/target ids, or
    a decoder's prompt + completion (``causal.py``).

    In training, text-to-text tasks use every training pair of an example (ReCoRD: one
    per gold answer); in evaluation one pair per example, so predictions line up with
    ``examples``.
    """
    if modelling == "causal":
        return encode_causal(
            task,
            examples,
            tokenizer,
            max_length=max_length,
            max_target_length=max_target_length,
            training=training,
        )
    if modelling == "text2text":
        pairs = (
            [p for ex in examples for p in task.training_pairs(ex)]
            if training
            else [task.text2text(ex) for ex in examples]
        )
        enc = tokenizer([s for s, _ in pairs], truncation=True, max_length=max_length)
        targets = tokenizer(
            text_target=[t for _, t in pairs], truncation=True, max_length=max_target_length
        )
        return Dataset.from_dict({**enc, "labels": targets["input_ids"]})
    labels = [ex.label for ex in examples]
    if task.kind == "multiple_choice":
        per_example = [task.encoder_text(ex) for ex in examples]
        k = len(per_example[0])
        flat = [pair for pairs in per_example for pair in pairs]
        enc = tokenizer(
            [a for a, _ in flat], [b or "" for _, b in flat], truncation=True, max_length=max_length
        )
        grouped = {
            key: [vals[i : i + k] for i in range(0, len(vals), k)] for key, vals in enc.items()
        }
        return Dataset.from_dict({**grouped, "labels": labels})
    pairs = [task.encoder_text(ex) for ex in examples]
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    enc = tokenizer(
        first,
        second if all(b is not None for b in second) else None,
        truncation=True,
        max_length=max_length,
    )
    if task.kind == "regression":
        labels = [float(x) for x in labels]
    return Dataset.from_dict({**enc, "labels": labels})


def collator(
    task: Task, modelling: str, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel
) -> Callable:
    if modelling == "causal":
        return CausalCollator(tokenizer.pad_token_id)
    if modelling == "text2text":
        return DataCollatorForSeq2Seq(tokenizer, model=model)
    if task.kind == "multiple_choice":
        return DataCollatorForMultipleChoice(tokenizer)
    return DataCollatorWithPadding(tokenizer)


def metrics_fn(
    task: Task, modelling: str, examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase
) -> Callable[[EvalPrediction], dict[str, float]]:
    """``compute_metrics`` for the Trainer: predictions in dev-set order, scored by the task."""

    def compute(pred: EvalPrediction) -> dict[str, float]:
        out: Any = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        if modelling in TEXT_MODELLING:  # generated ids (a decoder's: the completion only)
            ids = np.where(out < 0, tokenizer.pad_token_id, out)
            predictions = tokenizer.batch_decode(ids, skip_special_tokens=True)
        elif task.kind == "regression":
            predictions = out.reshape(-1).tolist()
        else:
            predictions = out.argmax(-1).tolist()
        return task.compute_metrics(predictions, examples)

    return compute
