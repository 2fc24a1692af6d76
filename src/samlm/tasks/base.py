"""The task model: :class:`Example`, :class:`Task` and where a task's data comes from.

Text-to-text formats follow T5 (Raffel et al. 2020): ``"<prefix> key1: value1 key2: value2"``
with the keys sorted by name unless a task fixes the order, and the label's name as the
target (STS-B: the score rounded to 0.2, as ``"3.8"``; QA: the first gold answer).
A decoder-only (causal) LM models every task that has this text form: the source is its
prompt and the target its completion.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datadir import resolve_data_dir
from .errors import DataError, Where

KINDS = ("classification", "regression", "multiple_choice", "qa")
MODELLING = ("encoder", "text2text")  # what a task declares
TEXT_MODELLING = ("text2text", "causal")  # from the text-to-text form, scored after generation
INVALID_FLOAT = -1.0  # an unparsable STS-B prediction (T5's string_to_float default)

Pair = tuple[str, str | None]


@dataclass(frozen=True)
class Example:
    """One example. ``fields`` holds the text fields under their Hugging Face names;
    ``label`` is a class id (or a float for STS-B; None for QA); ``answers`` the gold
    answers (QA, ReCoRD); ``group`` the question id (MultiRC, ReCoRD); ``choices`` the
    candidates (COPA's two alternatives, ReCoRD's entities); ``idx`` the official id."""

    fields: dict[str, str]
    label: int | float | None = None
    answers: tuple[str, ...] = ()
    group: str | None = None
    choices: tuple[str, ...] = ()
    idx: int | str = 0


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face Hub dataset: ``splits`` maps our split names to ``datasets`` split
    specs (slices allowed, e.g. ``"train[-755:]"``); ``convert(row, i)`` gives Examples."""

    path: str
    name: str | None
    splits: Mapping[str, str]
    convert: Callable[[dict[str, Any], int], list[Example]]

    def __str__(self) -> str:
        return self.path if self.name is None else f"{self.path} ({self.name})"


@dataclass(frozen=True)
class LocalSplit:
    """Splits cut from one local file when the file ``missing`` is absent (BoolQ: no
    train.jsonl, so train and validation come from val.jsonl). ``slices`` maps a split to
    its records; ``min_records`` guards against overlap; ``note`` is formatted with
    ``{path}`` (the source file)."""

    missing: str
    source: str
    slices: Mapping[str, slice]
    min_records: int
    note: str


