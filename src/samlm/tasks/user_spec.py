"""What a user's task is: :class:`UserTaskSpec`, parsed from a task reference.

A reference is what a task name is for a benchmark task, wherever one is taken:

* a data file, ``reviews.csv`` (CSV, TSV, JSON, JSONL or Parquet, by extension);
* a YAML task file, ``my.yaml`` (its file paths relative to its folder);
* a Hugging Face dataset, ``hub:owner/name``;

each optionally followed by ``?key=value&key=value`` with the task file's keys
(``reviews.csv?text=review&label=sentiment&test_size=500``; a Hub dataset's split names
as ``validation_split=dev&test_split=test``). ``samlm train
--train-file ... --text-column ...`` writes such a reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import yaml

from ..options import option
from .errors import DataError

DATA_EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".parquet")
YAML_EXTENSIONS = (".yaml", ".yml")
HUB = "hub:"
USER_KINDS = ("auto", "classification", "regression", "text2text")
METRIC_CHOICES = {
    "classification": ("accuracy", "f1_macro"),
    "regression": ("pearson", "spearman"),
    "text2text": ("exact_match", "f1"),  # SQuAD's, as the closed-book QA tasks
}
METRIC_ALIASES = {
    "classification": {"macro_f1": "f1_macro", "f1": "f1_macro"},
    "regression": {},
    "text2text": {"em": "exact_match", "token_f1": "f1"},
}
# the Hugging Face example scripts' names (run_classification.py) for the same keys
KEY_ALIASES = {
    "train_file": "train",
    "validation_file": "validation",
    "test_file": "test",
    "text_column": "text",
    "text_column_name": "text",
    "text_pair_column": "text_pair",
    "label_column": "label",
    "label_column_name": "label",
    "target_column": "target",
    "summary_column": "target",
    "dataset_name": "dataset",
    "dataset_config_name": "config",
}
# sklearn's and datasets' train_test_split default share, when a single file is split
DEFAULT_TEST_FRACTION = 0.25


@dataclass(frozen=True)
class UserTaskSpec:
    """A user's task: its files (``train``, optional ``validation`` and ``test``) or Hub
    ``dataset`` (``config``, ``splits``: our split -> the dataset's split name), its
    columns (``text``, optional ``text_pair``, ``label``; None: found by name; or a
    ``target`` text for text-to-text), ``kind`` (auto: text2text with a target,
    regression for non-integer numbers, else classification), the selection
    ``metric``, the held-out test split (``test_size`` rows or ``test_fraction``) when
    there is no test file, the files' ``encoding`` and whether to ``drop_invalid`` rows
    (empty text, missing label) instead of refusing them."""

    ref: str
    name: str | None = None
    train: str | None = None
    validation: str | None = None
    test: str | None = None
    dataset: str | None = None
    config: str | None = None
    splits: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    text_pair: str | None = None
    label: str | None = None
    target: str | None = None
    kind: str = "auto"
    metric: str | None = None
    test_size: int | None = None
    test_fraction: float | None = None
    encoding: str = "utf-8"
    drop_invalid: bool = False

    def file_paths(self) -> dict[str, Path]:
        """The files given, by split (train, validation, test)."""
        paths = {s: getattr(self, s) for s in ("train", "validation", "test")}
        return {s: Path(p) for s, p in paths.items() if p}

    def hub_splits(self) -> dict[str, str]:
        """The Hub dataset's split for each of ours (train by default; validation and test
        when the dataset names them in ``splits``)."""
        return {"train": "train", **self.splits}


KEYS = {f.name for f in fields(UserTaskSpec)} - {"ref"}


def _data_flag(key: str, help: str, **meta: Any) -> Any:
    """A data flag: None when not given, writing the reference key ``key``."""
    return option(None, key=key, help=help, **meta)


@dataclass
class DataFlags:
    """``samlm train``'s flags for a user's data, named as in the Hugging Face example
    scripts (``run_classification.py``), each declared with the reference key it writes
    (``key``; :func:`compose_ref`) and its help (:mod:`samlm.options`)."""

    train_file: str | None = _data_flag(
        "train",
        help="training data: CSV, TSV, JSON, JSONL or Parquet (instead of --task)",
    )
    validation_file: str | None = _data_flag(
        "validation",
        help="validation data; with --test-file, checkpoints are selected on it, else it is "
        "the reported set",
    )
    test_file: str | None = _data_flag(
        "test",
        help="test data, the reported set (default: a held-out share of the training file, "
        "see --test-size)",
    )
    dataset_name: str | None = _data_flag(
        "dataset",
        help="a Hugging Face dataset instead of files (the local cache when offline)",
    )
    dataset_config_name: str | None = _data_flag("config", help="the dataset's configuration")
    validation_split_name: str | None = _data_flag(
        "validation_split", help="the dataset's validation split, if any"
    )
    test_split_name: str | None = _data_flag(
        "test_split", help="the dataset's test split, if any (labelled)"
    )
    text_column: str | None = _data_flag(
        "text",
        help="the text column (default: one named text, sentence, question, review, ...)",
    )
    text_pair_column: str | None = _data_flag(
        "text_pair",
        help="the second text of a pair (default: sentence2 beside sentence1, hypothesis "
        "beside premise, ...)",
    )
    label_column: str | None = _data_flag(
        "label",
        help="the label column (default: one named label, sentiment, class, ...)",
    )
    target_column: str | None = _data_flag(
        "target",
        help="the target text of a text-to-text task, for seq2seq and causal models (scored "
        "by exact match and token F1)",
    )
    task_kind: str | None = _data_flag(
        "kind",
        choices=USER_KINDS[1:],
        help="classification, regression or text2text (default: text2text with "
        "--target-column, regression for non-integer labels)",
    )
    metric: str | None = _data_flag(
        "metric",
        help="the selection metric: accuracy or f1_macro (classification), pearson or "
        "spearman (regression), exact_match or f1 (text2text)",
    )
    test_size: int | None = _data_flag(
        "test_size",
        help="rows held out of the training file as the test set, when there is no test "
        "file (seeded, stratified)",
    )
    test_fraction: float | None = _data_flag(
        "test_fraction",
        help="the same as a share (default 0.25, the share of sklearn's and datasets' "
        "train_test_split)",
    )
    encoding: str | None = _data_flag("encoding", help="the files' text encoding (default utf-8)")
    drop_invalid: bool | None = _data_flag(
        "drop_invalid",
        help="drop rows with an empty text or no label (counted in the run's note) instead "
        "of refusing the data",
    )


def is_user_ref(name: str) -> bool:
    """Whether ``name`` names a user's task (a file, a task file, a Hub dataset)."""
    base = name.split("?", 1)[0].strip()
    suffix = Path(base).suffix.lower()
    return base.startswith(HUB) or "?" in name or suffix in DATA_EXTENSIONS + YAML_EXTENSIONS


