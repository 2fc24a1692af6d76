"""What one ``samlm train`` run trains and scores on: :class:`TaskJob` (one task) and
``mixture.MixtureJob`` (several) give ``run.train`` the same things:

* ``choice``, ``name``, ``metric`` (the one checkpoint selection maximises), ``note``,
  ``n_train`` (training units per epoch), ``reported_apart`` (whether the reported
  examples differ from the validation ones);
* ``describe()`` (the data in ``config.yaml`` and ``metrics.json``),
  ``training_overrides()`` (Trainer arguments of its own), ``summary(...)`` (extra
  ``metrics.json`` entries), ``save(model, folder)`` (beside the saved model),
  ``lora_options(model)`` (``adapters.apply_lora``'s options of its own);
* ``load()``, ``train_dataset(enc)``, ``eval_dataset(role, enc)``, ``collator(...)``
  and ``metrics(role, tokenizer)`` with ``role`` "validation" or "reported".

Everything is checked on construction, before the run writes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from ..tasks import Task, get_task
from .config import TrainConfig
from .data import Splits, data_folder, run_splits, size_note
from .features import collator, encode, metrics_fn
from .models import ModelChoice, load_model, resolve_model


def check_choice(cfg: TrainConfig, choice: ModelChoice) -> None:
    """Options the resolved model rules out."""
    if cfg.exclude_head and cfg.optimizer != "baseline" and choice.modelling != "encoder":
        raise ValueError(
            f"exclude_head: model {cfg.model!r} is modelled {choice.modelling}, which has no "
            "freshly initialised task head (its lm_head is pretrained or tied); drop "
            "--exclude-head"
        )


def task_splits(task: Task, data_dir: Path | None, cfg: TrainConfig) -> Splits:
    """A task's training, validation and reported examples under the run's options (the
    same for a single-task run and for each task of a mixture)."""
    return run_splits(
        task,
        data_dir,
        train_size=cfg.train_size,
        train_fraction=cfg.train_fraction,
        seed=cfg.seed,
        eval_size=cfg.eval_size,
        validation_size=cfg.validation_size,
        validation_from=cfg.validation_from,
    )


class TaskJob:
    """A single-task run; see the module docstring."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.task = get_task(cfg.task_names()[0])
        self.choice = resolve_model(cfg.model, cfg.modelling, self.task)
        check_choice(cfg, self.choice)
        self.data_dir = data_folder(cfg.data_dir)
        self.splits = task_splits(self.task, self.data_dir, cfg)
        self.name = self.task.name
        self.metric = self.task.main_metric
        self.n_train = len(self.splits.train)
        self.reported_apart = self.splits.validation_from != "reported"
        self.task_sizes = None  # one task: no per-task batches
        notes = (
            self.task.data_note(self.data_dir),
            size_note(self.splits, cfg.validation_size, cfg.eval_size),
        )
        self.note = " ".join(n for n in notes if n) or None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.splits.describe())
        if self.task.benchmark == "user" and self.task.label_names:
            out["label_names"] = list(self.task.label_names)  # a user's classes, by id
        return out

    def training_overrides(self) -> dict[str, Any]:
        return {}

    def summary(self, scores: dict[str, float], validation: dict[str, float]) -> dict[str, Any]:
        return {}

    def save(self, model: Any, folder: Path) -> None:
        """Nothing beyond the Trainer's ``save_model``."""

    def lora_options(self, model: Any) -> dict[str, Any]:
        return {}

    def load(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_model(self.choice, self.task)

    def train_dataset(self, enc: dict[str, Any]) -> Dataset:
        return encode(self.task, self.splits.train, training=True, **enc)

    def eval_dataset(self, role: str, enc: dict[str, Any]) -> Dataset:
        return encode(self.task, getattr(self.splits, role), training=False, **enc)

    def collator(self, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> Callable:
        return collator(self.task, self.choice.modelling, tokenizer, model)

    def metrics(
        self, role: str, tokenizer: PreTrainedTokenizerBase
    ) -> Callable[[EvalPrediction], dict[str, float]]:
        examples = getattr(self.splits, role)
        return metrics_fn(self.task, self.choice.modelling, examples, tokenizer)
