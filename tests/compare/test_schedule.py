"""The grid's order: a stratum's seeds start only once all its trials are in, and a later
stratum's trials fill the room an earlier stratum's last cells leave (no barrier between
strata)."""

from __future__ import annotations

import contextlib
from collections import deque

from samlm.compare import GridSpec, compare
from samlm.compare.backends import attempt, queue

from .test_tuning import tuning_cell

SPEC = dict(
    tasks=["glue/sst2"],
    sizes=[250, 100],
    methods=["baseline", "sam"],
    seeds=3,
    validation_size=50,
    tune=True,
)


class TwoSlots:
    """A backend with room for two cells, which return in the order they started. It logs
    each cell as taken (with how many records had returned by then) and as returned."""

    name = "two slots"

    def __init__(self):
        self.taken: list[tuple[str, int]] = []
        self.returned: list[str] = []

    @contextlib.contextmanager
    def session(self):
        yield

    def run(self, cell_fn, jobs):
        jobs, running = queue(jobs), deque()
        while True:
            while len(running) < 2 and (j := jobs.take()) is not None:
                self.taken.append((j.cell.key, len(self.returned)))
                running.append(j)
            if not running:
                return
            j = running.popleft()
            self.returned.append(j.cell.key)
            yield j.cell, attempt(*j.arguments(cell_fn, 1))


def test_seeds_wait_for_their_trials_and_the_next_stratums_trials_do_not_wait(tmp_path):
    spec = GridSpec(**SPEC)
    backend = TwoSlots()
    records = compare(spec, tmp_path, backend=backend, cell_fn=tuning_cell)
    cells = spec.trials() + spec.cells()
    assert {r["status"] for r in records.values()} == {"ok"} and len(records) == len(cells)
    assert sorted(key for key, _ in backend.taken) == sorted(c.key for c in cells)  # each once
    taken = dict(backend.taken)
    back = {key: i + 1 for i, key in enumerate(backend.returned)}  # returned before it: i + 1
    for stratum in spec.strata():
        trials = [c.key for c in spec.trials() if (c.task, c.size) == stratum]
        seeds = [c.key for c in spec.cells() if (c.task, c.size) == stratum]
        assert min(taken[s] for s in seeds) >= max(back[t] for t in trials), stratum
    first, second = spec.strata()
    last_seed_back = max(back[c.key] for c in spec.cells() if (c.task, c.size) == first)
    second_trials = [c.key for c in spec.trials() if (c.task, c.size) == second]
    assert min(taken[t] for t in second_trials) < last_seed_back  # it did not wait
    # both slots busy whenever a cell was free to start: only the second stratum's seeds
    # (waiting on its own trials) and the grid's end leave one idle
    idle = [i for i in range(len(backend.returned)) if _running_after(backend, i) < 2]
    assert len(idle) <= 2, idle


def _running_after(backend: TwoSlots, returns: int) -> int:
    """How many cells were running once ``returns`` records had come back and the backend
    had taken what it could."""
    started = sum(n <= returns for _, n in backend.taken)
    return started - returns


def test_a_method_whose_trials_all_failed_has_its_seeds_recorded_failed(tmp_path):
    def sam_trials_fail(spec, cell, folder, threads, setting=None):
        if cell["method"] == "sam" and cell["trial"] is not None:
            raise RuntimeError("diverged")
        return tuning_cell(spec, cell, folder, threads, setting)

    spec = GridSpec(**{**SPEC, "sizes": [100]})
    backend = TwoSlots()
    records = compare(spec, tmp_path, backend=backend, cell_fn=sam_trials_fail)
    seeds = {c.key: records[c.key] for c in spec.cells()}
    assert {k: r["status"] for k, r in seeds.items() if r["method"] == "sam"} == {
        c.key: "failed" for c in spec.cells() if c.method == "sam"
    }
    assert all("no setting to run at" in r["error"] for r in seeds.values() if r["method"] == "sam")
    assert {r["status"] for r in seeds.values() if r["method"] == "baseline"} == {"ok"}
    assert not any(key in dict(backend.taken) for key in seeds if "|sam|" in key)  # never run
