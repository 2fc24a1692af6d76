"""Sharpness of a finished ``samlm train`` run: rebuild its training subset exactly as the
run did, load ``best/``, measure on a seeded sample, write ``RUN_DIR/sharpness/``.

What is measured is the loss as a function of the weights ``weights`` names:

* ``trained`` (the default): the parameters the run trained, the space SAM perturbed in
  it. For a full fine-tuning run, every weight of the model; for a ``--peft lora`` run,
  the adapters ``A``, ``B`` and the modules saved with them (an encoder's task head),
  the base model's weights held fixed.
* ``merged``: every weight of the model the run produced, a LoRA run's adapters merged
  into the base's weights (``W + (alpha / r) B A``; Flat-LoRA's view, the full weight
  space). For a full fine-tuning run this is the same as ``trained``.

A LoRA run's ``best/`` holds PEFT's adapter only: its base model is rebuilt as the run
built it (``pipeline.models.load_model``), the adapter loaded onto it
(``pipeline.adapters.load_lora``). ``best/`` is only read.

A task mixture is measured on the loss it trained (``mixture_run.py``).
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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

from ..hf_bars import hf_bars
from ..optim.validation import optional_positive_int, positive_int
from ..pipeline.adapters import holds_adapter, is_adapted, load_lora, merge_lora
from ..pipeline.config import names_a_mixture
from ..pipeline.data import STRATIFIED, data_folder, training_examples
from ..pipeline.features import collator, encode
from ..pipeline.models import causal_tokenizer, load_model, resolve_model
from ..pipeline.multitask import DESCRIPTION
from ..tasks import Example, Task, get_task, subsample
from .measure import PLOTS, WEIGHTS, MeasureOptions, measure_all
from .objective import hf_loss

OUTPUT = "sharpness"
RESULT = "sharpness.json"


def read_run(run_dir: str | Path) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """``(run_dir, options, resolved)`` from ``RUN_DIR/config.yaml``, after checking that
    the folder holds a finished run (``config.yaml`` and ``best/``)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"run_dir={str(run)!r} is not a folder")
    config = run / "config.yaml"
    if not config.is_file():
        raise ValueError(f"run_dir={str(run)!r} has no config.yaml: not a `samlm train` run")
    data = yaml.safe_load(config.read_text()) or {}
    if not isinstance(data.get("options"), dict) or not isinstance(data.get("resolved"), dict):
        raise ValueError(f"{config}: expected the keys 'options' and 'resolved'")
    best = run / "best"
    if not any((best / name).is_file() for name in ("config.json", DESCRIPTION)) and not (
        holds_adapter(best)
    ):
        raise ValueError(f"run_dir={str(run)!r} has no best/ model: is the run finished?")
    return run, data["options"], data["resolved"]


def training_subset(
    task: Task, options: dict[str, Any], data_dir: str | Path | None
) -> list[Example]:
    """The run's training examples, by the rule ``samlm train`` used."""
    return training_examples(task, data_folder(data_dir), options)


def load_best(run: Path, task: Task, modelling: str, model_path: str | None):
    """``best/`` and its tokenizer (else the run's base model's). A full model loads with
    the Auto class the run trained (no head is re-initialised: a mismatch is an error); a
    LoRA adapter loads onto the run's base model ``model_path``, rebuilt as the run built
    it, with the adapters and saved head trainable and the base frozen."""
    best = run / "best"
    tokenizer = None
    if holds_adapter(best):
        if model_path is None:
            raise ValueError(f"{run / 'config.yaml'}: no model to load the adapter in {best} onto")
        choice = resolve_model(model_path, modelling, task)
        with quiet_transformers():  # a fresh head's "newly initialized" warning: it is loaded
            base, tokenizer = load_model(choice, task)
        model = load_lora(base, best, option="samlm sharpness on a --peft lora run")
    else:
        model = _auto_class(task, modelling).from_pretrained(best)
    if tokenizer is None or saves_tokenizer(best):
        tokenizer = best_tokenizer(best, model_path, modelling)
    return model, tokenizer


def saves_tokenizer(best: Path) -> bool:
    return (best / "tokenizer_config.json").is_file()


def best_tokenizer(best: Path, model_path: str | None, modelling: str) -> Any:
    """The tokenizer saved in ``best/``, else the run's base model's (a causal LM's with
    its padding set as the run set it)."""
    tokenizer = AutoTokenizer.from_pretrained(best if saves_tokenizer(best) else model_path)
    return causal_tokenizer(tokenizer, str(model_path)) if modelling == "causal" else tokenizer


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


def check_weights(weights: Any) -> None:
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights!r} must be one of {', '.join(WEIGHTS)}")


def measured_model(model: nn.Module, weights: str) -> nn.Module:
    """The model whose parameters that require a gradient are the ones ``weights`` names
    (see the module docstring): ``model`` as loaded for ``trained``; for ``merged``, a
    LoRA model's adapters merged into its base, and every weight requiring a gradient."""
    check_weights(weights)
    if weights == "merged":
        if is_adapted(model):
            model = merge_lora(model)
        model.requires_grad_(True)
    return model


def batches_for(
    task: Task,
    examples: list[Example],
    model: nn.Module,
    tokenizer: Any,
    modelling: str,
    options: dict[str, Any],
    batch_size: int,
) -> list[Any]:
    """Collated training batches of ``examples`` (``encode`` + ``collator``, keeping only
    the columns the model's ``forward`` accepts, as the Trainer does)."""
    dataset = encode(task, examples, training=True, **encoding(tokenizer, modelling, options))
    return collated(dataset, model, collator(task, modelling, tokenizer, model), batch_size)


