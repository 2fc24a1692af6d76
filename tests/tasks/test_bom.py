"""A UTF-8 byte-order mark at the start of a file (the official MRPC tsv files have one) is
dropped by every reader; one anywhere else is not taken for anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samlm.tasks import DataError, get_task, load_split

BOM = "\ufeff"

MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
MRPC_ROWS = [
    "1\t702876\t702977\tAmrozi accused his brother .\tAmrozi accused him .\n",
    "0\t2108705\t2108831\tYucaipa owned Dominick .\tYucaipa bought it .\n",
]
COLA_ROWS = [
    "gj04\t1\t\tOur friends won't buy this analysis.\n",
    "gj04\t0\t*\tOne more pseudo generalization or I'm giving up.\n",
]
CB_ROWS = [
    {"premise": "It was complex.", "hypothesis": "It was simple.", "label": "contradiction"},
    {"premise": "It rained.", "hypothesis": "It was wet.", "label": "entailment", "idx": 1},
]
WQ_ROWS = [
    {"qId": "wqr000004", "answers": ["Bahamian dollar"], "qText": "money in bahamas?"},
    {"qId": "wqr000009", "answers": ["Paris"], "qText": "where is the eiffel tower?"},
]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def test_tsv_with_header(tmp_path):
    raw = _write(tmp_path / "glue/MRPC/train.tsv", BOM + MRPC_HEADER + "".join(MRPC_ROWS))
    assert raw.read_bytes().startswith(b"\xef\xbb\xbf")  # as the official release
    task = get_task("glue/mrpc")
    (where, record), _ = list(task.reader(raw))
    assert tuple(record)[:2] == ("Quality", "#1 ID") and where.line == 2
    ex = load_split(task, "train", tmp_path, hub=False)
    assert [e.label for e in ex] == [1, 0]
    assert ex[0].fields["sentence1"] == "Amrozi accused his brother ."


def test_tsv_without_header(tmp_path):
    raw = _write(tmp_path / "glue/CoLA/train.tsv", BOM + "".join(COLA_ROWS))
    task = get_task("glue/cola")
    records = [r for _, r in task.reader(raw)]
    assert [r["source"] for r in records] == ["gj04", "gj04"]
    ex = load_split(task, "train", tmp_path, hub=False)
    assert [e.label for e in ex] == [1, 0]
    assert ex[0].fields == {"sentence": "Our friends won't buy this analysis."}


def test_jsonl(tmp_path):
    text = BOM + "".join(json.dumps(r) + "\n" for r in CB_ROWS)
    _write(tmp_path / "superglue/CB/train.jsonl", text)
    ex = load_split("superglue/cb", "train", tmp_path, hub=False)
    assert [e.label for e in ex] == [1, 0]  # contradiction, entailment
    assert [e.idx for e in ex] == [0, 1]


def test_json_list(tmp_path):
    _write(tmp_path / "webquestions/trainmodel.json", BOM + json.dumps(WQ_ROWS, indent=1))
    ex = load_split(get_task("qa/webquestions"), "train", tmp_path, hub=False)
    assert [e.idx for e in ex] == ["wqr000004", "wqr000009"]
    assert ex[0].answers == ("Bahamian dollar",)


def test_json_object_formats(tmp_path):
    """TriviaQA and SQuAD-format files go through the same loader."""
    context = "Kaapelitehdas is in Helsinki."
    qa = {"id": "q1", "question": "Where?", "answers": [{"text": "Helsinki", "answer_start": 20}]}
    data = {"data": [{"title": "K", "paragraphs": [{"context": context, "qas": [qa]}]}]}
    _write(tmp_path / "tydiqa/tydiqa-goldp-v1.1-dev.json", BOM + json.dumps(data))
    (ex,) = load_split("qa/tydiqa", "validation", tmp_path, hub=False)
    assert ex.answers == ("Helsinki",)


def test_only_a_leading_bom_is_dropped_tsv(tmp_path):
    # A second BOM (a file pasted after another) lands in the first field of the row.
    rows = [MRPC_ROWS[0], BOM + MRPC_ROWS[1]]
    _write(tmp_path / "glue/MRPC/train.tsv", BOM + MRPC_HEADER + "".join(rows))
    with pytest.raises(DataError, match=r"train\.tsv, line 3: field 'Quality' has value"):
        load_split("glue/mrpc", "train", tmp_path, hub=False)


def test_only_a_leading_bom_is_dropped_tsv_header(tmp_path):
    _write(tmp_path / "glue/MRPC/train.tsv", BOM + BOM + MRPC_HEADER + "".join(MRPC_ROWS))
    with pytest.raises(DataError, match=r"line 2: field 'Quality' is missing"):
        load_split("glue/mrpc", "train", tmp_path, hub=False)


def test_only_a_leading_bom_is_dropped_jsonl(tmp_path):
    lines = [json.dumps(r) + "\n" for r in CB_ROWS]
    _write(tmp_path / "superglue/CB/train.jsonl", lines[0] + BOM + lines[1])
    with pytest.raises(DataError, match=r"train\.jsonl, line 2: invalid JSON"):
        load_split("superglue/cb", "train", tmp_path, hub=False)


def test_only_a_leading_bom_is_dropped_json(tmp_path):
    text = json.dumps(WQ_ROWS[:1])[:-1] + ", " + BOM + json.dumps(WQ_ROWS[1]) + "]"
    _write(tmp_path / "webquestions/trainmodel.json", text)
    with pytest.raises(DataError, match=r"trainmodel\.json, line 1: invalid JSON"):
        load_split("qa/webquestions", "train", tmp_path, hub=False)
    _write(tmp_path / "webquestions/trainmodel.json", BOM + BOM + json.dumps(WQ_ROWS))
    with pytest.raises(DataError, match=r"trainmodel\.json, line 1: invalid JSON"):
        load_split("qa/webquestions", "train", tmp_path, hub=False)
