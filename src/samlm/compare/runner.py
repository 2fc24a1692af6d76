"""``samlm compare``: run the grid's cells in parallel worker processes, resumably.

The grid runs stratum by stratum ((task, size) in the spec's order): with tuning, the
stratum's trials first, then its seeds, each method at the setting :mod:`.tuning`
chooses. Finished cells (in ``results.jsonl``) are skipped; a
cell in progress when the process died resumes from its last checkpoint; a cell that
fails is recorded with its error and the others go on (a failed cell is tried again by
the next ``samlm compare``). A finished cell's model is deleted once its result (and
its sharpness) is stored, unless ``keep_models``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from . import store
from .grid import METHODS, Cell, GridSpec, group_key
from .store import SPEC_FILE
from .tuning import choose

# may change between a run and its resumption: where the same data lies, and what
# happens to models and measurements of cells not finished yet
MAY_DIFFER = ("data_dir", "keep_models")
# may grow: a finished grid extended by tasks, sizes, methods or seeds keeps its cells
GROWABLE = ("tasks", "sizes", "task_sizes", "methods", "seeds")


def _grows(before: Any, after: Any) -> bool:
    if isinstance(before, list) and isinstance(after, list):
        return set(before) <= set(after)
    if isinstance(before, dict | None) and isinstance(after, dict | None):
        before, after = before or {}, after or {}
        return all(k in after and _grows(v, after[k]) for k, v in before.items())
    return isinstance(before, int) and isinstance(after, int) and before <= after


def _sam_share(log: Path) -> float:
    """The share of SAM steps over the run, from the logged ``sam_steps`` of each logging
    window (1.0 when nothing was logged: every step a SAM step)."""
    if not log.is_file():
        return 1.0
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    shares = [r["sam_steps"] for r in rows if "sam_steps" in r]
    return sum(shares) / len(shares) if shares else 1.0


def _curve(log: Path, metric: str) -> list[list[float]]:
    if not log.is_file():
        return []
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [[r["step"], r[f"eval_{metric}"]] for r in rows if f"eval_{metric}" in r]


SHARPNESS_OPTIONS = dict(samples=64, steps=1, m=0, hessian_iters=10, probes=4, grid=0)


def _sharpness(run_dir: Path) -> dict[str, float]:
    """SAM's own rho-sharpness estimate (rho 0.05, one step), the Hessian's top eigenvalue
    and trace, on 64 training examples of the cell's best model."""
    from ..analysis import measure_run

    r = measure_run(run_dir, progress=False, **SHARPNESS_OPTIONS)
    return {
        "sharpness": r["sharpness"]["sharpness"],
        "lambda_max": r["hessian"]["top_eigenvalue"]["value"],
        "trace": r["hessian"]["trace"]["value"],
    }


def run_cell(
    spec: dict[str, Any],
    cell: dict[str, Any],
    folder: str,
    threads: int,
    setting: dict[str, Any] | None = None,
) -> dict:
    """Train one cell (in a worker process) at ``setting`` (learning rate, rho; a trial
    at its grid point) and return its results-store record."""
    import datasets
    import torch
    import transformers

    from ..metrics import task_score
    from ..pipeline import TrainConfig, train

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()  # one progress bar: the grid's
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    grid, c = GridSpec(**spec), Cell(**cell)
    out = Path(folder) / "cells" / c.folder
    record: dict[str, Any] = {"key": c.key, **cell, "run_dir": str(out.relative_to(folder))}
    start = time.perf_counter()
    try:
        options = grid.train_options(c, setting)
        cfg = TrainConfig(output=str(out), logging_steps=5, progress=False, **options)
        record["setting"] = {"learning_rate": cfg.learning_rate, "rho": options.get("rho")}
        result = train(cfg, resume=True, log=lambda *args: None)
        metrics = {k: v for k, v in result["metrics"].items() if k != "loss"}
        steps = result["global_steps"]
        # a SAM step costs its ascent (a fraction of the batch) on top of the plain pass
        extra = METHODS[c.method].get("ascent_fraction", 1.0) if c.method != "baseline" else 0
        extra *= _sam_share(out / "log.jsonl") if extra else 0
        record.update(
            status="ok",
            score=task_score(metrics),
            metrics=metrics,
            validation_score=task_score(
                {k: v for k, v in result["validation_metrics"].items() if k != "loss"}
            ),
            examples={
                k: result[k]
                for k in (
                    "train_examples",
                    "validation_examples",
                    "validation_from",
                    "reported_examples",
                )
            },
            steps=steps,
            passes=steps * (1 + extra),
            train_time_s=result["train_runtime_s"],
            curve=_curve(out / "log.jsonl", result["main_metric"]),
            error=None,
        )
        if grid.sharpness and c.trial is None:
            record["sharpness"] = _sharpness(out)
        if not grid.keep_models:
            shutil.rmtree(out / "best", ignore_errors=True)
    except Exception as err:  # recorded; the grid goes on
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
    record["wall_time_s"] = time.perf_counter() - start
    return record


