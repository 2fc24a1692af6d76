"""A user's labelled data as a :class:`~samlm.tasks.base.Task` like the benchmark ones.

:func:`user_task` reads the files (or Hub dataset) of a reference (``user_spec.py``) once
per process, checks every row, and returns a Task whose splits are

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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Example, Task
from .errors import DataError
from .sampling import subsample
from .user_read import read_file, read_hub
from .user_spec import DEFAULT_TEST_FRACTION, UserTaskSpec, metric_for, parse_ref

TEST_SEED = 1_000_003  # the held-out test split's own seed, apart from runs' seeds
TEXT_NAMES = (
    "text", "sentence", "sentence1", "text_a", "question1", "premise", "question", "review",
    "content", "document", "phrase", "tweet", "comment", "utterance", "query", "input",
)  # fmt: skip
PAIR_NAMES = {
    "text": "text_pair", "sentence": "sentence2", "sentence1": "sentence2", "text_a": "text_b",
    "question1": "question2", "premise": "hypothesis", "question": "passage",
}  # fmt: skip
LABEL_NAMES = ("label", "labels", "sentiment", "polarity", "class", "category", "target", "y")
SHOWN = 5  # rows named in a problem
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


def _rows(rows: list[int]) -> str:
    """``rows 3, 8 and 2 more`` (0-based indices shown as data rows counted from 1)."""
    shown = ", ".join(str(r + 1) for r in rows[:SHOWN])
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _find(columns: list[str], names: tuple[str, ...]) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


@dataclass(frozen=True)
class Columns:
    text: str
    text_pair: str | None
    label: str


def find_columns(spec: UserTaskSpec, table: Any, where: str, problems: list[str]) -> Columns | None:
    """The text, pair and label columns of the training table: the spec's, else found by
    name (:data:`TEXT_NAMES`, :data:`PAIR_NAMES`, :data:`LABEL_NAMES`; a single text
    column left is the text)."""
    columns = list(table.column_names)
    present = f"columns present: {', '.join(columns)}"
    wanted = {
        "text": spec.text,
        "text_pair": spec.text_pair,
        "label": spec.label,
        "target": spec.target,
    }
    unknown = [f"{k}={v!r}" for k, v in wanted.items() if v is not None and v not in columns]
    if unknown:
        problems.append(f"{where}: unknown column {', '.join(unknown)}; {present}")
        return None
    label = spec.target or spec.label or _find(columns, LABEL_NAMES)
    if label is None:
        problems.append(f"{where}: no label column found by name; {present}; give label=COLUMN")
        return None
    text = spec.text or _find([c for c in columns if c != label], TEXT_NAMES)
    if text is None:
        strings = [
            c
            for c in columns
            if c != label and getattr(table.features[c], "dtype", "") in ("string", "large_string")
        ]
        text = strings[0] if len(strings) == 1 else None
    if text is None:
        problems.append(f"{where}: no text column found by name; {present}; give text=COLUMN")
        return None
    pair = spec.text_pair or PAIR_NAMES.get(text.lower())
    return Columns(text, pair if pair in columns else None, label)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label_key(value: Any) -> str:
    """A class label as its name: ``1``, ``1.0`` and ``"1"`` are the class ``"1"``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class Part:
    """One file's (or Hub split's) rows: texts, pair texts, raw labels, row numbers."""

    where: str
    texts: list[Any]
    pairs: list[Any] | None
    labels: list[Any]
    rows: list[int]

    def drop(self, bad: set[int]) -> None:
        keep = [i for i in range(len(self.rows)) if i not in bad]
        self.texts = [self.texts[i] for i in keep]
        self.pairs = None if self.pairs is None else [self.pairs[i] for i in keep]
        self.labels = [self.labels[i] for i in keep]
        self.rows = [self.rows[i] for i in keep]


def _part(table: Any, cols: Columns, where: str, problems: list[str]) -> Part | None:
    names = [c for c in (cols.text, cols.text_pair, cols.label) if c]
    absent = [c for c in names if c not in table.column_names]
    if absent:
        problems.append(
            f"{where}: unknown column {', '.join(absent)}; columns present: "
            f"{', '.join(table.column_names)}"
        )
        return None
    if len(table) == 0:
        problems.append(f"{where}: no rows (the file has a header only)")
        return None
    data = table.data  # the memory-mapped Arrow table
    values = {c: data.column(c).to_pylist() for c in names}
    pairs = values[cols.text_pair] if cols.text_pair else None
    return Part(where, values[cols.text], pairs, values[cols.label], list(range(len(table))))


