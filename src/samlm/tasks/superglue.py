"""SuperGLUE (Wang et al. 2019): the official jsonl release and ``aps/super_glue`` on the Hub.

Local layout: ``superglue/<Task>/{train,val}.jsonl``. Label ids follow the Hub's
ClassLabel order; text-to-text formats are T5's (``"rte hypothesis: ... premise: ..."``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .base import Example, HubSource, LocalSplit, Pair, Task
from .errors import Where
from .hub import flat_hub, hub_label
from .readers import iter_jsonl

HUB = "aps/super_glue"
FILES = {"train": ("train.jsonl",), "validation": ("val.jsonl",)}
BOOL = (False, True)
BOOL_NAMES = ("False", "True")

Parse = Callable[[dict[str, Any], Where], list[Example]]
Convert = Callable[[dict[str, Any], int], list[Example]]


def _hub(config: str, convert: Convert) -> HubSource:
    return HubSource(HUB, config, {"train": "train", "validation": "validation"}, convert)


# ------------------------------------------------------------------ flat tasks


def flat_parser(keys: tuple[str, ...], raw_labels: tuple[Any, ...], choices: bool = False) -> Parse:
    """Parser of a flat record with text ``keys``, a ``label`` among ``raw_labels``, ``idx``."""

    def parse(record: dict[str, Any], where: Where) -> list[Example]:
        fields = {key: where.text(record, key) for key in keys}
        label = where.label(record, "label", raw_labels)
        picks = (fields["choice1"], fields["choice2"]) if choices else ()
        return [Example(fields, label, choices=picks, idx=where.idx(record))]

    return parse


# ------------------------------------------------------------------ COPA

_COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}
_parse_copa_flat = flat_parser(("premise", "choice1", "choice2", "question"), (0, 1), True)


def parse_copa(record: dict[str, Any], where: Where) -> list[Example]:
    if where.text(record, "question") not in _COPA_QUESTIONS:
        raise where.field_error("question", f"is {record['question']!r}, not 'cause' or 'effect'")
    return _parse_copa_flat(record, where)


def copa_pairs(example: Example) -> list[Pair]:
    """One (premise, question + alternative) pair per alternative."""
    question = _COPA_QUESTIONS[example.fields["question"]]
    return [(example.fields["premise"], f"{question} {choice}") for choice in example.choices]


# ------------------------------------------------------------------ MultiRC


def parse_multirc(record: dict[str, Any], where: Where) -> list[Example]:
    """One Example per answer option; ``group`` is ``"<passage idx>-<question idx>"``."""
    p_idx = where.idx(record)
    passage = where.get(record, "passage", dict)
    at_passage = where.at("passage")
    text = at_passage.text(passage, "text")
    examples = []
    for q, question in enumerate(at_passage.get(passage, "questions", list)):
        at_q = at_passage.at(f"questions[{q}]")
        q_text = at_q.text(question, "question")
        q_idx = at_q.idx(question, default=q)
        for a, answer in enumerate(at_q.get(question, "answers", list)):
            at_a = at_q.at(f"answers[{a}]")
            fields = {"paragraph": text, "question": q_text, "answer": at_a.text(answer, "text")}
            label = at_a.label(answer, "label", (0, 1))
            a_idx = at_a.idx(answer, default=a)
            group = f"{p_idx}-{q_idx}"
            examples.append(Example(fields, label, group=group, idx=f"{group}-{a_idx}"))
    return examples


def hub_multirc(row: dict[str, Any], i: int) -> list[Example]:
    ids = row["idx"]
    group = f"{ids['paragraph']}-{ids['question']}"
    fields = {key: row[key] for key in ("paragraph", "question", "answer")}
    return [Example(fields, hub_label(row), group=group, idx=f"{group}-{ids['answer']}")]


def _clean_html(text: str) -> str:
    """T5's MultiRC clean-up: ``<br>`` becomes a space, ``<b>`` and ``</b>`` go."""
    return re.sub(r"<(/)?b>", "", text.replace("<br>", " "))


def multirc_source(example: Example) -> str:
    f = example.fields
    return _clean_html(
        f"multirc question: {f['question']} answer: {f['answer']} paragraph: {f['paragraph']}"
    )


