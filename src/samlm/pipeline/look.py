"""A look at a task before spending hours on it (``samlm tasks TASK``): rows per split,
the label distribution, the majority class's score on the reported rows, the inputs'
length in tokens, and whether the training sizes asked for fit beside the validation
sample (drawn as a run draws it, ``data.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..options import option, same_as
from ..tasks import Example, Task, load_split, subsample
from ..tasks.rows import label_values, take
from ..tasks.user import large_test_advice
from .config import TrainConfig
from .data import STRATIFIED, stratified_problem, validation_plan

TOKEN_SAMPLE = 2000  # training rows whose length is measured (a seeded sample)
PERCENTILES = (50, 90, 95, 99)
BATCH = 256  # texts tokenized at a time


def _text(task: Task, example: Any) -> tuple[str, str | None]:
    if "encoder" in task.modelling and task.kind != "multiple_choice":
        return task.encoder_text(example)  # type: ignore[return-value]
    return task.source(example), None


def token_lengths(task: Task, examples: list, tokenizer: Any) -> dict[str, Any]:
    """Percentiles of the model input's length in tokens over (a sample of) ``examples``."""
    sample = examples
    if len(examples) > TOKEN_SAMPLE:
        sample = subsample(examples, size=TOKEN_SAMPLE, seed=0, stratify=False)
    pairs = [_text(task, ex) for ex in sample]
    both = all(b is not None for _, b in pairs)
    lengths: list[int] = []
    for start in range(0, len(pairs), BATCH):  # a batch at a time: only lengths are kept
        batch = pairs[start : start + BATCH]
        first = [a for a, _ in batch]
        ids = tokenizer(first, [b for _, b in batch]) if both else tokenizer(first)
        lengths += [len(x) for x in ids["input_ids"]]
    return {
        "rows": len(sample),
        **{f"p{p}": int(np.percentile(lengths, p)) for p in PERCENTILES},
        "max": max(lengths),
        "lengths": np.array(lengths),
    }


def size_fits(
    task: Task,
    train: Sequence[Example],
    n_reported: int,
    sizes: list[int],
    validation_size: int | None,
) -> tuple[list[str], list[str]]:
    """For each training size (0 = all), whether it fits and where the validation sample
    of ``validation_size`` would come from; and the problems ``samlm train`` would refuse
    a size for (a class left out of the stratified subset: ``stratified_problem``)."""
    out, problems = [], []
    n_train = len(train)
    for size in sizes:
        label = f"size {size or 'all'}"
        if size > n_train:
            out.append(f"{label}: does not fit (the training split has {n_train} rows)")
            continue
        problem = stratified_problem(task, train, size)
        if problem:
            out.append(f"{label}: does not fit the stratified subset (see the error below)")
            problems.append(problem)
            continue
        if validation_size is None or "selection" in task.files:
            out.append(f"{label}: fits")
            continue
        source, k = validation_plan("auto", validation_size, n_train, n_reported, size or None)
        where = "the training rows outside the subset" if source == "train" else "the test rows"
        if k < 1:
            out.append(f"{label}: no room for a validation sample")
        else:
            out.append(f"{label}: fits, validation sample of {k} from {where}")
    return out, problems


@dataclass
class LookOptions:
    """``samlm tasks TASK``'s options, declared once; train's own where they mean what
    train's mean, so the look checks what a run would do."""

    data_dir: str | None = same_as(TrainConfig, "data_dir")
    model: str = same_as(
        TrainConfig,
        "model",
        help="whose tokenizer counts the tokens: a model alias (minilm), local folder or Hub name",
    )
    max_length: int = same_as(TrainConfig, "max_length", help="input tokens of a run")
    sizes: list[int] = option(
        default_factory=lambda: [100, 250, 0], help="training sizes to check (0 = all)"
    )
    validation_size: int = same_as(
        TrainConfig,
        "validation_size",
        default=500,
        help="the validation sample to check (samlm compare's)",
    )


