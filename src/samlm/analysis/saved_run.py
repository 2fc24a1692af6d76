"""A finished ``samlm train`` run rebuilt as the run built it, for ``samlm sharpness``.

:func:`read_run` reads ``RUN_DIR/config.yaml`` into the run's :class:`TrainConfig` (the
pipeline's own options, an option added since the run at its default), so the training
examples come from the rules ``samlm train`` used (``job.task_splits``; a mixture's:
``mixture.MixtureData``, in ``mixture_run.py``). :func:`single_task_subject` rebuilds a
single-task run's training subset, loads ``best/`` (:func:`load_best`) and collates a
seeded sample of it (:func:`batches_for`): the :class:`Subject` ``run.measure_run``
measures. ``best/`` is only read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import yaml
from datasets import Dataset
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMultipleChoice,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.utils import logging as transformers_logging

from ..pipeline.adapters import holds_adapter, is_adapted, load_lora, require_peft
from ..pipeline.config import TrainConfig
from ..pipeline.data import STRATIFIED, data_folder
from ..pipeline.features import collator, encode
from ..pipeline.job import task_splits
from ..pipeline.models import causal_tokenizer, load_model, resolve_model
from ..pipeline.multitask import DESCRIPTION
from ..tasks import Example, Task, get_task, subsample


@dataclass(frozen=True)
class SavedRun:
    """A finished run: its folder, its options (``config``; ``data_dir`` the folder the
    examples are read from now) and what ``samlm train`` resolved (``resolved``)."""

    folder: Path
    config: TrainConfig
    resolved: dict[str, Any]

    @property
    def modelling(self) -> str:
        return self.resolved.get("modelling") or "encoder"

    @property
    def model_path(self) -> str | None:
        """Where the run's base model loaded from."""
        return self.resolved.get("model_path") or self.config.model

    @property
    def data(self) -> Path | None:
        return data_folder(self.config.data_dir)


@dataclass(frozen=True)
class Sampling:
    """Which examples are measured and how: ``samples`` of the training examples (a
    seeded, stratified sample; None: all), in batches of ``batch_size``, on ``device``."""

    samples: int | None
    batch_size: int
    seed: int
    device: torch.device


@dataclass
class Subject:
    """What ``measure_run`` measures: the model as loaded (on its device) and the batches
    of its sample, with what the result says of them."""

    task: str  # the run's task (a mixture's: its tasks, comma-separated)
    label: str  # the plots' name for it
    model: nn.Module
    batches: list[Any]
    train_examples: int
    samples: int
    extra: dict[str, Any] = field(default_factory=dict)  # a mixture's: mixture, tasks


def read_run(run_dir: str | Path, data_dir: str | Path | None = None) -> SavedRun:
    """The run in ``run_dir`` after checking that it is finished (``config.yaml`` and
    ``best/``); ``data_dir`` overrides the run's data folder."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"run_dir={str(run)!r} is not a folder")
    config = run / "config.yaml"
    if not config.is_file():
        raise ValueError(f"run_dir={str(run)!r} has no config.yaml: not a `samlm train` run")
    data = yaml.safe_load(config.read_text()) or {}
    options, resolved = data.get("options"), data.get("resolved")
    if not isinstance(options, dict) or not isinstance(resolved, dict):
        raise ValueError(f"{config}: expected the keys 'options' and 'resolved'")
    best = run / "best"
    if not any((best / name).is_file() for name in ("config.json", DESCRIPTION)) and not (
        holds_adapter(best)
    ):
        raise ValueError(f"run_dir={str(run)!r} has no best/ model: is the run finished?")
    if options.get("peft") == "lora":
        require_peft("samlm sharpness on a --peft lora run")
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in options.items() if k in known}
    if data_dir is not None:
        values["data_dir"] = str(data_dir)
    return SavedRun(run, TrainConfig(**values), resolved)


def single_task_subject(run: SavedRun, sampling: Sampling) -> Subject:
    """A single-task run's best model on a sample of its training subset."""
    task = get_task(run.config.task)
    examples = task_splits(task, run.data, run.config).train
    check_size(task.name, len(examples), run.resolved.get("train_examples"), run.config)
    sample = examples
    if sampling.samples is not None and sampling.samples < len(examples):
        stratify = task.kind in STRATIFIED
        sample = subsample(examples, size=sampling.samples, seed=sampling.seed, stratify=stratify)
    model, tokenizer = load_best(run, task)
    model.to(sampling.device)
    batches = batches_for(run, task, sample, model, tokenizer, sampling.batch_size)
    return Subject(task.name, task.name, model, batches, len(examples), len(sample))


