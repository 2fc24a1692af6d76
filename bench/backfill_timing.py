"""Add ``timed_steps`` and ``eval_time_s`` (:func:`samlm.compare.cell.timing`) to the
records of a compare results store written before cells recorded them, from the cells'
logs in the run folder; records that have them, or whose log is gone, stay as they are.

    python bench/backfill_timing.py RUN_DIR [RECORD_DIR]

Rewrites RUN_DIR's store (and RECORD_DIR's, its committed mirror, with the same records).
Run it only while no grid writes to that store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samlm.compare import store
from samlm.compare.cell import timing


def backfill(run_dir: Path) -> tuple[list[str], int]:
    lines, added = [], 0
    for line in (run_dir / store.FILE).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash: left as it is
            lines.append(line)
            continue
        log = run_dir / record.get("run_dir", "") / "log.jsonl"
        if record.get("steps") and "timed_steps" not in record and log.is_file():
            record.update(timing(log, record["steps"], record.get("resumed_from")))
            added += 1
        lines.append(json.dumps(record))
    return lines, added


def main() -> None:
    run_dir = Path(sys.argv[1])
    lines, added = backfill(run_dir)
    for folder in [run_dir, *map(Path, sys.argv[2:3])]:
        (folder / store.FILE).write_text("".join(line + "\n" for line in lines))
    print(f"{added} record(s) given timed_steps and eval_time_s")


if __name__ == "__main__":
    main()
