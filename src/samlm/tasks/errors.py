"""Data errors that name the file, the record and the field at fault."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Task data that is missing or malformed; the message says where and what to do."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Where:
    """Location of one record: ``path`` plus a 1-based ``line`` (jsonl, tsv) or a JSON
    ``pointer`` such as ``Data[3]`` (0-based), the 0-based record ``index`` in the file, and
    ``prefix`` for fields nested inside the record (``passage.questions[2].``)."""

    path: Path
    index: int = 0
    line: int | None = None
    pointer: str | None = None
    prefix: str = ""

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.path}, line {self.line}"
        if self.pointer is not None:
            return f"{self.path}, record {self.pointer}"
        return str(self.path)

    def at(self, prefix: str) -> Where:
        """The same record, with field names reported under ``prefix`` (e.g. ``qas[1]``)."""
        return replace(self, prefix=f"{self.prefix}{prefix}.")

    def error(self, message: str) -> DataError:
        return DataError(f"{self}: {message}")

    def field_error(self, key: str, problem: str) -> DataError:
        return self.error(f"field '{self.prefix}{key}' {problem}")

    def get(self, record: Any, key: str, kind: type | tuple[type, ...]) -> Any:
        """``record[key]``, which must exist and be of ``kind`` (bools are not ints)."""
        if not isinstance(record, dict):
            what = f"'{self.prefix[:-1]}'" if self.prefix else "the record"
            raise self.error(f"{what} must be a JSON object, got {_show(record)}")
        if key not in record:
            raise self.field_error(key, "is missing")
        value = record[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        is_bool = isinstance(value, bool) and bool not in kinds
        if is_bool or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.field_error(key, f"must be of type {names}, got {_show(value)}")
        return value

    def idx(self, record: Any, default: int | None = None) -> int | str:
        """The record's ``idx`` (int or str); ``default`` (else its position) if absent."""
        if isinstance(record, dict) and "idx" not in record:
            return self.index if default is None else default
        return self.get(record, "idx", (int, str))

    def text(self, record: Any, key: str) -> str:
        return self.get(record, key, str)

    def label(self, record: Any, key: str, raw_labels: tuple[Any, ...]) -> int:
        """Index of ``record[key]`` in ``raw_labels`` (matched by value and type)."""
        if not isinstance(record, dict) or key not in record:
            self.get(record, key, object)  # raises the right error
        value = record[key]
        for i, raw in enumerate(raw_labels):
            if type(value) is type(raw) and value == raw:
                return i
        allowed = ", ".join(_show(r) for r in raw_labels)
        raise self.field_error(key, f"has value {_show(value)}, not one of the labels ({allowed})")

    def number(self, record: Any, key: str, low: float, high: float) -> float:
        """A finite float in ``[low, high]`` given as a number or a numeric string."""
        value = self.get(record, key, (str, int, float))
        try:
            number = float(value)
        except ValueError:
            raise self.field_error(key, f"is not a number: {_show(value)}") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise self.field_error(key, f"is {_show(value)}, outside [{low}, {high}]")
        return number
