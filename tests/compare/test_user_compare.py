"""``samlm compare`` with a user's task (issue 34): a task file next to a benchmark task,
real cells on a user's CSV, and bad user data refused before any cell starts."""

from __future__ import annotations

import json

import pytest

import samlm.compare
from samlm.cli import main
from samlm.compare import GridSpec, compare, write_report
from samlm.compare.cell import run_cell
from samlm.compare.validate import grid_problems
from samlm.tasks.user import TEST_SEED

from ..tasks.test_user_task import ROWS, write
from .fake import InlineBackend, fake_cell
from .test_cli import _inline

pytestmark = pytest.mark.usefixtures("fresh_user_tasks")


def _task_file(tmp_path, rows=None) -> str:
    rows = rows if rows is not None else [{"review": t, "sentiment": y} for t, y in ROWS * 6]
    write(tmp_path / "reviews.csv", rows)
    path = tmp_path / "cr.yaml"
    path.write_text("train: reviews.csv\ntest_size: 8\nmetric: f1_macro\n")
    return str(path)


def test_a_task_file_next_to_a_benchmark_task(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setattr(samlm.compare, "compare", _inline(fake_cell))
    task = _task_file(tmp_path)
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--tasks",
        f"glue/sst2,{task}",
        "--sizes",
        "16",
        "--methods",
        "baseline,sam",
        "--seeds",
        "2",
        "--data-dir",
        str(data_dir),
        "--output",
        str(out),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    calls = [json.loads(x) for x in (out / "calls.jsonl").read_text().splitlines()]
    assert {(c["task"], c["method"], c["seed"]) for c in calls} == {
        (t, m, s) for t in ("glue/sst2", task) for m in ("baseline", "sam") for s in (0, 1)
    }
    assert task in (out / "report.md").read_text()


def test_real_cells_on_a_user_csv(tmp_path, tiny_bert_dir):
    task = _task_file(tmp_path)
    spec = GridSpec(
        tasks=[task],
        sizes=[16],
        methods=["baseline", "sam"],
        seeds=2,
        model=str(tiny_bert_dir),
        min_steps=2,
        epochs=0.1,
        save_steps=1,
        validation_size=8,
        batch_size=8,
        max_length=32,
    )
    assert grid_problems(spec) == []
    records = compare(spec, tmp_path / "cmp", backend=InlineBackend(), cell_fn=run_cell)
    write_report(tmp_path / "cmp")
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "8 dev examples (held out 8 of the 48 training rows" in report
    assert "8 held out of the training pool, by f1_macro" in report
    # the user's label names (the model's id2label) in the Examples table, both pages
    assert "16 (seeded subset per seed; classes negative, positive)" in report
    assert "classes negative, positive" in (tmp_path / "cmp" / "report.html").read_text()
    ok = [r for r in records.values() if r["status"] == "ok"]
    assert len(ok) == 4, [r["error"] for r in records.values()]
    for r in ok:
        assert r["examples"] == {
            "train_examples": 16,
            "validation_examples": 8,
            "validation_from": "train",
            "reported_examples": 8,
            "selected_by": "f1_macro",
            "labels": ["negative", "positive"],
            "note": f"held out 8 of the 48 training rows ({tmp_path / 'reviews.csv'}) as the "
            f"test split (seed {TEST_SEED}, stratified by class; the same for every method, "
            "seed and size)",
        }
        assert set(r["metrics"]) == {"accuracy", "f1_macro"}


def test_bad_user_data_refuses_the_grid_before_writing(tmp_path, data_dir, capsys):
    rows = [{"review": t, "sentiment": y} for t, y in ROWS * 6] + [{"review": "", "sentiment": "x"}]
    task = _task_file(tmp_path, rows)
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--tasks",
        f"glue/sst2,{task}",
        "--sizes",
        "16",
        "--seeds",
        "1",
        "--data-dir",
        str(data_dir),
        "--output",
        str(out),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the grid cannot run" in err and "1 with an empty text (row 49)" in err
    assert not out.exists()


def test_a_size_smaller_than_the_classes(tmp_path):
    rows = [{"text": f"t {i}", "label": "abcd"[i % 4]} for i in range(40)]
    path = str(write(tmp_path / "four.csv", rows))
    spec = GridSpec(
        tasks=[path],
        sizes=[3, 8],
        methods=["baseline", "sam"],
        seeds=1,
        model=str(tmp_path / "nomodel"),
    )
    problems = grid_problems(spec)
    assert f"{path}: size 3 is smaller than its 4 classes" in "\n".join(problems)
    assert "size 8" not in "\n".join(problems)