def check_size(name: str, n: int, expected: int | None, config: TrainConfig) -> None:
    """Refuse a rebuilt training subset whose size differs from the run's record."""
    if expected is not None and n != expected:
        raise ValueError(
            f"the rebuilt training subset of {name} has {n} examples but the run had "
            f"{expected}: is data_dir={config.data_dir!r} the data the run used?"
        )


def load_best(run: SavedRun, task: Task) -> tuple[nn.Module, Any]:
    """``best/`` and its tokenizer (else the run's base model's). A full model loads with
    the Auto class the run trained (no head is re-initialised: a mismatch is an error); a
    LoRA adapter loads onto the run's base model, rebuilt as the run built it, with the
    adapters and saved head trainable and the base frozen."""
    best = run.folder / "best"
    tokenizer = None
    if holds_adapter(best):
        if run.model_path is None:
            raise ValueError(
                f"{run.folder / 'config.yaml'}: no model to load the adapter in {best} onto"
            )
        choice = resolve_model(run.model_path, run.modelling, task)
        with quiet_transformers():  # a fresh head's "newly initialized" warning: it is loaded
            base, tokenizer = load_model(choice, task)
        model = load_lora(base, best, option="samlm sharpness on a --peft lora run")
    else:
        model = _auto_class(task, run.modelling).from_pretrained(best)
    if tokenizer is None or saves_tokenizer(best):
        tokenizer = best_tokenizer(run)
    return model, tokenizer


def saves_tokenizer(best: Path) -> bool:
    return (best / "tokenizer_config.json").is_file()


def best_tokenizer(run: SavedRun) -> Any:
    """The tokenizer saved in ``best/``, else the run's base model's (a causal LM's with
    its padding set as the run set it)."""
    best = run.folder / "best"
    tokenizer = AutoTokenizer.from_pretrained(best if saves_tokenizer(best) else run.model_path)
    if run.modelling == "causal":
        return causal_tokenizer(tokenizer, str(run.model_path))
    return tokenizer


def _auto_class(task: Task, modelling: str) -> Any:
    if modelling == "text2text":
        return AutoModelForSeq2SeqLM
    if modelling == "causal":
        return AutoModelForCausalLM
    if task.kind == "multiple_choice":
        return AutoModelForMultipleChoice
    return AutoModelForSequenceClassification


@contextmanager
def quiet_transformers() -> Iterator[None]:
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(level)


def batches_for(
    run: SavedRun,
    task: Task,
    examples: list[Example],
    model: nn.Module,
    tokenizer: Any,
    batch_size: int,
) -> list[Any]:
    """Collated training batches of ``examples``, encoded and collated as the run did
    (``encode`` + ``collator``)."""
    dataset = encode(task, examples, training=True, **encoding(run, tokenizer))
    collate = collator(task, run.modelling, tokenizer, model)
    return collated(dataset, model, collate, batch_size)


def encoding(run: SavedRun, tokenizer: Any) -> dict[str, Any]:
    """``features.encode``'s options as the run's."""
    cfg = run.config
    return dict(
        tokenizer=tokenizer,
        modelling=run.modelling,
        max_length=cfg.max_length,
        max_target_length=cfg.max_target_length,
    )


def collated(dataset: Dataset, model: nn.Module, collate: Callable, batch_size: int) -> list[Any]:
    """``dataset``'s rows in order, in batches of ``batch_size`` by ``collate``, keeping
    only the columns the model's ``forward`` accepts (a LoRA model's: its base's), as the
    Trainer does."""
    forward = (model.get_base_model() if is_adapted(model) else model).forward
    accepted = set(inspect.signature(forward).parameters) | {"labels"}
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in accepted])
    rows = [dataset[i] for i in range(len(dataset))]
    return [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
