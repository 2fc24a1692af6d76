"""A user's labelled files as a Task (issue 34): formats, columns, labels, the held-out
test split, and every bad input told at once with its file and row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samlm.pipeline.data import run_splits
from samlm.tasks import DataError, get_task, load_split
from samlm.tasks import user as user_module

ROWS = [
    ("a gorgeous , witty , seductive movie .", "positive"),
    ("it 's a mess .", "negative"),
    ("a charming , funny film .", "positive"),
    ("the plot is nowhere .", "negative"),
    ("warm and wonderful .", "positive"),
    ("dull , dull , dull .", "negative"),
    ("a triumph .", "positive"),
    ("nothing works here .", "negative"),
]


pytestmark = pytest.mark.usefixtures("fresh_user_tasks")


def write(path: Path, rows: list[dict], fmt: str | None = None) -> Path:
    """``rows`` in the format of ``path``'s extension, through pandas and json."""
    import pandas as pd

    fmt = fmt or path.suffix
    frame = pd.DataFrame(rows)
    if fmt == ".csv":
        frame.to_csv(path, index=False)
    elif fmt == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == ".json":
        path.write_text(json.dumps(rows))
    elif fmt == ".parquet":
        frame.to_parquet(path)
    return path


def _rows(text="text", label="label", rows=ROWS) -> list[dict]:
    return [{text: t, label: y} for t, y in rows]


def _error(ref: str) -> str:
    with pytest.raises(DataError) as info:
        get_task(ref)
    return str(info.value)


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_each_format_gives_the_same_task(tmp_path, ext):
    train = write(tmp_path / f"train{ext}", _rows())
    test = write(tmp_path / f"test{ext}", _rows()[:4])
    task = get_task(f"{train}?test={test}")
    assert task.kind == "classification" and task.label_names == ("negative", "positive")
    assert task.keys == ("text",) and task.main_metric == "accuracy"
    examples = load_split(task, "train")
    assert [ex.fields["text"] for ex in examples] == [t for t, _ in ROWS]
    assert [task.label_names[ex.label] for ex in examples] == [y for _, y in ROWS]
    assert [ex.idx for ex in examples] == list(range(len(ROWS)))  # the file's rows
    assert len(load_split(task, "validation")) == 4


@pytest.mark.parametrize(
    ("text", "label"),
    [("sentence", "label"), ("question", "label"), ("review", "sentiment"), ("Text", "Class")],
)
def test_columns_found_by_name(tmp_path, text, label):
    train = write(
        tmp_path / "train.csv", [{"id": i, **r} for i, r in enumerate(_rows(text, label))]
    )
    task = get_task(str(train))
    assert task.keys == (text,)
    assert load_split(task, "train")[0].fields[text] == ROWS[0][0] or len(
        load_split(task, "validation")
    )


def test_a_lone_text_column_is_the_text_and_options_name_columns(tmp_path):
    rows = [{"words": t, "y": y, "n": i} for i, (t, y) in enumerate(ROWS)]
    path = write(tmp_path / "odd.csv", rows)
    task = get_task(f"{path}?label=y")  # "words" is the only text column left
    assert task.keys == ("words",)
    task = get_task(f"{path}?text=words&label=y&metric=f1_macro")
    assert task.main_metric == "f1_macro"


def test_bom_and_quoted_fields_with_commas_and_newlines(tmp_path):
    path = tmp_path / "bom.csv"
    body = 'text,label\n"hello, world",pos\n"two\nlines ""quoted""",neg\nplain,pos\nmore,neg\n'
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    test = tmp_path / "t.csv"
    test.write_text("text,label\nx,pos\n")
    task = get_task(f"{path}?test={test}")
    texts = [ex.fields["text"] for ex in load_split(task, "train")]
    assert texts == ["hello, world", 'two\nlines "quoted"', "plain", "more"]
    assert task.label_names == ("neg", "pos")