def multirc_pair(example: Example) -> Pair:
    f = example.fields
    return _clean_html(f["paragraph"]), f"{f['question']} {f['answer']}"


# ------------------------------------------------------------------ ReCoRD


def parse_record(record: dict[str, Any], where: Where) -> list[Example]:
    """One Example per query; ``answers`` the sorted unique gold entity strings and
    ``choices`` the sorted unique candidate entities (spans with inclusive ``end``)."""
    p_idx = where.idx(record)
    passage = where.get(record, "passage", dict)
    at_passage = where.at("passage")
    text = at_passage.text(passage, "text")
    entities = set()
    for e, span in enumerate(at_passage.get(passage, "entities", list)):
        at_e = at_passage.at(f"entities[{e}]")
        start, end = at_e.get(span, "start", int), at_e.get(span, "end", int)
        if not 0 <= start <= end < len(text):
            raise at_e.field_error("end", f"gives span [{start}, {end}] outside the passage")
        entities.add(text[start : end + 1])
    examples = []
    for q, qa in enumerate(where.get(record, "qas", list)):
        at_q = where.at(f"qas[{q}]")
        query = at_q.text(qa, "query")
        golds = at_q.get(qa, "answers", list)
        if not golds:
            raise at_q.field_error("answers", "is empty")
        answers = sorted({at_q.at(f"answers[{a}]").text(g, "text") for a, g in enumerate(golds)})
        group = f"{p_idx}-{at_q.idx(qa, default=q)}"
        fields = {"passage": text, "query": query}
        examples.append(
            Example(fields, None, tuple(answers), group, tuple(sorted(entities)), idx=group)
        )
    return examples


def hub_record(row: dict[str, Any], i: int) -> list[Example]:
    group = f"{row['idx']['passage']}-{row['idx']['query']}"
    fields = {"passage": row["passage"], "query": row["query"]}
    answers, entities = tuple(row["answers"]), tuple(row["entities"])
    return [Example(fields, None, answers, group, entities, idx=group)]


def record_source(example: Example) -> str:
    """T5: ``record query: ... entities: A, B passage: ...`` with @highlight lines joined."""
    passage = re.sub(r"(\.|\?|\!|\"|\')\n@highlight\n", r"\1 ", example.fields["passage"])
    passage = re.sub(r"\n@highlight\n", ". ", passage)
    entities = ", ".join(example.choices)
    return f"record query: {example.fields['query']} entities: {entities} passage: {passage}"


# ------------------------------------------------------------------ WiC, WSC


def wic_pair(example: Example) -> Pair:
    f = example.fields
    return f"{f['word']}: {f['sentence1']}", f["sentence2"]


def parse_wsc(record: dict[str, Any], where: Where) -> list[Example]:
    """Span indices are word positions, kept as strings in ``fields``."""
    text = where.text(record, "text")
    target = where.get(record, "target", dict)
    at_t = where.at("target")
    fields = {"text": text}
    for n in ("1", "2"):
        fields[f"span{n}_text"] = at_t.text(target, f"span{n}_text")
        index = at_t.get(target, f"span{n}_index", int)
        if index < 0:
            raise at_t.field_error(f"span{n}_index", f"is negative ({index})")
        fields[f"span{n}_index"] = str(index)
    label = where.label(record, "label", BOOL)
    return [Example(fields, label, idx=where.idx(record))]


def hub_wsc(row: dict[str, Any], i: int) -> list[Example]:
    keys = ("text", "span1_text", "span1_index", "span2_text", "span2_index")
    return [Example({k: str(row[k]) for k in keys}, hub_label(row), idx=row.get("idx", i))]


def _mark(text: str, span: str, index: int, mark: str) -> str:
    pattern = rf"^((?:\S+\s){{{index}}})({re.escape(span)})"
    return re.sub(pattern, lambda m: f"{m.group(1)}{mark} {m.group(2)} {mark}", text, count=1)


def wsc_marked(example: Example) -> str:
    """T5's marking: the noun as ``* Mark *`` and the pronoun as ``# he #``."""
    f = example.fields
    i1, i2 = int(f["span1_index"]), int(f["span2_index"])
    text = _mark(f["text"], f["span1_text"], i1, "*")
    return _mark(text, f["span2_text"], i2 + 2 * (i1 < i2), "#")


