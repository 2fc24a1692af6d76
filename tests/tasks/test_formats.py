"""Tasks absent from the shared folder, read from small files in their official formats."""

from __future__ import annotations

from samlm.tasks import get_task, load_split

from .conftest import write_json, write_jsonl, write_tsv

MULTIRC = {
    "idx": 4,
    "version": 1.1,
    "passage": {
        "text": "<b>Sent 1: </b>Sam ate an apple.<br><b>Sent 2: </b>Then he slept.<br>",
        "questions": [
            {
                "question": "What did Sam eat?",
                "answers": [
                    {"text": "An apple", "idx": 10, "label": 1},
                    {"text": "A pear", "idx": 11, "label": 0},
                ],
                "idx": 7,
            },
            {"question": "Did Sam sleep?", "answers": [{"text": "Yes", "idx": 12, "label": 1}]},
        ],
    },
}


def test_multirc(tmp_path):
    write_jsonl(tmp_path / "superglue/MultiRC/train.jsonl", [MULTIRC])
    task = get_task("multirc")
    ex = load_split(task, "train", tmp_path, hub=False)
    assert [e.label for e in ex] == [1, 0, 1]
    assert [e.group for e in ex] == ["4-7", "4-7", "4-1"]  # missing idx: position
    assert [e.idx for e in ex] == ["4-7-10", "4-7-11", "4-1-12"]
    assert ex[0].fields["answer"] == "An apple"
    assert task.text2text(ex[1]) == (
        "multirc question: What did Sam eat? answer: A pear paragraph: "
        "Sent 1: Sam ate an apple. Sent 2: Then he slept. ",
        "False",
    )
    assert task.encoder_text(ex[0]) == (
        "Sent 1: Sam ate an apple. Sent 2: Then he slept. ",
        "What did Sam eat? An apple",
    )


def _record_passage() -> tuple[str, list[dict]]:
    text = "Alice met Bob in Paris.\n@highlight\nBob likes Paris\n@highlight\nAlice left"
    spans = [(w, text.index(w)) for w in ("Alice", "Bob", "Paris")]
    spans.append(("Bob", text.index("Bob likes")))
    return text, [{"start": s, "end": s + len(w) - 1} for w, s in spans]


def test_record(tmp_path):
    text, entities = _record_passage()
    record = {
        "source": "Daily mail",
        "passage": {"text": text, "entities": entities},
        "qas": [
            {
                "query": "@placeholder met Bob.",
                "answers": [
                    {"start": 0, "end": 4, "text": "Alice"},
                    {"start": 0, "end": 4, "text": "Alice"},
                ],
                "idx": 3,
            }
        ],
        "idx": 2,
    }
    write_jsonl(tmp_path / "superglue/ReCoRD/val.jsonl", [record])
    task = get_task("ReCoRD")
    (ex,) = load_split(task, "validation", tmp_path, hub=False)
    assert ex.answers == ("Alice",)
    assert ex.choices == ("Alice", "Bob", "Paris")
    assert (ex.group, ex.idx, ex.label) == ("2-3", "2-3", None)
    assert task.text2text(ex) == (
        "record query: @placeholder met Bob. entities: Alice, Bob, Paris passage: "
        "Alice met Bob in Paris. Bob likes Paris. Alice left",
        "Alice",
    )
    assert task.modelling == ("text2text", "causal")


def test_record_trains_on_every_answer(tmp_path):
    text, entities = _record_passage()
    golds = [{"start": 0, "end": 4, "text": "Alice"}, {"start": 10, "end": 12, "text": "Bob"}]
    record = {
        "passage": {"text": text, "entities": entities},
        "qas": [{"query": "@placeholder was there.", "answers": golds, "idx": 0}],
        "idx": 0,
    }
    write_jsonl(tmp_path / "superglue/ReCoRD/train.jsonl", [record])
    task = get_task("record")
    (ex,) = load_split(task, "train", tmp_path, hub=False)
    assert [t for _, t in task.training_pairs(ex)] == ["Alice", "Bob"]


def test_wic(tmp_path):
    row = {
        "word": "carry",
        "sentence1": "You must carry your camping gear .",
        "sentence2": "Sound carries well over water .",
        "idx": 0,
        "label": False,
        "start1": 9,
        "start2": 6,
        "end1": 14,
        "end2": 13,
        "version": 1.1,
    }
    write_jsonl(tmp_path / "superglue/WiC/train.jsonl", [row, {**row, "idx": 1, "label": True}])
    task = get_task("wic")
    ex = load_split(task, "train", tmp_path, hub=False)
    assert [e.label for e in ex] == [0, 1]
    assert task.text2text(ex[0]) == (
        "wic sentence1: You must carry your camping gear . "
        "sentence2: Sound carries well over water . word: carry",
        "False",
    )
    assert task.encoder_text(ex[0]) == (
        "carry: You must carry your camping gear .",
        "Sound carries well over water .",
    )


