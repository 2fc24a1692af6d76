"""A task mixture as one grid task: ``glue/sst2+superglue/cb`` lists its tasks,
``mixture/glue`` names a benchmark's (its tasks whose data is found, as ``samlm train
--mixture glue``). Its cells train one model on the mixture at the grid size per task;
the cell's score is the mixture's average, its record keeps each task's score too.
"""

from __future__ import annotations

from typing import Any

JOIN = "+"  # between the tasks of a listed mixture
NAMED = "mixture/"  # before the name of a named one


def is_mixture(name: str) -> bool:
    return JOIN in name or name.startswith(NAMED)


def listed(name: str) -> list[str]:
    """The task names of a listed mixture (``[name]`` for one task, ``[]`` for a named
    mixture, whose tasks depend on the data found)."""
    return [] if name.startswith(NAMED) else [t.strip() for t in name.split(JOIN)]


def train_task(name: str) -> dict[str, Any]:
    """The ``TrainConfig`` options that say what a cell of grid task ``name`` trains on."""
    if name.startswith(NAMED):
        return {"task": "", "mixture": name.removeprefix(NAMED)}
    return {"task": ",".join(listed(name)) if JOIN in name else name}


def describe_mixing(mixing: str | None, limit: int | None, temperature: float | None) -> str:
    """How a grid's mixture cells drew their tasks, in words (None: samlm train's default)."""
    kind = mixing or "proportional"
    words = {
        "proportional": "at rates proportional to their training sizes",
        "temperature": f"at temperature-scaled rates (T = {temperature or 1.0:g})",
        "equal": "at equal rates",
    }[kind]
    if limit is not None and kind != "equal":
        words += f", each counting at most {limit} examples"
    return f"{words} (--mixing {kind}{'' if mixing else ', the default'})"


def scores(result: dict[str, Any]) -> dict[str, Any]:
    """A mixture cell's record entries from ``samlm train``'s result: ``score`` (the
    average), ``per_task`` (each task's score), ``validation_score`` and the examples
    summed over the tasks (``validation_from`` of each task, "+"-joined where they differ)."""
    from ..metrics import task_score

    tasks = result["tasks"]
    roles = sorted({t["validation_from"] for t in tasks.values()})
    examples = {
        k: sum(t[k] for t in tasks.values())
        for k in ("train_examples", "validation_examples", "reported_examples")
    }
    return {
        "score": result["average"],
        "per_task": {name: task_score(m) for name, m in result["per_task"].items()},
        "validation_score": result["validation_metrics"]["average"],
        "examples": {**examples, "validation_from": JOIN.join(roles)},
    }
