"""Issue 15's evidence table: LoRA against LoRA + SAM against full fine-tuning without
and with SAM, per task at the lora preset's size, from two recorded stores: the lora
preset's (``bench/results/lora``) and the evidence grid's (``bench/results/evidence``),
whose full fine-tuning cells have the same tasks, size, seeds and so the same training
subsets and validation samples.

    python bench/lora_table.py [--lora DIR] [--full DIR]

Prints a markdown table per task: each arm's score (mean ± sd over the seeds all four
arms have), SAM's paired gain over its baseline within LoRA and within full fine-tuning,
and LoRA's paired gain over full fine-tuning (both without SAM), each with its 95% t
interval, and each gain's mean over the tasks with its stratified bootstrap interval; then
SAM's time per training step over its baseline in each regime (the report's ratio). A
task whose arms are not all finished is listed as such.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from samlm.compare.report import analyse
from samlm.compare.report.tables import gain_interval, number
from samlm.compare.stats import aggregate_gain, paired_differences, paired_gain, summarize

try:
    from bench.evidence import RESULTS, require_store
except ModuleNotFoundError as e:  # run as `python bench/lora_table.py`: bench/ is on the path
    if e.name != "bench":
        raise
    from evidence import RESULTS, require_store

ARMS = {  # arm -> (store, method)
    "full": ("full", "baseline"),
    "full + SAM": ("full", "sam"),
    "LoRA": ("lora", "baseline"),
    "LoRA + SAM": ("lora", "sam"),
}
GAINS = {  # gain -> (arm, over arm)
    "SAM within LoRA": ("LoRA + SAM", "LoRA"),
    "SAM within full": ("full + SAM", "full"),
    "LoRA over full": ("LoRA", "full"),
}


def table(lora: Path, full: Path) -> str:
    stores = {"lora": analyse(lora), "full": analyse(full)}
    size = stores["lora"].spec.sizes[0]
    lines = [
        "| task | seeds | " + " | ".join(ARMS) + " | " + " | ".join(GAINS) + " |",
        "|---" * (2 + len(ARMS) + len(GAINS)) + "|",
    ]
    differences: dict[str, dict[str, dict[int, float]]] = {gain: {} for gain in GAINS}
    for task in stores["lora"].spec.tasks:
        scores = {
            arm: stores[where].scores.get((task, size), {}).get(method, {})
            for arm, (where, method) in ARMS.items()
        }
        seeds = sorted(set.intersection(*(set(s) for s in scores.values())))
        if not seeds:
            missing = [arm for arm, s in scores.items() if not s]
            why = "not finished: " + ", ".join(missing) if missing else "no common seed"
            cells = [why] + ["-"] * (len(ARMS) + len(GAINS) - 1)
            lines.append(f"| {task} | 0 | " + " | ".join(cells) + " |")
            continue
        row = [task, str(len(seeds))]
        for arm in ARMS:
            s = summarize([scores[arm][k] for k in seeds])
            row.append(f"{s.mean:.2f} ± {s.std:.2f}")
        for gain, (arm, over) in GAINS.items():
            pair = [{k: scores[a][k] for k in seeds} for a in (arm, over)]
            differences[gain][task] = paired_differences(*pair)
            row.append(gain_interval(paired_gain(*pair)))
        lines.append("| " + " | ".join(row) + " |")
    done = differences["SAM within LoRA"]
    if len(done) > 1:  # each gain's mean over the tasks that have all four arms
        means = [gain_interval(aggregate_gain(d)) for d in differences.values()]
        row = [f"mean over the {len(done)} tasks (stratified bootstrap)", ""]
        lines.append("| " + " | ".join(row + [""] * len(ARMS) + means) + " |")
    strata = [(task, size) for task in stores["lora"].spec.tasks]  # both regimes: these
    cost = {where: number(a.time_ratio("sam", strata), ".2f", "x") for where, a in stores.items()}
    lines += [
        "",
        f"Size {size}; gains in points with 95% paired t intervals (bold: excludes zero). "
        f"SAM's time per training step over its baseline on these tasks: {cost['lora']} "
        f"with LoRA, {cost['full']} with full fine-tuning.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lora", type=Path, default=RESULTS / "lora")
    parser.add_argument("--full", type=Path, default=RESULTS / "evidence")
    args = parser.parse_args()
    for folder, preset in ((args.lora, "lora"), (args.full, "evidence")):
        require_store(parser, folder, preset)
    print(table(args.lora, args.full))


if __name__ == "__main__":
    main()
