"""A user's rows kept in the Arrow table (tasks/rows.py): Examples made on access, the
same whether read one by one from the mapping or through the file, subsets that stay
rows, and the splits the same as from a list of the same Examples."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from samlm.pipeline.data import run_splits
from samlm.tasks import Example, get_task, load_split, subsample
from samlm.tasks import rows as rows_module
from samlm.tasks.rows import Rows, Stored
from samlm.tasks.user_read import read_file

pytestmark = pytest.mark.usefixtures("fresh_user_tasks")


def _csv(path: Path, n: int, pair: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["premise", "hypothesis", "label"] if pair else ["text", "label"])
        for i in range(n):
            texts = [f"row {i}, quoted", f"other {i}"] if pair else [f"row {i}, quoted"]
            out.writerow([*texts, ("a", "b", "c")[i * 7 % 3 if i % 5 else 0]])
    return path


def _plain(examples) -> list[tuple]:
    return [(ex.fields, ex.label, ex.answers, ex.idx) for ex in examples]


@pytest.mark.parametrize("pair", [False, True])
def test_rows_read_through_the_file_or_one_by_one_are_the_same(tmp_path, monkeypatch, pair):
    path = _csv(tmp_path / "d.csv", 300, pair)
    train = load_split(get_task(f"{path}?test_size=60"), "train")
    assert isinstance(train, Rows) and train.source.stored.path is not None
    monkeypatch.setattr(rows_module, "STREAM_SHARE", 1.0)  # never through the file
    one_by_one = _plain(train)
    monkeypatch.setattr(rows_module, "STREAM_SHARE", 0.0)  # always, when in order
    assert _plain(train) == one_by_one
    assert _plain(train) == [_plain([train[i]])[0] for i in range(len(train))]
    assert len(one_by_one) == 240 and one_by_one[0][0]["premise" if pair else "text"]
    with open(path, newline="", encoding="utf-8") as f:
        file_rows = list(csv.DictReader(f))
    for fields, label, _, idx in one_by_one:  # each Example is its row of the file
        assert all(file_rows[idx][k] == v for k, v in fields.items())
        assert get_task(f"{path}?test_size=60").label_names[label] == (file_rows[idx]["label"])


def test_rows_as_a_sequence(tmp_path):
    train = load_split(get_task(f"{_csv(tmp_path / 'd.csv', 40)}?test_size=10"), "train")
    assert _plain(train[-1:]) == _plain([train[29]]) and _plain(train[2:5]) == _plain(
        [train[2], train[3], train[4]]
    )
    with pytest.raises(IndexError):
        train[30]
    both = train + [Example({"text": "x"}, 0)]  # noqa: RUF005 (Rows + list is a list)
    assert isinstance(both, list) and len(both) == 31
    picked = train.take([3, 1])
    assert isinstance(picked, Rows) and [ex.idx for ex in picked] == [
        train[3].idx,
        train[1].idx,
    ]


def test_subsets_of_rows_are_those_of_the_same_list(tmp_path):
    """Rows and a list of their Examples give the same subsets, validation samples and
    reported rows: the split is a function of positions and labels only."""
    task = get_task(f"{_csv(tmp_path / 'd.csv', 400)}?test_size=100")
    train = load_split(task, "train")
    as_list = list(train)
    for seed in (0, 3):
        a = subsample(train, size=25, seed=seed)
        assert isinstance(a, Rows)
        assert _plain(a) == _plain(subsample(as_list, size=25, seed=seed))
    s = run_splits(task, None, train_size=20, seed=1, validation_size=50, eval_size=30)
    assert isinstance(s.train, Rows) and isinstance(s.reported, Rows)
    assert len(s.train) == 20 and len(s.validation) == 50 and len(s.reported) == 30
    assert not {ex.idx for ex in s.train} & {ex.idx for ex in s.validation}


def test_a_slice_or_a_selection_of_a_file(tmp_path):
    """A table that is not its cache file row for row (a Hub split such as train[:50%],
    a selection of rows) is read as it is, never as the whole file."""
    dataset = read_file(_csv(tmp_path / "d.csv", 50))
    assert Stored.of(dataset).path is not None
    for part in (dataset.select(range(10, 30)), dataset.select([3, 1, 4])):
        stored = Stored.of(part)
        got = [v for _, vs in stored.read(["text"], np.arange(len(stored))) for v in vs["text"]]
        assert got == part["text"] and len(stored) == len(part)
    sliced = Stored(dataset.data.table.slice(5, 7))
    assert [v for _, vs in sliced.read(["text"], np.arange(7)) for v in vs["text"]] == (
        dataset["text"][5:12]
    )


def test_a_file_that_is_not_the_table_is_refused(tmp_path):
    small = read_file(_csv(tmp_path / "small.csv", 20))
    other = Stored(small.data.table, Stored.of(read_file(_csv(tmp_path / "big.csv", 30))).path)
    with pytest.raises(RuntimeError, match="30 rows read, the table has 20"):
        list(other.read(["text"], np.arange(20)))


# The user-data evidence grid's splits (bench/user_tasks/*.yaml): the held-out test rows,
# and the 250-example training subset and 500-example validation sample of seed 0, as
# the per-row Example code (f50d7d0) drew them; the rows kept in Arrow draw the same.
EVIDENCE_SPLITS = {
    "cr": "c2980880b366cfc3",
    "mpqa": "202ac89bcd8f8529",
    "subj": "1ea4528310d3161f",
    "trec": "ea0687f42141cf58",
}


@pytest.mark.parametrize("name", sorted(EVIDENCE_SPLITS))
def test_the_evidence_grids_splits_are_unchanged(name):
    import hashlib
    import json

    task_file = Path(__file__).resolve().parents[2] / "bench" / "user_tasks" / f"{name}.yaml"
    data = task_file.parent / "../../../shared/data/user"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    task = get_task(str(task_file))
    s = run_splits(task, None, train_size=250, seed=0, validation_size=500)
    ids = [[ex.idx for ex in p] for p in (load_split(task, "validation"), s.train, s.validation)]
    assert hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16] == EVIDENCE_SPLITS[name]
