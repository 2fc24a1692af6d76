"""Issue 11's answer as the README's table, from the evidence grid's recorded store.

    python bench/evidence_table.py [--record bench/results/evidence]

Over the (task, size) strata where every method has every seed: each method's paired
gain over the baseline per stratum (95% t interval; bold where it excludes zero), the
mean over those strata (95% stratified bootstrap interval, the report's), each method's
time per training step over the baseline's on them (the report's ratio), and the share
of SAM's gain each other method keeps (given only where SAM's mean gain is significantly
above zero). Strata still running are named, not used.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from samlm.compare.report import analyse
from samlm.compare.report.analysis import Analysis, gain_over_baseline, share_of_sam_gain
from samlm.compare.report.tables import gain_interval, number

try:
    from bench.evidence import RESULTS, require_store
except ModuleNotFoundError as e:  # run as `python bench/evidence_table.py`: bench/ is on the path
    if e.name != "bench":
        raise
    from evidence import RESULTS, require_store

NAMES = {"glue/sst2": "SST-2", "superglue/cb": "CB", "superglue/rte": "RTE"}
LABELS = {"sam": "SAM", "sam_quarter": "SAM(0.25)", "asam": "ASAM"}


def complete_strata(a: Analysis) -> list[tuple[str, int]]:
    """The strata, in the grid's order, where every method has every seed's score."""
    seeds = set(a.spec.seed_list())
    return [
        key
        for key in a.spec.strata()
        if all(seeds <= set(a.scores.get(key, {}).get(m, {})) for m in a.spec.methods)
    ]


def table(record: Path) -> str:
    a = analyse(record)
    done = complete_strata(a)
    methods = [m for m in a.spec.methods if m != "baseline"]
    if not done:
        return "No stratum is complete yet."
    head = "| stratum | " + " | ".join(LABELS.get(m, m) for m in methods) + " |"
    lines = [head, "|---" * (1 + len(methods)) + "|"]
    for task, size in done:
        gains = [gain_over_baseline(a.scores[(task, size)], m) for m in methods]
        name = f"{NAMES.get(task, task)}, {size} examples"
        lines.append(f"| {name} | " + " | ".join(gain_interval(g) for g in gains) + " |")
    overall = dataclasses.replace(a, scores={k: a.scores[k] for k in done}).overall()
    over = f"mean over the {len(done)} (stratified bootstrap)" if len(done) > 1 else "mean"
    lines.append(f"| {over} | " + " | ".join(gain_interval(overall[m]) for m in methods) + " |")
    cost = [number(a.time_ratio(m, done), ".2f", "x") for m in methods]
    lines.append("| time per step vs baseline | " + " | ".join(cost) + " |")
    shares = []
    for m in methods:
        kept, why = share_of_sam_gain(overall, m) if m != "sam" else (None, "")
        shares.append("" if m == "sam" else number(kept, ".0%") if kept is not None else why)
    lines.append("| share of SAM's gain kept | " + " | ".join(shares) + " |")
    running = [f"{NAMES.get(t, t)} {s}" for t, s in a.spec.strata() if (t, s) not in done]
    lines += [
        "",
        f"{len(done)} of {len(a.spec.strata())} strata complete ({a.spec.seeds} seeds each)"
        + (f"; still running: {', '.join(running)}" if running else "")
        + ". Gains in points; bold: the 95% interval excludes zero.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, default=RESULTS / "evidence")
    args = parser.parse_args()
    require_store(parser, args.record, "evidence")
    print(table(args.record))


if __name__ == "__main__":
    main()
