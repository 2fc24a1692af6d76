"""One shared encoder, one classification head per task (multi-task encoder modelling).

A batch mixes tasks: ``input_ids``, ``attention_mask`` (and ``token_type_ids``) are
``(B, C, L)``, ``C`` sequences per example (one for classification and regression, one
per choice for multiple choice; the others are placeholders with an all-zero attention
mask, which the model never encodes); ``task_ids`` ``(B,)`` routes each example to its
task's head, ``labels`` ``(B,)`` are floats (class ids as floats for classification).

The forward pass encodes every real sequence once, pools it (the encoder's pooler, else
its first token), and gives example ``b`` of task ``t``:

* classification: ``head_t(h_b)``, ``classes`` logits, cross-entropy;
* regression:     ``head_t(h_b)``, one value, squared error;
* multiple choice: ``head_t(h_bc)`` for each choice ``c``, cross-entropy over the choices;

the loss is the mean of the examples' losses over the batch. A head whose task has no
example in the batch is not called, so its gradient stays ``None`` and SAM neither
perturbs it nor counts it in the norm. The heads sit in ``model.classifier`` (a
``ModuleList``), the name ``--exclude-head`` looks for.

With ``--peft lora`` (:meth:`MultiHeadEncoder.lora_options`) PEFT wraps the whole model:
LoRA adapters on the shared encoder, every head trained in full as one of PEFT's
``modules_to_save``. ``best/`` then holds PEFT's adapter files (the adapters and the
heads) instead of ``model.safetensors``, and ``multitask.json`` names the pretrained
encoder they apply to (``base_model``); :func:`load_multihead` reads either layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import SequenceClassifierOutput

from ..tasks import Task
from .adapters import holds_adapter, load_lora, merge_lora

SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids")
DESCRIPTION = "multitask.json"  # next to the Trainer's model.safetensors in a saved model


@dataclass(frozen=True)
class HeadSpec:
    """A task's head: its kind and its logits per example (classes, 1, or choices)."""

    kind: str
    outputs: int

    @classmethod
    def of(cls, task: Task) -> HeadSpec:
        if task.kind not in ("classification", "regression", "multiple_choice"):
            raise ValueError(f"task {task.name} ({task.kind}) has no encoder head")
        return cls(task.kind, 1 if task.kind == "regression" else len(task.label_names))


