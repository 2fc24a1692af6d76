"""Record readers for the official file formats; each yields ``(Where, record)`` pairs.

Every reader accepts a UTF-8 byte-order mark at the very start of a file (the official
MRPC tsv files begin with one) and drops it; a BOM anywhere else is left in the text,
where it fails as the malformed data it is.

* :func:`iter_jsonl`: one JSON object per line (SuperGLUE, NQ-open).
* :func:`iter_tsv`: GLUE tsv, tab-separated with no quote handling (``csv.QUOTE_NONE``),
  with a header row or with the given column names.
* :func:`iter_json_list`: a JSON list of objects (WebQuestions).
* :func:`iter_triviaqa`: the TriviaQA release, ``{"Data": [question, ...]}``.
* :func:`iter_squad`: SQuAD-format json (TyDiQA-GoldP), one record per question.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, Where

Record = tuple[Where, dict[str, Any]]


BOM = "\ufeff"


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines, decoded as UTF-8, with their 1-based numbers; a byte-order mark
    at the start of the file is dropped."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}, line {number}: not valid UTF-8 ({err.reason})") from None
            if number == 1 and line.startswith(BOM):
                line = line[len(BOM) :]
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def iter_jsonl(path: Path) -> Iterator[Record]:
    for index, (number, line) in enumerate(_lines(path)):
        where = Where(path, index=index, line=number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise where.error(f"invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise where.error(f"expected a JSON object, got {type(record).__name__}")
        yield where, record


def iter_tsv(path: Path, columns: tuple[str, ...] | None = None) -> Iterator[Record]:
    """Rows as dicts keyed by the header (first line) or by ``columns`` when given."""
    header = columns
    index = 0
    for number, line in _lines(path):
        row = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if header is None:
            header = tuple(row)
            continue
        where = Where(path, index=index, line=number)
        if len(row) != len(header):
            raise where.error(
                f"expected {len(header)} tab-separated columns ({', '.join(header)}), "
                f"found {len(row)}"
            )
        index += 1
        yield where, dict(zip(header, row, strict=True))


def _load_json(path: Path) -> Any:
    """The parsed file; "utf-8-sig" drops a byte-order mark at its start (only there)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}, line {err.lineno}: invalid JSON ({err.msg})") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err.reason})") from None


def _objects(path: Path, items: Any, name: str) -> Iterator[Record]:
    if not isinstance(items, list):
        raise DataError(f"{path}: expected {name or 'the top level'} to be a JSON list")
    for index, record in enumerate(items):
        where = Where(path, index=index, pointer=f"{name}[{index}]")
        if not isinstance(record, dict):
            raise where.error(f"expected a JSON object, got {type(record).__name__}")
        yield where, record


def iter_json_list(path: Path) -> Iterator[Record]:
    yield from _objects(path, _load_json(path), "")


def iter_triviaqa(path: Path) -> Iterator[Record]:
    data = _load_json(path)
    if not isinstance(data, dict) or "Data" not in data:
        raise DataError(f'{path}: expected a JSON object with a "Data" list (TriviaQA format)')
    yield from _objects(path, data["Data"], "Data")


def iter_squad(path: Path) -> Iterator[Record]:
    """One record per question: ``{"id", "question", "answers", "context", "title"}``."""
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f'{path}: expected a JSON object with a "data" list (SQuAD format)')
    index = 0
    for a, article in enumerate(data["data"]):
        top = Where(path, pointer=f"data[{a}]")
        for p, paragraph in enumerate(top.get(article, "paragraphs", list)):
            here = Where(path, pointer=f"data[{a}].paragraphs[{p}]")
            context = here.text(paragraph, "context")
            for q, qa in enumerate(here.get(paragraph, "qas", list)):
                where = Where(path, index=index, pointer=f"data[{a}].paragraphs[{p}].qas[{q}]")
                if not isinstance(qa, dict):
                    raise where.error(f"expected a JSON object, got {type(qa).__name__}")
                index += 1
                yield where, {**qa, "context": context, "title": article.get("title", "")}
