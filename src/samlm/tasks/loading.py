"""Load a split: the local folder when the task's files are there, else the Hub."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .base import Example, Task
from .datadir import ENV_VAR, resolve_data_dir
from .errors import DataError
from .hub import load_rows


def _looked_at(task: Task, split: str, root: Path) -> list[Path]:
    paths = [root / task.folder / name for name in task.files[split]]
    ls = task.local_split
    if ls is not None and split in ls.slices:
        paths.append(root / task.folder / ls.source)
    return paths


def _hub_examples(task: Task, split: str) -> list[Example]:
    source = task.hub
    assert source is not None
    rows = load_rows(source, split)
    examples = []
    for i, row in enumerate(rows):
        try:
            examples.extend(source.convert(row, i))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{source}, split {source.splits[split]!r}, row {i}: unexpected row format "
                f"({type(err).__name__}: {err})"
            ) from err
    return task.finish(examples)


def load_split(
    task: Task | str, split: str, data_dir: str | Path | None = None, *, hub: bool = True
) -> Sequence[Example]:
    """Examples of ``split`` ("train", "validation", ...) of ``task`` (a list; a user's
    task gives :class:`~samlm.tasks.rows.Rows`, Examples made on access).

    Reads ``<data_dir>/<task.folder>/...`` (``data_dir`` from :func:`resolve_data_dir`)
    when the files are there; otherwise, with ``hub=True``, downloads the task's Hugging
    Face Hub dataset through ``datasets``. Raises :class:`DataError` saying which paths it
    looked at, why the Hub failed, and what to do when neither works.
    """
    if isinstance(task, str):
        from .registry import get_task

        task = get_task(task)
    if split not in task.files:
        raise ValueError(f"{task.name} has no split {split!r}; splits: {', '.join(task.files)}")
    if task.loader is not None:  # a user's task: its files or Hub dataset, read once
        return task.loader(split)
    root = resolve_data_dir(data_dir)
    if root is not None and task.has_local(split, root):
        return task.read(split, root)

    lines = [f"no data for {task.name} split {split!r}."]
    if root is None:
        lines.append(f"Local folder: none given (no --data-dir, ${ENV_VAR} not set).")
    else:
        lines.append(f"Looked in the local folder {root}:")
        for path in _looked_at(task, split, root):
            lines.append(f"  {path} ({'found' if path.is_file() else 'missing'})")
    source = task.hub
    if source is None or split not in source.splits:
        lines.append(f"Hugging Face Hub: split {split!r} is not available there.")
    elif not hub:
        lines.append(f"Hugging Face Hub: {source} not tried (hub disabled).")
    else:
        try:
            return _hub_examples(task, split)
        except DataError:
            raise
        except Exception as err:  # offline, unknown dataset, ...: explained below
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            reason = reason if len(reason) <= 300 else reason[:297] + "..."
            lines.append(f"Hugging Face Hub: {source}, split {source.splits[split]!r}: {reason}")
    files = ", ".join(f"{task.folder}/{name}" for name in task.files[split])
    lines.append(
        f"To fix: pass --data-dir DIR (or set {ENV_VAR}=DIR) where DIR holds {files} in the "
        "official release format, or go online so that the dataset can be downloaded from "
        "the Hugging Face Hub."
    )
    raise DataError("\n".join(lines))
