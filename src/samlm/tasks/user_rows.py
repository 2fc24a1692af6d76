"""A user's rows, checked: the text, pair and label (or target) columns found, rows with
an empty text or no label refused (or dropped and counted), labels mapped to classes (or
numbers, or target texts), and the rows kept as :class:`~samlm.tasks.rows.Rows`; every
problem appended to a list, in words that name the file and the rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .rows import Rows, RowSource, Stored
from .user_spec import UserTaskSpec

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
    """One file's (or Hub split's) rows: the ``stored`` Arrow table, the columns used
    and the ``rows`` kept (0-based positions, ascending)."""

    where: str
    stored: Stored
    cols: Columns
    rows: np.ndarray

    def values(self, column: str) -> Iterator[tuple[np.ndarray, list[Any]]]:
        """``(positions, values)`` of ``column`` in the rows kept, a batch at a time
        (read through the file: :class:`~samlm.tasks.rows.Stored`)."""
        for positions, values in self.stored.read([column], self.rows):
            yield positions, values[column]

    def drop(self, bad: list[int]) -> None:
        self.rows = np.setdiff1d(self.rows, np.asarray(bad, dtype=np.int64))


def read_part(table: Any, cols: Columns, where: str, problems: list[str]) -> Part | None:
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
    return Part(where, Stored.of(table), cols, np.arange(len(table), dtype=np.int64))


def _blank(text: Any) -> bool:
    return not (isinstance(text, str) and text.strip())


def _where(part: Part, column: str | None, bad: Callable[[Any], bool]) -> list[int]:
    """The positions of the rows kept whose ``column`` value is ``bad``."""
    if column is None:
        return []
    return [
        p for ps, vs in part.values(column) for p, v in zip(ps.tolist(), vs, strict=True) if bad(v)
    ]


def check_rows(part: Part, spec: UserTaskSpec, problems: list[str], notes: list[str]) -> None:
    """Rows with an empty text or a missing label: refused, or dropped and counted."""
    cols = part.cols
    empty = sorted({*_where(part, cols.text, _blank), *_where(part, cols.text_pair, _blank)})
    unlabelled = _where(part, part.cols.label, lambda y: _missing(y) or y == "")
    bad = sorted(set(empty) | set(unlabelled))
    if not bad:
        return
    what = []
    if empty:
        what.append(f"{len(empty)} with an empty text ({_rows(empty)})")
    if unlabelled:
        rows = _rows(unlabelled)
        what.append(f"{len(unlabelled)} without a {'target' if spec.target else 'label'} ({rows})")
    if spec.drop_invalid:
        notes.append(f"{part.where}: dropped {len(bad)} rows, {'; '.join(what)}")
        part.drop(bad)
    else:
        problems.append(
            f"{part.where}: {'; '.join(what)}; fix them or drop them with "
            "drop_invalid=true (samlm train --drop-invalid)"
        )


def task_kind(spec: UserTaskSpec, train: Part) -> str:
    """As asked; else text2text with a target column, regression when the training
    labels are numbers not all integers, else classification."""
    if spec.kind != "auto" or spec.target:
        return "text2text" if spec.target else spec.kind
    fractional = _where(
        train, train.cols.label, lambda y: isinstance(y, float) and not y.is_integer()
    )
    return "regression" if fractional else "classification"


def class_names(train: Part) -> tuple[str, ...]:
    keys = {_label_key(y) for _, values in train.values(train.cols.label) for y in values}
    if all(_number(k) is not None for k in keys):
        return tuple(sorted(keys, key=lambda k: float(k)))
    return tuple(sorted(keys))


def labels_of(
    part: Part, kind: str, names: tuple[str, ...], problems: list[str]
) -> np.ndarray | None:
    """Each kept row's label: a class id (classification), a number (regression), or
    None (text2text: the target column is the answer); a problem for each label that is
    not one."""
    if kind == "text2text":
        return None
    if kind == "regression":
        return _numbers(part, problems)
    index = {name: i for i, name in enumerate(names)}
    ids = np.empty(len(part.rows), dtype=np.int64)
    unseen: dict[str, list[int]] = {}
    done = 0
    for positions, values in part.values(part.cols.label):
        keys = [_label_key(y) for y in values]
        for row, key in zip(positions.tolist(), keys, strict=True):
            if key not in index:
                unseen.setdefault(key, []).append(row)
        ids[done : done + len(keys)] = [index.get(k, -1) for k in keys]
        done += len(keys)
    for key, rows in unseen.items():
        problems.append(
            f"{part.where}: label {key!r} ({_rows(rows)}) never appears in the training data"
        )
    return ids


def _numbers(part: Part, problems: list[str]) -> np.ndarray:
    out = np.empty(len(part.rows), dtype=np.float64)
    bad: list[int] = []
    shown = None
    done = 0
    for positions, values in part.values(part.cols.label):
        numbers = [_number(y) for y in values]
        for row, y, n in zip(positions.tolist(), values, numbers, strict=True):
            if n is None:
                shown = repr(y) if shown is None else shown
                bad.append(row)
        out[done : done + len(numbers)] = [math.nan if n is None else n for n in numbers]
        done += len(numbers)
    if bad:
        problems.append(
            f"{part.where}: {len(bad)} regression targets are not numbers "
            f"({_rows(bad)}; e.g. {shown})"
        )
    return out


def examples_of(part: Part, labels: np.ndarray | None, text2text: bool) -> Rows:
    """The kept rows as :class:`~samlm.tasks.rows.Rows` (Examples made on access)."""
    cols = part.cols
    source = RowSource(part.stored, cols.text, cols.text_pair, cols.label if text2text else None)
    return Rows(source, part.rows, labels)
