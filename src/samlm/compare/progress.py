"""The grid's progress in steps, from the cells in flight to the driver.

A cell counts its work in *steps*: its optimizer steps plus one per evaluation batch
(the evaluations during training and the final ones of the selected model). While it runs
it writes ``cells/<cell>/progress.json`` (:class:`CellProgress`, at most once a second,
written whole by a rename) wherever the backend put it; the driver, which sees the same
output folder locally and on Ray, polls those files (:class:`GridProgress`) and shows

- on a terminal, a bar of the grid's steps done over its total (trials and seeds; a cell
  not started yet counts what its stratum's first cell reported, else its step budget),
  with the time left at the measured rate, the stratum being run, and how many cells are
  done, running and left, refreshed every second;
- in a log (output not a terminal), one line per finished cell (score, validation score,
  steps, seconds, attempt) and a progress line every :data:`LOG_EVERY_S` seconds, without
  carriage returns.

A cell resumed from a checkpoint counts the steps before it as done from the start.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .cell import checkpoint_step
from .grid import Cell, GridSpec

PROGRESS_FILE = "progress.json"  # in a cell's folder: {"done", "total", "time", "pid"}
WRITE_EVERY_S = 1.0  # a cell writes its progress at most this often
POLL_S = 1.0  # the driver reads the cells' progress this often
LOG_EVERY_S = 180.0  # a progress line in a log this often


class CellProgress:
    """A cell's ``progress.json``: ``done`` of ``total`` steps, written whole (a rename)
    at most every :data:`WRITE_EVERY_S` seconds unless forced."""

    def __init__(self, cell_dir: str | Path):
        self.path = Path(cell_dir) / PROGRESS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last = -math.inf

    def write(self, done: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < WRITE_EVERY_S:
            return
        self._last = now
        entry = {"done": done, "total": max(total, done), "time": time.time(), "pid": os.getpid()}
        tmp = self.path.with_name(f".{PROGRESS_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(entry))
        os.replace(tmp, self.path)


def started(cell_dir: str | Path) -> None:
    """An attempt at a cell begins (before its model and data load): it counts as
    running, with no step of this attempt done yet."""
    CellProgress(cell_dir).write(0, 0, force=True)


def read_progress(cell_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((cell_dir / PROGRESS_FILE).read_text())
    except (OSError, ValueError):  # none yet
        return None


def training_callback(cell_dir: str | Path, final_evaluations: int):
    """A ``TrainerCallback`` that writes the cell's progress: optimizer steps plus
    evaluation batches, ``total = max_steps + (evaluations in training +
    final_evaluations) x batches per evaluation`` (known from the first evaluation on).
    Its ``finish()`` marks the cell's steps all done."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self):
            self.file = CellProgress(cell_dir)
            self.step = self.max_steps = self.planned = self.evals = self.batches = 0
            self.in_eval = 0

        def _write(self, force: bool = False) -> None:
            done = self.step + self.evals * self.batches + self.in_eval
            total = self.max_steps + (self.planned + final_evaluations) * self.batches
            self.file.write(done, total, force)

        def on_train_begin(self, args, state, control, **kwargs):
            self.max_steps, self.step = state.max_steps, state.global_step  # resumed: its step
            if args.eval_strategy == "steps":
                every = state.eval_steps or args.eval_steps
                self.planned, self.evals = -(-self.max_steps // every), self.step // every
            else:  # by epoch
                self.planned, self.evals = math.ceil(state.num_train_epochs), int(state.epoch)
            self._write(force=True)

        def on_step_end(self, args, state, control, **kwargs):
            self.step = state.global_step
            self._write()

        def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
            if not self.batches and eval_dataloader is not None:
                self.batches = len(eval_dataloader)
            self.in_eval += 1
            self._write()

        def on_evaluate(self, args, state, control, **kwargs):
            self.evals, self.in_eval = self.evals + 1, 0
            self._write(force=True)

        def finish(self) -> None:
            done = self.step + self.evals * self.batches
            self.file.write(done, done, force=True)

    return Progress()


def budget(spec: GridSpec, cell: Cell) -> int:
    """A cell's steps before any cell of its stratum has reported its own count: its
    optimizer step budget, ``max(min_steps, ceil(epochs x ceil(size / batch size)))`` (a
    full training set: ``min_steps``, at least 1)."""
    if not cell.size:
        return max(spec.min_steps, 1)
    return max(spec.min_steps, math.ceil(spec.epochs * math.ceil(cell.size / spec.batch_size)))


def _resumes_at(cell_dir: Path) -> int:
    """The step of a cell's latest checkpoint (0: none): where its next attempt starts."""
    found = [p.name for p in (cell_dir / "checkpoints").glob("checkpoint-*") if p.is_dir()]
    return max((checkpoint_step(name) for name in found), default=0)


def cell_line(record: dict[str, Any]) -> str:
    """A finished cell in one line: score, validation score, steps, seconds, attempt."""
    seconds = f"{record.get('wall_time_s') or 0:.0f} s"
    attempt = f"attempt {record.get('attempts', 1)}"
    if record.get("status") != "ok":
        return f"{record['key']}: FAILED ({record.get('error')}), {seconds}, {attempt}"
    validation = record.get("validation_score")
    validation = f"{validation:.2f}" if isinstance(validation, int | float) else "n/a"
    return (
        f"{record['key']}: score {record['score']:.2f}, validation {validation}, "
        f"{record.get('steps', 'n/a')} steps, {seconds}, {attempt}"
    )


class GridProgress:
    """The driver's view of the grid in steps (module docstring). Use as a context: it
    polls the cells' progress files every :data:`POLL_S` seconds in a thread; the runner
    says which stratum runs (:meth:`at`) and hands it every stored record
    (:meth:`finished`)."""

    def __init__(self, spec: GridSpec, folder: Path, records: dict[str, dict[str, Any]]):
        self.spec, self.folder = spec, folder
        self.cells = spec.trials() + spec.cells()
        self.finished_keys = {
            c.key for c in self.cells if records.get(c.key, {}).get("status") == "ok"
        }
        self.start: dict[str, int] = {}  # an unfinished cell's steps done before this run
        for c in self.cells:
            if c.key not in self.finished_keys:
                cell_dir = folder / "cells" / c.folder
                (cell_dir / PROGRESS_FILE).unlink(missing_ok=True)  # an earlier run's
                self.start[c.key] = _resumes_at(cell_dir)
        self.final: dict[str, int] = {}  # a finished cell's steps
        self.records = records
        self.where, self.gain = "", ""
        self.stream = sys.stderr
        self.terminal = self.stream.isatty()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        done, total, *_ = self.snapshot()
        self.initial, self.t0 = done, time.monotonic()
        self.logged = self.t0
        self.bar = tqdm(
            total=total,
            initial=done,
            unit="step",
            desc="compare",
            dynamic_ncols=True,
            file=self.stream,
            disable=not self.terminal,
        )
        if not self.terminal:
            self._say(f"{len(self.cells)} cells, about {total} steps ({done} done)")

    def snapshot(self) -> tuple[int, int, int, int, int]:
        """(steps done, steps in all, cells done, running, left), from the store's
        records and the cells' progress files."""
        per_stratum: dict[tuple[str, int], int] = {}  # steps a cell of the stratum reported
        state = []
        for c in self.cells:
            if c.key in self.finished_keys:
                steps = self._final(c)
                state.append((c, steps, steps, "done"))
            else:
                p = read_progress(self.folder / "cells" / c.folder)
                if p and p["total"]:
                    state.append((c, p["done"], p["total"], "running"))
                else:
                    state.append((c, self.start[c.key], 0, "running" if p else "left"))
                    continue
            stratum = (c.task, c.size)
            per_stratum[stratum] = max(per_stratum.get(stratum, 0), state[-1][2])
        done = total = 0
        counts = {"done": 0, "running": 0, "left": 0}
        for c, d, t, status in state:
            estimate = per_stratum.get((c.task, c.size)) or budget(self.spec, c)
            done, total = done + d, total + max(t or estimate, d)
            counts[status] += 1
        return done, total, counts["done"], counts["running"], counts["left"]

    def _final(self, c: Cell) -> int:
        if c.key not in self.final:
            p = read_progress(self.folder / "cells" / c.folder)
            steps = self.records.get(c.key, {}).get("steps") or 0
            self.final[c.key] = p["total"] if p and p["total"] else steps
        return self.final[c.key]

    def at(self, stratum: tuple[str, int], phase: str) -> None:
        """The stratum now running, and which of its phases ("trials", "seeds")."""
        phase = phase if self.spec.tune else "seeds"  # no trials to run
        self.where = f"{stratum[0]} n={stratum[1] or 'all'} {phase}"

    def finished(self, record: dict[str, Any], gain: str = "") -> None:
        """A cell's record stored: its line, and the bar moved on."""
        with self.lock:
            self.finished_keys.add(record["key"])
            self.final.pop(record["key"], None)
            self.gain = gain
            if self.terminal:
                self.bar.write(cell_line(record), file=self.stream)
            else:
                self._say(cell_line(record))
        self.refresh()

    def _eta(self, done: int, total: int) -> str:
        rate = (done - self.initial) / max(time.monotonic() - self.t0, 1e-9)
        return tqdm.format_interval((total - done) / rate) if rate > 0 else "unknown"

    def refresh(self, log: bool = False) -> None:
        """Read the cells' progress; move the bar, or in a log, write the progress line
        when ``log``."""
        with self.lock:
            done, total, n_done, running, left = self.snapshot()
            cells = f"cells {n_done} done, {running} running, {left} left"
            if self.terminal:
                self.bar.total = total
                if done >= self.bar.n:
                    self.bar.update(done - self.bar.n)
                else:  # a cell resumed behind what it had reported
                    self.bar.n = done
                parts = [self.where, cells, self.gain]
                self.bar.set_postfix_str(" | ".join(p for p in parts if p))
            elif log:
                share = f"{done / total:.0%}" if total else "0%"
                self._say(
                    f"{done}/{total} steps ({share}), {cells}, at {self.where or 'start'}, "
                    f"{self._eta(done, total)} left"
                    + (f"; gains so far: {self.gain}" if self.gain else "")
                )

    def _say(self, line: str) -> None:
        print(f"compare: {line}", file=self.stream, flush=True)

    def _poll(self) -> None:
        while not self.stop.wait(POLL_S):
            due = time.monotonic() - self.logged >= LOG_EVERY_S
            if due:
                self.logged = time.monotonic()
            self.refresh(log=due)

    def __enter__(self) -> GridProgress:
        self.thread = threading.Thread(target=self._poll, name="compare-progress", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.refresh(log=not self.terminal)
        self.bar.close()
