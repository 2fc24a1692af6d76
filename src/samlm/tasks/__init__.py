"""Benchmark tasks: GLUE, SuperGLUE and closed-book / GoldP QA.

>>> task = get_task("superglue/rte")
>>> train = load_split(task, "train", data_dir)        # local folder, else the Hub
>>> source, target = task.text2text(train[0])         # "rte hypothesis: ... premise: ..."
>>> task.compute_metrics(predictions, validation)     # {"accuracy": ...}
"""

from .base import Example, HubSource, LocalSplit, Task
from .datadir import resolve_data_dir
from .errors import DataError, Where
from .loading import load_split
from .registry import TASKS, describe_tasks, get_task
from .sampling import subsample

__all__ = [
    "TASKS",
    "DataError",
    "Example",
    "HubSource",
    "LocalSplit",
    "Task",
    "Where",
    "describe_tasks",
    "get_task",
    "load_split",
    "resolve_data_dir",
    "subsample",
]
