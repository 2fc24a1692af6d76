"""Official metrics of GLUE, SuperGLUE and extractive / closed-book QA, on a 0-100 scale.

Every score is a percentage, as papers report them, except the per-example QA scores
:func:`exact_match` and :func:`token_f1`, which are in [0, 1].

Conventions for degenerate inputs (decided here, so that a training loop never crashes or
selects checkpoints on ``nan``):

* empty input, or predictions and references of different lengths: ``ValueError``.
* an undefined correlation (a constant series, e.g. a collapsed regression head predicting
  one value for every STS-B pair, or a single example) scores ``0.0``: MCC follows
  scikit-learn, which returns 0 when a marginal of the confusion matrix is empty, and
  Pearson / Spearman do the same rather than returning scipy's ``nan``. Non-finite
  predictions (a diverged model) are not hidden: they give ``nan``.
* a binary F1 with no positive prediction and no positive reference is 0 (scikit-learn's
  ``zero_division=0``).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

__all__ = [
    "METRICS",
    "accuracy",
    "benchmark_average",
    "exact_match",
    "f1",
    "matthews",
    "multirc_scores",
    "normalize_answer",
    "pearson",
    "qa_scores",
    "record_scores",
    "spearman",
    "task_score",
    "token_f1",
]


# --------------------------------------------------------------------------- validation


def _check_lengths(n_predictions: int, n_references: int) -> None:
    if n_predictions != n_references:
        raise ValueError(
            f"length mismatch: {n_predictions} predictions but {n_references} references"
        )
    if n_predictions == 0:
        raise ValueError("empty input: no predictions to score")


def _to_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on an accelerator
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _pair(predictions: Any, references: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _to_array(predictions, "predictions")
    r = _to_array(references, "references")
    _check_lengths(len(p), len(r))
    return p, r


# ------------------------------------------------------------------ classification / regression


def accuracy(predictions: Any, references: Any) -> float:
    """Accuracy = 100 * (number of i with prediction_i == reference_i) / n."""
    p, r = _pair(predictions, references)
    return float(np.mean(p == r)) * 100.0


def f1(predictions: Any, references: Any, average: str = "binary", pos_label: Any = 1) -> float:
    """F1 x 100.

    ``average="binary"``: F1 = 2PR / (P + R) = 2TP / (2TP + FP + FN) of class ``pos_label``
    (MRPC, QQP, MultiRC's F1a). ``average="macro"``: the unweighted mean of the per-class
    F1 over the classes present in predictions or references (CB's F1). Undefined
    precision / recall count as 0.
    """
    if average not in ("binary", "macro"):
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")
    p, r = _pair(predictions, references)
    score = f1_score(r, p, average=average, pos_label=pos_label, zero_division=0.0)
    return float(score) * 100.0


def matthews(predictions: Any, references: Any) -> float:
    """Matthews correlation x 100 (CoLA).

    Binary: MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)), in [-100, 100].
    When the denominator is 0 (constant predictions, or one label throughout) the score is
    0.0.
    """
    p, r = _pair(predictions, references)
    if len(set(p.tolist()) | set(r.tolist())) < 2:
        return 0.0  # one label in all: every marginal but one is empty (sklearn would warn)
    return float(matthews_corrcoef(r, p)) * 100.0


def _correlation(predictions: Any, references: Any, fn: Callable[..., Any]) -> float:
    p, r = _pair(predictions, references)
    p = p.astype(np.float64)
    r = r.astype(np.float64)
    # Undefined for a constant series (zero variance), which includes n == 1. NaN is never
    # equal to itself, so a non-finite series falls through to scipy and yields nan.
    if np.all(p == p[0]) or np.all(r == r[0]):
        return 0.0
    return float(fn(p, r).statistic) * 100.0


def pearson(predictions: Any, references: Any) -> float:
    """Pearson correlation x 100 (STS-B).

    r = sum((x - mean x)(y - mean y)) / sqrt(sum((x - mean x)^2) * sum((y - mean y)^2)).
    0.0 when either series is constant (r undefined).
    """
    return _correlation(predictions, references, pearsonr)


def spearman(predictions: Any, references: Any) -> float:
    """Spearman rank correlation x 100 (STS-B): Pearson's r of the ranks (ties get their
    average rank). 0.0 when either series is constant (rho undefined)."""
    return _correlation(predictions, references, spearmanr)


# ------------------------------------------------------------------------------ QA (SQuAD)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop ASCII punctuation, drop the articles
    a / an / the (whole words), collapse whitespace to single spaces (and strip)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _golds(answers: Sequence[str] | str) -> list[str]:
    # A bare string is one gold answer, never a list of one-character answers.
    golds = [answers] if isinstance(answers, str) else list(answers)
    if not golds:
        raise ValueError("no gold answers given (use [''] for an unanswerable question)")
    for g in golds:
        if not isinstance(g, str):
            raise TypeError(f"gold answers must be strings, got {type(g).__name__}")
    return golds


def _check_prediction(prediction: str) -> None:
    if not isinstance(prediction, str):
        raise TypeError(f"a prediction must be a string, got {type(prediction).__name__}")


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if normalize_answer(prediction) equals normalize_answer(g) for some gold g, else
    0.0."""
    _check_prediction(prediction)
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _golds(answers)))


