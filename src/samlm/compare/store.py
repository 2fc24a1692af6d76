"""The results store: the files of a compare folder that ``samlm compare`` writes and
``samlm report`` reads.

``compare.yaml`` (:data:`SPEC_FILE`) holds the grid's spec, written by the runner when the
comparison starts; it marks the folder as a compare folder and is checked again on resume.

``results.jsonl`` (:data:`FILE`) holds the results, one JSON object per line. Each line
records one finished cell (the last line of a cell wins):

    {"key": "glue/sst2|250|sam|0", "task": "glue/sst2", "size": 250, "method": "sam",
     "seed": 0, "status": "ok" | "failed", "score": 81.2,        # the task score, 0-100
     "metrics": {...},                                            # the dev metrics
     "wall_time_s": 51.3, "steps": 48, "passes": 96.0,           # cost
     "train_time_s": 45.0, "timed_steps": 48, "eval_time_s": 3.1,  # this attempt's
     "cpu_step_s": 0.8 | null,                   # its steps' CPU seconds each (on a CPU)
     "machine": "host/1a2b3c4d",                # where this attempt ran (host/boot id)
     "curve": [[step, score], ...],                               # dev score in training
     "error": null | "ValueError: ...", "run_dir": "cells/..."}

Lines are appended and flushed one at a time, so a crash loses at most the cells in
progress; a half-written last line is ignored when the store is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SPEC_FILE = "compare.yaml"  # the grid spec (GridSpec.to_dict as YAML)
FILE = "results.jsonl"  # the results, one JSON line per finished cell


def append(folder: Path, record: dict[str, Any]) -> None:
    with (folder / FILE).open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read(folder: Path) -> dict[str, dict[str, Any]]:
    """The latest record of every cell, keyed by cell key."""
    path = folder / FILE
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        records[record["key"]] = record
    return records
