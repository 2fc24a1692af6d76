"""Tuning: every method gets the same number of trials on the validation sample, and its
seeds run at its own best setting; settings recorded by an earlier tuning are reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samlm.compare import GridSpec, compare
from samlm.compare.grid import LORA_LR_SCALE, TUNE_GRID, TUNE_SEED
from samlm.compare.tuning import RECORDED, TUNED, UNTUNED, choose

from .fake import InlineBackend


def tuning_cell(spec, cell, folder, threads, setting=None):
    """Validation score peaks at lr 2e-4 for the baseline and at rho 0.02 for SAM."""
    grid = GridSpec(**spec)
    from samlm.compare.grid import Cell

    c = Cell(**cell)
    options = grid.train_options(c, setting)
    with (Path(folder) / "calls.jsonl").open("a") as f:
        f.write(json.dumps({**cell, "lr": options["learning_rate"], "rho": options.get("rho")}))
        f.write("\n")
    lr, rho = options["learning_rate"] or 1e-4, options.get("rho") or 0.0
    val = 70 - abs(lr - 2e-4) * 1e4 - abs(rho - 0.02) * 100
    return {
        "key": c.key,
        **cell,
        "status": "ok",
        "score": val + c.seed,
        "validation_score": val,
        "metrics": {"accuracy": val + c.seed},
        "steps": 10,
        "passes": 10.0,
        "train_time_s": 1.0,
        "wall_time_s": 1.0,
        "curve": [],
        "setting": {"learning_rate": lr, "rho": options.get("rho")},
        "error": None,
    }


SPEC = dict(
    tasks=["glue/sst2"],
    sizes=[100],
    methods=["baseline", "sam", "asam"],
    seeds=2,
    validation_size=50,
    tune=True,
)


def _calls(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "calls.jsonl").read_text().splitlines()]


def test_every_method_gets_the_same_number_of_trials():
    assert len({len(points) for points in TUNE_GRID.values()}) == 1
    spec = GridSpec(**{**SPEC, "methods": list(TUNE_GRID)})
    counts = {m: sum(t.method == m for t in spec.trials()) for m in TUNE_GRID}
    assert len(set(counts.values())) == 1 and counts["baseline"] == len(TUNE_GRID["baseline"])
    assert all(t.seed == TUNE_SEED for t in spec.trials())


def test_a_lora_grid_tunes_at_its_own_learning_rates():
    """--peft lora: the same trials, each at LORA_LR_SCALE times the learning rate."""
    full, lora = GridSpec(**SPEC), GridSpec(**SPEC, peft="lora")
    assert len(full.trials()) == len(lora.trials())
    for method in SPEC["methods"]:
        assert full.tune_grid(method) == TUNE_GRID[method]
        for a, b in zip(full.tune_grid(method), lora.tune_grid(method), strict=True):
            assert b["learning_rate"] == pytest.approx(a["learning_rate"] * LORA_LR_SCALE)
            assert {k: v for k, v in a.items() if k != "learning_rate"} == {
                k: v for k, v in b.items() if k != "learning_rate"
            }
    trial = next(t for t in lora.trials() if t.method == "sam")
    assert lora.train_options(trial)["learning_rate"] == pytest.approx(1e-3)


def test_seeds_run_at_each_methods_best_trial(tmp_path):
    records = compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=tuning_cell)
    calls = _calls(tmp_path)
    trials = [c for c in calls if c["trial"] is not None]
    assert len(trials) == sum(len(TUNE_GRID[m]) for m in SPEC["methods"])
    assert calls.index(trials[-1]) < min(i for i, c in enumerate(calls) if c["trial"] is None)
    seeds = {(c["method"], c["seed"]): (c["lr"], c["rho"]) for c in calls if c["trial"] is None}
    assert seeds[("baseline", 0)] == seeds[("baseline", 1)] == (2e-4, None)
    assert seeds[("sam", 0)] == (2e-4, 0.02)
    assert seeds[("asam", 1)] == (2e-4, 0.5)  # the nearest of ASAM's radii to 0.02
    assert all(r["status"] == "ok" for r in records.values())
    # resumed: nothing runs again
    before = len(calls)
    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=tuning_cell)
    assert len(_calls(tmp_path)) == before


def test_recorded_and_untuned_settings():
    spec = GridSpec(
        tasks=["glue/sst2"],
        sizes=[250],
        methods=["baseline", "sam"],
        settings={"glue/sst2|250|sam": {"learning_rate": 2e-4, "rho": 0.02}},
        settings_source="bench/results/x.md",
        learning_rate=1e-4,
    )
    choices = choose(spec, {})
    assert choices["glue/sst2|250|sam"].setting == {"learning_rate": 2e-4, "rho": 0.02}
    assert choices["glue/sst2|250|sam"].source == f"{RECORDED} (bench/results/x.md)"
    assert choices["glue/sst2|250|baseline"].setting == {"learning_rate": 1e-4}
    assert choices["glue/sst2|250|baseline"].source == UNTUNED


def test_a_method_whose_trials_all_failed_records_its_cells_as_failed(tmp_path):
    def cell_fn(spec, cell, folder, threads, setting=None):
        if cell["method"] == "sam" and cell["trial"] is not None:
            raise RuntimeError("diverged")
        return tuning_cell(spec, cell, folder, threads, setting)

    records = compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=cell_fn)
    sam = [r for k, r in records.items() if r["method"] == "sam" and "trial" not in k]
    assert sam and all("every tuning trial failed" in r["error"] for r in sam)
    assert choose(GridSpec(**SPEC), records)["glue/sst2|100|baseline"].source == TUNED


def test_tuning_needs_a_validation_sample_and_keeps_the_tuning_seed_apart():
    with pytest.raises(ValueError, match="validation_size"):
        GridSpec(**{**SPEC, "validation_size": None})
    with pytest.raises(ValueError, match="tuning seed"):
        GridSpec(**{**SPEC, "seeds": 2, "seed_offset": TUNE_SEED - 1})


def test_step_budget_and_a_cells_options():
    spec = GridSpec(
        tasks=["glue/sst2"], sizes=[250, 0], min_steps=200, save_steps=50, validation_size=500
    )
    from samlm.compare.grid import Cell

    trial = spec.train_options(Cell("glue/sst2", 250, "sam", TUNE_SEED, trial=3))
    assert (trial["learning_rate"], trial["rho"]) == (2e-4, 0.05)
    assert (trial["min_steps"], trial["save_steps"], trial["validation_size"]) == (200, 50, 500)
    seed = spec.train_options(Cell("glue/sst2", 250, "asam", 0), {"learning_rate": 2e-4})
    assert (seed["learning_rate"], seed["rho"], seed["optimizer"]) == (2e-4, 0.5, "asam")


def test_task_sizes_replace_the_grids_sizes_for_one_task():
    spec = GridSpec(
        tasks=["glue/sst2", "superglue/cb"],
        sizes=[250, 100],
        task_sizes={"superglue/cb": [100]},
        methods=["baseline", "sam"],
        seeds=1,
        validation_size=50,
        tune=True,
    )
    assert spec.strata() == [("glue/sst2", 250), ("glue/sst2", 100), ("superglue/cb", 100)]
    assert {(c.task, c.size) for c in spec.cells()} == set(spec.strata())
    assert len(spec.trials()) == 3 * (len(TUNE_GRID["baseline"]) + len(TUNE_GRID["sam"]))
    with pytest.raises(ValueError, match="task_sizes"):
        GridSpec(tasks=["glue/sst2"], sizes=[10], task_sizes={"superglue/rte": [10]})