def test_wsc(tmp_path):
    text = (
        "Mark told Pete many lies about himself, which Pete included in his book. "
        "He should have been more truthful."
    )
    target = {"span2_index": 13, "span1_index": 0, "span1_text": "Mark", "span2_text": "He"}
    write_jsonl(
        tmp_path / "superglue/WSC/val.jsonl",
        [{"text": text, "target": target, "idx": 0, "label": False}],
    )
    task = get_task("wsc")
    (ex,) = load_split(task, "validation", tmp_path, hub=False)
    marked = (
        "* Mark * told Pete many lies about himself, which Pete included in his book. "
        "# He # should have been more truthful."
    )
    assert task.text2text(ex) == (f"wsc text: {marked}", "False")
    assert task.encoder_text(ex) == (marked, "Does He refer to Mark?")


def test_glue_mrpc_keeps_quotes(tmp_path):
    s1 = 'Amrozi accused his brother , whom he called " the witness " , of distorting .'
    s2 = 'Referring to him as only " the witness " , Amrozi accused his brother .'
    write_tsv(
        tmp_path / "glue/MRPC/train.tsv",
        [
            ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
            ["1", "702876", "702977", s1, s2],
            ["0", "2108705", "2108831", 'Yucaipa owned " Dominick', "Yucaipa bought it ."],
        ],
    )
    task = get_task("mrpc")
    ex = load_split(task, "train", tmp_path, hub=False)
    assert ex[0].fields == {"sentence1": s1, "sentence2": s2}
    assert [e.label for e in ex] == [1, 0]
    assert ex[1].fields["sentence1"] == 'Yucaipa owned " Dominick'
    assert task.text2text(ex[0]) == (f"mrpc sentence1: {s1} sentence2: {s2}", "equivalent")


def test_glue_stsb(tmp_path):
    header = ["index", "genre", "filename", "year", "old_index", "source1", "source2"]
    header += ["sentence1", "sentence2", "score"]
    base = ["main-captions", "MSRvid", "2012test", "0001", "none", "none"]
    write_tsv(
        tmp_path / "glue/STS-B/dev.tsv",
        [
            header,
            ["0", *base, "A man is playing a flute.", "A man plays the flute.", "3.800"],
            ["1", *base, "A plane is taking off.", "An air plane is taking off.", "5.000"],
            ["2", *base, "A cat.", "A dog.", "0.5"],
        ],
    )
    task = get_task("sts-b")
    ex = load_split(task, "validation", tmp_path, hub=False)
    assert [e.label for e in ex] == [3.8, 5.0, 0.5]
    assert [e.idx for e in ex] == [0, 1, 2]
    assert task.kind == "regression"
    assert [task.target(e) for e in ex] == ["3.8", "5.0", "0.4"]  # T5: round to 0.2
    assert task.source(ex[0]) == (
        "stsb sentence1: A man is playing a flute. sentence2: A man plays the flute."
    )


def test_glue_qqp(tmp_path):
    write_tsv(
        tmp_path / "glue/QQP/train.tsv",
        [
            ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
            ["133273", "213221", "213222", "How is life as a math student?", "Why?", "0"],
            ["402555", "536040", "536041", "How do I control my horny emotions?", "How?", "1"],
        ],
    )
    task = get_task("qqp")
    ex = load_split(task, "train", tmp_path, hub=False)
    assert [(e.idx, e.label) for e in ex] == [(133273, 0), (402555, 1)]
    assert task.text2text(ex[1]) == (
        "qqp question1: How do I control my horny emotions? question2: How?",
        "duplicate",
    )


def _mnli_rows(labels_per_row: int) -> list[list[str]]:
    header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse"]
    header += ["sentence2_binary_parse", "sentence1_parse", "sentence2_parse"]
    header += ["sentence1", "sentence2"]
    header += [f"label{i}" for i in range(1, labels_per_row + 1)] + ["gold_label"]
    rows = [header]
    for i, gold in enumerate(("neutral", "entailment", "contradiction")):
        parses = ["( ( a ) )", "( ( b ) )", "(ROOT (S a))", "(ROOT (S b))"]
        texts = [f"Premise {i}.", f"Hypothesis {i}."]
        rows.append(
            [str(i), "31193", f"{i}n", "government", *parses, *texts]
            + [gold] * labels_per_row
            + [gold]
        )
    return rows


def test_glue_mnli_matched_and_mismatched(tmp_path):
    folder = tmp_path / "glue/MNLI"
    write_tsv(folder / "train.tsv", _mnli_rows(1))
    write_tsv(folder / "dev_matched.tsv", _mnli_rows(5))
    write_tsv(folder / "dev_mismatched.tsv", _mnli_rows(5)[:2])
    task = get_task("mnli")
    train = load_split(task, "train", tmp_path, hub=False)
    assert [e.label for e in train] == [1, 0, 2]  # neutral, entailment, contradiction
    assert train[0].fields == {"premise": "Premise 0.", "hypothesis": "Hypothesis 0."}
    assert len(load_split(task, "validation", tmp_path, hub=False)) == 3
    assert len(load_split(task, "validation_mismatched", tmp_path, hub=False)) == 1
    assert task.text2text(train[0]) == (
        "mnli hypothesis: Hypothesis 0. premise: Premise 0.",
        "neutral",
    )


