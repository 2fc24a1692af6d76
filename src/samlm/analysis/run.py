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

A task mixture is measured on the loss it trained (``mixture_run.py``); the run is read
and rebuilt by ``saved_run.py``, on which ``mixture_run.py`` builds (this module imports
both; neither imports it).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..hf_bars import hf_bars
from ..optim.validation import one_of
from ..pipeline.adapters import is_adapted, merge_lora
from .measure import PLOTS, WEIGHTS, MeasureOptions, RunOptions, measure_all
from .mixture_run import mixture_subject
from .objective import hf_loss
from .saved_run import Sampling, read_run, single_task_subject

OUTPUT = "sharpness"
RESULT = "sharpness.json"


def check_weights(weights: Any) -> None:
    one_of("weights", weights, WEIGHTS)


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


def measure_run(run_dir: str | Path, *, write: bool = True, **options: Any) -> dict[str, Any]:
    """Measure a ``samlm train`` run's best model on ``samples`` of its training examples
    (a seeded, stratified sample; a mixture's drawn at its mixing rates, see
    ``mixture_run.py``; None: all), in batches of ``batch_size``, as a function of the
    ``weights`` "trained" (what the run trained: a LoRA run's adapters and head) or
    "merged" (every weight, a LoRA run's adapters merged into its base); see the module
    docstring. The result records them, ``weights`` and ``parameters`` (their number); a
    mixture's, also ``mixture`` and ``tasks`` (per task: ``train_examples``, ``samples``,
    ``rate``).

    ``options`` are :class:`RunOptions` fields (samples, batch_size, weights, data_dir
    overriding the run's, device) and :class:`MeasureOptions` fields (rho, steps, m,
    adaptive_rho, eta, hessian_iters, hessian_tol, probes, grid, span, seed, train,
    progress), each at its declared default when left out. With ``write``, the result
    goes to ``RUN_DIR/sharpness/sharpness.json`` next to the plots. Returns that dict.
    """
    start = time.perf_counter()
    ours = set(RunOptions.__dataclass_fields__)
    unknown = set(options) - ours - (set(MeasureOptions.__dataclass_fields__) - {"batch_size"})
    if unknown:
        raise ValueError(f"unknown option(s) for measure_run: {', '.join(sorted(unknown))}")
    given = RunOptions(**{k: v for k, v in options.items() if k in ours})
    samples, batch_size, weights = given.samples, given.batch_size, given.weights
    opts = MeasureOptions(**{k: v for k, v in options.items() if k not in ours})
    target = _device(given.device)
    run = read_run(run_dir, given.data_dir)
    subject = mixture_subject if run.config.is_mixture() else single_task_subject
    with hf_bars(opts.progress):  # the model's loading bar, the sample's map
        s = subject(run, Sampling(samples, batch_size, opts.seed, target))
    peft, method = run.config.peft, run.config.optimizer
    model = measured_model(s.model, weights)
    folder = run.folder / OUTPUT
    title = f"{s.label} ({method}" + (f", {peft} {weights})" if peft != "none" else ")")
    result = {
        "run_dir": str(run.folder),
        "task": s.task,
        **s.extra,
        "method": method,
        "run_rho": run.resolved.get("rho"),
        "peft": peft,
        "weights": weights,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_examples": s.train_examples,
        "samples": s.samples,
        "batch_size": batch_size,
        **measure_all(
            model, hf_loss, s.batches, opts, output_dir=folder if write else None, title=title
        ),
    }
    result["seconds"]["total"] = round(time.perf_counter() - start, 3)
    if write:
        write_result(folder, result)
    return result


def write_result(folder: Path, result: dict[str, Any]) -> None:
    """``result`` as ``folder/sharpness.json`` (strict JSON), and no plot left there that
    this measurement did not draw (an earlier one would mislead)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT).write_text(json.dumps(jsonable(result), indent=2) + "\n")
    for key, name in PLOTS.items():
        if key not in result["plots"]:
            (folder / name).unlink(missing_ok=True)


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
