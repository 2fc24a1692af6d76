"""Sharpness of a finished task-mixture run (``samlm train --task a,b`` or ``--mixture
NAME``), for :func:`samlm.analysis.run.measure_run`; the single-task pieces it shares come
from ``saved_run.py``.

The loss measured is the one the run trained: its stream draws task ``m`` at its mixing
rate ``r_m``, so ``L(w) = sum_m r_m L_m(w)`` (``L_m`` task ``m``'s mean training loss).
The sample (:func:`mixture_sample`) estimates it: of ``samples`` examples, task ``m``
gives the largest-remainder share of ``samples * r_m`` (``mixing.sample_counts``: a task
with fewer examples gives all it has, the rest shared at the others' rates; each task at
least one), drawn from its training subset (``mixture.MixtureData``, rebuilt as the run
built it) as a single-task sample is (seeded, label-stratified). Sampling equally per
task instead would weigh a rarely drawn task as much as the main one. Without
``samples`` every training example is measured, each task weighing by its size (the
rates of proportional mixing without ``--mixing-limit`` only). Counts are of examples;
a text-to-text mixture's rates are over its training pairs, which differ for ReCoRD only.

The rows are encoded as the run encoded them (``mixture.encode_tasks``: an encoder's
examples routed to their task's head, LMs with each task's prompts), put in a seeded
random order (batches, and m-sharpness's chunks, mix the tasks as training batches do)
and collated by the run's collator; the loss is the model's own (the multi-head
encoder's: the mean of its examples' losses, each by its task's head). An encoder
mixture's ``best/`` loads with ``multitask.load_multihead`` (a LoRA run's unmerged for
``--weights trained``: adapters and heads), an LM mixture's as a single-task run's.
``sharpness.json`` adds ``mixture`` (the named mixture, else None) and, per task, its
training examples, sampled examples and rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import concatenate_datasets
from torch import nn

from ..pipeline.data import STRATIFIED
from ..pipeline.mixing import sample_counts
from ..pipeline.mixture import MixtureData, encode_tasks, mixture_collator
from ..pipeline.multitask import DESCRIPTION, load_multihead
from ..tasks import Example, subsample
from .saved_run import (
    Sampling,
    SavedRun,
    Subject,
    best_tokenizer,
    check_size,
    collated,
    encoding,
    load_best,
    quiet_transformers,
)


def run_mixture(run: SavedRun) -> MixtureData:
    """A mixture run's tasks and training subsets, rebuilt by the rule ``samlm train`` used
    (``MixtureData.build`` with the run's options)."""
    return MixtureData.build(run.config, run.data, run.modelling)


def mixture_sample(data: MixtureData, samples: int | None, seed: int) -> list[list[Example]]:
    """Each task's share of a mixture's sample (see the module docstring): of ``samples``
    examples (None: all), ``mixing.sample_counts`` at the run's rates, each task's drawn
    from its training subset as a single-task run's sample is (seeded, stratified)."""
    train = [s.train for s in data.splits]
    sizes = [len(t) for t in train]
    counts = sizes if samples is None else sample_counts(sizes, data.rates, samples)
    return [
        examples
        if n == len(examples)
        else subsample(examples, size=n, seed=seed, stratify=task.kind in STRATIFIED)
        if n
        else []
        for task, examples, n in zip(data.tasks, train, counts, strict=True)
    ]


def mixture_batches(
    run: SavedRun,
    data: MixtureData,
    sample: list[list[Example]],
    model: nn.Module,
    tokenizer: Any,
    sampling: Sampling,
) -> list[Any]:
    """Collated training batches of a mixture's ``sample`` (one list per task): encoded as
    the run encoded its tasks (``mixture.encode_tasks``), in a seeded random order (the
    tasks mixed in every batch, as in the training stream), by the run's collator."""
    sets = encode_tasks(data.tasks, sample, training=True, **encoding(run, tokenizer))
    dataset = concatenate_datasets([s for s, exs in zip(sets, sample, strict=True) if exs])
    order = np.random.default_rng(sampling.seed).permutation(len(dataset))
    dataset = dataset.select(order.tolist())
    collate = mixture_collator(data.tasks, run.modelling, tokenizer, model)
    return collated(dataset, model, collate, sampling.batch_size)


def load_mixture_best(run: SavedRun, data: MixtureData) -> tuple[nn.Module, Any]:
    """A mixture run's ``best/`` and its tokenizer: an encoder's multi-head model
    (``multitask.load_multihead``; a LoRA run's unmerged, its adapters and heads trainable
    and the encoder frozen), else the LM as a single-task run's (:func:`load_best`)."""
    best = run.folder / "best"
    if run.modelling != "encoder":
        return load_best(run, data.tasks[0])
    if not (best / DESCRIPTION).is_file():
        raise ValueError(f"{best} has no {DESCRIPTION}: not an encoder mixture's model")
    with quiet_transformers():
        model, heads = load_multihead(best, merge=False)
    if heads != [t.name for t in data.tasks]:
        raise ValueError(
            f"{best / DESCRIPTION} has heads for {', '.join(heads)} but the rebuilt mixture "
            f"is {data.name}"
        )
    return model, best_tokenizer(run)


def mixture_subject(run: SavedRun, sampling: Sampling) -> Subject:
    """A mixture run's best model on a sample of its tasks drawn at its mixing rates."""
    data = run_mixture(run)
    recorded = run.resolved.get("tasks")
    if isinstance(recorded, dict) and list(recorded) != [t.name for t in data.tasks]:
        raise ValueError(
            f"the rebuilt mixture is {data.name} but the run trained {','.join(recorded)}: "
            f"is data_dir={run.config.data_dir!r} the data the run used?"
        )
    for task, splits in zip(data.tasks, data.splits, strict=True):
        expected = (recorded or {}).get(task.name, {}).get("train_examples")
        check_size(task.name, len(splits.train), expected, run.config)
    sample = mixture_sample(data, sampling.samples, sampling.seed)
    model, tokenizer = load_mixture_best(run, data)
    model.to(sampling.device)
    batches = mixture_batches(run, data, sample, model, tokenizer, sampling)
    mixture = run.config.mixture or None
    tasks = {
        t.name: {"train_examples": len(s.train), "samples": len(exs), "rate": r}
        for t, s, exs, r in zip(data.tasks, data.splits, sample, data.rates, strict=True)
    }
    return Subject(
        data.name,
        f"{mixture} mixture" if mixture else data.name,
        model,
        batches,
        sum(len(s.train) for s in data.splits),
        sum(len(exs) for exs in sample),
        {"mixture": mixture, "tasks": tasks},
    )
