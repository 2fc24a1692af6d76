"""The report's first lines: the answer, one line per method, in words and numbers.

Each line gives the method's mean gain over the grid's (task, size) strata with its 95%
interval and whether it is significant (:meth:`Analysis.overall`), the share of SAM's
gain it keeps where that is given (:func:`share_of_sam_gain`), and its time per step
against the baseline's (:meth:`Analysis.time_ratio`). The terminal summary,
``report.md`` and ``report.html`` open with the same lines."""

from __future__ import annotations

import math

from .analysis import Analysis, share_of_sam_gain

TITLE = "The answer"
MEANING = (
    "A gain is the method's task score (0-100) minus the baseline's on the same seed, "
    "averaged per (task, size) stratum and then over the strata; the tables below give "
    "each stratum."
)


def _time(a: Analysis, method: str) -> str:
    ratio = a.cost.get(method, {}).get("time_per_step_vs_baseline", math.nan)
    if not math.isfinite(ratio):
        return "time per step against the baseline: n/a (no pair of cells ran on one machine)"
    return f"{ratio:.2f}x the baseline's time per step"


def answer_lines(a: Analysis) -> list[str]:
    """One line per method other than the baseline, in the grid's order."""
    overall = a.overall()
    lines = []
    for method in a.spec.methods:
        if method == "baseline":
            continue
        gain = overall.get(method)
        if gain is None:
            why = a.without_results().get(method) or "no seed paired with the baseline's"
            lines.append(f"{method}: no gain to report ({why}).")
            continue
        parts = [f"{method}: mean gain {gain.verdict()}"]
        if method != "sam" and "sam" in overall:
            kept, why = share_of_sam_gain(overall, method)
            parts.append(
                f"keeps {kept:.0%} of SAM's gain"
                if kept is not None
                else f"share of SAM's gain: n/a ({why})"
            )
        parts.append(_time(a, method))
        lines.append("; ".join(parts) + ".")
    return lines