def test_sentence_pairs(tmp_path):
    rows = [{"premise": t, "hypothesis": t[::-1], "label": y} for t, y in ROWS]
    task = get_task(str(write(tmp_path / "nli.jsonl", rows)))
    assert task.keys == ("premise", "hypothesis")
    ex = load_split(task, "train")[0]
    assert task.encoder_text(ex) == (ex.fields["premise"], ex.fields["premise"][::-1])
    assert task.source(ex).startswith("premise: ") and " hypothesis: " in task.source(ex)
    rows = [{"a": t, "b": t.upper(), "label": y} for t, y in ROWS]
    task = get_task(f"{write(tmp_path / 'p.csv', rows)}?text=a&text_pair=b")
    assert task.keys == ("a", "b")


def test_integer_labels_keep_their_numeric_order_and_names(tmp_path):
    rows = [{"text": t, "label": [2, 10, 7][i % 3]} for i, (t, _) in enumerate(ROWS * 2)]
    task = get_task(str(write(tmp_path / "ints.parquet", rows)))
    assert task.kind == "classification" and task.label_names == ("2", "7", "10")
    train = load_split(task, "train") + load_split(task, "validation")
    by_idx = {ex.idx: task.label_names[ex.label] for ex in train}
    assert by_idx == {i: str(r["label"]) for i, r in enumerate(rows)}


def test_float_labels_are_regression_and_kind_forces_it(tmp_path):
    rows = [{"text": t, "score": i / 3} for i, (t, _) in enumerate(ROWS)]
    task = get_task(str(write(tmp_path / "scores.csv", rows)) + "?label=score")
    assert task.kind == "regression" and task.main_metric == "pearson"
    assert task.modelling == ("encoder",) and task.metric_set == "pearson_spearman"
    values = sorted(ex.label for s in ("train", "validation") for ex in load_split(task, s))
    assert values == pytest.approx([i / 3 for i in range(len(ROWS))])
    rows = [{"text": t, "stars": i % 4 + 1} for i, (t, _) in enumerate(ROWS * 2)]
    path = write(tmp_path / "stars.csv", rows)
    assert get_task(f"{path}?label=stars").kind == "classification"
    task = get_task(f"{path}?label=stars&kind=regression&metric=spearman")
    assert task.kind == "regression" and task.main_metric == "spearman"
    assert "metric='accuracy' is not one of a regression task's metrics" in _error(
        f"{path}?label=stars&kind=regression&metric=accuracy"
    )


def test_the_held_out_test_split_is_seeded_stratified_and_disjoint(tmp_path):
    rows = [{"text": f"text number {i}", "label": "abc"[i % 3]} for i in range(300)]
    path = str(write(tmp_path / "one.csv", rows))
    task = get_task(f"{path}?test_size=60")
    test = load_split(task, "validation")
    assert len(test) == 60 and sorted(ex.label for ex in test) == [0] * 20 + [1] * 20 + [2] * 20
    assert "held out 60 of the 300 training rows" in task.data_note()
    test_rows = {ex.idx for ex in test}
    assert not test_rows & {ex.idx for ex in load_split(task, "train")}
    user_module._CACHE.clear()  # read again: the same rows
    assert {
        ex.idx for ex in load_split(get_task(f"{path}?test_size=60"), "validation")
    } == test_rows
    # every run (any seed, size and validation sample) reports on them, and trains and
    # selects elsewhere
    for seed in (0, 1, 2):
        for size in (30, 120):
            s = run_splits(task, None, train_size=size, seed=seed, validation_size=50)
            assert {ex.idx for ex in s.reported} == test_rows
            used = {ex.idx for ex in s.train} | {ex.idx for ex in s.validation}
            assert not used & test_rows and s.validation_from == "train"
        # the full training set: the protocol takes the validation sample from the test
        # split ("auto", pipeline/data.py), and reports on the rest of it
        s = run_splits(task, None, seed=seed, validation_size=10)
        assert {ex.idx for ex in s.reported} | {ex.idx for ex in s.validation} == test_rows
        assert not {ex.idx for ex in s.train} & test_rows
    # the default share: 0.25 (train_test_split's)
    assert len(load_split(get_task(path), "validation")) == 75


