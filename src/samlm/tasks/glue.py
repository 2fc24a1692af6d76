"""GLUE (Wang et al. 2018): the official tsv release and ``nyu-mll/glue`` on the Hub.

Local layout: ``glue/<Task>/{train,dev}.tsv`` (MNLI: ``dev_matched.tsv`` and
``dev_mismatched.tsv``), read with tabs and no quote handling. CoLA has no header; the
others name their columns in the first line (MRPC: ``Quality``, ``#1 String``, ...).
Text fields get the Hub's names (MNLI's sentence1/sentence2 become premise/hypothesis).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from .base import Example, HubSource, Task
from .errors import Where
from .hub import flat_hub
from .readers import iter_tsv

HUB = "nyu-mll/glue"
FILES = {"train": ("train.tsv",), "validation": ("dev.tsv",)}
BINARY = ("0", "1")
COLA_COLUMNS = ("source", "label", "original_label", "sentence")


def tsv_parser(
    columns: dict[str, str], label: str, raw_labels: tuple[str, ...] | None, idx: str = "index"
) -> Callable[[dict[str, Any], Where], list[Example]]:
    """Parser of a tsv row: ``columns`` maps field names to column names; ``label`` is
    the label column, its values ``raw_labels`` (None: an STS-B score in [0, 5])."""

    def parse(row: dict[str, Any], where: Where) -> list[Example]:
        fields = {name: where.text(row, column) for name, column in columns.items()}
        if raw_labels is None:
            value: int | float = where.number(row, label, 0.0, 5.0)
        else:
            value = where.label(row, label, raw_labels)
        ident = row.get(idx, "")
        return [Example(fields, value, idx=int(ident) if ident.isdigit() else where.index)]

    return parse


def _task(
    name: str,
    folder: str,
    keys: tuple[str, ...],
    parse: Callable[[dict[str, Any], Where], list[Example]],
    **kw: Any,
) -> Task:
    kw.setdefault("kind", "classification")
    kw.setdefault("metric_set", "accuracy")
    kw.setdefault("main_metric", "accuracy")
    files = kw.pop("files", FILES)
    hub_splits = kw.pop("hub_splits", {"train": "train", "validation": "validation"})
    return Task(
        name=f"glue/{name}",
        benchmark="glue",
        folder=f"glue/{folder}",
        files=files,
        modelling=("encoder", "text2text"),
        reader=kw.pop("reader", iter_tsv),
        parse=parse,
        keys=keys,
        prefix=name,
        hub=HubSource(HUB, name, hub_splits, flat_hub(keys)),
        **kw,
    )


_S12 = ("sentence1", "sentence2")
_NLI2 = ("entailment", "not_entailment")


def _same(keys: tuple[str, ...]) -> dict[str, str]:
    return {key: key for key in keys}


GLUE_TASKS = (
    _task(
        "cola",
        "CoLA",
        ("sentence",),
        tsv_parser(_same(("sentence",)), "label", BINARY),
        reader=partial(iter_tsv, columns=COLA_COLUMNS),
        label_names=("unacceptable", "acceptable"),
        metric_set="matthews",
        main_metric="matthews",
    ),
    _task(
        "sst2",
        "SST-2",
        ("sentence",),
        tsv_parser(_same(("sentence",)), "label", BINARY),
        label_names=("negative", "positive"),
    ),
    _task(
        "mrpc",
        "MRPC",
        _S12,
        tsv_parser({"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality", BINARY),
        label_names=("not_equivalent", "equivalent"),
        metric_set="f1_accuracy",
        main_metric="f1",
    ),
    _task(
        "stsb",
        "STS-B",
        _S12,
        tsv_parser(_same(_S12), "score", None),
        kind="regression",
        metric_set="pearson_spearman",
        main_metric="pearson",
    ),
    _task(
        "qqp",
        "QQP",
        ("question1", "question2"),
        tsv_parser(_same(("question1", "question2")), "is_duplicate", BINARY, idx="id"),
        label_names=("not_duplicate", "duplicate"),
        metric_set="f1_accuracy",
        main_metric="f1",
    ),
    _task(
        "mnli",
        "MNLI",
        ("premise", "hypothesis"),
        tsv_parser(
            {"premise": "sentence1", "hypothesis": "sentence2"},
            "gold_label",
            ("entailment", "neutral", "contradiction"),
        ),
        files={
            "train": ("train.tsv",),
            "validation": ("dev_matched.tsv",),
            "validation_mismatched": ("dev_mismatched.tsv",),
        },
        hub_splits={
            "train": "train",
            "validation": "validation_matched",
            "validation_mismatched": "validation_mismatched",
        },
        label_names=("entailment", "neutral", "contradiction"),
    ),
    _task(
        "qnli",
        "QNLI",
        ("question", "sentence"),
        tsv_parser(_same(("question", "sentence")), "label", _NLI2),
        label_names=_NLI2,
    ),
    _task("rte", "RTE", _S12, tsv_parser(_same(_S12), "label", _NLI2), label_names=_NLI2),
    _task(
        "wnli",
        "WNLI",
        _S12,
        tsv_parser(_same(_S12), "label", BINARY),
        label_names=("not_entailment", "entailment"),
    ),
)
