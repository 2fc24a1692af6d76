"""Sharpness of a finished ``samlm train`` run: rebuild its training subset exactly as the
run did, load ``best/``, measure on a seeded sample, write ``RUN_DIR/sharpness/``."""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMultipleChoice,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from ..optim.validation import optional_positive_int, positive_int
from ..pipeline.data import STRATIFIED, data_folder, training_examples
from ..pipeline.features import collator, encode
from ..pipeline.models import causal_tokenizer
from ..tasks import Example, Task, get_task, subsample
from .measure import MeasureOptions, measure_all
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
    options = data["options"]
    if options.get("mixture") or "," in str(options.get("task", "")):
        raise ValueError(
            f"run_dir={str(run)!r} trained a task mixture: samlm sharpness measures "
            "single-task runs and does not measure mixtures yet"
        )
    if (run / "best" / "adapter_config.json").is_file():
        raise ValueError(
            f"run_dir={str(run)!r} trained LoRA adapters (--peft lora): samlm sharpness "
            "measures full models and does not load adapters yet"
        )
    if not (run / "best" / "config.json").is_file():
        raise ValueError(f"run_dir={str(run)!r} has no best/ model: is the run finished?")
    return run, data["options"], data["resolved"]


def training_subset(
    task: Task, options: dict[str, Any], data_dir: str | Path | None
) -> list[Example]:
    """The run's training examples, by the rule ``samlm train`` used."""
    return training_examples(task, data_folder(data_dir), options)


def load_best(run: Path, task: Task, modelling: str, model_path: str | None):
    """``best/`` with the Auto class the run trained (no head is re-initialised: a
    mismatch is an error), and its tokenizer (else the run's base model's)."""
    best = run / "best"
    if modelling == "text2text":
        auto = AutoModelForSeq2SeqLM
    elif modelling == "causal":
        auto = AutoModelForCausalLM
    elif task.kind == "multiple_choice":
        auto = AutoModelForMultipleChoice
    else:
        auto = AutoModelForSequenceClassification
    model = auto.from_pretrained(best)
    has_tokenizer = (best / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(best if has_tokenizer else model_path)
    if modelling == "causal":
        tokenizer = causal_tokenizer(tokenizer, str(model_path))
    return model, tokenizer


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
    dataset = encode(
        task,
        examples,
        tokenizer,
        modelling,
        max_length=options.get("max_length", 128),
        max_target_length=options.get("max_target_length", 32),
        training=True,
    )
    accepted = set(inspect.signature(model.forward).parameters) | {"labels"}
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in accepted])
    collate = collator(task, modelling, tokenizer, model)
    rows = [dataset[i] for i in range(len(dataset))]
    return [collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]


def measure_run(
    run_dir: str | Path,
    *,
    samples: int | None = 128,
    batch_size: int = 32,
    data_dir: str | Path | None = None,
    device: str | None = None,
    write: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Measure a ``samlm train`` run's best model on ``samples`` of its training examples
    (a seeded, stratified sample; None: all), in batches of ``batch_size``.

    ``options`` are :class:`MeasureOptions` fields (rho, steps, m, adaptive_rho, eta,
    hessian_iters, hessian_tol, probes, grid, span, seed, train, progress); ``data_dir``
    overrides the run's. With ``write``, the result goes to ``RUN_DIR/sharpness/
    sharpness.json`` next to the plots. Returns that dict.
    """
    start = time.perf_counter()
    optional_positive_int("samples", samples)
    positive_int("batch_size", batch_size)
    unknown = set(options) - (set(MeasureOptions.__dataclass_fields__) - {"batch_size"})
    if unknown:
        raise ValueError(f"unknown option(s) for measure_run: {', '.join(sorted(unknown))}")
    opts = MeasureOptions(**options)
    run, run_options, resolved = read_run(run_dir)
    task = get_task(run_options["task"])
    modelling = resolved.get("modelling") or "encoder"
    data = data_dir if data_dir is not None else run_options.get("data_dir")
    examples = training_subset(task, run_options, data)
    expected = resolved.get("train_examples")
    if expected is not None and len(examples) != expected:
        raise ValueError(
            f"the rebuilt training subset has {len(examples)} examples but the run had "
            f"{expected}: is data_dir={str(data)!r} the data the run used?"
        )
    sample = examples
    if samples is not None and samples < len(examples):
        sample = subsample(examples, size=samples, seed=opts.seed, stratify=task.kind in STRATIFIED)
    model, tokenizer = load_best(run, task, modelling, resolved.get("model_path"))
    model.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    batches = batches_for(task, sample, model, tokenizer, modelling, run_options, batch_size)
    folder = run / OUTPUT
    result = {
        "run_dir": str(run),
        "task": task.name,
        "method": run_options.get("optimizer"),
        "run_rho": resolved.get("rho"),
        "train_examples": len(examples),
        "samples": len(sample),
        "batch_size": batch_size,
        **measure_all(
            model,
            hf_loss,
            batches,
            opts,
            output_dir=folder if write else None,
            title=f"{task.name} ({run_options.get('optimizer')})",
        ),
    }
    result["seconds"]["total"] = round(time.perf_counter() - start, 3)
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULT).write_text(json.dumps(jsonable(result), indent=2) + "\n")
    return result


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
