"""``samlm compare``: run the grid's cells on a backend (local processes or Ray), resumably.

The grid runs stratum by stratum ((task, size) in the spec's order): with tuning, the
stratum's trials first, then its seeds, each method at the setting :mod:`.tuning`
chooses. The backend takes the next cell whenever it has room for one (:class:`_Plan`):
an earlier stratum's cells before a later one's, and a stratum's seeds as soon as its
trials are all in, so a later stratum's trials fill the workers that would otherwise
wait on an earlier stratum's last cell. Finished cells (in ``results.jsonl``) are
skipped; a
cell in progress when the process died resumes from its last checkpoint; a cell that
fails is recorded with its error and the others go on (a failed cell is tried again by
the next ``samlm compare``). A finished cell's model is deleted once its result (and
its sharpness) is stored, unless ``keep_models``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import lock, store
from .backends import Job, LocalBackend, failed
from .cell import run_cell
from .grid import DEFAULTS, METHODS, Cell, GridSpec, group_key, saved_spec
from .progress import GridProgress
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


def _prepare(spec: GridSpec, folder: Path, overwrite: bool) -> None:
    if overwrite and folder.exists():
        for path in lock.contents(folder):  # all but the lock this run holds
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    saved = folder / SPEC_FILE
    if saved.is_file():
        previous = saved_spec(yaml.safe_load(saved.read_text()))
        now = spec.to_dict()
        diff = [
            k
            for k in now
            if k not in MAY_DIFFER
            and previous.get(k, DEFAULTS.get(k)) != now[k]  # a newer field: its default
            and not (k in GROWABLE and _grows(previous.get(k), now[k]))
        ]
        if diff:
            raise ValueError(
                f"{folder} holds a comparison with other settings ({', '.join(diff)}): "
                "use another --output, or --overwrite to replace it"
            )
    elif folder.exists() and lock.contents(folder):
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
    backend: Any = None,
    overwrite: bool = False,
    cell_fn: Callable[..., dict] = run_cell,
) -> dict[str, dict[str, Any]]:
    """Run every unfinished trial and cell, stratum by stratum, on ``backend`` (default:
    :class:`~.backends.LocalBackend` with ``workers`` processes), holding the folder's
    lock (:mod:`.lock`: a folder another run is writing raises ``FolderLocked``);
    returns the store's records."""
    if backend is not None and workers is not None:
        raise ValueError("workers is an option of the local backend: give one or the other")
    backend = backend or LocalBackend(workers)
    folder = Path(folder).absolute()  # the same path on every node
    # one writer per folder, from before anything is written; then connected (a bad
    # address writes nothing)
    with lock.hold(folder), backend.session():
        _prepare(spec, folder, overwrite)
        records = store.read(folder)
        with GridProgress(spec, folder, records) as progress:
            progress.gain = _running_gain(records)
            _Runner(spec, folder, records, backend, cell_fn, progress).run()
    return records


class _Runner:
    """The grid's driver: hands cells to the backend in :class:`_Plan`'s order, and alone
    stores their records."""

    def __init__(
        self,
        spec: GridSpec,
        folder: Path,
        records: dict[str, dict[str, Any]],
        backend: Any,
        cell_fn: Callable[..., dict],
        progress: GridProgress,
    ):
        self.spec, self.folder, self.records = spec, folder, records
        self.backend, self.cell_fn, self.progress = backend, cell_fn, progress

    def store(self, record: dict[str, Any]) -> None:
        store.append(self.folder, record)
        self.records[record["key"]] = record
        self.progress.finished(record, _running_gain(self.records))

    def run(self) -> None:
        """Every unfinished cell, each record stored as it comes."""
        plan = _Plan(self)
        with contextlib.closing(self.backend.run(self.cell_fn, plan)) as results:
            for cell, record in results:
                self.store(record)
                plan.returned.add(cell.key)
        if plan.left():  # the plan's invariant: whatever is not finished is handed out
            raise RuntimeError(f"samlm compare stopped with {plan.left()} cells never run")


class _Plan:
    """The grid's cells in the order they may start, for a backend that takes them one at a
    time (:meth:`take`) as it has room: stratum by stratum, a stratum's trials first, then
    its seeds once all its trials have returned, each method at the setting :func:`choose`
    gives it (a method with none, every trial failed, has its seeds recorded as failed)."""

    def __init__(self, runner: _Runner):
        self.runner, spec = runner, runner.spec
        self.trials = {
            s: [c for c in spec.trials() if (c.task, c.size) == s] for s in spec.strata()
        }
        self.phases = deque(
            (s, phase, cells)
            for s in spec.strata()
            for phase, cells in (
                ("trials", self.trials[s]),
                ("seeds", [c for c in spec.cells() if (c.task, c.size) == s]),
            )
        )
        self.handed: set[str] = set()  # cells given to the backend by this run
        self.returned: set[str] = set()  # of those, the ones whose record is stored
        self.settings: dict[tuple[str, int], dict[str, Any]] = {}  # a stratum's seeds'
        self.job_spec, self.job_folder = spec.to_dict(), str(runner.folder)  # every job's

    def _finished(self, cell: Cell) -> bool:
        return cell.key in self.returned or self._ok(cell)

    def _ok(self, cell: Cell) -> bool:
        return self.runner.records.get(cell.key, {}).get("status") == "ok"

    def left(self) -> int:
        """The cells neither finished nor handed out yet."""
        return sum(
            not self._ok(c) and c.key not in self.handed for *_, cells in self.phases for c in cells
        )

    def prune(self) -> None:
        """Drop the leading phases whose every cell has returned."""
        while self.phases and all(self._finished(c) for c in self.phases[0][2]):
            self.phases.popleft()

    def take(self) -> Job | None:
        """The next cell that may start now, as a job; None when none may (yet)."""
        self.prune()
        if self.phases:
            self.runner.progress.at(*self.phases[0][:2])
        for stratum, phase, cells in self.phases:
            if phase == "seeds" and stratum not in self.settings:
                if not all(self._finished(c) for c in self.trials[stratum]):
                    continue  # its trials still run; a later stratum's may start
                self.settings[stratum] = self._choose(cells)
            for cell in cells:
                if cell.key not in self.handed and not self._ok(cell):
                    self.handed.add(cell.key)
                    setting = self.settings.get(stratum, {}).get(group_key(*cell.group))
                    return Job(cell, self.job_spec, self.job_folder, setting)
        return None

    def _choose(self, cells: list[Cell]) -> dict[str, Any]:
        """The settings of a stratum's seeds, now that its trials are in; the seeds of a
        method with none are recorded as failed (and so never handed out)."""
        choices = choose(self.runner.spec, self.runner.records)
        for cell in cells:
            choice = choices[group_key(*cell.group)]
            if choice.setting is None and not self._ok(cell):
                self.handed.add(cell.key)
                self.runner.store(failed(cell, f"no setting to run at: {choice.error}"))
                self.returned.add(cell.key)
        return {k: c.setting for k, c in choices.items()}
