"""The step-budget and learnability sweep behind ``samlm compare``'s protocol.

    python bench/step_sweep.py --data-dir ../shared/data [--output runs/step_sweep]

Each run is ``samlm train`` for a long budget (400 optimizer steps), evaluated every 50
steps on a validation sample held out from the training pool; the summary reads those
validation curves only (never the reported dev scores, which the protocol must not be
tuned on) and gives, per task and size:

* the majority-class score of the validation sample (the constant prediction);
* each method's validation curve, its best step and how much of the final gain the
  curve had made by each step (where it plateaus);
* whether the baseline clearly learns: best validation score above the majority-class
  score by ``MARGIN`` points.

The validation sample is drawn as ``samlm compare`` draws it (``--validation-size 500``,
from the training pool where it allows, else half the dev set). Runs are resumable
(rerun the command); two run at a time, one thread each. MiniLM,
AdamW lr 1e-4 with a linear decay over the budget, batch 16, rho 0.05, seed 1000 (a
tuning seed apart from the evaluation seeds 0, 1, ...).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import train_runs

STEPS, EVERY, SEED, MARGIN, VALIDATION = 400, 50, 1000, 5.0, 500
# (task, training examples, methods), in the order they run: SST-2 at 250 and 100 and CB
# at 100 set the step budget (both methods); the others check learnability (the
# baseline) at the evidence grid's sizes. A CB or RTE step costs about 3x an SST-2 one.
CASES = [
    ("glue/sst2", 250, ("baseline", "sam")),
    ("superglue/cb", 100, ("baseline",)),
    ("glue/cola", 250, ("baseline",)),
    ("superglue/cb", 100, ("sam",)),
    ("glue/sst2", 100, ("baseline", "sam")),
    ("superglue/rte", 250, ("baseline",)),
    ("superglue/cb", 250, ("baseline",)),
]


def _folder(out: Path, task: str, size: int, method: str) -> Path:
    return out / f"{task.replace('/', '-')}_n{size}_{method}"


def _run(out: Path, data_dir: str, task: str, size: int, method: str) -> str:
    options = ["--task", task, "--optimizer", method, "--train-size", str(size)]
    options += ["--validation-size", str(VALIDATION), "--max-steps", str(STEPS)]
    options += ["--save-steps", str(EVERY), "--learning-rate", "1e-4", "--seed", str(SEED)]
    return train_runs.train(_folder(out, task, size, method), options, data_dir)


def majority_score(task_name: str, size: int, data_dir: str) -> tuple[float, int, str]:
    """The task score of predicting the validation sample's most frequent label, the
    sample's size and where it comes from."""
    from samlm.metrics import task_score
    from samlm.pipeline.data import run_splits
    from samlm.tasks import get_task

    task = get_task(task_name)
    s = run_splits(
        task,
        Path(data_dir),
        train_size=size,
        seed=SEED,
        validation_size=VALIDATION,
    )
    label = Counter(ex.label for ex in s.validation).most_common(1)[0][0]
    score = task_score(task.compute_metrics([label] * len(s.validation), s.validation))
    return score, len(s.validation), s.validation_from


SKIP = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


def _curve(folder: Path) -> list[tuple[int, float]]:
    """The validation task score (the mean of the task's metrics) at each evaluation."""
    log = folder / "log.jsonl"
    if not log.is_file():
        return []
    points: dict[int, float] = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        scores = [v for k, v in r.items() if k.startswith("eval_") and k not in SKIP]
        if scores:  # the first evaluation at a step (an older run re-evaluated the best)
            points.setdefault(r["step"], sum(scores) / len(scores))
    return sorted(points.items())


def summary(out: Path, data_dir: str) -> str:
    lines = [
        f"Validation curves ({STEPS} steps, evaluated every {EVERY}; task score (the mean "
        "of the task's metrics) on the held-out validation sample; seed 1000; lr 1e-4, "
        "rho 0.05); majority: the score of the constant majority-class prediction",
        "",
        "| task | n | validation | majority | method | "
        + " | ".join(str(s) for s in range(EVERY, STEPS + 1, EVERY))
        + " | best (step) | learns |",
        "|---|---|---|---|---|" + "---|" * (STEPS // EVERY) + "---|---|",
    ]
    cases: dict[tuple[str, int], list[str]] = {}
    for task, size, methods in CASES:
        cases.setdefault((task, size), []).extend(methods)
    for (task, size), methods in cases.items():
        floor, val, source = majority_score(task, size, data_dir)
        for method in methods:
            curve = _curve(_folder(out, task, size, method))
            if not curve:
                continue
            by_step = dict(curve)
            cells = [
                f"{by_step[s]:.1f}" if s in by_step else "" for s in range(EVERY, STEPS + 1, EVERY)
            ]
            best_step, best = max(curve, key=lambda p: (p[1], -p[0]))
            learns = "yes" if best >= floor + MARGIN else "no"
            lines.append(
                f"| {task} | {size} | {val} ({source}) | {floor:.1f} | {method} | "
                + " | ".join(cells)
                + f" | {best:.1f} ({best_step}) | {learns if method == 'baseline' else ''} |"
            )
    return "\n".join(lines)


def main() -> None:
    jobs = [(t, n, m) for t, n, methods in CASES for m in methods]
    train_runs.main(__doc__, "runs/step_sweep", jobs, _run, summary)


if __name__ == "__main__":
    main()
