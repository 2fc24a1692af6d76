"""The results store: the files of a compare folder that ``samlm compare`` writes and
``samlm report`` reads.

``compare.yaml`` (:data:`SPEC_FILE`) holds the grid's spec, written by the runner when the
comparison starts; it marks the folder as a compare folder and is checked again on resume.
``compare.lock`` is there while a run writes the folder (one at a time: :mod:`.lock`).

``results.jsonl`` (:data:`FILE`) holds the results, one JSON object per line. Each line
records one attempt at a cell. A cell's record is its first ``ok`` line, else its last
line: a finished result is never replaced by a later failure, and a cell recorded ``ok``
twice counts once.

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
progress; a half-written last line is ignored when the store is read, and the next
record starts on a line of its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SPEC_FILE = "compare.yaml"  # the grid spec (GridSpec.to_dict as YAML)
FILE = "results.jsonl"  # the results, one JSON line per finished cell


def read_spec(folder: str | Path) -> Any:
    """The folder's :class:`~samlm.compare.grid.GridSpec`, from ``compare.yaml`` (old
    field names read as today's: :func:`~samlm.compare.grid.saved_spec`)."""
    import yaml

    from .grid import load_spec

    return load_spec(yaml.safe_load((Path(folder) / SPEC_FILE).read_text()))


def append(folder: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one line, in one write (after a newline if the file ends in a
    line a crash cut short)."""
    line = json.dumps(record) + "\n"
    with (folder / FILE).open("a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def read(folder: Path) -> dict[str, dict[str, Any]]:
    """Every cell's record, keyed by cell key: its first ``ok`` record, else its last."""
    path = folder / FILE
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if records.get(record["key"], {}).get("status") != "ok":
            records[record["key"]] = record
    return records