def test_glue_qnli_rte_wnli(tmp_path):
    q = "When did the third Digimon series begin?"
    s = "Unlike the two seasons before it, Digimon Tamers takes a darker approach."
    write_tsv(
        tmp_path / "glue/QNLI/dev.tsv",
        [["index", "question", "sentence", "label"], ["0", q, s, "not_entailment"]],
    )
    write_tsv(
        tmp_path / "glue/RTE/train.tsv",
        [
            ["index", "sentence1", "sentence2", "label"],
            ["0", "No Weapons Found in Iraq Yet.", "Weapons Found in Iraq.", "not_entailment"],
            ["1", "Pope Benedict XVI is installed.", "Benedict is pope.", "entailment"],
        ],
    )
    write_tsv(
        tmp_path / "glue/WNLI/train.tsv",
        [
            ["index", "sentence1", "sentence2", "label"],
            ["0", "I stuck a pin through a carrot. It had a hole.", "The carrot had a hole.", "1"],
        ],
    )
    qnli, rte, wnli = (get_task(n) for n in ("qnli", "glue/rte", "wnli"))
    (ex,) = load_split(qnli, "validation", tmp_path, hub=False)
    assert (ex.fields, ex.label) == ({"question": q, "sentence": s}, 1)
    assert qnli.text2text(ex) == (f"qnli question: {q} sentence: {s}", "not_entailment")
    rte_train = load_split(rte, "train", tmp_path, hub=False)
    assert [e.label for e in rte_train] == [1, 0]
    assert rte.text2text(rte_train[1]) == (
        "rte sentence1: Pope Benedict XVI is installed. sentence2: Benedict is pope.",
        "entailment",
    )
    (w,) = load_split(wnli, "train", tmp_path, hub=False)
    assert (w.label, wnli.target(w)) == (1, "entailment")
    assert wnli.encoder_text(w) == (w.fields["sentence1"], "The carrot had a hole.")


def _trivia(qid: str, question: str, value: str, aliases: list[str]) -> dict:
    answer = {
        "Aliases": aliases,
        "MatchedWikiEntityName": value,
        "NormalizedAliases": [a.lower() for a in aliases],
        "NormalizedMatchedWikiEntityName": value.lower(),
        "NormalizedValue": value.lower(),
        "Type": "WikipediaEntity",
        "Value": value,
    }
    return {
        "Answer": answer,
        "EntityPages": [],
        "Question": question,
        "QuestionId": qid,
        "QuestionSource": "http://www.triviacountry.com/",
        "SearchResults": [],
    }


def test_triviaqa_dedupes_web_and_wikipedia(tmp_path):
    q33 = _trivia(
        "tc_33",
        "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
        "Sunset Boulevard",
        ["Sunset Blvd", "Sunset Boulevard", "West Sunset Boulevard"],
    )
    q40 = _trivia("tc_40", "Who was the man behind The Chipmunks?", "David Seville", ["Seville"])
    meta = {"Domain": "Web", "Split": "train", "Version": 1.0, "VerifiedEval": False}
    write_json(tmp_path / "triviaqa/qa/web-train.json", {"Data": [q33, q40], **meta})
    write_json(tmp_path / "triviaqa/qa/wikipedia-train.json", {"Data": [q33], **meta})
    task = get_task("trivia_qa")
    ex = load_split(task, "train", tmp_path, hub=False)
    assert [e.idx for e in ex] == ["tc_33", "tc_40"]
    assert ex[0].answers == ("Sunset Boulevard", "Sunset Blvd", "West Sunset Boulevard")
    assert task.text2text(ex[0]) == (
        "trivia_qa question: Which Lloyd Webber musical premiered in the US on 10th December 1993?",
        "Sunset Boulevard",
    )


def test_tydiqa_goldp(tmp_path):
    context = "Kaapelitehdas on entinen kaapelitehdas Helsingissä."
    data = {
        "data": [
            {
                "title": "Kaapelitehdas",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": "finnish-1438027544-0",
                                "question": "Missä Kaapelitehdas on?",
                                "answers": [
                                    {"text": "Helsingissä", "answer_start": 39},
                                    {"text": "Helsingissä", "answer_start": 39},
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
        "version": "TyDiQA-GoldP-1.1-for-SQuAD-1.1",
    }
    write_json(tmp_path / "tydiqa/tydiqa-goldp-v1.1-dev.json", data)
    task = get_task("tydiqa")
    (ex,) = load_split(task, "validation", tmp_path, hub=False)
    assert (ex.idx, ex.answers) == ("finnish-1438027544-0", ("Helsingissä",))
    assert task.text2text(ex) == (
        f"question: Missä Kaapelitehdas on? context: {context}",
        "Helsingissä",
    )


def test_nq_open_train_file(tmp_path):
    write_jsonl(
        tmp_path / "nq_open/train.jsonl",
        [{"question": "where is the eiffel tower", "answer": ["Paris", "Paris, France"]}],
    )
    (ex,) = load_split("nq", "train", tmp_path, hub=False)
    assert ex.answers == ("Paris", "Paris, France") and ex.idx == 0