def _token_f1_single(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    if not prediction_tokens or not gold_tokens:
        # SQuAD 2.0 convention: an empty answer matches only an empty answer.
        return float(prediction_tokens == gold_tokens)
    common = Counter(prediction_tokens) & Counter(gold_tokens)
    n_same = sum(common.values())
    if n_same == 0:
        return 0.0
    precision = n_same / len(prediction_tokens)
    recall = n_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1 in [0, 1], the max over gold answers.

    Tokens are the whitespace-split normalised strings; overlap counts tokens with
    multiplicity (``|Counter(pred) & Counter(gold)|``); P = overlap / |pred|,
    R = overlap / |gold|, F1 = 2PR / (P + R), 0 when there is no overlap. If either side
    normalises to no tokens, F1 is 1 when both do and 0 otherwise (the SQuAD 2.0 rule;
    SQuAD 1.1 golds are never empty, so the two scripts agree there).
    """
    _check_prediction(prediction)
    pred_tokens = normalize_answer(prediction).split()
    return max(_token_f1_single(pred_tokens, normalize_answer(g).split()) for g in _golds(answers))


def qa_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """SQuAD / TyDiQA-GoldP / closed-book QA: ``exact_match`` = 100 * mean of
    :func:`exact_match`, ``f1`` = 100 * mean of :func:`token_f1`, one gold list per
    prediction."""
    if isinstance(predictions, str):
        raise TypeError("predictions must be a sequence of strings, not one string")
    _check_lengths(len(predictions), len(answers))
    em = [exact_match(p, a) for p, a in zip(predictions, answers, strict=True)]
    tf1 = [token_f1(p, a) for p, a in zip(predictions, answers, strict=True)]
    return {"exact_match": float(np.mean(em)) * 100.0, "f1": float(np.mean(tf1)) * 100.0}


def record_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """ReCoRD: ``f1`` and ``exact_match`` x 100, each the max over the gold entity strings
    of a query and then the mean over queries, with the SQuAD normalisation (the official
    ReCoRD script is the SQuAD one)."""
    scores = qa_scores(predictions, answers)
    return {"f1": scores["f1"], "exact_match": scores["exact_match"]}


def multirc_scores(
    predictions: Any, references: Any, question_ids: Sequence[Hashable]
) -> dict[str, float]:
    """MultiRC. ``f1a``: binary F1 x 100 (positive label 1) over all answer options pooled
    across questions. ``exact_match``: 100 * the fraction of questions all of whose answer
    options are labelled correctly. ``question_ids[i]`` names the question of option i
    (any hashable, e.g. a ``(paragraph, question)`` tuple); options of one question need
    not be contiguous."""
    p, r = _pair(predictions, references)
    ids = list(question_ids)
    if len(ids) != len(p):
        raise ValueError(f"length mismatch: {len(p)} predictions but {len(ids)} question_ids")
    all_correct: dict[Hashable, bool] = {}
    for qid, ok in zip(ids, (p == r).tolist(), strict=True):
        all_correct[qid] = all_correct.get(qid, True) and bool(ok)
    em = float(np.mean(list(all_correct.values()))) * 100.0
    return {"f1a": f1(p, r, average="binary", pos_label=1), "exact_match": em}


# --------------------------------------------------------------------------- per-task sets
# Each: fn(predictions, references, **extra) -> dict of named scores. Extras a set does not
# use are ignored, so a task-agnostic evaluator may pass the same keywords to every set.


def _accuracy_set(predictions: Any, references: Any, **extra: Any) -> dict[str, float]:
    return {"accuracy": accuracy(predictions, references)}


def _accuracy_macro_f1_set(predictions: Any, references: Any, **extra: Any) -> dict[str, float]:
    return {
        "accuracy": accuracy(predictions, references),
        "f1_macro": f1(predictions, references, average="macro"),
    }


def _f1_accuracy_set(predictions: Any, references: Any, **extra: Any) -> dict[str, float]:
    return {
        "f1": f1(predictions, references, average="binary", pos_label=1),
        "accuracy": accuracy(predictions, references),
    }


def _matthews_set(predictions: Any, references: Any, **extra: Any) -> dict[str, float]:
    return {"matthews": matthews(predictions, references)}


def _pearson_spearman_set(predictions: Any, references: Any, **extra: Any) -> dict[str, float]:
    return {
        "pearson": pearson(predictions, references),
        "spearman": spearman(predictions, references),
    }


def _multirc_set(
    predictions: Any, references: Any, *, question_ids: Any = None, **extra: Any
) -> dict[str, float]:
    if question_ids is None:
        raise ValueError("the 'multirc' metric set needs question_ids=")
    return multirc_scores(predictions, references, question_ids)


def _squad_set(predictions: Any, references: Any, **extra: Any) -> dict[str, float]:
    return qa_scores(predictions, references)


METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "accuracy": _accuracy_set,  # SST-2, MNLI, QNLI, RTE, WNLI, BoolQ, COPA, WiC, WSC
    "accuracy_macro_f1": _accuracy_macro_f1_set,  # CB
    "f1_accuracy": _f1_accuracy_set,  # MRPC, QQP
    "matthews": _matthews_set,  # CoLA
    "pearson_spearman": _pearson_spearman_set,  # STS-B
    "multirc": _multirc_set,  # MultiRC (question_ids=...)
    "squad": _squad_set,  # SQuAD, ReCoRD, TyDiQA, closed-book QA; references = gold lists
}


# ------------------------------------------------------------------------------ aggregates


def task_score(scores: dict[str, float]) -> float:
    """The one number a task contributes to a benchmark average: the unweighted mean of its
    reported metrics (e.g. MRPC = (F1 + accuracy) / 2, STS-B = (Pearson + Spearman) / 2),
    as the GLUE and SuperGLUE leaderboards do. Pass only the reported metrics."""
    if not scores:
        raise ValueError("empty input: a task needs at least one score")
    return float(np.mean([float(v) for v in scores.values()]))


def benchmark_average(per_task: dict[str, dict[str, float]]) -> float:
    """Unweighted mean of :func:`task_score` over the entries of ``per_task``; each entry
    counts once, whatever it is called.

    MNLI: the GLUE leaderboard's score is the mean over nine tasks (CoLA, SST-2, MRPC,
    STS-B, QQP, MNLI, QNLI, RTE, WNLI; the AX diagnostic is left out) in which MNLI is ONE
    task scored (matched + mismatched) / 2, even though the table shows MNLI-m and MNLI-mm
    as two columns. Check on BERT-large's leaderboard row (CoLA 60.5, SST-2 94.9, MRPC
    89.3/85.4, STS-B 87.6/86.5, QQP 72.1/89.3, MNLI-m/mm 86.7/85.9, QNLI 92.7, RTE 70.1,
    WNLI 65.1; published score 80.5): one MNLI task gives 724.7 / 9 = 80.52, two separate
    MNLI tasks give 811.0 / 10 = 81.10, MNLI-m only 80.57. (RoBERTa's 88.5 and ALBERT's 89.4
    agree the same way.) So, for the leaderboard number, pass one entry such as
    ``{"mnli": {"accuracy_m": ..., "accuracy_mm": ...}}``; passing ``"mnli_m"`` and
    ``"mnli_mm"`` as two entries counts them as two tasks, which is what e.g. the
    "Average" column of the BERT paper's Table 1 does (9 columns, WNLI dropped, one metric
    per task). SuperGLUE: the mean over its eight tasks, CB / MultiRC / ReCoRD each the
    mean of their two metrics, AX-b and AX-g left out.
    """
    if not per_task:
        raise ValueError("empty input: no tasks to average")
    for name, scores in per_task.items():
        if not scores:
            raise ValueError(f"empty input: task {name!r} has no scores")
    return float(np.mean([task_score(s) for s in per_task.values()]))
