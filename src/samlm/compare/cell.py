"""One cell of ``samlm compare``: train it, measure it, return its results-store record.

:func:`run_cell` runs where a backend puts it (a local worker process or a Ray task); it
writes only inside its own cell folder, and the driver alone appends its record to the
store.
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .grid import METHODS, Cell, load_spec
from .mixtures import is_mixture
from .mixtures import scores as mixture_scores


def read_log(log: Path) -> list[dict[str, Any]]:
    """A cell's ``log.jsonl`` rows (none when it has no log)."""
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def checkpoint_step(name: str | None) -> int:
    """The step of a ``checkpoint-N`` folder name; 0 for none (a run from the start)."""
    return int(name.rsplit("-", 1)[1]) if name else 0


def _sam_share(rows: list[dict[str, Any]]) -> float:
    """The share of SAM steps over the run, from the logged ``sam_steps`` of each logging
    window (1.0 when nothing was logged: every step a SAM step)."""
    shares = [r["sam_steps"] for r in rows if "sam_steps" in r]
    return sum(shares) / len(shares) if shares else 1.0


def _curve(rows: list[dict[str, Any]], metric: str) -> list[list[float]]:
    return [[r["step"], r[f"eval_{metric}"]] for r in rows if f"eval_{metric}" in r]


def timing(rows: list[dict[str, Any]], steps: int, resumed_from: str | None) -> dict[str, float]:
    """What a cell's ``train_time_s`` covers, from its log's ``rows``: ``timed_steps``,
    the optimizer steps this attempt ran (a resumed attempt starts at its checkpoint's
    step, ``resumed_from``), and ``eval_time_s``, the time its evaluations took inside it
    (logged ``eval_runtime`` after that step). A cell's time per training step is
    ``(train_time_s - eval_time_s) / timed_steps``."""
    start = checkpoint_step(resumed_from)
    evals = {
        r["step"]: r["eval_runtime"] for r in rows if "eval_runtime" in r and r["step"] > start
    }
    return {"timed_steps": steps - start, "eval_time_s": float(sum(evals.values()))}


SHARPNESS_OPTIONS = dict(samples=64, steps=1, m=0, hessian_iters=10, probes=4, grid=0)


def _sharpness(run_dir: Path) -> dict[str, float]:
    """SAM's own rho-sharpness estimate (rho 0.05, one step), the Hessian's top eigenvalue
    and trace, on 64 training examples of the cell's best model (a mixture cell's: drawn
    from its tasks at its mixing rates, ``samlm sharpness``'s sample)."""
    from ..analysis import measure_run

    r = measure_run(run_dir, progress=False, **SHARPNESS_OPTIONS)
    return {
        "sharpness": r["sharpness"]["sharpness"],
        "lambda_max": r["hessian"]["top_eigenvalue"]["value"],
        "trace": r["hessian"]["trace"]["value"],
    }


def _without_loss(scores: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in scores.items() if k != "loss"}


def _scores(task: str, result: dict[str, Any]) -> dict[str, Any]:
    """A finished cell's ``score``, ``validation_score`` and ``examples`` (and a mixture's
    ``per_task``) from ``samlm train``'s result."""
    if is_mixture(task):
        return mixture_scores(result)
    from ..metrics import task_score

    return {
        "score": task_score(_without_loss(result["metrics"])),
        "validation_score": task_score(_without_loss(result["validation_metrics"])),
        "examples": {
            **{
                k: result[k]
                for k in (
                    "train_examples",
                    "validation_examples",
                    "validation_from",
                    "reported_examples",
                )
            },
            "selected_by": result["main_metric"],  # the metric selection maximised
            # a user's classes, as its files name them (the model's id2label)
            **({"labels": result["label_names"]} if result.get("label_names") else {}),
            # how the data was split (a user's held-out test rows, BoolQ's cut)
            **({"note": result["data_note"]} if result.get("data_note") else {}),
        },
    }