def test_a_validation_file_and_a_test_file(tmp_path):
    train = write(tmp_path / "train.csv", _rows())
    dev = write(tmp_path / "dev.csv", _rows()[:3])
    test = write(tmp_path / "test.csv", _rows()[3:])
    task = get_task(f"{train}?validation={dev}&test={test}")
    s = run_splits(task, None, validation_size=2)
    assert s.validation_from == "file" and len(s.validation) == 2
    assert [ex.fields["text"] for ex in s.reported] == [t for t, _ in ROWS[3:]]
    only_dev = get_task(f"{train}?validation={dev}")  # the reported set, as a dev set
    assert len(load_split(only_dev, "validation")) == 3 and "selection" not in only_dev.files


def test_a_yaml_task_file(tmp_path):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "reviews.csv", _rows("review", "sentiment"))
    task_file = tmp_path / "cr.yaml"
    task_file.write_text(
        "name: cr\ntrain_file: data/reviews.csv\ntext: review\nlabel: sentiment\n"
        "metric: macro_f1\ntest_size: 2\n"
    )
    task = get_task(str(task_file))
    assert task.name == str(task_file) and task.main_metric == "f1_macro"
    ex = load_split(task, "train")[0]
    assert task.source(ex) == f"cr review: {ex.fields['review']}"  # the name as T5's prefix
    assert len(load_split(task, "validation")) == 2
    assert get_task(f"{task_file}?test_size=4") is not task  # keys on top of the file
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: x.csv\ncolumns: [a]\n")
    assert "unknown key 'columns'" in _error(str(bad))


# ------------------------------------------------------------------ bad input, all at once


def test_every_problem_in_one_message_with_file_and_row(tmp_path):
    rows = [*_rows(), {"text": "", "label": "positive"}, {"text": "fine", "label": None}]
    train = write(tmp_path / "train.csv", rows)
    test = write(tmp_path / "test.csv", [{"text": "new", "label": "neutral"}, *_rows()[:2]])
    text = _error(f"{train}?test={test}&validation={tmp_path / 'nothere.csv'}")
    assert "(3 problems; nothing was run)" in text
    assert f"{tmp_path / 'nothere.csv'}: no such file" in text
    assert f"{train}: 1 with an empty text (row 9); 1 without a label (row 10)" in text
    assert "drop_invalid=true" in text
    # the unseen label is told once the training rows are usable
    dropped = get_task(f"{train}?drop_invalid=true&test_size=2")
    assert "dropped 2 rows" in dropped.data_note() and len(load_split(dropped, "train")) == 6
    text = _error(f"{train}?drop_invalid=true&test={test}")
    assert f"{test}: label 'neutral' (row 1) never appears in the training data" in text


def test_unknown_column_lists_the_columns_present(tmp_path):
    path = write(tmp_path / "t.csv", _rows("review", "stars"))
    text = _error(f"{path}?text=body")
    assert "unknown column text='body'; columns present: review, stars" in text
    text = _error(str(write(tmp_path / "u.csv", _rows("review", "verdict"))))
    assert "no label column found by name; columns present: review, verdict" in text
    test = write(tmp_path / "v.csv", _rows("sentence", "stars"))
    text = _error(f"{path}?label=stars&test={test}")
    assert f"{test}: unknown column review; columns present: sentence, stars" in text


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert f"{empty}: the file is empty" in _error(str(empty))
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    assert f"{header}: no rows" in _error(str(header))


def test_non_numeric_regression_target(tmp_path):
    rows = [{"text": t, "score": str(i)} for i, (t, _) in enumerate(ROWS)] + [
        {"text": "x", "score": "high"}
    ]
    path = write(tmp_path / "s.jsonl", rows)
    text = _error(f"{path}?label=score&kind=regression")
    assert f"{path}: 1 regression targets are not numbers (row 9; e.g. 'high')" in text


