"""A user's labelled data as a :class:`~samlm.tasks.base.Task` like the benchmark ones.

:func:`user_task` reads the files (or Hub dataset) of a reference (``user_spec.py``) once
per process (``user_read.py``), checks every row (``user_rows.py``), and returns a Task
whose splits are

* ``train``: the training rows (less the held-out test split when one was carved);
* ``validation``: the rows the run reports on (as a benchmark's dev set): the test
  file, else the validation file, else a seeded, stratified share of the training file
  (:data:`TEST_SEED`: the same rows for every method, seed and size);
* ``selection`` (when a test file and a validation file are both given): the validation
  file, which checkpoint selection then uses (``pipeline/data.py``).

Every problem (missing file or column, empty file, empty text, missing label, a label
unseen in training, a non-numeric regression target, text not in the encoding, a test
split the data cannot hold) is collected and raised at once as one :class:`DataError`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import Example, Task
from .errors import DataError
from .rows import Rows
from .sampling import split_sample
from .user_read import read_file, read_hub
from .user_rows import (
    Columns,
    Part,
    check_rows,
    class_names,
    examples_of,
    find_columns,
    labels_of,
    read_part,
    task_kind,
)
from .user_spec import DEFAULT_TEST_FRACTION, UserTaskSpec, metric_for, parse_ref

TEST_SEED = 1_000_003  # the held-out test split's own seed, apart from runs' seeds
# a user's kind of task -> the Task's metrics and modelling (text2text: scored as QA)
METRIC_SETS = {
    "classification": "accuracy_macro_f1",
    "regression": "pearson_spearman",
    "text2text": "squad",
}
MODELLING = {
    "classification": ("encoder", "text2text"),  # an encoder's head, or the label names
    "regression": ("encoder",),
    "text2text": ("text2text",),  # and causal (Task adds it)
}


def _tables(spec: UserTaskSpec, problems: list[str]) -> dict[str, tuple[str, Any]]:
    """Each given split's ``(where, table)``; the problems of those that cannot be read."""
    read: dict[str, tuple[str, Any]] = {}
    if spec.dataset:
        for split, name in spec.hub_splits().items():
            read[split] = (f"Hub dataset {spec.dataset}, split {name!r}", read_hub(spec, split))
    else:
        for split, path in spec.file_paths().items():
            read[split] = (str(path), read_file(path, spec.encoding))
    problems += [table for _, table in read.values() if isinstance(table, str)]
    return {s: v for s, v in read.items() if not isinstance(v[1], str)}


def _test_size(spec: UserTaskSpec, n: int) -> int:
    if spec.test_size is not None:
        return spec.test_size
    return max(1, math.floor((spec.test_fraction or DEFAULT_TEST_FRACTION) * n + 0.5))


def _carve(
    spec: UserTaskSpec, train: Rows, kind: str, names: tuple[str, ...], where: str,
    problems: list[str],
) -> tuple[Sequence[Example], Sequence[Example]] | None:  # fmt: skip
    """``(rest, test)``: the held-out test split (seeded, stratified by class)."""
    size = _test_size(spec, len(train))
    if size >= len(train):
        problems.append(
            f"{where}: a test split of {size} rows leaves none of its "
            f"{len(train)} rows to train on (test_size/test_fraction)"
        )
        return None
    stratify = kind == "classification"
    if stratify:
        ids, counts = np.unique(train.labels, return_counts=True)
        small = [f"{names[c]!r} ({n} row)" for c, n in zip(ids, counts, strict=True) if n < 2]
        if small:
            problems.append(
                f"{where}: class {', '.join(small)} too small for a stratified test "
                "split: each class needs 2 rows (one to test, one to train)"
            )
            return None
    test, rest = split_sample(train, size=size, seed=TEST_SEED, stratify=stratify)
    assert isinstance(test, Rows) and isinstance(rest, Rows)
    if stratify:
        lost = np.setdiff1d(test.labels, rest.labels).tolist()
        if lost:
            lost_names = ", ".join(repr(names[c]) for c in sorted(lost))
            problems.append(
                f"{where}: the test split takes every row of class {lost_names}; "
                "give a smaller test_size or test_fraction"
            )
            return None
    return rest, test


def build_task(spec: UserTaskSpec) -> Task:
    """The Task of ``spec``, every row checked (see the module docstring)."""
    problems: list[str] = []
    notes: list[str] = []
    tables = _tables(spec, problems)
    cols = None
    if "train" in tables:
        cols = find_columns(spec, tables["train"][1], tables["train"][0], problems)
    parts: dict[str, Part] = {}
    if cols is not None:
        for split, (where, table) in tables.items():
            part = read_part(table, cols, where, problems)
            if part is not None:
                check_rows(part, spec, problems, notes)
                parts[split] = part
    if "train" not in parts or not len(parts["train"].rows):
        _refuse(spec, problems or [f"{spec.ref}: no training rows"])
    kind = task_kind(spec, parts["train"])
    names = class_names(parts["train"]) if kind == "classification" else ()
    examples = {
        s: examples_of(p, labels_of(p, kind, names, problems), kind == "text2text")
        for s, p in parts.items()
    }
    try:
        metric = metric_for(spec, kind)
    except DataError as err:
        problems.append(str(err))
    if kind == "classification" and len(names) < 2:
        problems.append(
            f"{parts['train'].where}: one class only ({names[0]!r}); a classifier "
            "needs two or more (or kind=regression for scores)"
        )
    splits = _roles(spec, examples, kind, names, parts["train"].where, problems, notes)
    if problems:
        _refuse(spec, problems)
    return _task(spec, cols, kind, names, metric, splits, notes)


