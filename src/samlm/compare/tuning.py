"""Which setting each (task, size, method) runs its seeds at.

With ``tune`` the setting is the trial with the best validation score (the task score
of the selected checkpoint on the validation sample; a tie goes to the earlier grid
point); every method has the same number of trials. Without it, a setting recorded by
an earlier tuning (``GridSpec.settings``) or else the spec's untuned defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .grid import Cell, GridSpec, group_key

TUNED, RECORDED, UNTUNED = "tuned in this run", "recorded tuning", "untuned defaults"


@dataclass
class Choice:
    setting: dict[str, float | None] | None  # None: tuning not finished, or every trial failed
    source: str
    trials: list[dict[str, Any]] = field(default_factory=list)  # setting, score, status
    error: str | None = None


def choose(spec: GridSpec, records: dict[str, dict[str, Any]]) -> dict[str, Choice]:
    """``group_key(task, size, method)`` -> the setting its seeds run at."""
    out: dict[str, Choice] = {}
    for task, size in spec.strata():
        for method in spec.methods:
            key = group_key(task, size, method)
            out[key] = _choose_one(spec, records, Cell(task, size, method, 0))
    return out


def _choose_one(spec: GridSpec, records: dict[str, dict[str, Any]], cell: Cell) -> Choice:
    if not spec.tune:
        recorded = spec.recorded_setting(cell)
        if recorded is not None:
            source = RECORDED + (f" ({spec.settings_source})" if spec.settings_source else "")
            return Choice({**spec.default_setting(cell.method), **recorded}, source)
        return Choice(spec.default_setting(cell.method), UNTUNED)
    trials = []
    for trial in (t for t in spec.trials() if t.group == cell.group):
        r = records.get(trial.key, {})
        trials.append(
            {
                "setting": spec.tune_grid(cell.method)[trial.trial],
                "status": r.get("status", "not run"),
                "score": r.get("validation_score") if r.get("status") == "ok" else None,
            }
        )
    if any(t["status"] == "not run" for t in trials):
        return Choice(None, TUNED, trials, "tuning not finished")
    scored = [t for t in trials if t["score"] is not None]
    if not scored:
        return Choice(None, TUNED, trials, "every tuning trial failed")
    best = max(scored, key=lambda t: t["score"])  # max keeps the first of equals
    return Choice({**spec.default_setting(cell.method), **best["setting"]}, TUNED, trials)