class MultiHeadEncoder(nn.Module):
    """A shared ``encoder`` (a transformers base model) and one head per ``HeadSpec``;
    see the module docstring."""

    def __init__(self, encoder: PreTrainedModel, specs: Sequence[HeadSpec]) -> None:
        super().__init__()
        config = encoder.config
        self.encoder = encoder
        self.specs = tuple(specs)
        dropout = getattr(config, "classifier_dropout", None)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.ModuleList(
            nn.Linear(config.hidden_size, 1 if s.kind != "classification" else s.outputs)
            for s in self.specs
        )
        std = getattr(config, "initializer_range", 0.02)
        for head in self.classifier:  # as transformers initialises a fresh head
            nn.init.normal_(head.weight, std=std)
            nn.init.zeros_(head.bias)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        task_ids: Tensor,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
    ) -> SequenceClassifierOutput:
        batch, choices = input_ids.shape[:2]
        real = attention_mask.bool().any(-1)  # (B, C): the sequences to encode
        inputs = {"input_ids": input_ids[real], "attention_mask": attention_mask[real]}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids[real]
        out = self.encoder(**inputs)
        pooled = getattr(out, "pooler_output", None)
        pooled = self.dropout(pooled if pooled is not None else out.last_hidden_state[:, 0])
        features = pooled.new_zeros(batch, choices, pooled.shape[-1])
        features[real] = pooled
        present = sorted(set(task_ids.tolist()))
        width = max(self.specs[t].outputs for t in present)
        low = torch.finfo(pooled.dtype).min
        logits = pooled.new_full((batch, width), low)
        total = pooled.new_zeros(())
        for t in present:
            rows = (task_ids == t).nonzero().squeeze(1)
            spec, head = self.specs[t], self.classifier[t]
            if spec.kind == "multiple_choice":
                scores = head(features[rows]).squeeze(-1).masked_fill(~real[rows], low)
                scores = scores[:, : spec.outputs]
            else:
                scores = head(features[rows, 0])
            logits[rows, : spec.outputs] = scores
            if labels is not None:
                total = total + _loss(spec, scores, labels[rows])
        loss = total / batch if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def lora_options(self) -> dict[str, Any]:
        """``adapters.apply_lora``'s options for this model: the encoder's type (whose PEFT
        default targets apply) and the heads, trained in full and saved with the adapter
        (PEFT's ``modules_to_save``, one entry per head: ``classifier.0``, ...)."""
        return {
            "model_type": self.encoder.config.model_type,
            "modules_to_save": [f"classifier.{i}" for i in range(len(self.classifier))],
        }

    def describe(self, folder: Path, tasks: Sequence[str], base_model: str | None = None) -> None:
        """Write what :func:`load_multihead` needs besides the Trainer's weights file (an
        adapter's files: ``base_model``, the pretrained encoder it applies to)."""
        self.encoder.config.save_pretrained(folder / "encoder")
        pairs = zip(tasks, self.specs, strict=True)
        heads = [{"task": t, "kind": s.kind, "outputs": s.outputs} for t, s in pairs]
        description: dict[str, Any] = {"heads": heads}
        if base_model is not None:
            description["base_model"] = base_model
        (folder / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")


def load_multihead(folder: str | Path, *, merge: bool = True) -> tuple[Any, list[str]]:
    """A saved multi-head model (``best/`` of a mixture run) and its tasks, in head order.

    A LoRA run's folder (PEFT's ``adapter_config.json``) is applied to the pretrained
    encoder named in ``multitask.json`` and merged: either way the result is a plain
    :class:`MultiHeadEncoder`. With ``merge=False`` a LoRA run's model stays PEFT's, as it
    trained: the adapters and heads trainable, the encoder frozen (``adapters.load_lora``;
    a full run's folder loads as with ``merge``)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    description = json.loads((folder / DESCRIPTION).read_text())
    heads = description["heads"]
    specs = [HeadSpec(h["kind"], h["outputs"]) for h in heads]
    tasks = [h["task"] for h in heads]
    if holds_adapter(folder):
        base = description.get("base_model")
        if base is None:
            raise ValueError(f"{folder / DESCRIPTION} does not name the adapter's base model")
        model = MultiHeadEncoder(AutoModel.from_pretrained(base), specs)
        adapted = load_lora(model, folder)
        return (merge_lora(adapted) if merge else adapted), tasks
    encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder / "encoder"))
    model = MultiHeadEncoder(encoder, specs)
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return model, tasks


def _loss(spec: HeadSpec, scores: Tensor, labels: Tensor) -> Tensor:
    """The summed loss of one task's examples."""
    if spec.kind == "regression":
        return nn.functional.mse_loss(scores.squeeze(-1), labels.to(scores.dtype), reduction="sum")
    return nn.functional.cross_entropy(scores, labels.long(), reduction="sum")


def mixed_rows(task: Task, task_id: int, encoded: Dataset) -> Dataset:
    """A task's encoded examples (``features.encode``) in the mixed layout: every sequence
    field a list of sequences, float ``labels``, and ``task_ids``."""
    columns = encoded.to_dict()
    for key in SEQUENCE_KEYS:
        if key in columns and task.kind != "multiple_choice":
            columns[key] = [[seq] for seq in columns[key]]
    columns["labels"] = [float(y) for y in columns["labels"]]
    columns["task_ids"] = [task_id] * len(columns["labels"])
    return Dataset.from_dict(columns)


class MixedCollator:
    """Pads a mixed batch to ``(B, C, L)``; see the module docstring."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Tensor]:
        choices = max(len(f["input_ids"]) for f in features)
        keys = [k for k in SEQUENCE_KEYS if k in features[0]]
        blank = {k: [self.tokenizer.pad_token_id if k == "input_ids" else 0] for k in keys}
        flat = []
        for f in features:
            n = len(f["input_ids"])
            flat += [{k: f[k][c] for k in keys} for c in range(n)]
            flat += [blank] * (choices - n)
        padded = self.tokenizer.pad(flat, return_tensors="pt")
        batch = {k: padded[k].view(len(features), choices, -1) for k in keys}
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
        batch["task_ids"] = torch.tensor([f["task_ids"] for f in features], dtype=torch.long)
        return batch
