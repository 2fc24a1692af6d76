"""How long a tuned grid takes on the local backend with ``samlm compare``'s order against
the stratum-by-stratum barriers it replaced, on cells that only sleep.

    python bench/grid_schedule.py [--workers 2] [--scale 0.5] [--rounds 2]

The grid: SST-2 and CB at 250 and 100 examples (4 strata), baseline and SAM, tuned (4
trials each), 5 seeds: 72 cells. A cell sleeps ``scale`` seconds (baseline) or twice
that (SAM, as its step costs), times a seeded factor in [0.7, 1.3] of its own, so every
schedule runs the same cells for the same times. Schedules, alternated ``rounds`` times:

- ``plan``: ``samlm compare`` as it is (a worker takes the next cell that may start: an
  earlier stratum's first, a stratum's seeds once its trials are in);
- ``barrier``: the same plan allowed to hand out only the earliest unfinished phase's
  cells (each stratum's trials, then its seeds, each phase waiting for the last cell of
  the one before): the order before this plan.

Prints each run's wall time, the cells' total sleep over ``workers`` (no schedule beats
it), and the ratio barrier / plan per round. The workers are spawned processes (their
imports counted in each run alike).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import tempfile
import time
from collections import deque

from samlm.compare import GridSpec, compare, runner
from samlm.compare.backends import LocalBackend
from samlm.compare.grid import Cell

SPEC = dict(
    tasks=["glue/sst2", "superglue/cb"],
    sizes=[250, 100],
    methods=["baseline", "sam"],
    seeds=5,
    tune=True,
    validation_size=50,
)
SCALE = "SAMLM_BENCH_CELL_S"  # a baseline cell's seconds, for the workers


def seconds(cell: dict, scale: float) -> float:
    """A cell's sleep: ``scale`` (baseline) or ``2 scale`` (SAM), times its own seeded
    factor in [0.7, 1.3]."""
    key = Cell(**cell).key
    factor = 0.7 + 0.6 * random.Random(key).random()
    return scale * (2.0 if cell["method"] == "sam" else 1.0) * factor


def sleeping_cell(spec: dict, cell: dict, folder: str, threads: int, setting=None) -> dict:
    """A cell that sleeps :func:`seconds` (its scale from :data:`SCALE`, set in the
    environment the workers inherit) and records a fixed score."""
    time.sleep(seconds(cell, float(os.environ[SCALE])))
    score = 70.0 + (1.0 if cell["method"] == "sam" else 0.0)
    return {
        "key": Cell(**cell).key,
        **cell,
        "status": "ok",
        "score": score,
        "validation_score": score,
        "metrics": {"accuracy": score},
        "steps": 10,
        "passes": 10.0,
        "train_time_s": 1.0,
        "wall_time_s": 1.0,
        "curve": [],
        "error": None,
    }


class Barrier(runner._Plan):
    """The plan, handing out only the earliest unfinished phase's cells."""

    def take(self):
        self.prune()
        phases, self.phases = self.phases, deque(list(self.phases)[:1])
        try:
            return super().take()
        finally:
            self.phases = phases


def run(schedule: str, workers: int, scale: float) -> float:
    """One grid's wall time (s) under ``schedule``, in a fresh folder."""
    plan = runner._Plan
    runner._Plan = Barrier if schedule == "barrier" else plan
    try:
        with tempfile.TemporaryDirectory() as folder:
            os.environ[SCALE] = str(scale)  # before the workers start
            spec = GridSpec(**SPEC)
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # the grid's progress lines
                compare(spec, folder, backend=LocalBackend(workers), cell_fn=sleeping_cell)
            return time.perf_counter() - start
    finally:
        runner._Plan = plan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.5, help="a baseline cell's seconds")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    spec = GridSpec(**SPEC)
    cells = spec.trials() + spec.cells()
    bound = sum(seconds(c.__dict__, args.scale) for c in cells) / args.workers
    print(
        f"{len(cells)} cells, {args.workers} workers; their sleep over the workers: {bound:.1f} s"
    )
    for r in range(args.rounds):
        order = ["plan", "barrier"] if r % 2 == 0 else ["barrier", "plan"]
        wall = {s: run(s, args.workers, args.scale) for s in order}
        print(
            f"round {r + 1}: plan {wall['plan']:.1f} s, barrier {wall['barrier']:.1f} s, "
            f"barrier / plan {wall['barrier'] / wall['plan']:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
