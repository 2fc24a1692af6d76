"""A user's rows as a sequence of :class:`~samlm.tasks.base.Example`, made on access.

The rows stay in the memory-mapped Arrow table ``datasets`` read the file into
(:class:`Stored`); a :class:`Rows` holds the positions of its rows in that table and
their labels (a NumPy array: class ids or numbers), so a split of a million rows costs
16 bytes a row, and a run makes Python objects only for the rows it uses (its subset,
its validation sample, its reported rows). Subsets keep the kind (:meth:`Rows.take`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from .base import Example

CHUNK = 65_536  # rows turned into Python values at a time (a table held in memory)
# rows read through the file (not one by one) when they are more than this share of it
STREAM_SHARE = 1 / 1000


@dataclass(frozen=True, eq=False)
class Stored:
    """A memory-mapped Arrow ``table`` and ``path``, the one Arrow file that holds it
    row for row (None: a slice of a file, or several). Rows read one by one come from
    the mapping; many rows are read through the file with plain reads, since the pages
    of a mapping that a read touched (with their neighbours) stay in the process's
    resident memory."""

    table: Any
    path: str | None = None

    @classmethod
    def of(cls, dataset: Any) -> Stored:
        """The table of a ``datasets.Dataset`` (and its cache file, when it holds it)."""
        if getattr(dataset, "_indices", None) is not None:  # a selection of rows
            dataset = dataset.flatten_indices()
        data = dataset.data
        path = getattr(data, "path", None)
        replays = getattr(data, "replays", None) or []
        if any(name != "replace_schema_metadata" for name, *_ in replays):
            path = None  # a slice of the file (a Hub split such as train[:80%])
        return cls(getattr(data, "table", data), path)

    def __len__(self) -> int:
        return self.table.num_rows

    def read(
        self, columns: Sequence[str], positions: np.ndarray
    ) -> Iterator[tuple[np.ndarray, dict[str, list[Any]]]]:
        """``(positions, {column: values})`` of the rows at ``positions`` (ascending), a
        batch of the file (or a slice of the table) at a time."""
        start = 0
        for batch in self._batches():
            lo, hi = np.searchsorted(positions, [start, start + len(batch)])
            if lo < hi:
                here = positions[lo:hi]
                offsets = (here - start).tolist()
                values = {}
                for column in columns:
                    chunk = batch.column(column).to_pylist()
                    values[column] = [chunk[i] for i in offsets]
                yield here, values
            start += len(batch)
        if start != len(self):  # never silently short: the file is not the table
            raise RuntimeError(f"{self.path}: {start} rows read, the table has {len(self)}")

    def _batches(self) -> Iterator[Any]:
        if self.path is None:
            yield from self.table.to_batches(max_chunksize=CHUNK)
            return
        import pyarrow as pa

        with pa.OSFile(self.path) as file:
            yield from pa.ipc.open_stream(file)


@dataclass(frozen=True, eq=False)
class RowSource:
    """Where the rows' fields are: the ``stored`` table's ``text`` column, optional
    ``text_pair`` column and, for text-to-text, the ``target`` column whose text is the
    gold answer."""

    stored: Stored
    text: str
    text_pair: str | None = None
    target: str | None = None

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.text, self.text_pair, self.target) if c]


class Rows(Sequence[Example]):
    """The rows at ``positions`` (0-based, into the source's table) with ``labels`` (one
    per row: class ids for classification, floats for regression; None for
    text-to-text). An Example's ``idx`` is its row's position in the file (0-based)."""

    def __init__(self, source: RowSource, positions: np.ndarray, labels: np.ndarray | None):
        self.source = source
        self.positions = np.asarray(positions, dtype=np.int64)
        self.labels = labels
        if labels is not None and len(labels) != len(self.positions):
            raise ValueError(f"{len(labels)} labels for {len(self.positions)} rows")

    def __len__(self) -> int:
        return len(self.positions)

    @overload
    def __getitem__(self, i: int) -> Example: ...
    @overload
    def __getitem__(self, i: slice) -> Rows: ...
    def __getitem__(self, i: int | slice) -> Example | Rows:
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        return self._example(range(len(self))[i])  # negative indices, IndexError

    def __iter__(self) -> Iterator[Example]:
        """The Examples in order: many rows (in ascending order) read through the file,
        a few one by one (see :class:`Stored`)."""
        stored = self.source.stored
        many = stored.path is not None and len(self) > STREAM_SHARE * len(stored)
        if not many or np.any(np.diff(self.positions) <= 0):
            yield from (self._example(i) for i in range(len(self)))
            return
        i = 0
        for positions, values in stored.read(self.source.columns, self.positions):
            for j, pos in enumerate(positions.tolist()):
                yield self._make(i, pos, {c: v[j] for c, v in values.items()})
                i += 1

    def __add__(self, other: Sequence[Example]) -> list[Example]:
        return [*self, *other]

    def __radd__(self, other: Sequence[Example]) -> list[Example]:
        return [*other, *self]

    def __repr__(self) -> str:
        return f"Rows({len(self)} rows of {self.source.text!r})"

    def take(self, indices: Sequence[int] | np.ndarray) -> Rows:
        """The rows at ``indices`` (into this sequence), in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        labels = None if self.labels is None else self.labels[indices]
        return Rows(self.source, self.positions[indices], labels)

    def label_values(self) -> list[Any]:
        """Each row's label as its Example has it, without making the Examples."""
        if self.labels is None:
            return [None] * len(self)
        return self.labels.tolist()

    def _example(self, i: int) -> Example:
        pos = int(self.positions[i])
        table = self.source.stored.table
        return self._make(i, pos, {c: table.column(c)[pos].as_py() for c in self.source.columns})

    def _make(self, i: int, pos: int, values: dict[str, Any]) -> Example:
        """Row ``i``'s Example (at ``pos`` in the file) from its columns' values."""
        src = self.source
        fields = {src.text: values[src.text]}
        if src.text_pair:
            fields[src.text_pair] = values[src.text_pair]
        if src.target:
            return Example(fields, None, answers=(str(values[src.target]),), idx=pos)
        assert self.labels is not None
        return Example(fields, self.labels[i].item(), idx=pos)


def take(examples: Sequence[Example], indices: Sequence[int] | np.ndarray) -> Sequence[Example]:
    """``examples[i]`` for each of ``indices``: a list, or :class:`Rows` for rows."""
    if isinstance(examples, Rows):
        return examples.take(indices)
    return [examples[int(i)] for i in indices]


def label_values(examples: Sequence[Example]) -> list[Any]:
    """Each example's ``label`` (a user's rows give theirs without making Examples)."""
    if isinstance(examples, Rows):
        return examples.label_values()
    return [ex.label for ex in examples]