@contextlib.contextmanager
def _one_bar() -> Iterator[None]:
    """The grid's bar alone: the libraries' bars and warnings off inside, as they were
    after (a cell may run in the driver's own process, as the tests run some)."""
    import transformers

    from ..hf_bars import hf_bars

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with hf_bars(False):
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def run_cell(
    spec: dict[str, Any],
    cell: dict[str, Any],
    folder: str,
    threads: int,
    setting: dict[str, Any] | None = None,
) -> dict:
    """Train one cell (in a worker process) at ``setting`` (learning rate, rho; a trial
    at its grid point) and return its results-store record."""
    with _one_bar():
        return _run_cell(spec, cell, folder, threads, setting)


def _run_cell(
    spec: dict[str, Any],
    cell: dict[str, Any],
    folder: str,
    threads: int,
    setting: dict[str, Any] | None,
) -> dict:
    import torch

    from ..pipeline import TrainConfig, train
    from ..training.clock import StepClock
    from .progress import training_callback

    torch.set_num_threads(threads)
    grid, c = load_spec(spec), Cell(**cell)
    out = Path(folder) / "cells" / c.folder
    record: dict[str, Any] = {"key": c.key, **cell, "run_dir": str(out.relative_to(folder))}
    start = time.perf_counter()
    try:
        options = grid.train_options(c, setting)
        cfg = TrainConfig(output=str(out), logging_steps=5, progress=False, **options)
        record["setting"] = {"learning_rate": cfg.learning_rate, "rho": options.get("rho")}
        clock = StepClock()
        # the final evaluations: the selected model's on the validation sample, and on the
        # reported examples where they are apart
        progress = training_callback(out, 2 if grid.validation_size else 1)
        result = train(cfg, resume=True, callbacks=[clock, progress], log=lambda *args: None)
        progress.finish()
        record.update(_finished(grid, c, cfg, options, result, out, clock))
        if not grid.keep_models:
            shutil.rmtree(out / "best", ignore_errors=True)
    except Exception as err:  # recorded; the grid goes on
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
    record["wall_time_s"] = time.perf_counter() - start
    gc.collect()  # the worker runs more cells: free this one's model and cached blocks
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return record


def _finished(grid, c: Cell, cfg, options: dict, result: dict, out: Path, clock) -> dict:
    """A finished cell's record fields: its setting, scores, steps and forward-backward
    passes, timing and curve (and a mixture's per-task scores, the sharpness if asked)."""
    from ..training.clock import machine_id

    # a SAM step costs its ascent (a fraction of the batch) on top of the plain pass
    extra = METHODS[c.method].get("ascent_fraction", 1.0) if c.method != "baseline" else 0
    rows = read_log(out / "log.jsonl")
    extra *= _sam_share(rows) if extra else 0
    steps = result["global_steps"]
    scored = _scores(c.task, result)
    fields: dict[str, Any] = dict(
        # the numbers it ran at: samlm train's default learning rate, rho, where not given
        # (a run finished before these fields: its metrics.json lacks them)
        setting={
            "learning_rate": result.get("learning_rate") or cfg.learning_rate,
            "rho": result.get("rho", options.get("rho")),
        },
        status="ok",
        score=scored["score"],
        metrics=_without_loss(result["metrics"]),
        validation_score=scored["validation_score"],
        examples=scored["examples"],
        steps=steps,
        resumed_from=result.get("resumed_from"),  # the checkpoint this attempt resumed
        passes=steps * (1 + extra),
        train_time_s=result["train_runtime_s"],
        **timing(rows, steps, result.get("resumed_from")),
        cpu_step_s=clock.cpu_per_step(),  # this attempt's steps' CPU time (CPU only)
        machine=machine_id(),  # where this attempt ran: step times pair only there
        curve=_curve(rows, result["main_metric"]),
        error=None,
    )
    if "per_task" in scored:  # a mixture's
        fields["per_task"] = scored["per_task"]
    if grid.sharpness and c.trial is None:
        fields["sharpness"] = _sharpness(out)
    return fields
