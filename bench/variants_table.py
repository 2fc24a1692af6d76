"""Issue 14's recorded comparison as one table: each method's mean gain over the
baseline across the variants grid's strata (95% stratified bootstrap interval), the
share of SAM's gain it keeps, its forward-backward passes and time per training step
over the baseline's, and whether it meets the issue's target: at least 80% of SAM's gain
at no more than 1.15x the baseline's time per step.

    python bench/variants_table.py [--record bench/results/variants] [--plot PNG]

``--plot`` also draws each method's mean gain (95% interval) against its time per step,
with the target's cost shaded, the times as the table gives them.

The share is judged only where SAM's own mean gain is significantly above zero, over the
same strata; the target is met where the share and the time per step both are, missed
where either misses (a time per step over 1.15x misses it whatever the share), and
otherwise not judged, saying why. Time per step: GSAM's and LookSAM's as
``bench/variants_cost.py`` timed them on one machine, over the baseline's timed there
(``timing.jsonl``; the variants' cells have no baseline cell run beside them); AE-SAM's
estimated from its cells' share ``s`` of SAM steps as ``1 + s (t_SAM / t_baseline - 1)``
with those timings; the core methods' from the grid's pairs of cells run on one machine
(``Analysis.time_ratio``). ``bench/step_overhead.py`` times the variants side by side.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from samlm.compare.report import analyse
from samlm.compare.report.analysis import Analysis, share_of_sam_gain
from samlm.compare.report.tables import number

try:
    from bench.evidence import RESULTS, require_store
    from bench.variants_cost import TIMING_FILE
except ModuleNotFoundError as e:  # run as `python bench/variants_table.py`: bench/ is on the path
    if e.name != "bench":
        raise
    from evidence import RESULTS, require_store
    from variants_cost import TIMING_FILE

TARGET_SHARE = 0.80
TARGET_COST = 1.15
SHARE_ESTIMATED = ("aesam",)  # timed from its share of SAM steps (module docstring)


def timings(record: Path) -> dict[tuple[str, int, str, str], float]:
    """``(task, size, method, machine) -> CPU seconds per step`` from ``record``'s
    ``timing.jsonl`` (the last line of a key wins); empty where there is none."""
    path = record / TIMING_FILE
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["task"], r["size"], r["method"], r["machine"]): r["cpu_step_s"] for r in rows}


def timed_over_baseline(timed: dict[tuple[str, int, str, str], float], method: str) -> float:
    """The mean over the timed (stratum, machine)s of ``method``'s time over the baseline's."""
    ratios = [
        t / timed[(task, size, "baseline", machine)]
        for (task, size, m, machine), t in timed.items()
        if m == method and (task, size, "baseline", machine) in timed
    ]
    return float(np.mean(ratios)) if ratios else float("nan")


def time_ratio(
    a: Analysis, method: str, timed: dict[tuple[str, int, str, str], float]
) -> tuple[float, str]:
    """``method``'s time per step over the baseline's and where it comes from (module
    docstring): ``"timed"``, ``"estimated"`` or ``"grid"`` (also a method the timings
    lack)."""
    if method != "sam" and any(m == method for _, _, m, _ in timed):
        return timed_over_baseline(timed, method), "timed"
    if method in SHARE_ESTIMATED and not math.isnan(sam := timed_over_baseline(timed, "sam")):
        share = a.cost.get(method, {}).get("passes_per_step", float("nan")) - 1.0
        return 1.0 + share * (sam - 1.0), "estimated"
    return a.time_ratio(method), "grid"


def timing_check(timed: dict[tuple[str, int, str, str], float]) -> str:
    """SAM's time per step over the baseline's as ``bench/variants_cost.py`` timed them."""
    ratio = timed_over_baseline(timed, "sam")
    return "" if math.isnan(ratio) else f"{ratio:.2f}x"


def table(record: Path) -> str:
    a = analyse(record)
    timed = timings(record)
    overall = a.overall()
    lines = [
        "| method | mean gain [95%] | share of SAM's gain | passes per step | "
        "time per step vs baseline | target |",
        "|---|---|---|---|---|---|",
    ]
    strata = set(a.spec.strata())
    sources: dict[str, list[str]] = {}
    for method in a.spec.methods:
        if method == "baseline":
            continue
        g, cost = overall.get(method), a.cost.get(method, {})
        time, source = time_ratio(a, method, timed)
        sources.setdefault(source, []).append(method)
        passes = cost.get("passes_per_step", float("nan"))
        if g is None:
            lines.append(f"| {method} | no results | | | | |")
            continue
        gain = f"{g.mean:+.2f} [{g.low:+.2f}, {g.high:+.2f}]"
        mine = {key for key, _ in g.stratum_means}
        share, verdict = "", ""
        if method != "sam":
            kept, why = share_of_sam_gain(overall, method)
            share = number(kept, ".0%")
            if kept is None and time > TARGET_COST:  # the cost half fails on its own
                verdict = f"missed: {time:.2f}x > {TARGET_COST:.2f}x (share not judged: {why})"
            elif kept is None:
                verdict = f"not judged: {why}"
            elif not math.isfinite(time):
                verdict = "not judged: no time per step"
            else:
                verdict = "met" if kept >= TARGET_SHARE and time <= TARGET_COST else "missed"
        if method != "sam" and mine != strata:
            verdict += f" (partial: {len(mine)} of {len(strata)} strata)"
        cells = [gain, share, number(passes, ".2f"), number(time, ".2f", "x"), verdict]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"{len(strata)} (task, size) strata, {a.spec.seeds} seeds; target: at least "
        f"{TARGET_SHARE:.0%} of SAM's gain at no more than {TARGET_COST:.2f}x the "
        "baseline's time per step.",
    ]
    said = {
        "grid": "from the grid's cells (pairs run on one machine)",
        "timed": "timed on one machine by bench/variants_cost.py",
        "estimated": "estimated from its share of SAM steps and those timings",
    }
    where = "; ".join(f"{', '.join(ms)}: {said[k]}" for k, ms in sources.items())
    lines.append(f"Time per step: {where}.")
    if check := timing_check(timed):
        lines.append(f"SAM there: {check} the baseline's time per step.")
    return "\n".join(lines)


def cost_and_gain(record: Path) -> dict[str, tuple[float, str, float, float, float]]:
    """``method -> (time per step vs baseline, its source, mean gain, low, high)`` for
    every method with results (the table's figures; the baseline left out)."""
    a = analyse(record)
    timed, overall = timings(record), a.overall()
    return {
        m: (*time_ratio(a, m, timed), g.mean, g.low, g.high)
        for m in a.spec.methods
        if m != "baseline" and (g := overall.get(m)) is not None
    }


def plot(record: Path, path: Path) -> None:
    """Write :func:`cost_and_gain` as a PNG to ``path``: gain (95% interval) against
    time per step, the target's cost (at most 1.15x) shaded; a method without a time per
    step is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from samlm.compare.report.plots import method_colour

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.axvspan(1.0, TARGET_COST, color="#2ca02c", alpha=0.12, label=f"cost <= {TARGET_COST}x")
    ax.axhline(0, color="grey", lw=0.8)
    for m, (time, source, mean, low, high) in cost_and_gain(record).items():
        if not math.isfinite(time):
            continue
        err = [[mean - low], [high - mean]]
        ax.errorbar([time], [mean], yerr=err, fmt="o", capsize=3, color=method_colour(m))
        label = m if source == "grid" else f"{m} ({source})"
        ax.annotate(label, (time, mean), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.scatter([1.0], [0.0], color=method_colour("baseline"), zorder=3)
    ax.annotate("baseline", (1.0, 0.0), textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.margins(x=0.12)
    ax.set_xlabel("time per step relative to the baseline")
    ax.set_ylabel("mean gain over the baseline\n(points, 95% interval)")
    ax.set_title("the variants: cost against gain", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, default=RESULTS / "variants")
    parser.add_argument("--plot", type=Path, help="also write the cost-gain plot here (PNG)")
    args = parser.parse_args()
    require_store(parser, args.record, "variants")
    print(table(args.record))
    if args.plot:
        plot(args.record, args.plot)


if __name__ == "__main__":
    main()
