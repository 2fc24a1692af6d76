"""A comparison folder's results store read into per-stratum scores, gains, curves and
costs: what every form of the report shows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .. import store
from ..cell import checkpoint_step
from ..grid import GridSpec, group_key
from ..mixtures import is_mixture
from ..stats import (
    AggregateGain,
    PairedGain,
    aggregate_gain,
    benchmark_scores,
    paired_differences,
    paired_gain,
)
from ..store import SPEC_FILE
from ..tuning import Choice, choose


@dataclass
class Analysis:
    spec: GridSpec
    # (task, size) -> method -> {seed: score}
    scores: dict[tuple[str, int], dict[str, dict[int, float]]] = field(default_factory=dict)
    curves: dict[tuple[str, int], dict[str, list[list[list[float]]]]] = field(default_factory=dict)
    cost: dict[str, dict[str, float]] = field(default_factory=dict)
    # (task, size) -> method -> list of {"sharpness", "lambda_max", "trace"}
    sharpness: dict[tuple[str, int], dict[str, list[dict[str, float]]]] = field(
        default_factory=dict
    )
    failures: list[dict[str, Any]] = field(default_factory=list)
    missing: int = 0
    # "task|size|method" -> the setting its seeds ran at, with its trials
    choices: dict[str, Choice] = field(default_factory=dict)
    # (task, size) -> which examples trained, selected and were reported on
    examples: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    # (mixture, size) -> method -> its task -> {seed: score}
    per_task: dict[tuple[str, int], dict[str, dict[str, dict[int, float]]]] = field(
        default_factory=dict
    )
    # method -> (task, size) -> {seed: seconds per training step of its finished cell}
    step_times: dict[str, dict[tuple[str, int], dict[int, float]]] = field(default_factory=dict)
    # the same, in CPU seconds (cells trained on a CPU that recorded ``cpu_step_s``)
    step_cpu: dict[str, dict[tuple[str, int], dict[int, float]]] = field(default_factory=dict)
    # the machine each timed cell ran on (``machine``; None in records from before it)
    step_machine: dict[str, dict[tuple[str, int], dict[int, str | None]]] = field(
        default_factory=dict
    )
    # "task|size|method" -> the setting its finished seeds' cells record they ran at
    ran_at: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @cached_property
    def default_learning_rate(self) -> tuple[float | None, str]:
        """The learning rate ``samlm train`` takes where none is given (``DEFAULT_LR`` of
        the spec's model's base optimizer), with that optimizer's name; ``(None, why)``
        where the model cannot be resolved here."""
        from ...pipeline.models import resolve_model
        from ...pipeline.run import DEFAULT_LR

        try:
            choice = resolve_model(self.spec.model, self.spec.modelling, None)
        except Exception as err:  # e.g. a Hub name offline: the report still renders
            return None, f"model {self.spec.model} not resolved here: {err}"
        base = choice.default_base_optimizer()
        return DEFAULT_LR[base], base

    def time_ratio(self, method: str, strata: Iterable[tuple[str, int]] | None = None) -> float:
        """``method``'s time per training step over the baseline's, paired as the gains
        are: per (task, size) stratum the median over seeds of its cell's time over the
        baseline's cell of the same seed, averaged over the strata (``strata``, else all)
        where both have timed pairs; NaN where none has. Tuning trials are left out: they
        run apart from their would-be pairs. See :meth:`pair_ratio` for which pairs count."""
        mine = self.step_times.get(method, {})
        ratios = []
        for key in mine if strata is None else [k for k in strata if k in mine]:
            pairs = [
                ratio
                for seed in mine[key]
                if (ratio := self.pair_ratio(method, key, seed)) is not None
            ]
            if pairs:
                ratios.append(np.median(pairs))
        return float(np.mean(ratios)) if ratios else float("nan")

    def pair_ratio(self, method: str, key: tuple[str, int], seed: int) -> float | None:
        """The time per step of ``method``'s cell over the baseline's cell of the same
        stratum and seed, or None where the two did not run side by side: on different
        machines (their ``machine`` differs, or only one cell records it: a grid grown
        from another's recorded cells), or one timed by CPU and the other not (a record
        from before ``cpu_step_s``). A pair on one machine is timed by its steps' CPU time
        where both recorded it (a pause or another job adds none), else by wall time."""
        try:
            mine, base = self.step_times[method][key][seed], self.step_times["baseline"][key][seed]
        except KeyError:
            return None
        where = [self.step_machine.get(m, {}).get(key, {}).get(seed) for m in (method, "baseline")]
        cpu = [self.step_cpu.get(m, {}).get(key, {}).get(seed) for m in (method, "baseline")]
        if where[0] != where[1] or (cpu[0] is None) != (cpu[1] is None):
            return None
        return cpu[0] / cpu[1] if cpu[0] is not None else mine / base

    def overall(self) -> dict[str, AggregateGain]:
        """Per method, the mean gain over the (task, size) strata it has with the
        baseline, with a stratified bootstrap interval (seeds resampled within each
        stratum; a method with one stratum: that stratum's paired t interval)."""
        out = {}
        for method in self.spec.methods:
            if method == "baseline":
                continue
            strata = {
                key: d
                for key, by_method in self.scores.items()
                if method in by_method
                and "baseline" in by_method
                and (d := paired_differences(by_method[method], by_method["baseline"]))
            }
            if strata:
                out[method] = aggregate_gain(strata)
        return out

    def without_results(self) -> dict[str, str]:
        """Methods with no finished cell, each with why: ``{"asam": "4 failed, 2 not run yet"}``."""
        per_method = len(self.spec.strata()) * self.spec.seeds
        out = {}
        for method in self.spec.methods:
            if any(by_method.get(method) for by_method in self.scores.values()):
                continue
            failed = sum(1 for f in self.failures if f.get("method") == method)
            why = [f"{failed} failed"] if failed else []
            why += [f"{per_method - failed} not run yet"] if per_method > failed else []
            out[method] = ", ".join(why)
        return out

    def benchmarks(self) -> dict[tuple[str, int], dict[str, dict[int, float]]]:
        """Benchmark-average scores per (benchmark, size) and method, where the grid has
        two or more tasks of a benchmark."""
        from ...tasks import get_task

        out: dict[tuple[str, int], dict[str, dict[int, float]]] = defaultdict(dict)
        for size in dict.fromkeys(s for _, s in self.spec.strata()):
            for method in self.spec.methods:
                per_task = {
                    t: self.scores.get((t, size), {}).get(method, {})
                    for t in self.spec.tasks
                    if not is_mixture(t)
                }
                per_task = {t: v for t, v in per_task.items() if v}
                bench_of = {t: get_task(t).benchmark for t in per_task}
                for bench, seeds in benchmark_scores(per_task, bench_of).items():
                    if seeds:
                        out[(f"{bench} average", size)][method] = seeds
        return dict(out)


NO_SAM_GAIN = "SAM's gain is not significantly above zero"
SAM_OTHER_STRATA = "SAM's gain is over other strata"


def share_of_sam_gain(overall: dict[str, AggregateGain], method: str) -> tuple[float | None, str]:
    """The share of SAM's mean gain that ``method`` keeps, ``G_method / G_SAM`` over the
    same strata (from :meth:`Analysis.overall`), or ``None`` and why not: a share is
    only given of a gain that is there, SAM's significantly above zero."""
    sam = overall.get("sam")
    if sam is None or not (sam.significant and sam.low > 0):
        return None, NO_SAM_GAIN
    g = overall[method]
    if {k for k, _ in g.stratum_means} != {k for k, _ in sam.stratum_means}:
        return None, SAM_OTHER_STRATA
    return g.mean / sam.mean, ""


def gain_over_baseline(by_method: dict[str, dict[int, float]], method: str) -> PairedGain | None:
    """``method``'s paired gain over the baseline on the seeds both have; ``None`` where
    they share none."""
    if method not in by_method or "baseline" not in by_method:
        return None
    if not set(by_method[method]) & set(by_method["baseline"]):
        return None
    return paired_gain(by_method[method], by_method["baseline"])


def step_seconds(record: dict[str, Any]) -> float | None:
    """A finished cell's seconds per training step, evaluations left out:
    ``(train_time_s - eval_time_s) / timed_steps`` (:func:`samlm.compare.cell.timing`).
    A record from before those fields counts its steps from the checkpoint it resumed
    and its evaluations as training; ``None`` where no step was timed."""
    start = record.get("resumed_from")
    steps = record.get("timed_steps")
    if steps is None:
        steps = record["steps"] - checkpoint_step(start)
    if not steps or record.get("train_time_s") is None:
        return None
    seconds = record["train_time_s"] - record.get("eval_time_s", 0.0)
    return seconds / steps if seconds > 0 else None  # <= 0: the timing fields disagree


def analyse(folder: str | Path) -> Analysis:
    folder = Path(folder)
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        raise ValueError(f"{folder} is not a samlm compare folder (no {SPEC_FILE})")
    spec = store.read_spec(folder)
    records = store.read(folder)
    result = Analysis(spec, choices=choose(spec, records))
    passes: dict[str, list[float]] = defaultdict(list)
    wall: dict[str, list[float]] = defaultdict(list)
    for cell in spec.cells():
        r = records.get(cell.key)
        if r is None:
            result.missing += 1
            continue
        if r["status"] != "ok":
            result.failures.append(r)
            continue
        key = (cell.task, cell.size)
        if r.get("examples"):
            result.examples.setdefault(key, r["examples"])
        result.scores.setdefault(key, {}).setdefault(cell.method, {})[cell.seed] = r["score"]
        for task, score in r.get("per_task", {}).items():  # a mixture's tasks
            by_task = result.per_task.setdefault(key, {}).setdefault(cell.method, {})
            by_task.setdefault(task, {})[cell.seed] = score
        if r.get("setting"):
            result.ran_at.setdefault(group_key(*cell.group), r["setting"])
        result.curves.setdefault(key, {}).setdefault(cell.method, []).append(r.get("curve", []))
        if r.get("sharpness"):
            result.sharpness.setdefault(key, {}).setdefault(cell.method, []).append(r["sharpness"])
        if r.get("steps"):
            passes[cell.method].append(r["passes"] / r["steps"])
            if (seconds := step_seconds(r)) is not None:
                by_stratum = result.step_times.setdefault(cell.method, {})
                by_stratum.setdefault(key, {})[cell.seed] = seconds
                if r.get("cpu_step_s"):
                    by_stratum = result.step_cpu.setdefault(cell.method, {})
                    by_stratum.setdefault(key, {})[cell.seed] = r["cpu_step_s"]
                by_stratum = result.step_machine.setdefault(cell.method, {})
                by_stratum.setdefault(key, {})[cell.seed] = r.get("machine")
        wall[cell.method].append(r["wall_time_s"])
    for method in spec.methods:
        result.cost[method] = {
            "wall_time_s": float(np.mean(wall[method])) if wall[method] else float("nan"),
            "passes_per_step": float(np.mean(passes[method])) if passes[method] else float("nan"),
            "time_per_step_vs_baseline": result.time_ratio(method),
        }
    return result
