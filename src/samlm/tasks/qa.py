"""Closed-book QA (WebQuestions, NQ-open, TriviaQA) and TyDiQA-GoldP, text-to-text only.

Formats follow T5 closed-book QA (Roberts et al. 2020): ``"nq question: ..."``,
``"trivia_qa question: ..."``, ``"wq question: ..."`` with the first gold answer as the
target; TyDiQA-GoldP is T5's SQuAD format ``"question: ... context: ..."``. Scored with the
SQuAD exact match / token F1 against all gold answers.

Splits:

* WebQuestions: ``train`` = trainmodel.json (2,834), ``validation`` = val.json (755, for
  model selection), ``devtest`` = devtest.json (189), ``test`` = test.json (the official
  test set, 2,032); ``train_full`` = the three official-train files (3,778). From the Hub,
  whose train split carries no ids: ``validation`` is its last 755 rows, ``train`` the rest.
* TriviaQA: the ``rc`` release, web + wikipedia question files, questions deduplicated by
  ``QuestionId`` (the same question appears in both domains); the Hub's ``rc.nocontext``.
* NQ-open: ``train.jsonl`` / ``dev.jsonl`` (``question``, ``answer`` list).
"""

from __future__ import annotations

from typing import Any

from .base import Example, HubSource, Task
from .errors import Where
from .readers import iter_json_list, iter_jsonl, iter_squad, iter_triviaqa


def _answers(record: dict[str, Any], key: str, where: Where) -> tuple[str, ...]:
    """A non-empty list of strings, deduplicated in order."""
    values = where.get(record, key, list)
    if not values:
        raise where.field_error(key, "is empty (no gold answer)")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise where.field_error(f"{key}[{i}]", f"must be a string, got {value!r}")
    return tuple(dict.fromkeys(values))


def _qa(question: str, answers: Any, idx: int | str) -> list[Example]:
    return [Example({"question": question}, None, tuple(dict.fromkeys(answers)), idx=idx)]


def parse_webquestions(record: dict[str, Any], where: Where) -> list[Example]:
    answers = _answers(record, "answers", where)
    return _qa(where.text(record, "qText"), answers, where.text(record, "qId"))


def parse_nq_open(record: dict[str, Any], where: Where) -> list[Example]:
    return _qa(where.text(record, "question"), _answers(record, "answer", where), where.index)


def parse_triviaqa(record: dict[str, Any], where: Where) -> list[Example]:
    answer = where.get(record, "Answer", dict)
    at_a = where.at("Answer")
    answers = (at_a.text(answer, "Value"), *_answers(answer, "Aliases", at_a))
    return _qa(where.text(record, "Question"), answers, where.text(record, "QuestionId"))


def parse_tydiqa(record: dict[str, Any], where: Where) -> list[Example]:
    golds = where.get(record, "answers", list)
    if not golds:
        raise where.field_error("answers", "is empty (no gold answer)")
    answers = [where.at(f"answers[{i}]").text(g, "text") for i, g in enumerate(golds)]
    fields = {"question": where.text(record, "question"), "context": where.text(record, "context")}
    return [Example(fields, None, tuple(dict.fromkeys(answers)), idx=where.text(record, "id"))]


def hub_webquestions(row: dict[str, Any], i: int) -> list[Example]:
    return _qa(row["question"], row["answers"], i)


def hub_nq_open(row: dict[str, Any], i: int) -> list[Example]:
    return _qa(row["question"], row["answer"], i)


def hub_triviaqa(row: dict[str, Any], i: int) -> list[Example]:
    answer = row["answer"]
    return _qa(row["question"], [answer["value"], *answer["aliases"]], row["question_id"])


def hub_tydiqa(row: dict[str, Any], i: int) -> list[Example]:
    fields = {"question": row["question"], "context": row["context"]}
    return [Example(fields, None, tuple(dict.fromkeys(row["answers"]["text"])), idx=row["id"])]


def _task(name: str, folder: str, **kw: Any) -> Task:
    kw.setdefault("main_metric", "exact_match")
    kw.setdefault("keys", ("question",))
    return Task(
        name=f"qa/{name}",
        benchmark="qa",
        folder=folder,
        kind="qa",
        metric_set="squad",
        modelling=("text2text",),
        **kw,
    )


_WQ_TRAIN = ("trainmodel.json", "val.json", "devtest.json")

QA_TASKS = (
    _task(
        "webquestions",
        "webquestions",
        files={
            "train": ("trainmodel.json",),
            "validation": ("val.json",),
            "devtest": ("devtest.json",),
            "test": ("test.json",),
            "train_full": _WQ_TRAIN,
        },
        reader=iter_json_list,
        parse=parse_webquestions,
        prefix="wq",
        hub=HubSource(
            "Stanford/web_questions",
            None,
            {
                "train": "train[:-755]",
                "validation": "train[-755:]",
                "train_full": "train",
                "test": "test",
            },
            hub_webquestions,
        ),
        hub_note=(
            "WebQuestions from the Hugging Face Hub: its train split has no question ids, so "
            "validation is its last 755 questions and train the other 3,023 (the local "
            "release splits by id: trainmodel.json / val.json); devtest is local-only."
        ),
    ),
    _task(
        "nq_open",
        "nq_open",
        files={"train": ("train.jsonl",), "validation": ("dev.jsonl",)},
        reader=iter_jsonl,
        parse=parse_nq_open,
        prefix="nq",
        hub=HubSource(
            "google-research-datasets/nq_open",
            None,
            {"train": "train", "validation": "validation"},
            hub_nq_open,
        ),
    ),
    _task(
        "triviaqa",
        "triviaqa",
        files={
            "train": ("qa/web-train.json", "qa/wikipedia-train.json"),
            "validation": ("qa/web-dev.json", "qa/wikipedia-dev.json"),
        },
        reader=iter_triviaqa,
        parse=parse_triviaqa,
        prefix="trivia_qa",
        unique_idx=True,
        hub=HubSource(
            "mandarjoshi/trivia_qa",
            "rc.nocontext",
            {"train": "train", "validation": "validation"},
            hub_triviaqa,
        ),
    ),
    _task(
        "tydiqa",
        "tydiqa",
        files={
            "train": ("tydiqa-goldp-v1.1-train.json",),
            "validation": ("tydiqa-goldp-v1.1-dev.json",),
        },
        reader=iter_squad,
        parse=parse_tydiqa,
        keys=("question", "context"),
        t5_keys=("question", "context"),
        main_metric="f1",
        hub=HubSource(
            "google-research-datasets/tydiqa",
            "secondary_task",
            {"train": "train", "validation": "validation"},
            hub_tydiqa,
        ),
    ),
)
