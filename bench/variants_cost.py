"""The variants' time per step over the baseline's, timed on one machine: the variants
grid's baseline cells came from the evidence grid, run on other machines, where the same
cell's CPU time per step differed up to 2.7x (the evidence grid's RTE cells), and a
cell's CPU time also depends on the cell that shared the machine with it.

    python bench/variants_cost.py --data-dir ../shared/data [--steps 30]

For each (task, size) stratum of the recorded variants grid, the baseline, SAM, GSAM
and LookSAM train ``--steps`` steps each at the cell's chosen setting (seed 0), one after
the other in this process on one thread (as the grid's cells run), and the mean CPU time
of their steps after the first three is appended to ``RECORD/timing.jsonl`` with this
machine's id. Run it alone on the machine (stop the grid). AE-SAM is not timed here: its
share of SAM steps over a few steps is not its share over a cell, so
``bench/variants_table.py`` estimates its time from its cells' share ``s`` as
``1 + s (t_SAM / t_baseline - 1)`` (a plain AE-SAM step is a baseline step, a SAM step a
SAM step, each plus its own bookkeeping, which ``bench/step_overhead.py`` puts at ~1%).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from samlm.compare import GridSpec, store
from samlm.compare.grid import Cell, group_key
from samlm.compare.tuning import choose
from samlm.training.clock import StepClock, machine_id

TIMING_FILE = "timing.jsonl"
METHODS = ("baseline", "sam", "gsam", "looksam")  # AE-SAM: see above
WARMUP = 3  # steps left out of the mean: the first steps allocate and warm caches


class WarmClock(StepClock):
    """:class:`StepClock` that starts counting after ``WARMUP`` steps."""

    def on_step_end(self, args, state, control, **kwargs):
        super().on_step_end(args, state, control, **kwargs)
        if state.global_step == WARMUP:
            self.steps, self.wall_s, self.cpu_s = 0, 0.0, 0.0


def time_steps(spec: GridSpec, task: str, size: int, method: str, setting, steps: int) -> float:
    """Mean CPU seconds of ``method``'s steps after the first ``WARMUP``, trained at
    ``setting`` for ``steps`` steps (seed 0) on the stratum's data."""
    import torch

    from samlm.pipeline import TrainConfig, train

    torch.set_num_threads(1)
    options = spec.train_options(Cell(task, size, method, 0), setting)
    options.update(max_steps=steps, min_steps=0, save_steps=10 * steps)
    out = Path(tempfile.mkdtemp(prefix="samlm-cost-"))
    try:
        cfg = TrainConfig(output=str(out / "run"), progress=False, logging_steps=steps, **options)
        clock = WarmClock()
        train(cfg, callbacks=[clock], log=lambda *args: None)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cpu = clock.cpu_per_step()
    if cpu is None:
        raise RuntimeError("no CPU time: this script times CPU training only")
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--steps", type=int, default=30)
    here = Path(__file__).parent
    parser.add_argument("--record", type=Path, default=here / "results" / "variants")
    args = parser.parse_args()
    if args.steps <= WARMUP:
        parser.error(f"--steps {args.steps} must be > {WARMUP} (the warm-up steps)")
    if not (args.record / store.SPEC_FILE).is_file():
        parser.exit(2, f"variants_cost.py: no compare store in {args.record}\n")
    loaded = yaml.safe_load((args.record / store.SPEC_FILE).read_text())
    spec = GridSpec(**{**loaded, "data_dir": args.data_dir})
    chosen = choose(spec, store.read(args.record))
    for task, size in spec.strata():
        for method in METHODS:
            choice = chosen.get(group_key(task, size, method))
            setting = choice.setting if choice is not None else None
            start = time.perf_counter()
            cpu = time_steps(spec, task, size, method, setting, args.steps)
            row = {"task": task, "size": size, "method": method, "machine": machine_id()}
            row.update(cpu_step_s=cpu, steps=args.steps - WARMUP, setting=setting)
            with (args.record / TIMING_FILE).open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{task} {size} {method}: {cpu:.3f} CPU s/step "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
