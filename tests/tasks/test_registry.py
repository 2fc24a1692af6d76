"""The registry, Hub-row converters, text-to-text round trips and scoring."""

from __future__ import annotations

import numpy as np
import pytest

from samlm.tasks import TASKS, describe_tasks, get_task, load_split

from .conftest import write_jsonl

# Hand-written rows in the Hub's schemas (datasets features), never downloaded.
NLI = [
    {"premise": "A dog ran.", "hypothesis": "An animal ran.", "idx": 0, "label": 0},
    {"premise": "A dog ran.", "hypothesis": "A cat sat.", "idx": 1, "label": 1},
    {"premise": "A dog ran.", "hypothesis": "It was fast.", "idx": 2, "label": 2},
]
S12 = [{"sentence1": "A b.", "sentence2": "C d.", "idx": i, "label": i % 2} for i in range(2)]
HUB_ROWS = {
    "superglue/boolq": [
        {"question": "is it?", "passage": "It is.", "idx": 0, "label": 1},
        {"question": "is it not?", "passage": "It is.", "idx": 1, "label": 0},
    ],
    "superglue/cb": NLI,
    "superglue/rte": NLI[:2],
    "superglue/copa": [
        {
            "premise": "I fell.",
            "choice1": "I slipped.",
            "choice2": "I flew.",
            "question": "cause",
            "idx": i,
            "label": i,
        }
        for i in range(2)
    ],
    "superglue/multirc": [
        {
            "paragraph": "<b>Sent 1: </b>Sam ate.<br>",
            "question": "Who ate?",
            "answer": a,
            "idx": {"paragraph": 0, "question": q, "answer": i},
            "label": y,
        }
        for i, (q, a, y) in enumerate([(0, "Sam", 1), (0, "Bob", 0), (1, "Yes", 1)])
    ],
    "superglue/record": [
        {
            "passage": "Alice met Bob.\n- Bob left",
            "query": "@placeholder met Bob.",
            "entities": ["Alice", "Bob"],
            "entity_spans": {"text": ["Alice", "Bob"], "start": [0, 10], "end": [5, 13]},
            "answers": ["Alice"],
            "idx": {"passage": 0, "query": 0},
        },
    ],
    "superglue/wic": [
        {
            "word": "run",
            "sentence1": "I run.",
            "sentence2": "A run.",
            "start1": 2,
            "start2": 2,
            "end1": 5,
            "end2": 5,
            "idx": i,
            "label": i,
        }
        for i in range(2)
    ],
    "superglue/wsc": [
        {
            "text": "Mark lied. He was bad.",
            "span1_index": 0,
            "span2_index": 2,
            "span1_text": "Mark",
            "span2_text": "He",
            "idx": i,
            "label": i,
        }
        for i in range(2)
    ],
    "glue/cola": [{"sentence": "Good.", "idx": i, "label": i} for i in range(2)],
    "glue/sst2": [{"sentence": "Fine film.", "idx": i, "label": i} for i in range(2)],
    "glue/mrpc": S12,
    "glue/stsb": [
        {"sentence1": "A.", "sentence2": "B.", "idx": i, "label": y}
        for i, y in enumerate([0.0, 2.4, 5.0])
    ],
    "glue/qqp": [{"question1": "Q?", "question2": "R?", "idx": i, "label": i} for i in range(2)],
    "glue/mnli": NLI,
    "glue/qnli": [{"question": "Q?", "sentence": "S.", "idx": i, "label": i} for i in range(2)],
    "glue/rte": S12,
    "glue/wnli": S12,
    "qa/webquestions": [
        {
            "url": "http://www.freebase.com/view/en/justin_bieber",
            "question": "what is the name of justin bieber brother?",
            "answers": ["Jazmyn Bieber", "Jaxon Bieber"],
        },
    ],
    "qa/nq_open": [{"question": "who wrote hamlet", "answer": ["Shakespeare", "W. Shakespeare"]}],
    "qa/triviaqa": [
        {
            "question": "Who wrote Hamlet?",
            "question_id": "tc_1",
            "question_source": "x",
            "entity_pages": {},
            "search_results": {},
            "answer": {
                "aliases": ["Shakespeare", "The Bard"],
                "normalized_aliases": [],
                "matched_wiki_entity_name": "",
                "normalized_matched_wiki_entity_name": "",
                "normalized_value": "william shakespeare",
                "type": "WikipediaEntity",
                "value": "William Shakespeare",
            },
        },
    ],
    "qa/tydiqa": [
        {
            "id": "english-1",
            "title": "Hamlet",
            "context": "Hamlet is by Shakespeare.",
            "question": "Who wrote Hamlet?",
            "answers": {"text": ["Shakespeare"], "answer_start": [13]},
        },
    ],
}