def encoding(tokenizer: Any, modelling: str, options: dict[str, Any]) -> dict[str, Any]:
    """``features.encode``'s options as the run's."""
    return dict(
        tokenizer=tokenizer,
        modelling=modelling,
        max_length=options.get("max_length", 128),
        max_target_length=options.get("max_target_length", 32),
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


def _device(name: str | None) -> torch.device:
    """``name`` as a torch device this machine has (None: cuda if available, else cpu)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name!r} is not a device: {err}") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(device.type, True):
        raise ValueError(f"device={name!r}: this machine has no {device.type} device")
    return device


def measure_run(
    run_dir: str | Path,
    *,
    samples: int | None = 128,
    batch_size: int = 32,
    data_dir: str | Path | None = None,
    device: str | None = None,
    write: bool = True,
    weights: str = "trained",
    **options: Any,
) -> dict[str, Any]:
    """Measure a ``samlm train`` run's best model on ``samples`` of its training examples
    (a seeded, stratified sample; a mixture's drawn at its mixing rates, see
    ``mixture_run.py``; None: all), in batches of ``batch_size``, as a function of the
    ``weights`` "trained" (what the run trained: a LoRA run's adapters and head) or
    "merged" (every weight, a LoRA run's adapters merged into its base); see the module
    docstring. The
    result records them, ``weights`` and ``parameters`` (their number); a mixture's, also
    ``mixture`` and ``tasks`` (per task: ``train_examples``, ``samples``, ``rate``).

    ``options`` are :class:`MeasureOptions` fields (rho, steps, m, adaptive_rho, eta,
    hessian_iters, hessian_tol, probes, grid, span, seed, train, progress); ``data_dir``
    overrides the run's. With ``write``, the result goes to ``RUN_DIR/sharpness/
    sharpness.json`` next to the plots. Returns that dict.
    """
    start = time.perf_counter()
    optional_positive_int("samples", samples)
    positive_int("batch_size", batch_size)
    check_weights(weights)
    unknown = set(options) - (set(MeasureOptions.__dataclass_fields__) - {"batch_size"})
    if unknown:
        raise ValueError(f"unknown option(s) for measure_run: {', '.join(sorted(unknown))}")
    opts = MeasureOptions(**options)
    target = _device(device)
    run, run_options, resolved = read_run(run_dir)
    if names_a_mixture(str(run_options.get("task", "")), run_options.get("mixture")):
        from .mixture_run import mixture_subject as subject
    else:
        subject = single_task_subject
    with hf_bars(opts.progress):  # the model's loading bar, the sample's map
        s = subject(run, run_options, resolved, data_dir, samples, batch_size, opts.seed, target)
    peft = run_options.get("peft") or "none"
    model = measured_model(s.model, weights)
    folder = run / OUTPUT
    method = run_options.get("optimizer")
    result = {
        "run_dir": str(run),
        "task": s.task,
        **s.extra,
        "method": method,
        "run_rho": resolved.get("rho"),
        "peft": peft,
        "weights": weights,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_examples": s.train_examples,
        "samples": s.samples,
        "batch_size": batch_size,
        **measure_all(
            model,
            hf_loss,
            s.batches,
            opts,
            output_dir=folder if write else None,
            title=f"{s.label} ({method}" + (f", {peft} {weights})" if peft != "none" else ")"),
        ),
    }
    result["seconds"]["total"] = round(time.perf_counter() - start, 3)
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULT).write_text(json.dumps(jsonable(result), indent=2) + "\n")
        for key, name in PLOTS.items():  # not drawn this time: an earlier one would mislead
            if key not in result["plots"]:
                (folder / name).unlink(missing_ok=True)
    return result


@dataclass
class Subject:
    """What :func:`measure_run` measures: the model as loaded (on its device) and the
    batches of its sample, with what the result says of them."""

    task: str  # the run's task (a mixture's: its tasks, comma-separated)
    label: str  # the plots' name for it
    model: nn.Module
    batches: list[Any]
    train_examples: int
    samples: int
    extra: dict[str, Any] = field(default_factory=dict)  # a mixture's: mixture, tasks


def single_task_subject(
    run: Path,
    options: dict[str, Any],
    resolved: dict[str, Any],
    data_dir: str | Path | None,
    samples: int | None,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> Subject:
    task = get_task(options["task"])
    modelling = resolved.get("modelling") or "encoder"
    data = data_dir if data_dir is not None else options.get("data_dir")
    examples = training_subset(task, options, data)
    check_size(task.name, len(examples), resolved.get("train_examples"), data)
    sample = examples
    if samples is not None and samples < len(examples):
        sample = subsample(examples, size=samples, seed=seed, stratify=task.kind in STRATIFIED)
    model_path = resolved.get("model_path") or options.get("model")
    model, tokenizer = load_best(run, task, modelling, model_path)
    model.to(device)
    batches = batches_for(task, sample, model, tokenizer, modelling, options, batch_size)
    return Subject(task.name, task.name, model, batches, len(examples), len(sample))


def check_size(name: str, n: int, expected: int | None, data: Any) -> None:
    """Refuse a rebuilt training subset whose size differs from the run's record."""
    if expected is not None and n != expected:
        raise ValueError(
            f"the rebuilt training subset of {name} has {n} examples but the run had "
            f"{expected}: is data_dir={str(data)!r} the data the run used?"
        )


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
