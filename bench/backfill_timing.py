"""Set ``timed_steps`` and ``eval_time_s`` (:func:`samlm.compare.cell.timing`) on every
record of a compare results store whose cell log is still in the run folder: records
written before cells recorded them, and records an earlier backfill got wrong (a cell
resumed before ``resumed_from`` was recorded). Records whose log is gone stay as they are.

    python bench/backfill_timing.py RUN_DIR [RECORD_DIR]

Rewrites RUN_DIR's store and, if given, RECORD_DIR's (its committed mirror), each from its
own lines, with the logs in RUN_DIR. Run it only while no grid writes to these stores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from samlm.compare import store
from samlm.compare.cell import read_log, timing


def backfill(folder: Path, run_dir: Path) -> tuple[list[str], int]:
    """``folder``'s store lines with timing set from the logs under ``run_dir``; returns
    them and how many records were set."""
    lines, added = [], 0
    for line in (folder / store.FILE).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash: left as it is
            lines.append(line)
            continue
        log = run_dir / record.get("run_dir", "") / "log.jsonl"
        if record.get("steps") and record.get("run_dir") and log.is_file():
            record.update(timing(read_log(log), record["steps"], record.get("resumed_from")))
            added += 1
        lines.append(json.dumps(record))
    return lines, added


def main() -> None:
    run_dir = Path(sys.argv[1])
    for folder in [run_dir, *map(Path, sys.argv[2:3])]:
        lines, added = backfill(folder, run_dir)
        (folder / store.FILE).write_text("".join(line + "\n" for line in lines))
        print(f"{folder}: {added} record(s) given timed_steps and eval_time_s")


if __name__ == "__main__":
    main()