def _hub_examples(name):
    task = TASKS[name]
    return task, [ex for i, row in enumerate(HUB_ROWS[name]) for ex in task.hub.convert(row, i)]


def test_every_task_has_hub_rows_here():
    assert set(HUB_ROWS) == set(TASKS)


@pytest.mark.parametrize("name", list(TASKS))
def test_text2text_round_trip_scores_100(name):
    pytest.importorskip("sklearn")  # samlm.metrics needs scikit-learn and its scipy
    task, examples = _hub_examples(name)
    pairs = [task.text2text(ex) for ex in examples]
    assert all(source and target for source, target in pairs)
    scores = task.compute_metrics([target for _, target in pairs], examples)
    assert task.main_metric in scores
    assert all(v == pytest.approx(100.0) for v in scores.values()), scores


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if "encoder" in t.modelling])
def test_encoder_ids_score_100(name):
    pytest.importorskip("sklearn")  # samlm.metrics needs scikit-learn and its scipy
    task, examples = _hub_examples(name)
    for ex in examples:
        pair = task.encoder_text(ex)
        pairs = pair if task.kind == "multiple_choice" else [pair]
        assert all(isinstance(a, str) and (b is None or isinstance(b, str)) for a, b in pairs)
    predictions = np.array([ex.label for ex in examples])  # numpy scalars, as a model gives
    scores = task.compute_metrics(predictions, examples)
    assert all(v == pytest.approx(100.0) for v in scores.values()), scores


def test_hub_converters():
    _, (ex,) = _hub_examples("qa/triviaqa")
    assert (ex.idx, ex.answers) == ("tc_1", ("William Shakespeare", "Shakespeare", "The Bard"))
    task, (ex,) = _hub_examples("superglue/record")
    assert (ex.answers, ex.choices, ex.group) == (("Alice",), ("Alice", "Bob"), "0-0")
    task, examples = _hub_examples("superglue/multirc")
    assert [ex.group for ex in examples] == ["0-0", "0-0", "0-1"]
    task, (ex, _) = _hub_examples("superglue/wsc")
    assert task.source(ex) == "wsc text: * Mark * lied. # He # was bad."
    task, (ex, _) = _hub_examples("superglue/copa")
    assert ex.choices == ("I slipped.", "I flew.")
    assert get_task("glue/mnli").hub.splits["validation"] == "validation_matched"


def test_invalid_text2text_predictions_count_as_wrong():
    pytest.importorskip("sklearn")  # samlm.metrics needs scikit-learn and its scipy
    task, examples = _hub_examples("glue/mrpc")  # labels 0, 1
    assert task.to_label("equivalent ", 0) == 1
    assert task.to_label("Equivalent", 0) == 1 and task.to_label("Equivalent", 1) == 0
    scores = task.compute_metrics(["???", "???"], examples)
    assert scores == {"f1": 0.0, "accuracy": 0.0}
    cb, examples = _hub_examples("superglue/cb")
    assert cb.compute_metrics(["maybe"] * 3, examples)["accuracy"] == 0.0
    stsb = get_task("stsb")
    assert [stsb.to_label(s) for s in ("3.8", " 1 ", "nan", "five")] == [3.8, 1.0, -1.0, -1.0]


def test_compute_metrics_checks_lengths():
    task, examples = _hub_examples("glue/sst2")
    with pytest.raises(ValueError, match="1 predictions for 2 examples"):
        task.compute_metrics([0], examples)


def test_text2text_only_tasks_refuse_encoder():
    for name in ("superglue/record", "qa/nq_open", "qa/triviaqa", "qa/tydiqa", "qa/webquestions"):
        task, examples = _hub_examples(name)
        assert task.modelling == ("text2text", "causal")
        with pytest.raises(ValueError, match="supports only text2text"):
            task.encoder_text(examples[0])


