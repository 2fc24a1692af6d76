"""The task registry: ``TASKS``, name lookup and the ``samlm tasks`` listing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Task
from .datadir import resolve_data_dir
from .glue import GLUE_TASKS
from .qa import QA_TASKS
from .superglue import SUPERGLUE_TASKS
from .user import user_task
from .user_spec import is_user_ref

TASKS: dict[str, Task] = {task.name: task for task in (*SUPERGLUE_TASKS, *GLUE_TASKS, *QA_TASKS)}

# Extra short names (after normalisation: lower case, no "-" or "_").
ALIASES = {
    "nq": "qa/nq_open",
    "naturalquestions": "qa/nq_open",
    "wq": "qa/webquestions",
    "tydiqagoldp": "qa/tydiqa",
    "tqa": "qa/triviaqa",
}


def _norm(name: str) -> str:
    name = name.strip().lower().replace("super_glue", "superglue")
    return name.replace("-", "").replace("_", "")


def get_task(name: str) -> Task:
    """The task called ``name``: a full name ("superglue/rte"), case-insensitive, with
    "-"/"_" ignored ("glue/SST-2"), or a short name when it is unambiguous ("boolq", "nq";
    "rte" is both superglue/rte and glue/rte, so it is refused); or a user's task: a data
    file, a YAML task file or ``hub:owner/name`` (``user_spec.py``)."""
    if is_user_ref(name):
        return user_task(name)
    key = _norm(name)
    matches = [t for t in TASKS if _norm(t) == key]
    if not matches:
        matches = [t for t in TASKS if _norm(t.split("/", 1)[1]) == key]
        if not matches and key in ALIASES:
            matches = [ALIASES[key]]
    if len(matches) == 1:
        return TASKS[matches[0]]
    if matches:
        raise ValueError(
            f"task name {name!r} is ambiguous: it could be {' or '.join(matches)}; "
            "use the full name"
        )
    raise ValueError(
        f"unknown task {name!r}; known tasks: {', '.join(TASKS)}; or your own data: a file "
        "(.csv, .tsv, .json, .jsonl, .parquet), a YAML task file or hub:owner/name"
    )


def describe_tasks(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per task for ``samlm tasks``: what it is, how it is scored and modelled,
    and which splits the local folder (``data_dir`` or ``$SAMLM_DATA_DIR``) holds."""
    root = resolve_data_dir(data_dir)
    rows = []
    for task in TASKS.values():
        local = [s for s in task.splits if task.has_local(s, root)]
        rows.append(
            {
                "name": task.name,
                "benchmark": task.benchmark,
                "kind": task.kind,
                "metrics": task.metric_set,
                "main_metric": task.main_metric,
                "modelling": list(task.modelling),
                "splits": list(task.splits),
                "local_splits": local,
                "local": {"train", "validation"} <= set(local),
                "folder": str(root / task.folder) if root is not None else task.folder,
                "hub": str(task.hub) if task.hub is not None else None,
                "note": task.data_note(root),
            }
        )
    return rows