@dataclass(frozen=True, eq=False)
class Task:
    """A benchmark task: where its files are, how to parse them, how to format and score.

    ``files`` maps split names to file names (relative to ``<data_dir>/<folder>``; several
    files are concatenated), ``reader`` yields records of one file and ``parse`` turns a
    record into Examples. ``keys`` are the text fields in encoder order; ``t5_keys``
    the order of the ``key: value`` pairs in the text-to-text source (default: sorted).
    ``modelling`` declares encoder and/or text2text; a task with text2text gains causal.
    """

    name: str
    benchmark: str
    folder: str
    files: Mapping[str, tuple[str, ...]]
    kind: str
    metric_set: str
    main_metric: str
    modelling: tuple[str, ...]
    reader: Callable[[Path], Iterator[tuple[Where, dict[str, Any]]]]
    parse: Callable[[dict[str, Any], Where], list[Example]]
    label_names: tuple[str, ...] = ()
    prefix: str = ""
    keys: tuple[str, ...] = ()
    t5_keys: tuple[str, ...] | None = None
    hub: HubSource | None = None
    local_split: LocalSplit | None = None
    unique_idx: bool = False
    train_on_all_answers: bool = False
    source_fn: Callable[[Example], str] | None = None
    encoder_fn: Callable[[Example], Pair | list[Pair]] | None = None
    hub_note: str = ""
    # a user's task (tasks/user.py): its examples by split, read once, and what to say
    # about them (rows dropped, a test split held out)
    loader: Callable[[str], Sequence[Example]] | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        if not self.modelling or not set(self.modelling) <= {*MODELLING, "causal"}:
            raise ValueError(f"{self.name}: modelling {self.modelling!r} not in {MODELLING}")
        if "causal" in self.modelling and "text2text" not in self.modelling:
            raise ValueError(f"{self.name}: causal modelling needs the text-to-text form")
        if "text2text" in self.modelling and "causal" not in self.modelling:
            object.__setattr__(self, "modelling", (*self.modelling, "causal"))

    # ------------------------------------------------------------------ local files

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    def _check_split(self, split: str) -> None:
        if split not in self.files:
            raise ValueError(f"{self.name} has no split {split!r}; splits: {', '.join(self.files)}")

    def _derived(self, root: Path, split: str) -> bool:
        ls = self.local_split
        if ls is None or split not in ls.slices:
            return False
        base = root / self.folder
        return not (base / ls.missing).is_file() and (base / ls.source).is_file()

    def local_paths(self, split: str, data_dir: str | Path) -> list[Path]:
        """The files :meth:`read` reads for ``split`` under ``data_dir``."""
        self._check_split(split)
        root = Path(data_dir)
        if self.local_split is not None and self._derived(root, split):
            return [root / self.folder / self.local_split.source]
        return [root / self.folder / name for name in self.files[split]]

    def has_local(self, split: str, data_dir: str | Path | None) -> bool:
        if self.loader is not None:
            return split in self.files
        return data_dir is not None and all(p.is_file() for p in self.local_paths(split, data_dir))

    def read(self, split: str, data_dir: str | Path) -> list[Example]:
        """Examples of ``split`` from the local folder (no download); DataError if absent."""
        paths = self.local_paths(split, data_dir)
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DataError(f"{self.name} split {split!r}: missing {', '.join(missing)}")
        examples: list[Example] = []
        for path in paths:
            before = len(examples)
            for where, record in self.reader(path):
                examples.extend(self.parse(record, where))
            if len(examples) == before:
                raise DataError(f"{path}: no records")
        ls = self.local_split
        if ls is not None and self._derived(Path(data_dir), split):
            if len(examples) < ls.min_records:
                raise DataError(
                    f"{paths[0]}: {len(examples)} records, but the train/validation split "
                    f"of this file needs at least {ls.min_records}"
                )
            examples = examples[ls.slices[split]]
        return self.finish(examples)

    def finish(self, examples: list[Example]) -> list[Example]:
        """Drop repeated ids when the task asks for it (TriviaQA's web + wikipedia files)."""
        if not self.unique_idx:
            return examples
        seen: set[int | str] = set()
        unique = []
        for ex in examples:
            if ex.idx not in seen:
                seen.add(ex.idx)
                unique.append(ex)
        return unique

    def data_note(self, data_dir: str | Path | None = None) -> str | None:
        """A sentence to print about how the data was split, or None when nothing to say."""
        if self.loader is not None:
            return self.note or None
        root = resolve_data_dir(data_dir)
        if root is not None and self.local_split is not None and self._derived(root, "train"):
            return self.local_split.note.format(path=root / self.folder / self.local_split.source)
        if self.hub_note and not self.has_local("train", root):
            return self.hub_note
        return None

    # ------------------------------------------------------------------ formatting

    def source(self, example: Example) -> str:
        """The text-to-text input."""
        if self.source_fn is not None:
            return self.source_fn(example)
        keys = self.t5_keys if self.t5_keys is not None else tuple(sorted(self.keys))
        parts = [self.prefix] if self.prefix else []
        parts += [f"{key}: {example.fields[key]}" for key in keys]
        return " ".join(parts)

    def target(self, example: Example) -> str:
        """The text-to-text target: label name, STS-B score "x.y", or first gold answer."""
        if self.kind == "qa":
            if not example.answers:
                raise ValueError(f"{self.name}: example {example.idx!r} has no gold answer")
            return example.answers[0]
        if example.label is None:
            raise ValueError(f"{self.name}: example {example.idx!r} has no label")
        if self.kind == "regression":
            return f"{round(float(example.label) * 5) / 5:.1f}"
        return self.label_names[int(example.label)]

    def text2text(self, example: Example) -> tuple[str, str]:
        return self.source(example), self.target(example)

    def training_pairs(self, example: Example) -> list[tuple[str, str]]:
        """Text-to-text training pairs: one per gold answer for ReCoRD (as T5), else one."""
        if self.train_on_all_answers:
            source = self.source(example)
            return [(source, answer) for answer in example.answers]
        return [self.text2text(example)]

    def encoder_text(self, example: Example) -> Pair | list[Pair]:
        """``(text_a, text_b or None)`` for an encoder; a list of pairs (one per choice)
        for multiple choice."""
        if "encoder" not in self.modelling:
            raise ValueError(f"{self.name} supports only text2text (and causal) modelling")
        if self.encoder_fn is not None:
            return self.encoder_fn(example)
        text_a = example.fields[self.keys[0]]
        return text_a, example.fields[self.keys[1]] if len(self.keys) > 1 else None

    # ------------------------------------------------------------------ scoring

    def to_label(self, prediction: Any, gold: int | float | None = None) -> int | float:
        """A prediction as a label: class ids and floats pass through; text-to-text strings
        map back through ``label_names``. A string that is no label maps to a class other
        than ``gold`` (1 - gold when binary, as T5's ``f1_score_with_invalid``), so it counts
        as wrong; for STS-B an unparsable string is -1.0."""
        if self.kind == "regression":
            if not isinstance(prediction, str):
                return float(prediction)
            try:
                value = float(prediction.strip())
            except ValueError:
                return INVALID_FLOAT
            return value if math.isfinite(value) else INVALID_FLOAT
        if not isinstance(prediction, str):
            return operator.index(prediction)
        name = prediction.strip()
        if name in self.label_names:
            return self.label_names.index(name)
        return -1 if gold is None else (int(gold) + 1) % len(self.label_names)

    def compute_metrics(self, predictions: Sequence[Any], examples: Sequence[Example]) -> dict:
        """Scores (0-100) of ``predictions`` (class ids, floats or text-to-text strings)."""
        from samlm.metrics import METRICS

        predictions = list(predictions)
        if len(predictions) != len(examples):
            raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
        metric = METRICS[self.metric_set]
        if self.kind == "qa":
            for i, ex in enumerate(examples):
                if not ex.answers:
                    raise ValueError(f"{self.name}: example {i} has no gold answer")
            return metric(predictions, [list(ex.answers) for ex in examples])
        from .rows import label_values  # a user's rows: their labels, no Examples made

        golds = label_values(examples)
        if any(g is None for g in golds):
            raise ValueError(f"{self.name}: example {golds.index(None)} has no label")
        labels = [self.to_label(p, g) for p, g in zip(predictions, golds, strict=True)]
        if self.metric_set == "multirc":
            return metric(labels, golds, question_ids=[ex.group for ex in examples])
        return metric(labels, golds)
