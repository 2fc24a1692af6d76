"""Check a grid before any cell starts: every problem that would fail its cells, at once.

A grid that fails only in its workers costs one failed cell per task, size, method and
seed, each with its own copy of the same error; :func:`check_grid` reads each task's data
once, resolves the model once per task, and refuses the grid with one message that
lists every problem it found.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..tasks import TASKS, Example, Task, get_task, load_split
from .grid import GridSpec

SPLITS = ("train", "validation")  # what every cell loads


def _bullet(text: str) -> str:
    """``text`` as one item of the problem list, continuation lines indented."""
    first, *rest = str(text).splitlines() or [""]
    return "\n".join([f"  - {first}", *(f"    {line}" for line in rest)])


def _load(task: Task, split: str, root: Path | None, hub: bool) -> list[Example] | str:
    """The split's examples, or the error text (which names the file and line, or the
    paths looked at and why the Hub failed)."""
    try:
        return load_split(task, split, root, hub=hub)
    except ValueError as err:  # DataError included
        return f"{task.name} split {split!r}: {err}"
    except Exception as err:  # unreadable file, ...: reported, never raised here
        return f"{task.name} split {split!r}: {type(err).__name__}: {err}"


def grid_problems(spec: GridSpec, *, hub: bool = True) -> list[str]:
    """Every problem that would fail cells of ``spec`` (an empty list when it can run).

    Checks that each task name is known (and not listed twice), that the model resolves
    and can model each task (``resolve_model(model, "auto", task)``, as a cell does), that
    the ``train`` and ``validation`` splits load (from ``spec.data_dir`` or
    ``$SAMLM_DATA_DIR``, else, with ``hub``, the Hugging Face Hub, as a cell does), that
    no size is larger than a task's training split (size 0 = the full set), and that the
    validation sample (``validation_size``, when the spec has one) fits where it is drawn.
    """
    from ..pipeline.data import data_folder
    from ..pipeline.models import resolve_model

    problems: list[str] = []
    tasks: list[Task] = []
    unknown: list[str] = []
    for name in spec.tasks:
        try:
            task = get_task(name)
        except ValueError as err:
            if str(err).startswith("unknown task"):
                unknown.append(repr(name))
            else:  # ambiguous
                problems.append(str(err))
            continue
        if task in tasks:
            problems.append(f"task {name!r} is {task.name}, which the grid already lists")
        else:
            tasks.append(task)
    if unknown:
        problems.insert(
            0,
            f"unknown task{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known tasks: {', '.join(TASKS)} (see `samlm tasks`)",
        )
    repeated = [size for size, n in Counter(spec.sizes).items() if n > 1]
    if repeated:
        problems.append(f"size(s) {', '.join(map(str, repeated))} listed more than once")

    # The model, against every task (against any one when no task is known).
    for task in tasks or list(TASKS.values())[:1]:
        try:
            resolve_model(spec.model, "auto", task)
        except Exception as err:
            if err.__cause__ is not None:  # the model itself: the same for every task
                problems.append(f"model {spec.model!r}: {err}")
                break
            if tasks:
                problems.append(f"{task.name}: {err}")

    try:
        root = data_folder(spec.data_dir)
    except ValueError as err:  # every cell would refuse it: no point reading tasks
        problems.append(str(err))
        return problems
    for task in tasks:
        loaded = {split: _load(task, split, root, hub) for split in SPLITS}
        problems += [v for v in loaded.values() if isinstance(v, str)]
        train, dev = loaded["train"], loaded["validation"]
        if not isinstance(train, str):
            problems += _size_problems(spec, task, len(train), dev)
    return problems


def _canonical(name: str) -> str | None:
    try:
        return get_task(name).name
    except ValueError:
        return None


def _size_problems(spec: GridSpec, task: Task, n: int, dev: list[Example] | str) -> list[str]:
    """Sizes the training split cannot hold (size 0 = the full set); with a
    ``validation_size``, a validation sample its source cannot hold (drawn as a cell draws
    it: from the training pool when the pool holds it and the subset, else from dev)."""
    from ..pipeline.data import validation_plan

    problems = []
    held = spec.validation_size
    short = []  # sizes whose validation sample the dev split cannot hold
    named = [name for name in spec.tasks if _canonical(name) == task.name]
    sizes = spec.sizes_for(named[0]) if named else spec.sizes
    for size in dict.fromkeys(sizes):
        if size > n:
            problems.append(
                f"{task.name}: size {size} is larger than its training split "
                f"({n} example{'' if n == 1 else 's'}; size 0 = the full set)"
            )
        elif held is not None and not isinstance(dev, str):
            _, k = validation_plan("auto", held, n, len(dev), size or None)
            if k < 1:  # a dev split of one example has no half to spare
                short.append(str(size or "all"))
    if short:
        problems.append(
            f"{task.name}: no room for a validation sample of validation_size {held} beside "
            f"the cells of size {', '.join(short)} (training split {n}, dev split "
            f"{len(dev)} examples)"
        )
    return problems


def check_grid(spec: GridSpec, *, hub: bool = True) -> None:
    """Raise ValueError listing every problem of :func:`grid_problems`; None if none."""
    problems = grid_problems(spec, hub=hub)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ValueError(
            f"the grid cannot run ({count}; no cell was started):\n"
            + "\n".join(_bullet(p) for p in problems)
        )
