"""Readers on the real benchmark files in the shared data folder (skipped when absent)."""

from __future__ import annotations

import json

import pytest

from samlm.tasks import get_task, load_split


def test_superglue_rte(real_data):
    root = real_data("superglue/RTE")
    task = get_task("superglue/rte")
    train = load_split(task, "train", root, hub=False)
    val = load_split(task, "validation", root, hub=False)
    assert (len(train), len(val)) == (2490, 277)
    first = train[0]
    assert first.fields == {
        "premise": "No Weapons of Mass Destruction Found in Iraq Yet.",
        "hypothesis": "Weapons of Mass Destruction Found in Iraq.",
    }
    assert (first.label, first.idx) == (1, 0)  # not_entailment
    assert task.text2text(first) == (
        "rte hypothesis: Weapons of Mass Destruction Found in Iraq. "
        "premise: No Weapons of Mass Destruction Found in Iraq Yet.",
        "not_entailment",
    )
    assert task.encoder_text(first) == (first.fields["premise"], first.fields["hypothesis"])
    assert val[1].label == 0 and val[1].fields["hypothesis"].startswith("Bacteria is winning")


def test_superglue_cb(real_data):
    root = real_data("superglue/CB")
    task = get_task("cb")
    train, val = (load_split(task, s, root, hub=False) for s in ("train", "validation"))
    assert (len(train), len(val)) == (250, 56)
    assert val[0].fields["hypothesis"] == "Valence was helping"
    assert val[0].fields["premise"].startswith("Valence the void-brain, Valence the virtuous")
    assert [val[0].label, val[1].label] == [1, 2]  # contradiction, neutral
    assert train[0].label == 0 and train[0].fields["hypothesis"] == "the language was peeled down"


def test_superglue_copa(real_data):
    root = real_data("superglue/COPA")
    task = get_task("copa")
    train = load_split(task, "train", root, hub=False)
    val = load_split(task, "validation", root, hub=False)
    assert (len(train), len(val)) == (400, 100)
    first = train[0]
    assert first.fields == {
        "premise": "My body cast a shadow over the grass.",
        "choice1": "The sun was rising.",
        "choice2": "The grass was cut.",
        "question": "cause",
    }
    assert first.choices == ("The sun was rising.", "The grass was cut.")
    assert (first.label, val[0].label, val[2].label) == (0, 1, 0)
    assert task.text2text(val[0]) == (
        "copa choice1: The toilet filled with water. choice2: Water flowed from the spout. "
        "premise: The man turned on the faucet. question: effect",
        "choice2",
    )
    assert task.encoder_text(first) == [
        (
            "My body cast a shadow over the grass.",
            "What was the cause of this? The sun was rising.",
        ),
        ("My body cast a shadow over the grass.", "What was the cause of this? The grass was cut."),
    ]


def test_boolq_split_of_val(real_data):
    root = real_data("superglue/BoolQ")
    task = get_task("BoolQ")
    raw = [
        json.loads(line)
        for line in (root / "superglue/BoolQ/val.jsonl").read_text("utf-8").splitlines()
    ]
    assert len(raw) == 3270
    train = load_split(task, "train", root, hub=False)
    val = load_split(task, "validation", root, hub=False)
    assert (len(train), len(val)) == (2270, 1000)
    assert [ex.idx for ex in train] == [r["idx"] for r in raw[:2270]]
    assert [ex.idx for ex in val] == [r["idx"] for r in raw[-1000:]]
    assert not {ex.idx for ex in train} & {ex.idx for ex in val}
    assert train[0].fields["question"] == "does ethanol take more energy make that produces"
    assert train[0].label == 0  # false
    assert val[0].fields["question"] == raw[2270]["question"]
    assert val[0].label == int(raw[2270]["label"])
    note = task.data_note(root)
    assert "2,270" in note and "1,000" in note and "val.jsonl" in note
    assert get_task("superglue/rte").data_note(root) is None


def test_glue_sst2(real_data):
    root = real_data("glue/SST-2")
    task = get_task("glue/SST-2")
    train = load_split(task, "train", root, hub=False)
    val = load_split(task, "validation", root, hub=False)
    assert (len(train), len(val)) == (67349, 872)
    assert train[0].fields == {"sentence": "hide new secretions from the parental units "}
    assert (train[0].label, train[1].label, val[0].label) == (0, 0, 1)
    assert val[0].fields["sentence"] == "it 's a charming and often affecting journey . "
    assert task.text2text(val[0]) == (
        "sst2 sentence: it 's a charming and often affecting journey . ",
        "positive",
    )


def test_glue_cola_without_header(real_data):
    root = real_data("glue/CoLA")
    task = get_task("cola")
    train = load_split(task, "train", root, hub=False)
    val = load_split(task, "validation", root, hub=False)
    assert (len(train), len(val)) == (8551, 1043)
    expected = "Our friends won't buy this analysis, let alone the next one we propose."
    assert train[0].fields == {"sentence": expected}
    assert train[0].label == 1 and train[0].idx == 0
    assert val[0].fields["sentence"] == "Somebody just left - guess who."
    assert task.text2text(train[0]) == (f"cola sentence: {expected}", "acceptable")
    assert {ex.label for ex in train} == {0, 1}


def test_webquestions_splits(real_data):
    root = real_data("webquestions")
    task = get_task("webquestions")
    sizes = {s: len(load_split(task, s, root, hub=False)) for s in task.splits}
    assert sizes == {
        "train": 2834,
        "validation": 755,
        "devtest": 189,
        "test": 2032,
        "train_full": 3778,
    }
    train = load_split(task, "train", root, hub=False)
    assert (train[0].idx, train[0].answers) == ("wqr000001", ("Padmé Amidala",))
    assert task.text2text(train[0]) == (
        "wq question: what character did natalie portman play in star wars?",
        "Padmé Amidala",
    )
    test = load_split(task, "test", root, hub=False)
    assert test[0].idx == "wqs000000"
    assert test[0].answers == ("Jamaican Creole English Language", "Jamaican English")
    assert task.data_note(root) is None


def test_nq_open_dev(real_data):
    root = real_data("nq_open")
    task = get_task("nq_open")
    dev = load_split(task, "validation", root, hub=False)
    assert len(dev) == 3610
    assert dev[0].fields == {"question": "when was the last time anyone was on the moon"}
    assert dev[0].answers == ("14 December 1972 UTC", "December 1972")
    assert dev[1].answers == ("Bobby Scott", "Bob Russell")
    assert task.text2text(dev[0]) == (
        "nq question: when was the last time anyone was on the moon",
        "14 December 1972 UTC",
    )
    assert not task.has_local("train", root)


@pytest.mark.parametrize(
    "name, folder",
    [
        ("superglue/cb", "superglue/CB"),
        ("superglue/copa", "superglue/COPA"),
        ("qa/nq_open", "nq_open"),
    ],
)
def test_gold_predictions_score_100(real_data, name, folder):
    pytest.importorskip("sklearn")  # samlm.metrics needs scikit-learn and its scipy
    root = real_data(folder)
    task = get_task(name)
    val = load_split(task, "validation", root, hub=False)
    targets = [task.target(ex) for ex in val]
    scores = task.compute_metrics(targets, val)
    assert scores[task.main_metric] == pytest.approx(100.0)
    assert all(v == pytest.approx(100.0) for v in scores.values())
