"""The examples a run trains, selects and reports on: one rule for ``samlm train``,
``samlm compare`` and every tool that must rebuild a run's subsets (``samlm sharpness``).

Three disjoint roles (with ``validation_size``):

* *validation*: the examples checkpoint selection (and tuning) looks at: a fixed,
  label-stratified sample of ``validation_size`` drawn with :data:`VALIDATION_SEED`,
  the same for every method and seed;
* *train*: the run's seeded training subset, drawn from what the validation sample
  left of the training pool;
* *reported*: the official dev set (less the validation sample when it was drawn from
  it), whose score the run reports and never selects on.

``validation_from="train"`` draws the validation sample from the training pool (possible
when the pool holds it and the training subset); ``"dev"`` from the official dev set;
``"auto"`` picks ``"train"`` when the pool allows (:func:`validation_plan`), else takes at
most half the dev set. A user's task given a validation file and a test file
(``tasks/user.py``) selects on the validation file (``"file"``; at most
``validation_size`` of it) and reports on the test file. Without ``validation_size`` the run
selects on the reported dev examples themselves (the Trainer's usual practice; biased
upwards, and so not what ``samlm compare`` does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..optim.validation import one_of
from ..tasks import Example, Task, load_split, resolve_data_dir, subsample
from ..tasks.rows import label_values
from ..tasks.sampling import allocate, split_sample

STRATIFIED = ("classification", "multiple_choice")
VALIDATION_SEED = 2_147_483_647  # the validation sample's own seed, apart from run seeds
VALIDATION_FROM = ("auto", "train", "dev")
SHOWN = 5  # classes a problem names


@dataclass(frozen=True)
class Splits:
    train: Sequence[Example]
    validation: Sequence[Example]  # checkpoint selection
    reported: Sequence[Example]  # the score the run reports
    # "train", "dev", "file" (a user's validation file) or "reported" (selection on them)
    validation_from: str

    def describe(self) -> dict[str, int | str]:
        return {
            "train_examples": len(self.train),
            "validation_examples": len(self.validation),
            "validation_from": self.validation_from,
            "reported_examples": len(self.reported),
        }


def data_folder(explicit: str | Path | None) -> Path | None:
    """``resolve_data_dir``, refusing a folder that does not exist."""
    folder = resolve_data_dir(explicit)
    if folder is not None and not folder.is_dir():
        origin = "--data-dir" if explicit else "$SAMLM_DATA_DIR"
        raise ValueError(f"data folder {folder} ({origin}) does not exist or is not a folder")
    return folder


def split_off(
    task: Task, examples: Sequence[Example], size: int, option: str
) -> tuple[Sequence[Example], Sequence[Example]]:
    """``(held, rest)``: a fixed stratified sample of ``size`` and the examples it left,
    both in their original order."""
    if size >= len(examples):
        raise ValueError(
            f"{option}={size} leaves no example of the {len(examples)} it is drawn from "
            f"({task.name})"
        )
    return split_sample(examples, size=size, seed=VALIDATION_SEED, stratify=task.kind in STRATIFIED)


def _subset(
    task: Task,
    pool: Sequence[Example],
    train_size: int | None,
    train_fraction: float | None,
    seed: int,
) -> Sequence[Example]:
    if train_size is None and train_fraction is None:
        return pool
    return subsample(
        pool,
        size=train_size,
        fraction=train_fraction,
        seed=seed,
        stratify=task.kind in STRATIFIED,
    )


MIN_VALIDATION = 100  # "auto" draws from the training pool only if it leaves this many


def validation_plan(
    choice: str, validation_size: int, pool_size: int, dev_size: int, train_size: int | None
) -> tuple[str, int]:
    """Where the validation sample comes from and its size.

    ``auto``: from the training pool when a training subset is asked for and the pool
    holds it and ``min(validation_size, 100)`` more (the sample is then as large as the
    pool allows, up to ``validation_size``); else from the dev set, at most half of it.
    ``train`` and ``dev`` take exactly ``validation_size`` there."""
    if choice == "auto":
        left = pool_size - train_size if train_size is not None else 0
        if left >= min(validation_size, MIN_VALIDATION):
            return "train", min(validation_size, left)
        return "dev", min(validation_size, dev_size // 2)
    return choice, validation_size


def run_splits(
    task: Task,
    data_dir: Path | None,
    *,
    train_size: int | None = None,
    train_fraction: float | None = None,
    seed: int = 0,
    eval_size: int | None = None,
    validation_size: int | None = None,
    validation_from: str = "auto",
) -> Splits:
    """The run's training, validation and reported examples (see the module docstring);
    ``eval_size`` caps the reported examples (a fixed stratified subset)."""
    one_of("validation_from", validation_from, VALIDATION_FROM)
    pool = load_split(task, "train", data_dir)
    dev = load_split(task, "validation", data_dir)
    source = "reported"
    validation: Sequence[Example] | None = None
    if "selection" in task.files:  # a user's validation file beside a test file
        source, validation = "file", _cap(task, load_split(task, "selection"), validation_size)
    elif validation_size is not None:
        source, size = validation_plan(
            validation_from, validation_size, len(pool), len(dev), train_size
        )
        if source == "train":
            validation, pool = split_off(task, pool, size, "validation_size")
        else:
            validation, dev = split_off(task, dev, size, "validation_size")
    if train_size is not None and train_size > len(pool):
        raise ValueError(
            f"train_size={train_size} is larger than the {len(pool)} training examples of "
            f"{task.name}" + (" left after the validation sample" if source == "train" else "")
        )
    problem = stratified_problem(task, pool, train_size)
    if problem:
        raise ValueError(problem)
    reported = _cap(task, dev, eval_size)
    train = _subset(task, pool, train_size, train_fraction, seed)
    return Splits(train, reported if validation is None else validation, reported, source)


def stratified_problem(task: Task, pool: Sequence[Example], size: int | None) -> str | None:
    """What is wrong with a stratified training subset of ``size`` drawn from ``pool``
    when a user's classification task has more classes than ``size``: the subset gives
    the smallest classes no row (``allocate``'s quotas). The message names them and the
    sizes; None when every class gets a row. ``samlm train``, ``samlm tasks`` and
    ``samlm compare``'s grid check all ask this."""
    names = task.label_names
    user_classes = task.benchmark == "user" and task.kind == "classification"
    if not user_classes or size is None or not 0 < size < len(names):
        return None
    counts = Counter(label_values(pool))
    quota = allocate(dict(counts), size)
    left = [c for c in range(len(names)) if not quota.get(c)]
    rows = {c: f"{counts.get(c, 0):,} row{'' if counts.get(c, 0) == 1 else 's'}" for c in left}
    shown = ", ".join(f"{names[c]!r} ({rows[c]})" for c in left[:SHOWN])
    more = f" and {len(left) - SHOWN} more" if len(left) > SHOWN else ""
    return (
        f"{task.name}: size {size} is smaller than its {len(names)} classes: the stratified "
        f"training subset of {size} would hold no row of class {shown}{more}; give a size of "
        f"at least {len(names)}"
    )


def size_note(splits: Splits, validation_size: int | None, eval_size: int | None) -> str | None:
    """What a run says when its data held fewer validation or reported examples than
    ``--validation-size`` or ``--eval-size`` asked for (None when it held them all)."""
    notes = []
    if validation_size is not None and len(splits.validation) < validation_size:
        where = {
            "train": "the training pool outside the subset",
            "dev": "half the dev set",
            "file": "the validation file",
        }
        notes.append(
            f"validation sample: {len(splits.validation)} examples, not the {validation_size} "
            f"of --validation-size ({where[splits.validation_from]} holds no more)"
        )
    if eval_size is not None and len(splits.reported) < eval_size:
        notes.append(
            f"reported examples: {len(splits.reported)}, not the {eval_size} of --eval-size "
            "(all the dev set has left)"
        )
    return "; ".join(notes) or None


def _cap(task: Task, examples: Sequence[Example], eval_size: int | None) -> Sequence[Example]:
    if eval_size is None or eval_size >= len(examples):
        return examples
    return subsample(examples, size=eval_size, seed=0, stratify=task.kind in STRATIFIED)
