"""Check a grid before any cell starts: every problem that would fail its cells, at once.

A grid that fails only in its workers costs one failed cell per task, size, method and
seed, each with its own copy of the same error; :func:`check_grid` reads each task's data
once, resolves the model once per task, and refuses the grid with one message that
lists every problem it found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ..tasks import TASKS, Example, Task, get_task, load_split
from .grid import METHODS, MIXTURE_OPTIONS, Cell, GridSpec
from .mixtures import JOIN, NAMED, is_mixture, listed

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

    Checks that each task name (each task of a mixture) is known (and not listed twice),
    that the options are ones ``samlm train`` takes, that the model resolves and can model
    each task (``resolve_model(model, modelling, task)``, as a cell does), that the
    ``train`` and ``validation`` splits load (from ``spec.data_dir`` or
    ``$SAMLM_DATA_DIR``, else, with ``hub``, the Hugging Face Hub, as a cell does), that
    no size is larger than a task's training split (size 0 = the full set), and that the
    validation sample (``validation_size``, when the spec has one) fits where it is drawn.
    """
    from ..pipeline.data import data_folder
    from ..pipeline.mixture import named_mixture

    problems: list[str] = []
    entries, unknown = _entries(spec, problems)
    if unknown:
        problems.insert(
            0,
            f"unknown task{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known tasks: {', '.join(TASKS)} (see `samlm tasks`), or a data file, a YAML "
            "task file or hub:owner/name",
        )
    repeated = [size for size, n in Counter(spec.sizes).items() if n > 1]
    if repeated:
        problems.append(f"size(s) {', '.join(map(str, repeated))} listed more than once")
    problems += _option_problems(spec)

    modelling = _modelling(spec, entries, problems)
    try:
        root = data_folder(spec.data_dir)
    except ValueError as err:  # every cell would refuse it: no point reading tasks
        problems.append(str(err))
        return problems
    for name in [n for n in entries if n.startswith(NAMED)]:  # a named mixture's tasks
        if modelling is not None:
            try:
                entries[name] = named_mixture(name.removeprefix(NAMED), root, modelling)[0]
            except ValueError as err:
                problems.append(f"{name}: {err}")
    loaded: dict[str, dict[str, list[Example] | str]] = {}
    for name, tasks in entries.items():
        for task in tasks:
            if task.name not in loaded:  # each task's data read once
                loaded[task.name] = {split: _load(task, split, root, hub) for split in SPLITS}
                problems += [v for v in loaded[task.name].values() if isinstance(v, str)]
            train, dev = loaded[task.name]["train"], loaded[task.name]["validation"]
            if not isinstance(train, str):
                problems += _size_problems(spec, task, spec.sizes_for(name), train, dev)
    return list(dict.fromkeys(problems))  # a task alone and in a mixture: said once


def _modelling(spec: GridSpec, entries: dict[str, list[Task]], problems: list[str]) -> str | None:
    """The modelling ``spec.model`` resolves to (None where it does not), checked against
    every task of ``entries``; each problem appended to ``problems``."""
    from ..pipeline.models import check_modelling, resolve_model

    try:
        modelling = resolve_model(spec.model, spec.modelling, None).modelling
    except Exception as err:
        problems.append(f"model {spec.model!r}: {err}")
        return None
    for task in {t.name: t for ts in entries.values() for t in ts}.values():
        try:
            check_modelling(task, modelling)
        except ValueError as err:
            problems.append(f"{task.name}: {err}")
    return modelling