def look(
    task: Task,
    data_dir: str | Path | None,
    *,
    tokenizer: Any,
    max_length: int,
    sizes: list[int],
    validation_size: int | None,
) -> dict[str, Any]:
    """What ``samlm tasks TASK`` prints, as a dict."""
    train = load_split(task, "train", data_dir)
    reported = load_split(task, "validation", data_dir)
    rows = {"train": len(train), "reported": len(reported)}
    if "selection" in task.files:
        rows["selection"] = len(load_split(task, "selection", data_dir))
    out: dict[str, Any] = {"task": task.name, "kind": task.kind, "rows": rows}
    out["name"] = task.prefix if task.benchmark == "user" else ""
    out["files"] = {split: list(names) for split, names in task.files.items()}
    out["main_metric"], out["note"] = task.main_metric, task.data_note(data_dir)
    out["advice"] = large_test_advice(task)  # a large file's default test split
    if task.kind in STRATIFIED and task.label_names:
        counts = Counter(label_values(train))
        out["labels"] = {task.label_names[c]: n for c, n in sorted(counts.items())}
        majority = counts.most_common(1)[0][0]
        labelled = [i for i, y in enumerate(label_values(reported)) if y is not None]
        if labelled:
            gold = take(reported, labelled) if len(labelled) < len(reported) else reported
            out["majority"] = {
                "class": task.label_names[majority],
                **task.compute_metrics([majority] * len(gold), gold),
            }
    elif task.kind == "regression":
        values = np.array(label_values(train), dtype=float)
        out["labels"] = {"mean": float(values.mean()), "sd": float(values.std())}
    lengths = token_lengths(task, train, tokenizer)
    out["longer_than_max_length"] = float((lengths.pop("lengths") > max_length).mean())
    out["tokens"] = lengths
    out["max_length"] = max_length
    out["sizes"], out["problems"] = size_fits(task, train, len(reported), sizes, validation_size)
    return out


def render(info: dict[str, Any], model: str) -> str:
    """:func:`look`'s answer as ``samlm tasks TASK`` prints it."""
    rows = info["rows"]
    files = info["files"]
    name = f" ({info['name']})" if info.get("name") else ""
    lines = [f"{info['task']}{name}: {info['kind']}, selected on {info['main_metric']}"]
    roles = {"train": "train", "reported": "validation", "selection": "selection"}
    words = {"train": "training", "reported": "reported (test)", "selection": "selection"}
    for role, n in rows.items():
        lines.append(f"  {words[role]:<16} {n:>9,} rows  {', '.join(files[roles[role]])}")
    if info.get("note"):
        lines.append(f"  note: {info['note']}")
    if info.get("advice"):
        lines.append(f"  large test split: {info['advice']}")
    labels = info.get("labels", {})
    if info["kind"] == "regression":
        lines.append(f"  labels: mean {labels['mean']:.3g}, sd {labels['sd']:.3g}")
    elif labels:
        total = sum(labels.values())
        shares = ", ".join(f"{k} {n:,} ({100 * n / total:.1f}%)" for k, n in labels.items())
        lines.append(f"  labels (training rows): {shares}")
    if "majority" in info:
        m = dict(info["majority"])
        name = m.pop("class")
        scores = ", ".join(f"{k} {v:.2f}" for k, v in m.items())
        lines.append(f"  majority class ({name}) on the reported rows: {scores}")
    t = info["tokens"]
    lines.append(
        f"  tokens ({model}, {t['rows']:,} training rows): median {t['p50']}, p90 {t['p90']}, "
        f"p95 {t['p95']}, p99 {t['p99']}, max {t['max']}; "
        f"{100 * info['longer_than_max_length']:.1f}% longer than --max-length "
        f"{info['max_length']} (truncated)"
    )
    lines += [f"  {line}" for line in info["sizes"]]
    return "\n".join(lines)