def wsc_pair(example: Example) -> Pair:
    f = example.fields
    return wsc_marked(example), f"Does {f['span2_text']} refer to {f['span1_text']}?"


# ------------------------------------------------------------------ the tasks

_BOOLQ_SPLIT = LocalSplit(
    missing="train.jsonl",
    source="val.jsonl",
    slices={"train": slice(0, 2270), "validation": slice(-1000, None)},
    min_records=3270,
    note=(
        "BoolQ: no train.jsonl, so the official validation set {path} is split "
        "deterministically: its first 2,270 records train and its last 1,000 validate "
        "(scores are on those 1,000, not the official 3,270-question dev set)."
    ),
)

_ENC_T5 = ("encoder", "text2text")


def _task(name: str, folder: str, config: str, convert: Convert, **kw: Any) -> Task:
    kw.setdefault("kind", "classification")
    kw.setdefault("metric_set", "accuracy")
    kw.setdefault("main_metric", "accuracy")
    kw.setdefault("modelling", _ENC_T5)
    kw.setdefault("prefix", name)
    return Task(
        name=f"superglue/{name}",
        benchmark="superglue",
        folder=f"superglue/{folder}",
        files=FILES,
        reader=iter_jsonl,
        hub=_hub(config, convert),
        **kw,
    )


_NLI = ("premise", "hypothesis")
_COPA = ("premise", "choice1", "choice2", "question")
_WIC = ("sentence1", "sentence2", "word")

SUPERGLUE_TASKS = (
    _task(
        "boolq",
        "BoolQ",
        "boolq",
        flat_hub(("question", "passage")),
        parse=flat_parser(("question", "passage"), BOOL),
        label_names=BOOL_NAMES,
        keys=("question", "passage"),
        local_split=_BOOLQ_SPLIT,
    ),
    _task(
        "cb",
        "CB",
        "cb",
        flat_hub(_NLI),
        parse=flat_parser(_NLI, ("entailment", "contradiction", "neutral")),
        label_names=("entailment", "contradiction", "neutral"),
        keys=_NLI,
        metric_set="accuracy_macro_f1",
        main_metric="f1_macro",
    ),
    _task(
        "copa",
        "COPA",
        "copa",
        flat_hub(_COPA, choices=True),
        parse=parse_copa,
        label_names=("choice1", "choice2"),
        keys=_COPA,
        kind="multiple_choice",
        encoder_fn=copa_pairs,
    ),
    _task(
        "multirc",
        "MultiRC",
        "multirc",
        hub_multirc,
        parse=parse_multirc,
        label_names=BOOL_NAMES,
        keys=("paragraph", "question", "answer"),
        metric_set="multirc",
        main_metric="f1a",
        source_fn=multirc_source,
        encoder_fn=multirc_pair,
    ),
    _task(
        "record",
        "ReCoRD",
        "record",
        hub_record,
        parse=parse_record,
        kind="qa",
        metric_set="squad",
        main_metric="f1",
        modelling=("text2text",),
        keys=("passage", "query"),
        source_fn=record_source,
        train_on_all_answers=True,
    ),
    _task(
        "rte",
        "RTE",
        "rte",
        flat_hub(_NLI),
        parse=flat_parser(_NLI, ("entailment", "not_entailment")),
        label_names=("entailment", "not_entailment"),
        keys=_NLI,
    ),
    _task(
        "wic",
        "WiC",
        "wic",
        flat_hub(_WIC),
        parse=flat_parser(_WIC, BOOL),
        label_names=BOOL_NAMES,
        keys=_WIC,
        t5_keys=_WIC,
        encoder_fn=wic_pair,
    ),
    _task(
        "wsc",
        "WSC",
        "wsc.fixed",
        hub_wsc,
        parse=parse_wsc,
        label_names=BOOL_NAMES,
        keys=("text",),
        source_fn=lambda ex: f"wsc text: {wsc_marked(ex)}",
        encoder_fn=wsc_pair,
    ),
)