def _entries(spec: GridSpec, problems: list[str]) -> tuple[dict[str, list[Task]], list[str]]:
    """Each grid task's tasks (a named mixture's: found later, with the data) and the
    unknown task names; other problems go to ``problems``."""
    from ..pipeline.mixing import MIXTURES

    entries: dict[str, list[Task]] = {}
    unknown: list[str] = []
    seen: set[str] = set()
    for name in spec.tasks:
        if name.startswith(NAMED) and name.removeprefix(NAMED) not in MIXTURES:
            known = ", ".join(NAMED + m for m in MIXTURES)
            problems.append(f"unknown mixture {name!r}; known mixtures: {known}")
            continue
        tasks: list[Task] = []
        for member in listed(name):
            try:
                task = get_task(member)
            except ValueError as err:
                if str(err).startswith("unknown task"):
                    unknown.append(repr(member) + (f" (in {name!r})" if member != name else ""))
                else:  # ambiguous
                    problems.append(str(err))
                continue
            if task in tasks:
                problems.append(f"mixture {name!r} lists {task.name} twice")
            else:
                tasks.append(task)
        same = JOIN.join(sorted(t.name for t in tasks)) if tasks else name
        if same in seen:
            problems.append(f"task {name!r} is {same}, which the grid already lists")
        else:
            seen.add(same)
            entries[name] = tasks
    return entries, unknown


def _option_problems(spec: GridSpec) -> list[str]:
    """Options every cell would refuse (``TrainConfig``'s checks, a cell of each method)
    and the mixing options' problems."""
    from ..pipeline import TrainConfig

    problems: dict[str, None] = {}  # each message once, whichever methods share it
    for method in spec.methods:
        cell = Cell(spec.tasks[0], spec.sizes[0], method, spec.seed_offset)
        # the tasks are checked apart (any task name stands in for them here, a mixture's
        # for TaskSAM, which trains on mixtures only), the mixing options by _mixing_problems
        per_task = METHODS.get(method, {}).get("optimizer") == "tasksam"
        options = {**spec.train_options(cell), "task": "a,b" if per_task else "-", "mixture": None}
        options = {k: v for k, v in options.items() if k not in MIXTURE_OPTIONS}
        try:
            TrainConfig(output="-", **options)
        except ValueError as err:
            problems[str(err)] = None
    single = [t for t in spec.tasks if not is_mixture(t)]
    if single and any(METHODS.get(m, {}).get("optimizer") == "tasksam" for m in spec.methods):
        problems[
            f"method tasksam perturbs each task of a mixture on its own, and {', '.join(single)} "
            f"{'is a single task' if len(single) == 1 else 'are single tasks'}: list mixtures "
            f"only (tasks joined by {JOIN}, or {NAMED}NAME) or drop tasksam"
        ] = None
    return [*problems, *_mixing_problems(spec)]


def _mixing_problems(spec: GridSpec) -> list[str]:
    """The mixing options given (``--mixing``, ``--mixing-limit``, ``--temperature``): only
    with a mixture among the tasks, each where it has an effect, and values
    ``samlm train`` takes."""
    from ..options import flag_values
    from ..pipeline import TrainConfig

    given = spec.mixing_options()
    if not given:
        return []
    flags = flag_values(given)
    if not any(is_mixture(name) for name in spec.tasks):
        return [
            f"{flags}: sets how a mixture's tasks are drawn, and --tasks lists no mixture "
            f"(tasks joined by {JOIN}, or {NAMED}NAME); drop {'it' if len(given) == 1 else 'them'}"
            " or add a mixture"
        ]
    try:  # samlm train's checks, as a two-task cell gets them (one place for the rules)
        TrainConfig(task="a,b", output="-", **given)
    except ValueError as err:
        return [str(err)]
    return []


def _size_problems(
    spec: GridSpec, task: Task, sizes: list[int], train: Sequence[Example], dev: Sequence | str
) -> list[str]:
    """``sizes`` the training split cannot hold (size 0 = the full set) or that leave a
    class out of the stratified subset (``stratified_problem``, as a cell asks); with a
    ``validation_size``, a validation sample its source cannot hold (drawn as a cell draws
    it: from the training pool when the pool holds it and the subset, else from dev)."""
    from ..pipeline.data import stratified_problem, validation_plan

    problems = []
    held = spec.validation_size
    short = []  # sizes whose validation sample the dev split cannot hold
    n = len(train)
    for size in dict.fromkeys(sizes):
        problem = stratified_problem(task, train, size)
        if problem:
            problems.append(problem)
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
