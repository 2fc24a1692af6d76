"""A stand-in for run_cell: deterministic scores, no training, a log of calls; and what
the backend tests ask of worker processes."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from samlm.compare.backends import attempt, queue
from samlm.compare.grid import Cell
from samlm.compare.progress import CellProgress

SCORES = {
    **{"baseline": 70.0, "sam": 72.0, "sam_quarter": 71.0, "asam": 69.0, "tasksam": 70.5},
    **{"gsam": 71.5, "eigensam": 69.5},
}


def fake_cell(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    with (Path(folder) / "calls.jsonl").open("a") as f:
        f.write(json.dumps(cell) + "\n")
    if cell["task"] == "glue/cola" and cell["method"] == "asam":
        raise RuntimeError("boom")  # a failing cell
    key = f"{cell['task']}|{cell['size']}|{cell['method']}|{cell['seed']}"
    score = SCORES[cell["method"]] + cell["seed"] * (1.0 if cell["method"] == "sam" else 0.5)
    return {
        "key": key,
        **cell,
        "status": "ok",
        "score": score,
        "metrics": {"accuracy": score},
        "steps": 10,
        "passes": 10.0 if cell["method"] == "baseline" else 20.0,
        "train_time_s": 10.0 if cell["method"] == "baseline" else 19.0,
        "wall_time_s": 1.0,
        "curve": [[5, score - 1], [10, score]],
        "error": None,
        "run_dir": "cells/x",
    }


def fake_cell_no_asam(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    """Like :func:`fake_cell`, but every asam cell fails."""
    if cell["method"] == "asam":
        raise RuntimeError("asam always fails")
    return fake_cell(spec, cell, folder, threads, setting)


def failing_cell(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    """Every cell fails."""
    raise RuntimeError("nothing works")


def mixture_cell(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    """:func:`fake_cell`, but a mixture ``a+b`` scores its tasks 60 + seed and 80 + seed
    (sam: a point more each), its score their mean."""
    record = fake_cell(spec, cell, folder, threads, setting)
    if "+" in cell["task"]:
        a, b = cell["task"].split("+")
        bump = 1.0 if cell["method"] == "sam" else 0.0
        per_task = {a: 60.0 + cell["seed"] + bump, b: 80.0 + cell["seed"] + bump}
        record.update(score=sum(per_task.values()) / 2, per_task=per_task)
    return record


class InlineBackend:
    """Cells one after another in this process, for tests whose cells are fakes: no worker
    processes to spawn (each costs seconds of imports)."""

    name = "inline"

    @contextlib.contextmanager
    def session(self):
        yield

    def run(self, cell_fn, jobs):
        jobs = queue(jobs)
        while (j := jobs.take()) is not None:
            yield j.cell, attempt(*j.arguments(cell_fn, 1))


def dying_cell(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    """:func:`fake_cell`, but the worker process running seed 1's sam cell dies."""
    if cell["method"] == "sam" and cell["seed"] == 1:
        import os

        os._exit(3)
    return fake_cell(spec, cell, folder, threads, setting)


def alive(pid: int) -> bool:
    """Whether a process with this id exists (a killed worker's goes away)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def slow_cell(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    """:func:`fake_cell` after ``$SAMLM_FAKE_STEPS`` (default 10) steps of
    ``$SAMLM_FAKE_STEP_S`` seconds (default 0.3), checkpointed every 2 steps as the Trainer
    does (``checkpoints/checkpoint-N/trainer_state.json``, written last) and resumed from the
    last one; the record says which (``resumed_from``). For commands run as a user runs them."""
    import os
    import time

    out = Path(folder) / "cells" / Cell(**cell).folder / "checkpoints"
    done = [
        int(p.name[11:]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").is_file()
    ]
    start = max(done, default=0)
    for step in range(start + 1, int(os.environ.get("SAMLM_FAKE_STEPS", "10")) + 1):
        time.sleep(float(os.environ.get("SAMLM_FAKE_STEP_S", "0.3")))
        if step % 2 == 0:
            (out / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
            (out / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    record = fake_cell(spec, cell, folder, threads, setting)
    return {**record, "resumed_from": f"checkpoint-{start}" if start else None}


STEPS, STEP_S = 20, 0.05  # a stepping cell's steps, and the seconds each takes
LOADING_S = 0.5  # before its first step: what a cell's imports and loading take


def stepping_cell(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    """:func:`fake_cell` after :data:`LOADING_S` seconds and :data:`STEPS` steps of
    :data:`STEP_S` seconds, each written to the cell's progress file as a training cell
    writes it."""
    progress = CellProgress(Path(folder) / "cells" / Cell(**cell).folder)
    time.sleep(LOADING_S)
    for step in range(STEPS + 1):
        time.sleep(STEP_S)
        progress.write(step, STEPS, force=True)
    record = fake_cell(spec, cell, folder, threads, setting)
    return {**record, "steps": STEPS, "validation_score": record["score"] - 0.5}