def test_task_table():
    for task in TASKS.values():
        assert task.name.split("/")[0] == task.benchmark
        assert set(task.files) >= {"train", "validation"}
        if task.kind in ("classification", "multiple_choice"):
            assert task.modelling == ("encoder", "text2text", "causal") and task.label_names
    assert TASKS["superglue/copa"].kind == "multiple_choice"
    assert TASKS["superglue/multirc"].metric_set == "multirc"
    assert TASKS["glue/cola"].main_metric == "matthews"


@pytest.mark.parametrize(
    "query, name",
    [
        ("superglue/rte", "superglue/rte"),
        ("SuperGLUE/RTE", "superglue/rte"),
        ("super_glue/rte", "superglue/rte"),
        ("GLUE/SST-2", "glue/sst2"),
        ("sst2", "glue/sst2"),
        ("STS-B", "glue/stsb"),
        ("BoolQ", "superglue/boolq"),
        ("ReCoRD", "superglue/record"),
        ("nq", "qa/nq_open"),
        ("web_questions", "qa/webquestions"),
        ("trivia_qa", "qa/triviaqa"),
        ("TyDiQA-GoldP", "qa/tydiqa"),
    ],
)
def test_get_task_names(query, name):
    assert get_task(query).name == name


def test_ambiguous_and_unknown_names():
    with pytest.raises(ValueError, match=r"'rte' is ambiguous: .*superglue/rte or glue/rte"):
        get_task("rte")
    with pytest.raises(ValueError) as info:
        get_task("squad")
    assert "unknown task 'squad'" in str(info.value)
    assert all(name in str(info.value) for name in TASKS)


def test_load_split_from_the_hub(monkeypatch, tmp_path):
    calls = []

    def fake_rows(source, split):
        calls.append((source.path, source.name, source.splits[split]))
        rows = HUB_ROWS["qa/triviaqa"]
        return rows + rows  # the same question twice: deduplicated by question_id

    monkeypatch.setattr("samlm.tasks.loading.load_rows", fake_rows)
    examples = load_split("triviaqa", "validation", tmp_path)
    assert calls == [("mandarjoshi/trivia_qa", "rc.nocontext", "validation")]
    assert [ex.idx for ex in examples] == ["tc_1"]
    monkeypatch.setattr("samlm.tasks.loading.load_rows", lambda s, sp: [{"question": "q"}])
    with pytest.raises(ValueError, match=r"row 0: unexpected row format \(KeyError"):
        load_split("nq", "train", None)


def test_webquestions_hub_split_is_documented(tmp_path):
    task = get_task("webquestions")
    assert task.hub.splits["validation"] == "train[-755:]"
    assert "last 755" in task.data_note(tmp_path)


def test_describe_tasks(tmp_path):
    write_jsonl(tmp_path / "superglue/RTE/train.jsonl", [{}])
    write_jsonl(tmp_path / "superglue/RTE/val.jsonl", [{}])
    write_jsonl(tmp_path / "superglue/CB/val.jsonl", [{}])
    rows = {row["name"]: row for row in describe_tasks(tmp_path)}
    assert list(rows) == list(TASKS)
    rte, cb, nq = rows["superglue/rte"], rows["superglue/cb"], rows["qa/nq_open"]
    assert (rte["local"], rte["local_splits"]) == (True, ["train", "validation"])
    assert (cb["local"], cb["local_splits"]) == (False, ["validation"])
    assert nq["local"] is False and nq["modelling"] == ["text2text", "causal"]
    assert rte["metrics"] == "accuracy" and rte["hub"] == "aps/super_glue (rte)"
    assert rte["folder"] == str(tmp_path / "superglue/RTE")


def test_describe_tasks_on_the_real_folder(real_data):
    rows = {row["name"]: row for row in describe_tasks(real_data("superglue"))}
    assert rows["superglue/boolq"]["local"] is True
    assert "2,270" in rows["superglue/boolq"]["note"]
    assert rows["qa/nq_open"]["local_splits"] == ["validation"]
