"""A large user file: the time and peak memory of looking at it, loading it, and preparing
one compare cell's data from it.

    python bench/user_data_scale.py                 # 1,000,000 rows (about 80 MB of CSV)
    python bench/user_data_scale.py --rows 20000    # a smoke run

Writes a seeded ``text,label`` CSV (3 classes, quoted texts with commas) to a temporary
folder (``--dir`` to keep it; ``datasets``' cache goes there too), then runs each phase in
a fresh process, so each peak resident set size (``ru_maxrss``) is that phase's own:

* ``imports``: samlm's task and pipeline modules, ``datasets`` and ``transformers`` alone,
  the floor every phase stands on;
* ``look``: ``samlm tasks FILE`` (rows, labels, majority class, token lengths, sizes);
* ``load``: the task and its splits (``datasets``' CSV builder into its Arrow cache; a
  second process finds the cache: ``load (cached)``);
* ``cell``: what one cell adds once the task is read: its splits (a 250-example training
  subset, the 500-example validation sample, the reported rows) and their tokenization
  with MiniLM's tokenizer, with the reported rows capped as ``--eval-size`` caps them.

Prints each phase's wall time and peak RSS, the peak over the imports' floor and over the
file's size, and the cell's preparation against a 200-step MiniLM cell's training time
(the median ``train_time_s`` of the evidence grid's baseline cells at 250 examples,
``bench/results/evidence``: recorded there, not timed in this run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVIDENCE = Path(__file__).resolve().parent / "results" / "evidence" / "results.jsonl"
WORDS = [f"w{i}" for i in range(5000)] + ["good", "bad", "fine", "awful", "great", "dull"]


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` seeded rows: 6-25 words, every tenth text holding a comma (quoted)."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        for i in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(6, 25)))
            if i % 10 == 0:
                text += ", and more"
            out.writerow([text, ("positive", "negative", "neutral")[rng.randrange(3)]])


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase(name: str, ref: str, eval_size: int | None) -> dict:
    """One phase in this process: its wall time (imports excluded but for ``imports``)."""
    start = time.perf_counter()
    import datasets  # noqa: F401
    import transformers

    from samlm.pipeline import data, features
    from samlm.tasks import get_task, load_split

    if name == "imports":
        return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib()}
    start = time.perf_counter()
    if name == "look":
        from samlm.cli import main

        main(["tasks", ref, "--sizes", "250,100"])
        return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib()}
    task = get_task(ref)
    rows = {s: len(load_split(task, s)) for s in ("train", "validation")}
    if name == "load":
        return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib(), "rows": rows}
    loaded = time.perf_counter()
    from samlm.pipeline.models import ALIASES

    tokenizer = transformers.AutoTokenizer.from_pretrained(ALIASES["minilm"]())
    splits = data.run_splits(task, None, train_size=250, validation_size=500, eval_size=eval_size)
    for examples, training in ((splits.train, True), (splits.validation, False)):
        features.encode(task, examples, tokenizer, "encoder", max_length=128,
                        max_target_length=16, training=training)  # fmt: skip
    if splits.reported is not splits.validation:
        features.encode(task, splits.reported, tokenizer, "encoder", max_length=128,
                        max_target_length=16, training=False)  # fmt: skip
    return {
        "seconds": time.perf_counter() - loaded,
        "load_seconds": loaded - start,
        "peak_mib": _peak_mib(),
        "reported": len(splits.reported),
    }


def run_phase(name: str, ref: str, eval_size: int | None, cache: Path) -> dict:
    """``phase`` in a fresh process, with ``datasets``' cache in ``cache``."""
    command = [sys.executable, __file__, "--phase", name, "--ref", ref]
    command += ["--eval-size", str(eval_size or 0)]
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache)}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cell_seconds() -> float | None:
    """The median training time of the evidence grid's 250-example baseline cells."""
    if not EVIDENCE.is_file():
        return None
    rows = [json.loads(line) for line in EVIDENCE.read_text().splitlines() if line.strip()]
    times = [
        r["train_time_s"]
        for r in rows
        if r["method"] == "baseline" and r["size"] == 250 and r.get("train_time_s")
    ]
    return statistics.median(times) if times else None


def report(rows: int, folder: Path, eval_size: int) -> None:
    path = folder / "user.csv"
    started = time.perf_counter()
    write_csv(path, rows)
    size_mib = path.stat().st_size / 2**20
    took = time.perf_counter() - started
    print(f"{rows:,} rows, {size_mib:.1f} MiB of CSV, written in {took:.1f} s")
    ref, floor = str(path), None
    print(f"\n{'phase':<28} {'seconds':>8} {'peak MiB':>9} {'over imports':>13} {'/ file':>7}")
    for name, eval_cap in (
        ("imports", None), ("look", None), ("load", None), ("load (cached)", None),
        ("cell", None), ("cell", eval_size),
    ):  # fmt: skip
        got = run_phase(name.split()[0], ref, eval_cap, folder / "datasets-cache")
        floor = got["peak_mib"] if name == "imports" else floor
        over = got["peak_mib"] - floor
        label = name if name != "cell" else f"cell (reported: {got['reported']:,} rows)"
        print(
            f"{label:<28} {got['seconds']:>8.1f} {got['peak_mib']:>9.0f} {over:>13.0f} "
            f"{over / size_mib:>6.2f}x"
        )
        if name == "cell":
            cell = cell_seconds()
            if cell:
                print(f"{'':<28} {got['seconds'] / cell:>8.1%} of a 200-step cell ({cell:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", help="keep the CSV in this folder (default: a temporary one)")
    parser.add_argument("--eval-size", type=int, default=2000, help="the capped cell's cap")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--ref", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.ref, args.eval_size or None)))
        return
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        report(args.rows, Path(args.dir), args.eval_size)
        return
    with tempfile.TemporaryDirectory() as folder:
        report(args.rows, Path(folder), args.eval_size)


if __name__ == "__main__":
    main()
