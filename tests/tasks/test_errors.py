"""Malformed and missing data: errors name the file, the line (or record) and the field."""

from __future__ import annotations

import re

import pytest

from samlm.tasks import DataError, get_task, load_split

from .conftest import write_json, write_jsonl, write_tsv

RTE_ROW = {"premise": "A dog ran.", "hypothesis": "An animal ran.", "label": "entailment"}


def _error(task: str, split: str, root) -> str:
    with pytest.raises(DataError) as info:
        load_split(task, split, root, hub=False)
    return str(info.value)


def test_missing_field_names_file_line_field(tmp_path):
    bad = {"premise": "A cat sat.", "label": "entailment", "idx": 1}
    path = write_jsonl(tmp_path / "superglue/RTE/train.jsonl", [RTE_ROW, bad])
    message = _error("superglue/rte", "train", tmp_path)
    assert message == f"{path}, line 2: field 'hypothesis' is missing"


def test_label_outside_label_set(tmp_path):
    path = write_jsonl(
        tmp_path / "superglue/CB/val.jsonl", [RTE_ROW, RTE_ROW, {**RTE_ROW, "label": "maybe"}]
    )
    message = _error("cb", "validation", tmp_path)
    assert message.startswith(f"{path}, line 3: field 'label' has value 'maybe', not one of")
    assert "'entailment', 'contradiction', 'neutral'" in message


def test_bool_label_must_be_a_json_bool(tmp_path):
    row = {"question": "q?", "passage": "p.", "label": 1, "idx": 0}
    write_jsonl(tmp_path / "superglue/BoolQ/train.jsonl", [row])
    write_jsonl(tmp_path / "superglue/BoolQ/val.jsonl", [row])
    assert "line 1: field 'label' has value 1" in _error("boolq", "train", tmp_path)


def test_invalid_json_line(tmp_path):
    path = tmp_path / "superglue/RTE/val.jsonl"
    write_jsonl(path, [RTE_ROW])
    path.write_text(path.read_text() + "\n{not json\n")
    assert _error("superglue/rte", "validation", tmp_path).startswith(f"{path}, line 3: invalid")


def test_text_field_of_wrong_type(tmp_path):
    write_jsonl(tmp_path / "superglue/RTE/train.jsonl", [{**RTE_ROW, "premise": 3}])
    assert "line 1: field 'premise' must be of type str, got 3" in _error(
        "superglue/rte", "train", tmp_path
    )


def test_nested_multirc_field(tmp_path):
    answers = [{"text": "a", "idx": 0, "label": 1}, {"text": "b", "idx": 1, "label": "yes"}]
    record = {
        "idx": 0,
        "passage": {"text": "t", "questions": [{"question": "q", "idx": 0, "answers": answers}]},
    }
    path = write_jsonl(tmp_path / "superglue/MultiRC/train.jsonl", [record])
    message = _error("multirc", "train", tmp_path)
    assert message.startswith(
        f"{path}, line 1: field 'passage.questions[0].answers[1].label' has value 'yes'"
    )


def test_record_entity_span_outside_passage(tmp_path):
    record = {
        "idx": 0,
        "passage": {"text": "Short.", "entities": [{"start": 0, "end": 40}]},
        "qas": [{"query": "@placeholder", "answers": [{"text": "x"}], "idx": 0}],
    }
    write_jsonl(tmp_path / "superglue/ReCoRD/train.jsonl", [record])
    assert "line 1: field 'passage.entities[0].end' gives span [0, 40]" in _error(
        "record", "train", tmp_path
    )


def test_tsv_wrong_column_count(tmp_path):
    path = write_tsv(
        tmp_path / "glue/SST-2/train.tsv",
        [["sentence", "label"], ["good movie", "1"], ["bad", "movie", "0"]],
    )
    message = _error("sst2", "train", tmp_path)
    assert message == (
        f"{path}, line 3: expected 2 tab-separated columns (sentence, label), found 3"
    )


def test_tsv_missing_column_and_bad_label(tmp_path):
    write_tsv(tmp_path / "glue/QNLI/train.tsv", [["index", "question", "label"], ["0", "q", "x"]])
    assert "line 2: field 'sentence' is missing" in _error("qnli", "train", tmp_path)
    write_tsv(tmp_path / "glue/CoLA/train.tsv", [["gj04", "2", "", "Bad label."]])
    assert "line 1: field 'label' has value '2', not one of the labels ('0', '1')" in _error(
        "cola", "train", tmp_path
    )