def _invalid(part: Part, spec: UserTaskSpec, problems: list[str], notes: list[str]) -> None:
    """Rows with an empty text or a missing label: refused, or dropped and counted."""

    def blank(text: Any) -> bool:
        return not (isinstance(text, str) and text.strip())

    pairs = part.pairs if part.pairs is not None else ["-"] * len(part.rows)
    empty = [
        i for i, (a, b) in enumerate(zip(part.texts, pairs, strict=True)) if blank(a) or blank(b)
    ]
    unlabelled = [i for i, y in enumerate(part.labels) if _missing(y) or y == ""]
    bad = sorted(set(empty) | set(unlabelled))
    if not bad:
        return
    what = []
    if empty:
        what.append(f"{len(empty)} with an empty text ({_rows([part.rows[i] for i in empty])})")
    if unlabelled:
        rows = _rows([part.rows[i] for i in unlabelled])
        what.append(f"{len(unlabelled)} without a {'target' if spec.target else 'label'} ({rows})")
    if spec.drop_invalid:
        notes.append(f"{part.where}: dropped {len(bad)} rows, {'; '.join(what)}")
        part.drop(set(bad))
    else:
        problems.append(
            f"{part.where}: {'; '.join(what)}; fix them or drop them with "
            "drop_invalid=true (samlm train --drop-invalid)"
        )


def _kind(spec: UserTaskSpec, train: Part) -> str:
    """As asked; else text2text with a target column, regression when the training
    labels are numbers not all integers, else classification."""
    if spec.kind != "auto" or spec.target:
        return "text2text" if spec.target else spec.kind
    numbers = [y for y in train.labels if isinstance(y, float)]
    return "regression" if any(not y.is_integer() for y in numbers) else "classification"


def _class_names(train: Part) -> tuple[str, ...]:
    keys = {_label_key(y) for y in train.labels}
    if all(_number(k) is not None for k in keys):
        return tuple(sorted(keys, key=lambda k: float(k)))
    return tuple(sorted(keys))


def _labels(part: Part, kind: str, names: tuple[str, ...], problems: list[str]) -> list[Any]:
    if kind == "text2text":  # the target text, scored as an answer
        return [str(y) for y in part.labels]
    if kind == "regression":
        numbers = [_number(y) for y in part.labels]
        bad = [part.rows[i] for i, y in enumerate(numbers) if y is None]
        if bad:
            shown = repr(part.labels[part.rows.index(bad[0])])
            problems.append(
                f"{part.where}: {len(bad)} regression targets are not numbers "
                f"({_rows(bad)}; e.g. {shown})"
            )
        return numbers
    index = {name: i for i, name in enumerate(names)}
    keys = [_label_key(y) for y in part.labels]
    unseen: dict[str, list[int]] = {}
    for row, key in zip(part.rows, keys, strict=True):
        if key not in index:
            unseen.setdefault(key, []).append(row)
    for key, rows in unseen.items():
        problems.append(
            f"{part.where}: label {key!r} ({_rows(rows)}) never appears in the training data"
        )
    return [index.get(k) for k in keys]


def _examples(part: Part, cols: Columns, labels: list[Any], text2text: bool) -> list[Example]:
    out = []
    for i, row in enumerate(part.rows):
        fields = {cols.text: part.texts[i]}
        if part.pairs is not None and cols.text_pair:
            fields[cols.text_pair] = part.pairs[i]
        if text2text:
            out.append(Example(fields, None, answers=(labels[i],), idx=row))
        else:
            out.append(Example(fields, labels[i], idx=row))
    return out


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
    spec: UserTaskSpec,
    train: list[Example],
    kind: str,
    names: tuple[str, ...],
    where: str,
    problems: list[str],
) -> tuple[list[Example], list[Example]] | None:
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
        counts = Counter(ex.label for ex in train)
        small = [f"{names[c]!r} ({n} row)" for c, n in sorted(counts.items()) if n < 2]
        if small:
            problems.append(
                f"{where}: class {', '.join(small)} too small for a stratified test "
                "split: each class needs 2 rows (one to test, one to train)"
            )
            return None
    test = subsample(train, size=size, seed=TEST_SEED, stratify=stratify)
    taken = {id(ex) for ex in test}
    rest = [ex for ex in train if id(ex) not in taken]
    if stratify:
        lost = {ex.label for ex in test} - {ex.label for ex in rest}
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
            part = _part(table, cols, where, problems)
            if part is not None:
                _invalid(part, spec, problems, notes)
                parts[split] = part
    if "train" not in parts or not parts["train"].rows:
        _refuse(spec, problems or [f"{spec.ref}: no training rows"])
    kind = _kind(spec, parts["train"])
    names = _class_names(parts["train"]) if kind == "classification" else ()
    examples = {
        s: _examples(p, cols, _labels(p, kind, names, problems), kind == "text2text")
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
    examples: dict[str, list[Example]],
    kind: str,
    names: tuple[str, ...],
    where: str,
    problems: list[str],
    notes: list[str],
) -> dict[str, list[Example]]:
    """The Task's splits from the given ones (see the module docstring)."""
    carve = "test" not in examples and (
        "validation" not in examples or spec.test_size is not None or spec.test_fraction
    )
    out = {"train": examples["train"]}
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
    splits: dict[str, list[Example]],
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
        keys=keys,
        t5_keys=keys,
        loader=lambda split: list(splits[split]),
        note="; ".join(notes),
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