def test_a_file_not_in_utf8_names_the_line_and_the_option(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(
        ("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in ROWS)).encode()
        + "caf\xe9 au lait,positive\n".encode("latin-1")
    )
    text = _error(str(path))
    assert f"{path}, line {len(ROWS) + 2}: not valid utf-8 text" in text
    assert "encoding=latin-1" in text and "--encoding latin-1" in text
    task = get_task(f"{path}?encoding=latin-1&test_size=2")
    texts = {ex.fields["text"] for s in ("train", "validation") for ex in load_split(task, s)}
    assert "café au lait" in texts


def test_a_test_split_the_data_cannot_hold(tmp_path):
    path = write(tmp_path / "few.csv", [*_rows(), {"text": "so so", "label": "mixed"}])
    text = _error(f"{path}?test_size=20")
    assert "a test split of 20 rows leaves none of its 9 rows" in text
    text = _error(f"{path}?test_size=3")
    assert "class 'mixed' (1 row) too small for a stratified test split" in text
    one = write(tmp_path / "one.csv", [{"text": t, "label": "pos"} for t, _ in ROWS])
    assert "one class only ('pos')" in _error(str(one))


# ------------------------------------------------------------------ the real sets


def test_the_four_real_user_sets(data_dir):
    user = data_dir / "user"
    if not user.is_dir():
        pytest.skip(f"{user} is absent")
    expected = {
        f"{user}/trec/train.csv?test={user}/trec/test.csv": (5452, 500, 6, "question"),
        f"{user}/subj/subj.jsonl": (7500, 2500, 2, "sentence"),
        f"{user}/cr/reviews.csv": (2828, 943, 2, "review"),
        f"{user}/mpqa/mpqa.parquet": (7952, 2651, 2, "phrase"),
    }
    for ref, (n_train, n_test, classes, text) in expected.items():
        task = get_task(ref)
        assert (len(load_split(task, "train")), len(load_split(task, "validation"))) == (
            n_train,
            n_test,
        )
        assert len(task.label_names) == classes and task.keys == (text,)
    assert get_task(f"{user}/cr/reviews.csv").label_names == ("negative", "positive")
    assert get_task(f"{user}/subj/subj.jsonl").label_names == ("objective", "subjective")
    assert get_task(f"{user}/mpqa/mpqa.parquet").label_names == ("0", "1")


def test_a_target_column_makes_a_text_to_text_task(tmp_path):
    rows = [{"question": f"who {i}", "answer": f"person {i % 3}"} for i in range(12)]
    path = write(tmp_path / "qa.jsonl", [*rows, {"question": "who", "answer": ""}])
    text = _error(f"{path}?target=answer")
    assert "1 without a target (row 13)" in text
    task = get_task(f"{path}?target=answer&drop_invalid=true&test_size=3&metric=token_f1")
    assert (task.kind, task.metric_set, task.main_metric) == ("qa", "squad", "f1")
    assert task.modelling == ("text2text", "causal")
    ex = load_split(task, "train")[0]
    assert task.text2text(ex) == ("question: who 0", "person 0") and ex.label is None
    assert task.compute_metrics(["person 0"], [ex]) == {"exact_match": 100.0, "f1": 100.0}
    assert "give a label" in _error(f"{path}?target=answer&label=question")


def test_the_readmes_task_file(tmp_path):
    """The task file the README shows is one that works as it stands."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("# my.yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my.yaml").write_text(block)
    (tmp_path / "data").mkdir()
    rows = [{"question": t, "label": y} for t, y in ROWS * 2]
    for name in ("train", "dev", "test"):
        write(tmp_path / "data" / f"{name}.csv", rows)
    task = get_task(str(tmp_path / "my.yaml"))
    assert (task.main_metric, task.keys, task.prefix) == ("f1_macro", ("question",), "questions")
    assert set(task.files) == {"train", "validation", "selection"}