def test_stsb_score_must_be_a_number_in_range(tmp_path):
    header = ["index", "sentence1", "sentence2", "score"]
    write_tsv(tmp_path / "glue/STS-B/train.tsv", [header, ["0", "a", "b", "high"]])
    assert "line 2: field 'score' is not a number: 'high'" in _error("stsb", "train", tmp_path)
    write_tsv(
        tmp_path / "glue/STS-B/train.tsv", [header, ["0", "a", "b", "1"], ["1", "a", "b", "7.5"]]
    )
    assert "line 3: field 'score' is '7.5', outside [0.0, 5.0]" in _error("stsb", "train", tmp_path)


def test_json_list_record_index(tmp_path):
    rows = [{"qId": "wqr0", "qText": "who?", "answers": ["me"]}, {"qId": "wqr1", "qText": "q"}]
    path = write_json(tmp_path / "webquestions/val.json", rows)
    message = _error("webquestions", "validation", tmp_path)
    assert message == f"{path}, record [1]: field 'answers' is missing"


def test_triviaqa_and_tydiqa_record_paths(tmp_path):
    question = {"Question": "q", "QuestionId": "tc_1", "Answer": {"Value": "v"}}
    path = write_json(tmp_path / "triviaqa/qa/web-dev.json", {"Data": [question]})
    write_json(tmp_path / "triviaqa/qa/wikipedia-dev.json", {"Data": []})
    assert _error("triviaqa", "validation", tmp_path) == (
        f"{path}, record Data[0]: field 'Answer.Aliases' is missing"
    )
    qas = [
        {"id": "a", "question": "q", "answers": [{"text": "x"}]},
        {"id": "b", "question": "q", "answers": []},
    ]
    data = {"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]}
    path = write_json(tmp_path / "tydiqa/tydiqa-goldp-v1.1-train.json", data)
    assert _error("tydiqa", "train", tmp_path) == (
        f"{path}, record data[0].paragraphs[0].qas[1]: field 'answers' is empty (no gold answer)"
    )


def test_empty_file_and_short_boolq(tmp_path):
    path = tmp_path / "superglue/RTE/train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n")
    assert _error("superglue/rte", "train", tmp_path) == f"{path}: no records"
    row = {"question": "q?", "passage": "p.", "label": True}
    write_jsonl(tmp_path / "superglue/BoolQ/val.jsonl", [row] * 10)
    assert "10 records, but the train/validation split" in _error("boolq", "train", tmp_path)


def test_unknown_split():
    with pytest.raises(ValueError, match=r"no split 'dev'; splits: train, validation"):
        load_split("superglue/rte", "dev", None, hub=False)


def test_no_data_lists_full_paths_and_advice(tmp_path, monkeypatch):
    def offline(source, split):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr("samlm.tasks.loading.load_rows", offline)
    with pytest.raises(DataError) as info:
        load_split("boolq", "train", tmp_path)
    message = str(info.value)
    folder = tmp_path.resolve() / "superglue" / "BoolQ"
    assert f"{folder / 'train.jsonl'} (missing)" in message
    assert f"{folder / 'val.jsonl'} (missing)" in message
    assert "aps/super_glue (boolq), split 'train': ConnectionError: Couldn't reach" in message
    assert "--data-dir" in message and "SAMLM_DATA_DIR" in message and "go online" in message
    assert "superglue/BoolQ/train.jsonl in the official release format" in message


def test_no_data_dir_given(monkeypatch):
    with pytest.raises(DataError) as info:
        load_split("qa/webquestions", "devtest", None)
    message = str(info.value)
    assert "none given (no --data-dir, $SAMLM_DATA_DIR not set)" in message
    assert re.search(r"split 'devtest' is not available there", message)


def test_env_var_is_used(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "superglue/RTE/val.jsonl", [RTE_ROW])
    monkeypatch.setenv("SAMLM_DATA_DIR", str(tmp_path))
    assert len(load_split(get_task("superglue/rte"), "validation", hub=False)) == 1