def _typed(key: str, value: Any, where: str) -> Any:
    """``value`` of ``key`` as its declared type (query strings give text)."""
    kinds = {"test_size": int, "test_fraction": float, "drop_invalid": bool, "splits": dict}
    kind = kinds.get(key, str)
    if value is None:
        return None
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise DataError(f"{where}: {key}={value!r} must be true or false")
        return value.lower() in ("true", "1", "yes")
    if kind is dict:
        if not isinstance(value, dict):
            raise DataError(f"{where}: {key} must be a mapping such as {{validation: dev}}")
        return {str(k): str(v) for k, v in value.items()}
    try:
        out = kind(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {key}={value!r} must be {kind.__name__}") from None
    if kind is not str and isinstance(value, bool):
        raise DataError(f"{where}: {key}={value!r} must be {kind.__name__}")
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"task file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DataError(f"task file {path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"task file {path}: expected a mapping of key: value")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    for key in ("train", "validation", "test", "train_file", "validation_file", "test_file"):
        if isinstance(data.get(key), str):  # relative to the task file's folder
            data[key] = str(path.parent / Path(data[key]).expanduser())
    return data


def parse_ref(ref: str) -> UserTaskSpec:
    """The spec of reference ``ref`` (see the module docstring); DataError naming an
    unknown key or a value of the wrong type."""
    base, _, query = ref.strip().partition("?")
    values: dict[str, Any] = {}
    if base.startswith(HUB):
        values["dataset"] = base.removeprefix(HUB)
    elif Path(base).suffix.lower() in YAML_EXTENSIONS:
        values.update(_read_yaml(Path(base).expanduser()))
    elif base:
        values["train"] = base
    values.update({k.replace("-", "_"): v for k, v in parse_qsl(query, keep_blank_values=True)})
    out: dict[str, Any] = {}
    for split in ("train", "validation", "test"):  # a Hub split, as a query key
        if f"{split}_split" in values:
            splits = values.setdefault("splits", {})
            if not isinstance(splits, dict):
                raise DataError(f"task {ref!r}: splits must be a mapping such as {{test: test}}")
            splits[split] = values.pop(f"{split}_split")
    for key, value in values.items():
        name = KEY_ALIASES.get(key, key)
        if name not in KEYS:
            raise DataError(f"task {ref!r}: unknown key {key!r}; known: {', '.join(sorted(KEYS))}")
        out[name] = _typed(name, value, f"task {ref!r}")
    spec = UserTaskSpec(ref=ref, **out)
    _check_spec(spec)
    return spec


def _check_spec(spec: UserTaskSpec) -> None:
    where = f"task {spec.ref!r}"
    if bool(spec.train) == bool(spec.dataset):
        raise DataError(f"{where}: give a training file (train) or a Hub dataset, one of them")
    if spec.dataset and spec.file_paths():
        raise DataError(f"{where}: give files or a Hub dataset (dataset), not both")
    if spec.kind not in USER_KINDS:
        raise DataError(f"{where}: kind={spec.kind!r} must be one of {', '.join(USER_KINDS)}")
    if spec.target and spec.label:
        raise DataError(
            f"{where}: give a label (classification, regression) or a target "
            "(text-to-text), not both"
        )
    if spec.target and spec.kind not in ("auto", "text2text"):
        raise DataError(f"{where}: a target column makes a text2text task, not {spec.kind}")
    if spec.test_size is not None and spec.test_fraction is not None:
        raise DataError(f"{where}: give test_size or test_fraction, not both")
    if spec.test_size is not None and spec.test_size < 1:
        raise DataError(f"{where}: test_size={spec.test_size} must be >= 1")
    fraction = spec.test_fraction
    if fraction is not None and not (math.isfinite(fraction) and 0 < fraction < 1):
        raise DataError(f"{where}: test_fraction={fraction} must be in (0, 1)")
    has_test = spec.test or "test" in spec.splits
    if has_test and (spec.test_size is not None or fraction is not None):
        raise DataError(
            f"{where}: test_size/test_fraction split a test set off the training "
            "data, and a test set is given: drop one"
        )
    unknown = set(spec.splits) - {"train", "validation", "test"}
    if unknown:
        raise DataError(
            f"{where}: splits names {sorted(unknown)}; ours are train, validation, test"
        )


def metric_for(spec: UserTaskSpec, kind: str) -> str:
    """The selection metric: the spec's (checked against ``kind``), else accuracy or
    Pearson's r (the Hugging Face example scripts' defaults)."""
    choices = METRIC_CHOICES[kind]
    if spec.metric is None:
        return choices[0]
    metric = METRIC_ALIASES[kind].get(spec.metric, spec.metric)
    if metric not in choices:
        raise DataError(
            f"task {spec.ref!r}: metric={spec.metric!r} is not one of a {kind} task's "
            f"metrics ({', '.join(choices)})"
        )
    return metric


def compose_ref(base: str, options: dict[str, Any]) -> str:
    """A reference: ``base`` (a file, ``hub:name`` or a task file) with ``options`` (keys of
    the task file, None left out) as its query string."""
    text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()}
    parts = [
        f"{key}={quote(text[key], safe='/.:-_')}"
        for key, value in options.items()
        if value is not None and value is not False
    ]
    if not parts:
        return base
    return base + ("&" if "?" in base else "?") + "&".join(parts)
