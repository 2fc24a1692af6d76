"""A multi-task run (``samlm train --task a,b`` or ``--mixture glue``): its tasks, their
examples, the mixed training stream, and the scores (T5's multi-task training, Raffel
et al. 2020, Section 3.5.2).

* Each task has the splits a single-task run of it would have (``run_splits``: the same
  seeded, stratified ``--train-size`` subset, validation sample and reported examples).
* Training draws from the tasks at :func:`mixing_rates` (sizes: training units, i.e.
  examples, or text-to-text pairs), in the order of :class:`MixtureSampler` (no shuffle
  on top), so a resumed run trains on exactly the draws the uninterrupted one does. One
  epoch is as many draws as the tasks have training units together; ``--epochs``,
  ``--max-steps`` and ``--min-steps`` count as in a single-task run. ``--optimizer
  tasksam`` draws task-stratified batches instead (:meth:`MixtureSampler.draw_stratified`:
  every ``--batch-size`` batch holds :func:`mixing.batch_counts` of each task, task after
  task), which its per-task step slices (``task_sizes``).
* Every evaluation scores each task with its own metrics on its own examples
  (``<task>/<metric>``) and their GLUE/SuperGLUE-style ``average`` (the mean of each
  task's :func:`samlm.metrics.task_score`), which selects the checkpoint.
* Encoders: a shared encoder with one head per task (``multitask.py``); text-to-text
  and causal LMs: one model, the tasks told apart by their prompts.
* ``--peft lora``: encoders get LoRA on the shared encoder (``--lora-targets``, else
  PEFT's default for the encoder's type) and every head trained in full (saved with the
  adapter, ``multitask.py``); text-to-text and causal LMs get LoRA as a single-task run
  does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, concatenate_datasets
from transformers import (
    AutoModel,
    AutoTokenizer,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..metrics import benchmark_average
from ..tasks import TASKS, Example, Task, get_task
from ..tasks.base import TEXT_MODELLING
from .adapters import is_adapted
from .config import TrainConfig
from .data import Splits, data_folder, size_note
from .features import collator, encode, metrics_fn
from .job import check_choice, task_splits
from .mixing import MixtureSampler, batch_counts, mixing_rates
from .models import ModelChoice, check_modelling, load_model, resolve_model
from .multitask import HeadSpec, MixedCollator, MultiHeadEncoder, mixed_rows

AVERAGE = "average"


def listed_tasks(names: Sequence[str]) -> list[Task]:
    """The tasks of ``--task a,b,...`` (an unknown or repeated name is a ValueError)."""
    tasks = [get_task(name) for name in names]
    seen = set()
    for task in tasks:
        if task.name in seen:
            raise ValueError(f"task {task.name} appears twice in the mixture")
        seen.add(task.name)
    return tasks


def named_mixture(name: str, data_dir: Path | None, modelling: str) -> tuple[list[Task], list[str]]:
    """The tasks of benchmark ``name`` whose training and validation data are in
    ``data_dir`` and that ``modelling`` can model; and the found ones it cannot."""
    if data_dir is None:
        raise ValueError(
            f"--mixture {name} mixes the tasks whose data is in the local folder: give "
            "--data-dir (or set $SAMLM_DATA_DIR)"
        )
    found = [
        t
        for t in TASKS.values()
        if t.benchmark == name and all(t.has_local(s, data_dir) for s in ("train", "validation"))
    ]
    tasks = [t for t in found if modelling in t.modelling]
    if not tasks:
        raise ValueError(
            f"--mixture {name}: no {name} task with {modelling} modelling has its training and "
            f"validation data in {data_dir}"
        )
    return tasks, [t.name for t in found if t not in tasks]


def training_units(task: Task, examples: Sequence[Example], modelling: str) -> int:
    """What a task contributes to the mixture: its examples (text-to-text: its training
    pairs, one per gold answer for ReCoRD)."""
    if modelling in TEXT_MODELLING:
        return sum(len(task.training_pairs(ex)) for ex in examples)
    return len(examples)


@dataclass(frozen=True)
class MixtureData:
    """A mixture's tasks and their examples as a run with options ``cfg`` builds them
    (``MixtureJob``, and ``samlm sharpness`` rebuilding a finished run's): the tasks
    (``--task a,b`` in that order, or a named mixture's found in the data folder), each
    task's splits (:func:`job.task_splits`, a single-task run's), its training units and
    its mixing rate."""

    tasks: list[Task]
    left_out: list[str]  # a named mixture's tasks whose data is found but not modelled
    splits: list[Splits]
    sizes: list[int]  # training units (:func:`training_units`)
    rates: list[float]  # :func:`mixing.mixing_rates` of ``sizes`` under the run's options

    @property
    def name(self) -> str:
        """The run's name for the mixture: its tasks, comma-separated."""
        return ",".join(t.name for t in self.tasks)

    @classmethod
    def build(
        cls,
        cfg: TrainConfig,
        data_dir: Path | None,
        modelling: str,
        listed: list[Task] | None = None,
    ) -> MixtureData:
        """The mixture of ``cfg`` under ``modelling`` (``listed``: ``cfg``'s listed tasks,
        already checked)."""
        left_out: list[str] = []
        if cfg.mixture:
            listed, left_out = named_mixture(cfg.mixture, data_dir, modelling)
        elif listed is None:
            listed = listed_tasks(cfg.task_names())
        for task in listed:
            check_modelling(task, modelling)
        splits = [task_splits(task, data_dir, cfg) for task in listed]
        sizes = [training_units(t, s.train, modelling) for t, s in zip(listed, splits, strict=True)]
        rates = mixing_rates(sizes, cfg.mixing, limit=cfg.mixing_limit, temperature=cfg.temperature)
        return cls(listed, left_out, splits, sizes, rates)


def encode_tasks(
    tasks: Sequence[Task], examples: Sequence[Sequence[Example]], *, training: bool, **enc: Any
) -> list[Dataset]:
    """Each task's ``examples`` encoded (``features.encode`` with ``enc``: tokenizer,
    modelling, max_length, max_target_length; text-to-text and causal LMs: with the task's
    own prompts), for an encoder in the mixed layout routing them to head ``i``
    (``multitask.mixed_rows``)."""
    sets = []
    for i, (task, exs) in enumerate(zip(tasks, examples, strict=True)):
        ds = encode(task, exs, training=training, **enc)
        sets.append(mixed_rows(task, i, ds) if enc["modelling"] == "encoder" else ds)
    return sets


def mixture_collator(
    tasks: Sequence[Task],
    modelling: str,
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
) -> Callable:
    """A mixed batch's collator: the multi-head one (encoders), else the LM's own."""
    if modelling in TEXT_MODELLING:
        return collator(tasks[0], modelling, tokenizer, model)
    return MixedCollator(tokenizer)


class MixtureJob:
    """Everything a multi-task run needs beyond the single-task pipeline's common steps
    (``run.train``): checked and resolved on construction, before anything is written."""

    metric = AVERAGE

    def __init__(self, cfg: TrainConfig) -> None:
        listed = None if cfg.mixture else listed_tasks(cfg.task_names())
        self.choice: ModelChoice = resolve_model(cfg.model, cfg.modelling, None)
        check_choice(cfg, self.choice)
        data_dir = data_folder(cfg.data_dir)
        data = MixtureData.build(cfg, data_dir, self.choice.modelling, listed)
        self.cfg = cfg
        self.tasks = data.tasks
        self.left_out = data.left_out
        self.name = data.name
        self.splits = data.splits
        self.sizes = data.sizes
        self.rates = data.rates
        self.n_train = sum(self.sizes)
        # a count in every case: the sampler draws that many steps' examples
        self.steps = cfg.max_steps if cfg.max_steps != -1 else cfg.budget_steps(self.n_train)
        self.draws = self.steps * cfg.examples_per_step()
        notes = [t.data_note(data_dir) for t in self.tasks]
        for task, splits in zip(self.tasks, self.splits, strict=True):
            short = size_note(splits, cfg.validation_size, cfg.eval_size)
            notes.append(f"{task.name}: {short}." if short else None)
        self.note = " ".join(n for n in notes if n) or None
        self.reported_apart = any(s.validation_from != "reported" for s in self.splits)
        self.task_sizes = None  # each batch's examples per task, when stratified (TaskSAM)
        if cfg.optimizer == "tasksam":
            if len(self.tasks) < 2:
                raise ValueError(
                    f"--optimizer tasksam perturbs each task of a mixture on its own, and "
                    f"{self.name} is one task: on one task it is --optimizer sam"
                )
            self.task_sizes = tuple(batch_counts(self.rates, cfg.batch_size))

    # -- what the run records ----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The data part of ``config.yaml``'s ``resolved`` (and of ``metrics.json``)."""
        tasks = {
            t.name: {**s.describe(), "train_units": n, "rate": r}
            for t, s, n, r in zip(self.tasks, self.splits, self.sizes, self.rates, strict=True)
        }
        stratified = self.task_sizes is not None  # TaskSAM's batches: counts per task
        return {
            "mixture": self.cfg.mixture,
            "tasks": tasks,
            "left_out": self.left_out,
            "train_examples": sum(len(s.train) for s in self.splits),
            "train_draws": self.draws,
            **(
                {"batch_counts": dict(zip(tasks, self.task_sizes, strict=True))}
                if stratified
                else {}
            ),
        }

    def training_overrides(self) -> dict[str, Any]:
        """Trainer arguments of a mixture: its step count, the sampler's order, and an
        evaluation every epoch (or ``--save-steps``)."""
        every = self.cfg.save_steps or self.cfg.epoch_steps(self.n_train)
        return dict(
            max_steps=self.steps,
            train_sampling_strategy="sequential",
            eval_strategy="steps",
            save_strategy="steps",
            eval_steps=every,
            save_steps=every,
        )

    def summary(self, scores: dict[str, float], validation: dict[str, float]) -> dict[str, Any]:
        """``metrics.json``'s multi-task entries: each task's scores and the average."""
        return {
            "per_task": per_task(scores, self.tasks),
            AVERAGE: scores.get(AVERAGE),
            "validation_per_task": per_task(validation, self.tasks),
        }

    def save(self, model: Any, folder: Path) -> None:
        """Next to the Trainer's saved weights (or LoRA adapter and heads): the heads'
        description, and with an adapter the pretrained encoder it applies to (encoders)."""
        adapted = is_adapted(model)
        inner = model.get_base_model() if adapted else model
        if isinstance(inner, MultiHeadEncoder):
            path = self.choice.path  # a local folder by its absolute path, else a Hub name
            base = (str(Path(path).resolve()) if Path(path).is_dir() else path) if adapted else None
            inner.describe(folder, [t.name for t in self.tasks], base_model=base)

    def lora_options(self, model: Any) -> dict[str, Any]:
        """``adapters.apply_lora``'s options beyond the run's: a multi-head encoder's
        (its encoder's type, its heads trained in full); none for an LM."""
        return model.lora_options() if isinstance(model, MultiHeadEncoder) else {}

    # -- model and data ----------------------------------------------------------------------

    def load(self) -> tuple[Any, PreTrainedTokenizerBase]:
        """The model: the LM itself (text-to-text, causal), or the encoder with a fresh
        head per task."""
        if self.choice.modelling in TEXT_MODELLING:
            return load_model(self.choice, self.tasks[0])
        specs = [HeadSpec.of(t) for t in self.tasks]
        encoder = AutoModel.from_pretrained(self.choice.path)
        return MultiHeadEncoder(encoder, specs), AutoTokenizer.from_pretrained(self.choice.path)

    def _encode(self, role: str, enc: dict[str, Any]) -> list[Dataset]:
        examples = [getattr(splits, role) for splits in self.splits]
        return encode_tasks(self.tasks, examples, training=role == "train", **enc)

    def train_dataset(self, enc: dict[str, Any]) -> Dataset:
        """The run's draws, in order: row ``i`` is the sampler's draw ``i`` (stratified:
        of its stratified draw)."""
        sets = self._encode("train", enc)
        offsets = np.cumsum([0, *(len(s) for s in sets)])
        sampler = MixtureSampler(tuple(self.sizes), tuple(self.rates), seed=self.cfg.seed)
        draws = (
            sampler.draw(0, self.draws)
            if self.task_sizes is None
            else sampler.draw_stratified(0, self.draws // self.cfg.batch_size, self.task_sizes)
        )
        rows = [int(offsets[t]) + j for t, j in draws]
        return concatenate_datasets(sets).select(rows)

    def eval_dataset(self, role: str, enc: dict[str, Any]) -> Dataset:
        """Every task's ``role`` ("validation" or "reported") examples, task after task."""
        return concatenate_datasets(self._encode(role, enc))

    def collator(self, tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> Callable:
        return mixture_collator(self.tasks, self.choice.modelling, tokenizer, model)

    def metrics(
        self, role: str, tokenizer: PreTrainedTokenizerBase
    ) -> Callable[[EvalPrediction], dict[str, float]]:
        """``compute_metrics`` for :meth:`eval_dataset`'s ``role`` examples."""
        modelling = self.choice.modelling
        parts = []
        for task, splits in zip(self.tasks, self.splits, strict=True):
            examples = getattr(splits, role)
            width = HeadSpec.of(task).outputs if modelling == "encoder" else None
            score = metrics_fn(task, modelling, examples, tokenizer)
            parts.append((task, len(examples), width, score))

        def compute(pred: EvalPrediction) -> dict[str, float]:
            out = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
            scores: dict[str, float] = {}
            each: dict[str, dict[str, float]] = {}
            start = 0
            for task, n, width, fn in parts:
                rows = out[start : start + n] if width is None else out[start : start + n, :width]
                start += n
                each[task.name] = fn(EvalPrediction(predictions=rows, label_ids=None))
                scores.update({f"{task.name}/{k}": v for k, v in each[task.name].items()})
            scores[AVERAGE] = benchmark_average(each)
            return scores

        return compute


def per_task(scores: dict[str, float], tasks: Sequence[Task]) -> dict[str, dict[str, float]]:
    """``{"<task>/<metric>": v}`` back to ``{task: {metric: v}}``."""
    out: dict[str, dict[str, float]] = {t.name: {} for t in tasks}
    for key, value in scores.items():
        name, _, metric = key.rpartition("/")
        if name in out:
            out[name][metric] = value
    return out
