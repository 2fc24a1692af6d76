"""samlm.metrics against values computed by hand (the computation is in each comment)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from samlm.metrics import (
    METRICS,
    accuracy,
    benchmark_average,
    exact_match,
    f1,
    matthews,
    multirc_scores,
    normalize_answer,
    pearson,
    qa_scores,
    record_scores,
    spearman,
    task_score,
    token_f1,
)

approx = pytest.approx

# A binary example used below.  pred/ref pairs: (1,1) (1,0) (1,0) (0,0) (0,0)
#   class 1: TP=1, FP=2, FN=0, TN=2
BIN_PRED = [1, 1, 1, 0, 0]
BIN_REF = [1, 0, 0, 0, 0]


# ------------------------------------------------------------------------------- accuracy


def test_accuracy_counts_matches():
    # matches at positions 0, 3, 4 of 5 -> 3/5 = 60 %
    assert accuracy(BIN_PRED, BIN_REF) == approx(60.0)
    # string labels: 1 of 3 equal -> 33.33 %
    assert accuracy(["a", "b", "c"], ["a", "c", "b"]) == approx(100 / 3)


def test_accuracy_accepts_arrays_and_tensors():
    torch = pytest.importorskip("torch")
    assert accuracy(np.array([1, 2, 3, 4]), torch.tensor([1, 2, 0, 0])) == approx(50.0)


# ------------------------------------------------------------------------------------- f1


def test_binary_f1():
    # class 1: TP=1, FP=2, FN=0 -> P=1/3, R=1, F1 = 2TP/(2TP+FP+FN) = 2/4 = 50 %
    assert f1(BIN_PRED, BIN_REF) == approx(50.0)


def test_binary_f1_pos_label():
    # class 0: TP=2 (pos 3,4), FP=0, FN=2 (pos 1,2: ref 0, pred 1) -> 2*2/(4+0+2) = 66.67 %
    assert f1(BIN_PRED, BIN_REF, pos_label=0) == approx(200 / 3)
    # pred [0, 0, 1, 1], ref [0, 1, 1, 1]: class 1 TP=2, FP=0, FN=1 -> 4/5 = 80 %
    #                                      class 0 TP=1, FP=1, FN=0 -> 2/3 = 66.67 %
    assert f1([0, 0, 1, 1], [0, 1, 1, 1]) == approx(80.0)
    assert f1([0, 0, 1, 1], [0, 1, 1, 1], pos_label=0) == approx(200 / 3)


def test_binary_f1_no_positives_is_zero():
    # no positive prediction and no positive reference: F1 undefined -> 0, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f1([0, 0, 0], [0, 0, 0]) == 0.0


def test_macro_f1_three_classes():
    # ref  = [0, 0, 0, 1, 1, 2]
    # pred = [0, 0, 1, 1, 2, 2]
    # class 0: TP=2, FP=0, FN=1 -> 2*2/(4+0+1) = 4/5 = 0.8
    # class 1: TP=1, FP=1, FN=1 -> 2/4 = 0.5
    # class 2: TP=1, FP=1, FN=0 -> 2/3
    # macro = (0.8 + 0.5 + 2/3) / 3 = 0.655556   (weighted would be 0.6778, accuracy 0.6667)
    ref = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    assert f1(pred, ref, average="macro") == approx(100 * (0.8 + 0.5 + 2 / 3) / 3)


def test_f1_rejects_unknown_average():
    with pytest.raises(ValueError, match="average"):
        f1([1], [1], average="micro")


# ------------------------------------------------------------------------------- matthews


def test_matthews_by_formula():
    # TP=3, FN=1, FP=2, TN=4:
    # MCC = (3*4 - 2*1) / sqrt((3+2)(3+1)(4+2)(4+1)) = 10 / sqrt(600) = 0.408248
    ref = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    pred = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
    assert matthews(pred, ref) == approx(100 * 10 / math.sqrt(600))


def test_matthews_extremes_and_degenerate():
    assert matthews([1, 0, 1, 0], [1, 0, 1, 0]) == approx(100.0)
    assert matthews([0, 1, 0, 1], [1, 0, 1, 0]) == approx(-100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # constant prediction: (TP+FP)(TN+FN) has a zero factor -> 0
        assert matthews([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0
        # a single label everywhere -> undefined -> 0
        assert matthews([1, 1], [1, 1]) == 0.0


# --------------------------------------------------------------------------- correlations


def test_pearson_by_formula():
    # x = [1, 2, 3], y = [1, 2, 4]; dx = [-1, 0, 1], dy = [-4/3, -1/3, 5/3]
    # sum dx*dy = 4/3 + 5/3 = 3 ; sum dx^2 = 2 ; sum dy^2 = (16 + 1 + 25)/9 = 14/3
    # r = 3 / sqrt(2 * 14/3) = 3 / sqrt(28/3) = 0.981981
    assert pearson([1, 2, 3], [1, 2, 4]) == approx(100 * 3 / math.sqrt(28 / 3))


def test_pearson_vs_spearman_on_monotone_nonlinear():
    # y = [1, 4, 9, 100] is monotone in x = [1, 2, 3, 4] -> spearman = 100.
    # pearson: dx = [-1.5, -0.5, 0.5, 1.5], mean y = 28.5, dy = [-27.5, -24.5, -19.5, 71.5]
    # sum dx*dy = 41.25 + 12.25 - 9.75 + 107.25 = 151 ; sum dx^2 = 5
    # sum dy^2 = 756.25 + 600.25 + 380.25 + 5112.25 = 6849 -> r = 151 / sqrt(5 * 6849)
    x, y = [1, 2, 3, 4], [1, 4, 9, 100]
    assert spearman(x, y) == approx(100.0)
    assert pearson(x, y) == approx(100 * 151 / math.sqrt(5 * 6849))


def test_spearman_with_ties_uses_average_ranks():
    # x = [1, 2, 2, 3] -> ranks [1, 2.5, 2.5, 4]; y ranks [1, 2, 3, 4]
    # d(rank x) = [-1.5, 0, 0, 1.5], d(rank y) = [-1.5, -0.5, 0.5, 1.5]
    # cov = 2.25 + 2.25 = 4.5 ; var x = 4.5 ; var y = 5 -> rho = 4.5 / sqrt(22.5) = 0.948683
    # (the no-ties shortcut 1 - 6*sum d^2/(n(n^2-1)) would give 0.95)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == approx(100 * 4.5 / math.sqrt(22.5))
    # x = [1, 2, 3, 4], y = [1, 3, 2, 4]: sum d^2 = 2 -> 1 - 12/60 = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == approx(80.0)


def test_correlation_degenerate_cases():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a constant series has zero variance: r undefined -> 0.0 (documented choice)
        assert pearson([2.5, 2.5, 2.5], [1.0, 2.0, 3.0]) == 0.0
        assert spearman([2.5, 2.5, 2.5], [1.0, 2.0, 3.0]) == 0.0
        assert pearson([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]) == 0.0
        assert pearson([1.0], [2.0]) == 0.0  # n = 1 is constant too
    # a diverged model is not hidden: nan propagates
    assert math.isnan(pearson([float("nan"), 1.0, 2.0], [1.0, 2.0, 3.0]))


# ----------------------------------------------------------------------- SQuAD normalise


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Cat!", "cat"),  # lower, punctuation, article, double space
        ("A man, a plan, a canal: Panama", "man plan canal panama"),
        ("  the\tBest\n answer ", "best answer"),  # any whitespace collapses
        ("theater and anthem", "theater and anthem"),  # articles only as whole words
        ("Banana", "banana"),
        ("Hello-world", "helloworld"),  # punctuation removed, not replaced by a space
        ("an apple's core.", "apples core"),
        ("the", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match():
    assert exact_match("The Cat!", ["cat"]) == 1.0
    assert exact_match("cat", ["dog", "the cat."]) == 1.0  # max over golds
    assert exact_match("cats", ["cat"]) == 0.0
    assert exact_match("red dog", ["the big red dog"]) == 0.0
    assert exact_match("Cat", "cat") == 1.0  # a bare string is one gold answer


def test_token_f1_partial_overlap():
    # pred "the big red dog" -> tokens [big, red, dog] (article dropped); gold [red, dog]
    # overlap 2: P = 2/3, R = 2/2 = 1, F1 = 2*(2/3)*1 / (2/3 + 1) = 0.8
    assert token_f1("the big red dog", ["red dog"]) == approx(0.8)
    # reversed: P = 1, R = 2/3 -> also 0.8
    assert token_f1("red dog", ["The big red dog"]) == approx(0.8)


def test_token_f1_max_over_golds():
    # vs "dog": overlap 1, P=1/2, R=1 -> 2/3 ; vs "big red dog": P=1, R=2/3 -> 0.8 ; max 0.8
    assert token_f1("red dog", ["dog", "big red dog"]) == approx(0.8)
    # vs "red": P=1/2, R=1 -> 2/3 ; vs "blue": 0 -> max 2/3
    assert token_f1("red dog", ["blue", "red"]) == approx(2 / 3)


def test_token_f1_counts_repeated_tokens_once_each():
    # pred [dog, dog], gold [dog]: overlap = min(2, 1) = 1 -> P=1/2, R=1, F1=2/3
    # (a set-based overlap would give 1.0)
    assert token_f1("dog dog", ["dog"]) == approx(2 / 3)


def test_token_f1_no_overlap_and_empty():
    assert token_f1("cat", ["dog"]) == 0.0
    assert token_f1("", [""]) == 1.0  # both empty: match (SQuAD 2.0 rule)
    assert token_f1("The.", ["a"]) == 1.0  # both normalise to nothing
    assert token_f1("the", ["cat"]) == 0.0  # empty prediction vs non-empty gold
    assert token_f1("cat", [""]) == 0.0


def test_qa_scores_means_times_100():
    # EM:  [1, 0, 0]          -> 33.33
    # F1:  [1, 0.8, 0]        -> 60.0
    preds = ["The cat", "big red dog", "x"]
    golds = [["cat"], ["red dog"], ["y", "z"]]
    scores = qa_scores(preds, golds)
    assert set(scores) == {"exact_match", "f1"}
    assert scores["exact_match"] == approx(100 / 3)
    assert scores["f1"] == approx(60.0)


def test_record_scores_max_over_entities():
    # query 1: "Barack Obama" vs ["Obama", "Barack Obama"]: EM 1, F1 1
    # query 2: "the United States" vs ["United States of America", "USA"]:
    #   tokens [united, states] vs [united, states, of, america]: P=1, R=1/2 -> F1 2/3; EM 0
    # EM = 50, F1 = (1 + 2/3)/2 = 83.33
    scores = record_scores(
        ["Barack Obama", "the United States"],
        [["Obama", "Barack Obama"], ["United States of America", "USA"]],
    )
    assert set(scores) == {"f1", "exact_match"}
    assert scores["exact_match"] == approx(50.0)
    assert scores["f1"] == approx(100 * (1 + 2 / 3) / 2)


# ---------------------------------------------------------------------------------- MultiRC


def test_multirc_two_questions():
    # q1 options: ref [1, 0, 1], pred [1, 0, 1] -> all right
    # q2 options: ref [1, 0],    pred [1, 1]    -> one wrong
    # EM = 1/2 = 50 %
    # F1a pooled: TP = 3 (q1 o1, q1 o3, q2 o1), FP = 1 (q2 o2), FN = 0 -> 6/7 = 85.71 %
    # The options are interleaved to check grouping by id, not by position.
    ids = [("p0", 1), ("p0", 2), ("p0", 1), ("p0", 2), ("p0", 1)]
    ref = [1, 1, 0, 0, 1]
    pred = [1, 1, 0, 1, 1]
    scores = multirc_scores(pred, ref, ids)
    assert set(scores) == {"f1a", "exact_match"}
    assert scores["exact_match"] == approx(50.0)
    assert scores["f1a"] == approx(600 / 7)


def test_multirc_length_mismatch_with_ids():
    with pytest.raises(ValueError, match=r"3 predictions but 2 question_ids"):
        multirc_scores([1, 0, 1], [1, 0, 1], ["q1", "q1"])


# --------------------------------------------------------------------------------- registry


def test_metrics_registry_keys_and_values():
    assert set(METRICS) == {
        "accuracy",
        "accuracy_macro_f1",
        "f1_accuracy",
        "matthews",
        "pearson_spearman",
        "multirc",
        "squad",
    }
    assert METRICS["accuracy"](BIN_PRED, BIN_REF) == {"accuracy": approx(60.0)}
    assert METRICS["f1_accuracy"](BIN_PRED, BIN_REF) == {
        "f1": approx(50.0),
        "accuracy": approx(60.0),
    }
    # CB example of test_macro_f1_three_classes: accuracy 4/6
    cb = METRICS["accuracy_macro_f1"]([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 2])
    assert cb == {"accuracy": approx(400 / 6), "f1_macro": approx(100 * (0.8 + 0.5 + 2 / 3) / 3)}
    assert METRICS["matthews"]([0, 1, 0, 1], [1, 0, 1, 0]) == {"matthews": approx(-100.0)}
    sts = METRICS["pearson_spearman"]([1, 2, 3, 4], [1, 4, 9, 100])
    assert sts == {"pearson": approx(100 * 151 / math.sqrt(5 * 6849)), "spearman": approx(100.0)}
    mrc = METRICS["multirc"]([1, 0, 1, 1, 1], [1, 0, 1, 1, 0], question_ids=[1, 1, 1, 2, 2])
    # q1 right, q2 wrong -> EM 50; TP=3, FP=1, FN=0 -> 6/7
    assert mrc == {"f1a": approx(600 / 7), "exact_match": approx(50.0)}
    squad = METRICS["squad"](["The cat", "big red dog"], [["cat"], ["red dog"]])
    assert squad == {"exact_match": approx(50.0), "f1": approx(90.0)}


def test_registry_ignores_unused_extras_but_multirc_needs_ids():
    assert METRICS["accuracy"]([1], [1], question_ids=[0]) == {"accuracy": 100.0}
    with pytest.raises(ValueError, match="question_ids"):
        METRICS["multirc"]([1], [1])


# ------------------------------------------------------------------------------- averages


def test_task_score_is_mean_of_reported_metrics():
    assert task_score({"f1": 80.0, "accuracy": 70.0}) == approx(75.0)
    assert task_score({"matthews": 60.5}) == approx(60.5)


# BERT-large's row on the GLUE leaderboard (published GLUE score 80.5).
BERT_LARGE_GLUE = {
    "cola": {"matthews": 60.5},
    "sst2": {"accuracy": 94.9},
    "mrpc": {"f1": 89.3, "accuracy": 85.4},
    "stsb": {"pearson": 87.6, "spearman": 86.5},
    "qqp": {"f1": 72.1, "accuracy": 89.3},
    "mnli": {"accuracy_m": 86.7, "accuracy_mm": 85.9},
    "qnli": {"accuracy": 92.7},
    "rte": {"accuracy": 70.1},
    "wnli": {"accuracy": 65.1},
}


def test_benchmark_average_reproduces_glue_leaderboard():
    # task scores: 60.5, 94.9, 87.35, 87.05, 80.7, 86.3, 92.7, 70.1, 65.1 ; sum 724.7
    # 724.7 / 9 = 80.522 -> the published 80.5 (MNLI one task = mean of m and mm)
    assert benchmark_average(BERT_LARGE_GLUE) == approx(724.7 / 9)
    assert round(benchmark_average(BERT_LARGE_GLUE), 1) == 80.5


def test_benchmark_average_counts_each_entry_once():
    # MNLI-m and MNLI-mm passed as two entries count as two tasks:
    # 724.7 - 86.3 + 86.7 + 85.9 = 811.0 over 10 tasks = 81.1 (not the leaderboard's 80.5)
    split = {k: v for k, v in BERT_LARGE_GLUE.items() if k != "mnli"}
    split["mnli_m"] = {"accuracy": 86.7}
    split["mnli_mm"] = {"accuracy": 85.9}
    assert benchmark_average(split) == approx(81.1)


def test_benchmark_average_superglue():
    # BERT-large SuperGLUE baseline (published 69.0):
    # 77.4 + (75.7+83.6)/2 + 70.6 + (70.0+24.1)/2 + (72.0+71.3)/2 + 71.7 + 69.6 + 64.4
    # = 77.4 + 79.65 + 70.6 + 47.05 + 71.65 + 71.7 + 69.6 + 64.4 = 552.05 ; / 8 = 69.006
    per_task = {
        "boolq": {"accuracy": 77.4},
        "cb": {"f1_macro": 75.7, "accuracy": 83.6},
        "copa": {"accuracy": 70.6},
        "multirc": {"f1a": 70.0, "exact_match": 24.1},
        "record": {"f1": 72.0, "exact_match": 71.3},
        "rte": {"accuracy": 71.7},
        "wic": {"accuracy": 69.6},
        "wsc": {"accuracy": 64.4},
    }
    assert benchmark_average(per_task) == approx(552.05 / 8)


# --------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [accuracy, f1, matthews, pearson, spearman])
def test_length_mismatch_names_both_lengths(fn):
    with pytest.raises(ValueError, match=r"3 predictions but 2 references"):
        fn([1, 0, 1], [1, 0])


@pytest.mark.parametrize("fn", [accuracy, f1, matthews, pearson, spearman])
def test_empty_input(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([], [])


def test_qa_bad_input():
    with pytest.raises(ValueError, match=r"2 predictions but 1 references"):
        qa_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="empty"):
        qa_scores([], [])
    with pytest.raises(ValueError, match="no gold answers"):
        exact_match("a", [])
    with pytest.raises(TypeError):
        qa_scores("ab", [["a"], ["b"]])  # one string is not a list of predictions


def test_aggregate_bad_input():
    with pytest.raises(ValueError, match="empty"):
        task_score({})
    with pytest.raises(ValueError, match="empty"):
        benchmark_average({})
    with pytest.raises(ValueError, match="'cola'"):
        benchmark_average({"cola": {}})


def test_two_dimensional_input_rejected():
    with pytest.raises(ValueError, match="one-dimensional"):
        accuracy([[1, 0]], [[1, 0]])