def _prepare(spec: GridSpec, folder: Path, overwrite: bool) -> None:
    if overwrite and folder.exists():
        shutil.rmtree(folder)
    saved = folder / SPEC_FILE
    if saved.is_file():
        previous = yaml.safe_load(saved.read_text())
        now = spec.to_dict()
        diff = [
            k
            for k in now
            if k not in MAY_DIFFER
            and previous.get(k) != now[k]
            and not (k in GROWABLE and _grows(previous.get(k), now[k]))
        ]
        if diff:
            raise ValueError(
                f"{folder} holds a comparison with other settings ({', '.join(diff)}): "
                "use another --output, or --overwrite to replace it"
            )
    elif folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not a samlm compare folder")
    folder.mkdir(parents=True, exist_ok=True)
    saved.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))


def _running_gain(records: dict[str, dict[str, Any]]) -> str:
    """The mean paired gain of each method so far, over every finished pair of seeds."""
    records = {k: r for k, r in records.items() if r.get("trial") is None}
    base = {
        (r["task"], r["size"], r["seed"]): r["score"]
        for r in records.values()
        if r["method"] == "baseline" and r["status"] == "ok"
    }
    parts = []
    for method in METHODS:
        if method == "baseline":
            continue
        d = [
            r["score"] - base[(r["task"], r["size"], r["seed"])]
            for r in records.values()
            if r["method"] == method
            and r["status"] == "ok"
            and (r["task"], r["size"], r["seed"]) in base
        ]
        if d:
            parts.append(f"{method} {sum(d) / len(d):+.1f}")
    return ", ".join(parts)


def compare(
    spec: GridSpec,
    folder: str | Path,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    cell_fn: Callable[..., dict] = run_cell,
) -> dict[str, dict[str, Any]]:
    """Run every unfinished trial and cell, stratum by stratum; returns the store's records."""
    folder = Path(folder)
    _prepare(spec, folder, overwrite)
    records = store.read(folder)
    everything = spec.trials() + spec.cells()
    cores = os.cpu_count() or 1
    workers = max(1, workers or cores)
    bar = tqdm(
        total=len(everything),
        initial=sum(records.get(c.key, {}).get("status") == "ok" for c in everything),
        unit="cell",
        desc="compare",
        dynamic_ncols=True,
    )
    bar.set_postfix_str(_running_gain(records))
    for stratum in spec.strata():  # stratum by stratum: its trials, then its seeds
        trials = [c for c in spec.trials() if (c.task, c.size) == stratum]
        _run(spec, folder, trials, {}, records, workers, cores, cell_fn, bar)
        cells = [c for c in spec.cells() if (c.task, c.size) == stratum]
        _run_seeds(spec, folder, cells, records, workers, cores, cell_fn, bar)
    bar.close()
    return records


def _failed(cell: Cell, error: str) -> dict[str, Any]:
    return {"key": cell.key, **cell.__dict__, "status": "failed", "error": error}


def _store(folder: Path, records: dict[str, dict[str, Any]], record: dict[str, Any]) -> None:
    store.append(folder, record)
    records[record["key"]] = record


def _run_seeds(
    spec: GridSpec,
    folder: Path,
    cells: list[Cell],
    records: dict[str, dict[str, Any]],
    workers: int,
    cores: int,
    cell_fn: Callable[..., dict],
    bar: tqdm,
) -> None:
    """Run ``cells`` at the settings :func:`choose` gives; a (task, size, method) with no
    setting (every trial failed) records its cells as failed."""
    choices = choose(spec, records)
    settings = {k: c.setting for k, c in choices.items()}
    runnable = []
    for cell in cells:
        choice = choices[group_key(*cell.group)]
        if choice.setting is not None:
            runnable.append(cell)
        elif records.get(cell.key, {}).get("status") != "ok":
            _store(folder, records, _failed(cell, f"no setting to run at: {choice.error}"))
    _run(spec, folder, runnable, settings, records, workers, cores, cell_fn, bar)


def _run(
    spec: GridSpec,
    folder: Path,
    cells: list[Cell],
    settings: dict[str, dict[str, Any] | None],
    records: dict[str, dict[str, Any]],
    workers: int,
    cores: int,
    cell_fn: Callable[..., dict],
    bar: tqdm,
) -> None:
    """Run the unfinished ``cells`` in worker processes, storing each record."""
    todo = [c for c in cells if records.get(c.key, {}).get("status") != "ok"]
    if not todo:
        return
    workers = min(workers, len(todo))
    threads = max(1, cores // workers)
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {
            pool.submit(
                cell_fn,
                spec.to_dict(),
                c.__dict__,
                str(folder),
                threads,
                settings.get(group_key(*c.group)),
            ): c
            for c in todo
        }
        for future in as_completed(futures):
            cell = futures[future]
            try:
                record = future.result()
            except Exception as err:  # the worker itself died
                record = _failed(cell, f"worker died: {type(err).__name__}: {err}")
            _store(folder, records, record)
            bar.update(1)
            bar.set_postfix_str(_running_gain(records))
