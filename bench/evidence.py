"""The evidence grid (``samlm compare --preset evidence``), run across sessions.

    python bench/evidence.py --data-dir ../shared/data [--output runs/evidence]

The grid runs in ``--output`` (models and checkpoints stay there); its results store
(``compare.yaml``, ``results.jsonl``) is mirrored to ``--record`` (default
``bench/results/evidence``, committed) every time a cell finishes, and the report is
written there when the grid is done. A later run, on this machine or another, starts
by taking the recorded store back into ``--output``, so finished cells never run twice
(a cell interrupted midway starts again unless its checkpoints are still in
``--output``). Extra arguments go to ``samlm compare`` (e.g. ``--workers 1``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from samlm.compare import store

FILES = ("compare.yaml", store.FILE)
REPORT = (
    "report.md",
    "report.html",
    "gain_vs_size.png",
    "dev_metric_during_training.png",
    "cost_vs_gain.png",
)


def merge(source: Path, target: Path) -> int:
    """Append to ``target``'s store the records of ``source`` it lacks; returns how many."""
    if not (source / store.FILE).is_file():
        return 0
    have = store.read(target)
    added = 0
    for key, record in store.read(source).items():
        if key not in have or (have[key]["status"] != "ok" and record["status"] == "ok"):
            store.append(target, record)
            added += 1
    return added


def mirror(output: Path, record: Path) -> None:
    record.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (output / name).is_file():
            shutil.copyfile(output / name, record / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--output", default="runs/evidence")
    parser.add_argument("--record", default=str(Path(__file__).parent / "results" / "evidence"))
    args, extra = parser.parse_known_args()
    output, record = Path(args.output), Path(args.record)
    output.mkdir(parents=True, exist_ok=True)
    if (record / "compare.yaml").is_file() and not (output / "compare.yaml").is_file():
        shutil.copyfile(record / "compare.yaml", output / "compare.yaml")
    print(f"taken from {record}: {merge(record, output)} record(s)", flush=True)
    command = [sys.executable, "-m", "samlm", "compare", "--preset", "evidence"]
    command += ["--data-dir", args.data_dir, "--output", str(output), *extra]
    process = subprocess.Popen(command)
    seen = -1.0
    while process.poll() is None:
        time.sleep(20)
        path = output / store.FILE
        if path.is_file() and path.stat().st_mtime != seen:
            seen = path.stat().st_mtime
            mirror(output, record)
    mirror(output, record)
    for name in REPORT:
        if (output / name).is_file():
            shutil.copyfile(output / name, record / name)
    sys.exit(process.returncode)


if __name__ == "__main__":
    main()
