"""The examples a run trains and evaluates on: one rule for ``samlm train`` and for every
tool that must rebuild a run's training subset (``samlm sharpness``)."""

from __future__ import annotations

from pathlib import Path

from ..tasks import Example, Task, load_split, resolve_data_dir, subsample

STRATIFIED = ("classification", "multiple_choice")


def data_folder(explicit: str | Path | None) -> Path | None:
    """``resolve_data_dir``, refusing a folder that does not exist."""
    folder = resolve_data_dir(explicit)
    if folder is not None and not folder.is_dir():
        origin = "--data-dir" if explicit else "$SAMLM_DATA_DIR"
        raise ValueError(f"data folder {folder} ({origin}) does not exist or is not a folder")
    return folder


def training_examples(
    task: Task,
    data_dir: Path | None,
    *,
    train_size: int | None,
    train_fraction: float | None,
    seed: int,
) -> list[Example]:
    """The training split, or its seeded subset (stratified by label for classification),
    the same for every method with the same seed."""
    examples = load_split(task, "train", data_dir)
    if train_size is None and train_fraction is None:
        return examples
    return subsample(
        examples,
        size=train_size,
        fraction=train_fraction,
        seed=seed,
        stratify=task.kind in STRATIFIED,
    )


def dev_examples(task: Task, data_dir: Path | None, eval_size: int | None) -> list[Example]:
    """The validation split, or a fixed (seed 0) stratified subset of ``eval_size``."""
    examples = load_split(task, "validation", data_dir)
    if eval_size is None or eval_size >= len(examples):
        return examples
    return subsample(examples, size=eval_size, seed=0, stratify=task.kind in STRATIFIED)