def _roles(
    spec: UserTaskSpec,
    examples: dict[str, Rows],
    kind: str,
    names: tuple[str, ...],
    where: str,
    problems: list[str],
    notes: list[str],
) -> dict[str, Sequence[Example]]:
    """The Task's splits from the given ones (see the module docstring)."""
    carve = "test" not in examples and (
        "validation" not in examples or spec.test_size is not None or spec.test_fraction
    )
    out: dict[str, Sequence[Example]] = {"train": examples["train"]}
    if carve:
        if problems:  # the rows are not all usable: no split to carve yet
            return {}
        cut = _carve(spec, examples["train"], kind, names, where, problems)
        if cut is None:
            return {}
        out["train"], out["validation"] = cut
        notes.append(
            f"held out {len(cut[1])} of the {len(examples['train'])} training rows "
            f"({where}) as the test split (seed {TEST_SEED}"
            + (", stratified by class" if kind == "classification" else "")
            + "; the same for every method, seed and size)"
        )
        if "validation" in examples:
            out["selection"] = examples["validation"]
        return out
    out["validation"] = examples.get("test", examples.get("validation", []))
    if "test" in examples and "validation" in examples:
        out["selection"] = examples["validation"]
    return out


def _refuse(spec: UserTaskSpec, problems: list[str]) -> None:
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    lines = "\n".join(f"  - {p}" for p in dict.fromkeys(problems))
    raise DataError(f"task {spec.ref!r} cannot be used ({count}; nothing was run):\n{lines}")


def _unused(*args: Any) -> Any:
    raise AssertionError("a user's task is read by its loader")


def _task(
    spec: UserTaskSpec,
    cols: Columns,
    kind: str,
    names: tuple[str, ...],
    metric: str,
    splits: dict[str, Sequence[Example]],
    notes: list[str],
) -> Task:
    keys = (cols.text, cols.text_pair) if cols.text_pair else (cols.text,)
    given = {s: (str(p),) for s, p in spec.file_paths().items()} or {
        s: (f"{spec.dataset}[{name}]",) for s, name in spec.hub_splits().items()
    }
    reported = "test" if "test" in given else "validation" if "selection" not in splits else "train"
    files = {"train": given["train"], "validation": given.get(reported, given["train"])}
    if "selection" in splits:
        files["selection"] = given["validation"]
    return Task(
        name=spec.ref,
        benchmark="user",
        folder=str(Path(spec.train).parent) if spec.train else str(spec.dataset),
        files=files,
        kind="qa" if kind == "text2text" else kind,
        metric_set=METRIC_SETS[kind],
        main_metric=metric,
        modelling=MODELLING[kind],
        reader=_unused,
        parse=_unused,
        label_names=names,
        prefix=spec.name or "",  # T5's task prefix: "cr review: ..."
        keys=keys,
        t5_keys=keys,
        loader=lambda split: splits[split],  # Rows: made on access, never changed
        note="; ".join(notes),
    )


LARGE_TEST = 10_000  # a default test split above this many rows: samlm tasks suggests a cap


def large_test_advice(task: Task) -> str | None:
    """For a user's single file whose default test split (:data:`DEFAULT_TEST_FRACTION`
    of its rows, no ``test_size`` given) holds out more than :data:`LARGE_TEST` rows: how
    many, and that ``test_size`` caps it (None otherwise)."""
    if task.benchmark != "user":
        return None
    spec = parse_ref(task.name)
    given = {*spec.file_paths(), *spec.splits} - {"train"}
    if given or spec.test_size is not None or spec.test_fraction is not None:
        return None
    held = len(task.loader("validation")) if task.loader else 0
    if held <= LARGE_TEST:
        return None
    return (
        f"the default test split ({DEFAULT_TEST_FRACTION:.0%} of the file) holds out "
        f"{held:,} rows, and every run tokenizes and scores them all; test_size caps it "
        f"({task.name.split('?')[0]}?test_size={LARGE_TEST}, test_size: {LARGE_TEST} in a "
        f"task file, --test-size {LARGE_TEST} for samlm train), or --eval-size scores a "
        "fixed subset of them"
    )


_CACHE: dict[tuple, Task] = {}


def _stamp(spec: UserTaskSpec) -> tuple:
    """What a cached task depends on: the spec, the working folder, the files' times."""
    stats = []
    for path in spec.file_paths().values():
        try:
            st = os.stat(path)
            stats.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append((str(path), None, None))
    return (repr(spec), os.getcwd(), tuple(stats))


def user_task(ref: str) -> Task:
    """The Task a reference names, read and checked once per process (again only when
    a file changed)."""
    spec = parse_ref(ref)
    key = _stamp(spec)
    if key not in _CACHE:
        _CACHE[key] = build_task(spec)
    return _CACHE[key]
