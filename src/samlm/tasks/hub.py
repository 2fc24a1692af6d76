"""Rows from the Hugging Face Hub (``datasets.load_dataset``) and generic row converters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Example, HubSource


def hub_label(row: dict[str, Any]) -> int | float | None:
    """The Hub's label, None for the unlabelled ``-1`` of test splits."""
    label = row["label"]
    return None if label == -1 else label


def flat_hub(
    keys: tuple[str, ...], choices: bool = False
) -> Callable[[dict[str, Any], int], list[Example]]:
    """Converter of a flat Hub row: text ``keys``, ``label``, ``idx`` (COPA: ``choices``)."""

    def convert(row: dict[str, Any], i: int) -> list[Example]:
        fields = {key: row[key] for key in keys}
        picks = (row["choice1"], row["choice2"]) if choices else ()
        return [Example(fields, hub_label(row), choices=picks, idx=row.get("idx", i))]

    return convert


def load_rows(source: HubSource, split: str) -> Any:
    """The rows of ``split`` (our name) from the Hub; raises whatever ``datasets`` raises.

    Datasets still published as a loading script (unsupported since ``datasets`` 4) are
    read from the Hub's automatic parquet conversion instead.
    """
    from datasets import load_dataset

    spec = source.splits[split]
    try:
        return load_dataset(source.path, source.name, split=spec)
    except Exception as err:
        if "script" not in str(err).lower():
            raise
        return load_dataset(source.path, source.name, split=spec, revision="refs/convert/parquet")
