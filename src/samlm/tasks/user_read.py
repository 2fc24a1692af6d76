"""A user's files and Hub datasets as Arrow tables, through ``datasets``' own builders
(csv, json, parquet): parsed once into the ``datasets`` cache, memory-mapped after that.

Each reader returns the table or the problem, in words that name the file (and the line,
for text that is not in the file's encoding), so that every problem of a task is told at
once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .user_spec import UserTaskSpec

BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
# pandas reads "NA", "null", "None", ... as missing; a text is missing only when empty
CSV_OPTIONS = {"keep_default_na": False, "na_values": [""]}


def _root(err: BaseException) -> BaseException:
    """The parser's error that ``datasets`` wraps: a decoding error anywhere in the
    chain, else the innermost cause."""
    chain = [err]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 20:
        chain.append(nxt)
    decoding = [e for e in chain if isinstance(e, UnicodeError) or "UTF8" in str(e)]
    return decoding[0] if decoding else chain[-1]


def bad_line(path: Path, encoding: str) -> int | None:
    """The first line of ``path`` that does not decode as ``encoding`` (1-based)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return number
    return None


def read_file(path: Path, encoding: str = "utf-8") -> Any:
    """The file's table (a ``datasets.Dataset``), or a problem (str) naming the file."""
    from datasets import load_dataset

    suffix = path.suffix.lower()
    if suffix not in BUILDERS:
        known = ", ".join(BUILDERS)
        return f"{path}: unknown file type {suffix or '(none)'!r}; known: {known}"
    if not path.is_file():
        return f"{path}: no such file"
    if os.path.getsize(path) == 0:
        return f"{path}: the file is empty"
    builder, options = BUILDERS[suffix]
    options = dict(options)
    if builder == "csv":
        options.update(CSV_OPTIONS, encoding=encoding)
    elif builder == "json":
        options["encoding"] = encoding
    try:
        return load_dataset(builder, data_files={"train": str(path)}, split="train", **options)
    except Exception as err:
        return _explain(path, encoding, builder, _root(err))


def _explain(path: Path, encoding: str, builder: str, cause: BaseException) -> str:
    if isinstance(cause, LookupError) and not isinstance(cause, UnicodeError):
        return f"{path}: unknown encoding {encoding!r} (encoding=...)"
    if isinstance(cause, UnicodeError) or "UTF8" in str(cause):
        line = bad_line(path, encoding)
        at = f", line {line}" if line else ""
        return (
            f"{path}{at}: not valid {encoding} text; give the file's encoding, e.g. "
            "encoding=latin-1 in the task (samlm train --encoding latin-1)"
        )
    if type(cause).__name__ == "EmptyDataError":
        return f"{path}: the file is empty (no header, no rows)"
    if "corresponds to no data" in str(cause):  # datasets' word for a file of no rows
        return f"{path}: no rows (the file has a header only)"
    reason = " ".join(f"{type(cause).__name__}: {cause}".split())
    reason = reason if len(reason) <= 300 else reason[:297] + "..."
    return f"{path}: could not be read as {builder} ({reason})"


def offline() -> bool:
    """Whether the Hugging Face libraries were told to stay offline."""
    flags = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags)


def read_hub(spec: UserTaskSpec, split: str) -> Any:
    """Our ``split`` of the spec's Hub dataset (from the local Hugging Face cache when
    offline), or a problem (str) naming the dataset."""
    from datasets import load_dataset

    hub_split = spec.hub_splits()[split]
    what = spec.dataset + (f" (config {spec.config})" if spec.config else "")
    try:
        return load_dataset(spec.dataset, spec.config, split=hub_split)
    except Exception as err:
        cause = " ".join(f"{type(err).__name__}: {err}".split())
        cause = cause if len(cause) <= 300 else cause[:297] + "..."
        if offline():
            where = "is not in the local Hugging Face cache (offline: HF_HUB_OFFLINE or "
            where += "HF_DATASETS_OFFLINE is set; load it once online)"
        else:
            where = "could not be loaded from the Hugging Face Hub or the local cache"
        return f"Hub dataset {what}, split {hub_split!r}: {where} ({cause})"
