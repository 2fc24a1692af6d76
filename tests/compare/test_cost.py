"""The report's time per step: evaluations left out, resumed cells timed from their
checkpoint, a stratum's median so one paused or contended cell does not move it, CPU time
where both cells of a pair recorded it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from samlm.compare import GridSpec, compare
from samlm.compare.cell import read_log, timing
from samlm.compare.report import analyse, step_seconds

from .fake import InlineBackend, fake_cell


def _log(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_timing_counts_this_attempts_steps_and_evaluations(tmp_path):
    rows = [{"step": s, "eval_runtime": 2.0 + s / 50} for s in (50, 100, 150, 200)]
    rows += [{"step": 200, "selected_runtime": 9.0}, {"step": 200, "loss": 0.1}]
    log = _log(tmp_path / "log.jsonl", rows)
    assert timing(read_log(log), 200, None) == {"timed_steps": 200, "eval_time_s": 3 + 4 + 5 + 6}
    # resumed at step 100: the evaluations at 50 and 100 were the first attempt's
    assert timing(read_log(log), 200, "checkpoint-100") == {"timed_steps": 100, "eval_time_s": 11.0}
    assert timing(read_log(tmp_path / "absent.jsonl"), 200, None) == {
        "timed_steps": 200,
        "eval_time_s": 0,
    }


def test_step_seconds():
    new = {"steps": 200, "timed_steps": 100, "train_time_s": 120.0, "eval_time_s": 20.0}
    assert step_seconds(new) == pytest.approx(1.0)
    # records from before the timing fields: steps since the resumed checkpoint
    assert step_seconds(
        {"steps": 200, "train_time_s": 50.0, "resumed_from": "checkpoint-150"}
    ) == pytest.approx(1.0)
    assert step_seconds({"steps": 200, "train_time_s": 100.0}) == pytest.approx(0.5)
    assert step_seconds({"steps": 200, "timed_steps": 0, "train_time_s": 1.0}) is None
    assert step_seconds({"steps": 200, "train_time_s": 30.0, "eval_time_s": 33.0}) is None


def _timed_cell(spec, cell, folder, threads, setting=None):
    """fake_cell, timed: baseline 1 s per step, sam 2 s, plus 50 s of evaluation; the
    baseline's seed 1 was paused for an hour, sam's seed 2 resumed at step 5."""
    record = fake_cell(spec, cell, folder, threads, setting)
    per_step = 1.0 if cell["method"] == "baseline" else 2.0
    record.update(steps=10, timed_steps=10, eval_time_s=50.0, train_time_s=10 * per_step + 50)
    if cell["method"] == "baseline" and cell["seed"] == 1:
        record["train_time_s"] += 3600.0
    if cell["method"] == "sam" and cell["seed"] == 2:
        record.update(timed_steps=5, train_time_s=5 * per_step + 50)
    return record


def test_report_ratio_leaves_out_evaluations_resumes_and_outliers(tmp_path):
    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=["baseline", "sam"], seeds=3)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=_timed_cell)
    assert analyse(tmp_path).cost["sam"]["time_per_step_vs_baseline"] == pytest.approx(2.0)


def _cpu_timed_cell(spec, cell, folder, threads, setting=None):
    """_timed_cell with the steps' CPU time recorded (sam 1.5x the baseline's), except
    for the baseline's seed 0 (a record from before ``cpu_step_s``)."""
    record = _timed_cell(spec, cell, folder, threads, setting)
    if not (cell["method"] == "baseline" and cell["seed"] == 0):
        record["cpu_step_s"] = 0.4 if cell["method"] == "baseline" else 0.6
    return record


def test_report_ratio_takes_cpu_time_where_both_cells_of_a_pair_have_it(tmp_path):
    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=["baseline", "sam"], seeds=3)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=_cpu_timed_cell)
    a = analyse(tmp_path)
    # seed 0: not timed (only one of its cells has CPU time: they did not run side by
    # side); seeds 1, 2: CPU 1.5 (seed 1's baseline was paused for an hour: its wall time
    # would give 0.03)
    assert a.step_cpu["baseline"][("glue/sst2", 100)] == {1: 0.4, 2: 0.4}
    assert a.pair_ratio("sam", ("glue/sst2", 100), 0) is None
    assert a.time_ratio("sam") == pytest.approx(1.5)


def test_time_ratio_pairs_seeds_over_chosen_strata():
    from samlm.compare.report import Analysis

    a = Analysis(GridSpec(tasks=["glue/sst2"], sizes=[100]))
    a.step_times = {
        "baseline": {("a", 1): {0: 1.0, 1: 4.0, 2: 1.0}, ("b", 1): {0: 2.0}},
        "sam": {("a", 1): {0: 2.0, 1: 8.0, 2: 2.0, 3: 1.0}, ("b", 1): {0: 3.0}, ("c", 1): {0: 5.0}},
    }
    # a: seeds 0-2 pair at 2.0 each (seed 3 has no baseline); b: 1.5; c: no baseline
    assert a.time_ratio("sam") == pytest.approx((2.0 + 1.5) / 2)
    assert a.time_ratio("sam", [("b", 1)]) == pytest.approx(1.5)
    assert np.isnan(a.time_ratio("sam", [("c", 1)])) and np.isnan(a.time_ratio("asam"))


def test_only_pairs_that_ran_on_one_machine_are_timed():
    from samlm.compare.report import Analysis

    a = Analysis(GridSpec(tasks=["glue/sst2"], sizes=[100]))
    key = ("a", 1)
    a.step_times = {"baseline": {key: dict.fromkeys(range(5), 1.0)}}
    a.step_times["sam"] = {key: dict.fromkeys(range(5), 3.0)}
    a.step_cpu = {"baseline": {key: dict.fromkeys(range(5), 0.5)}}
    a.step_cpu["sam"] = {key: dict.fromkeys(range(5), 1.0)}
    a.step_machine = {"baseline": {key: {0: "m/1", 1: "m/1", 2: None, 3: None, 4: "m/1"}}}
    a.step_machine["sam"] = {key: {0: "m/1", 1: "m/2", 2: None, 3: "m/1", 4: None}}
    # seed 0: one machine, CPU 2.0; seed 1: two boots of one host; seeds 3, 4: only one
    # cell says where it ran (a grid grown from cells recorded elsewhere); seed 2: a pair
    # from before ``machine``, as before
    ratios = [a.pair_ratio("sam", key, seed) for seed in range(5)]
    assert ratios == [pytest.approx(2.0), None, pytest.approx(2.0), None, None]
    a.step_machine["baseline"][key][1] = "m/2"
    a.step_cpu["sam"][key][1] = None  # one machine, but only one cell CPU-timed
    assert a.pair_ratio("sam", key, 1) is None
    a.step_cpu["baseline"][key][1] = None  # neither (an accelerator): wall time
    assert a.pair_ratio("sam", key, 1) == pytest.approx(3.0)
    for seeds in a.step_machine.values():
        seeds[key].update(dict.fromkeys(range(5), "m/9"))
    assert a.time_ratio("sam") == pytest.approx(2.0)  # seeds 0, 2-4 CPU 2.0, seed 1 wall 3.0
    assert np.isnan(a.time_ratio("asam")) and a.pair_ratio("sam", ("b", 1), 0) is None
