"""A user's rows, checked: the text, pair and label (or target) columns found, rows with
an empty text or no label refused (or dropped and counted), labels mapped to classes (or
numbers, or target texts), and :class:`~samlm.tasks.base.Example` objects made; every
problem appended to a list, in words that name the file and the rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .base import Example
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
    data = table.data  # the memory-mapped Arrow table
    values = {c: data.column(c).to_pylist() for c in names}
    pairs = values[cols.text_pair] if cols.text_pair else None
    return Part(where, values[cols.text], pairs, values[cols.label], list(range(len(table))))


def check_rows(part: Part, spec: UserTaskSpec, problems: list[str], notes: list[str]) -> None:
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


def task_kind(spec: UserTaskSpec, train: Part) -> str:
    """As asked; else text2text with a target column, regression when the training
    labels are numbers not all integers, else classification."""
    if spec.kind != "auto" or spec.target:
        return "text2text" if spec.target else spec.kind
    numbers = [y for y in train.labels if isinstance(y, float)]
    return "regression" if any(not y.is_integer() for y in numbers) else "classification"


def class_names(train: Part) -> tuple[str, ...]:
    keys = {_label_key(y) for y in train.labels}
    if all(_number(k) is not None for k in keys):
        return tuple(sorted(keys, key=lambda k: float(k)))
    return tuple(sorted(keys))


def labels_of(part: Part, kind: str, names: tuple[str, ...], problems: list[str]) -> list[Any]:
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


def examples_of(part: Part, cols: Columns, labels: list[Any], text2text: bool) -> list[Example]:
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
