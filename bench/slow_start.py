"""SAM's slow start with few examples: the cheap remedies, measured on validation data.

    python bench/slow_start.py --data-dir ../shared/data [--output runs/slow_start]

SAM (AdamW lr 1e-4, rho 0.05) under the compare protocol's budget (200 steps,
evaluation every 50 on the 500-example validation sample) on SST-2 at 250 examples,
three seeds, as it is and with each remedy a practitioner would try:

* ``warmup``: rho ramps up over the first 50 steps (``--rho-schedule warmup``);
* ``exclude_head``: the freshly initialised classifier trains but is not perturbed;
* ``late_start``: 50 plain steps (one forward-backward each) before SAM starts;

and the baseline for reference. The summary reads the validation scores only: the
selected checkpoint's score and the score at the first evaluation (step 50), where a
stalled start shows. A remedy is kept if its mean validation score beats plain SAM's
by more than the seeds' spread (the paired t interval of the difference excludes zero).
Runs are resumable; two at a time, one thread each.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import train_runs

from samlm.compare.stats import paired_gain

TASK, SIZE, SEEDS, STEPS, EVERY = "glue/sst2", 250, (0, 1, 2), 200, 50
VARIANTS: dict[str, list[str]] = {
    "baseline": ["--optimizer", "baseline"],
    "sam": ["--optimizer", "sam"],
    "warmup": ["--optimizer", "sam", "--rho-schedule", "warmup", "--rho-warmup-steps", "50"],
    "exclude_head": ["--optimizer", "sam", "--exclude-head"],
    "late_start": ["--optimizer", "sam", "--sam-start-step", "50"],
}


def _run(out: Path, data_dir: str, variant: str, seed: int) -> str:
    options = ["--task", TASK, *VARIANTS[variant], "--train-size", str(SIZE)]
    options += ["--validation-size", "500", "--min-steps", str(STEPS)]
    options += ["--save-steps", str(EVERY), "--learning-rate", "1e-4", "--seed", str(seed)]
    return train_runs.train(out / f"{variant}_s{seed}", options, data_dir)


def _scores(folder: Path) -> tuple[float, float] | None:
    """(selected checkpoint's validation score, validation score at the first evaluation)."""
    if not (folder / "metrics.json").is_file():
        return None
    metrics = json.loads((folder / "metrics.json").read_text())["validation_metrics"]
    selected = statistics.mean(v for k, v in metrics.items() if k != "loss")
    for line in (folder / "log.jsonl").read_text().splitlines():
        r = json.loads(line)
        names = [k.removeprefix("eval_") for k in r if k.startswith("eval_")]
        first = [r[f"eval_{n}"] for n in names if n in metrics and n != "loss"]
        if first:
            return selected, statistics.mean(first)
    return selected, float("nan")


def summary(out: Path) -> str:
    scores = {v: {s: x for s in SEEDS if (x := _scores(out / f"{v}_s{s}"))} for v in VARIANTS}
    lines = [
        f"SAM's slow start, {TASK} at {SIZE} examples, seeds {list(SEEDS)}, {STEPS} steps; "
        "validation task score (never the reported dev examples)",
        "",
        "| variant | selected (mean) | at step 50 (mean) | vs SAM, selected [95% t] |",
        "|---|---|---|---|",
    ]
    for v, by_seed in scores.items():
        if not by_seed:
            continue
        sel = statistics.mean(x[0] for x in by_seed.values())
        first = statistics.mean(x[1] for x in by_seed.values())
        versus = ""
        if v not in ("sam", "baseline") and scores["sam"]:
            g = paired_gain(
                {s: x[0] for s, x in by_seed.items()},
                {s: x[0] for s, x in scores["sam"].items()},
            )
            versus = g.verdict()
        lines.append(f"| {v} | {sel:.2f} | {first:.2f} | {versus} |")
    return "\n".join(lines)


def main() -> None:
    jobs = [(v, s) for s in SEEDS for v in VARIANTS]
    train_runs.main(__doc__, "runs/slow_start", jobs, _run, lambda out, _: summary(out))


if __name__ == "__main__":
    main()
