"""The hyperparameter sweep behind ``samlm compare``'s defaults (learning rate, rho per
method; epochs read from the dev curves), on the dev sets of the five sweep tasks only
(the radii on the two of them where MiniLM learns from 250 examples).

    python bench/sweep.py --data-dir ../shared/data [--output runs/sweep]

Each grid is a resumable ``samlm compare`` run (rerun to finish an interrupted sweep);
the summary goes to stdout and to ``--summary`` (markdown). MiniLM, 250 training
examples (CB: its 250), seed 0, 3 epochs (5 in one grid), batch 16, dev scores on at
most 500 examples; "(eK)" in the table is the epoch of the best dev score.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from samlm.compare import GridSpec, compare
from samlm.compare.store import read

TASKS = ["superglue/rte", "superglue/cb", "glue/sst2", "glue/cola", "superglue/boolq"]
# rho only where the baseline learns at 250 examples: the learning-rate grids leave RTE,
# CoLA and BoolQ at chance at every rate, and radii compared at chance measure noise
LEARNS = ["superglue/cb", "glue/sst2"]
GRIDS = {  # name: (learning rate, rho of SAM, rho of ASAM, methods, tasks, epochs)
    "lr5e-5": (5e-5, 0.05, 0.5, ["baseline", "sam"], TASKS, 3),
    "lr1e-4": (1e-4, 0.05, 0.5, ["baseline", "sam", "asam"], TASKS, 3),
    "lr2e-4": (2e-4, 0.05, 0.5, ["baseline", "sam"], TASKS, 3),
    "rho-small": (1e-4, 0.02, 0.2, ["baseline", "sam", "asam"], LEARNS, 3),
    "rho-large": (1e-4, 0.1, 1.0, ["baseline", "sam", "asam"], LEARNS, 3),
    "epochs5": (1e-4, 0.05, 0.5, ["baseline", "sam"], LEARNS, 5),
}


def _label(grid: str, method: str) -> str:
    lr, rho_sam, rho_asam, _, _, epochs = GRIDS[grid]
    rho = {"baseline": "", "sam": f" rho {rho_sam}", "asam": f" rho {rho_asam}"}[method]
    return f"{method} lr {lr:g}{rho}" + (f", {epochs} epochs" if epochs != 3 else "")


def summary(folder: Path) -> str:
    rows: dict[str, dict[str, tuple[float, int]]] = {}
    for grid in GRIDS:
        for record in read(folder / grid).values():
            if record["status"] != "ok":
                continue
            epochs = GRIDS[grid][5]
            curve = [score for _, score in record["curve"][:epochs]]  # one point per epoch
            best_epoch = curve.index(max(curve)) + 1 if curve else 0
            label = _label(grid, record["method"])
            rows.setdefault(label, {})[record["task"]] = (record["score"], best_epoch)
    short = [t.split("/")[1] for t in TASKS]
    lines = [
        "| configuration | " + " | ".join(short) + " | mean | mean of cb, sst2 |",
        "|---|" + "---|" * (len(TASKS) + 2),
    ]
    for label in sorted(rows, key=lambda k: (k.split()[0], k)):
        cells = [rows[label].get(t) for t in TASKS]
        scores = [c[0] for c in cells if c]
        text = [f"{c[0]:.1f} (e{c[1]})" if c else "-" for c in cells]
        mean = f"{statistics.mean(scores):.1f}" if len(scores) == len(TASKS) else "-"
        learns = [rows[label][t][0] for t in LEARNS if t in rows[label]]
        mean += f" | {statistics.mean(learns):.1f}" if len(learns) == len(LEARNS) else " | -"
        lines.append(f"| {label} | " + " | ".join(text) + f" | {mean} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--output", default="runs/sweep")
    parser.add_argument("--summary", help="also write the markdown table here")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    folder = Path(args.output)
    for grid, (lr, rho_sam, rho_asam, methods, tasks, epochs) in GRIDS.items():
        spec = GridSpec(
            tasks=tasks,
            sizes=[250],
            methods=methods,
            seeds=1,
            epochs=epochs,
            learning_rate=lr,
            rho_sam=rho_sam,
            rho_asam=rho_asam,
            eval_size=500,
            data_dir=args.data_dir,
        )
        print(f"== {grid}")
        compare(spec, folder / grid, workers=args.workers)
    table = summary(folder)
    print(table)
    if args.summary:
        Path(args.summary).write_text(table + "\n")


if __name__ == "__main__":
    main()
