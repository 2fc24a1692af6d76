"""bench/tables.py user: the user-data answer, its "not learned" marks and the families' means."""

from __future__ import annotations

from bench import tables
from samlm.compare import GridSpec, compare

from .fake import InlineBackend, fake_cell

VALIDATION = {"glue/sst2": 60.0, "glue/mrpc": 80.0}  # the baseline's, seed 0
MAJORITY = {"glue/sst2": 57.0, "glue/mrpc": 50.0}


def _with_validation(spec, cell, folder, threads, setting=None):
    record = fake_cell(spec, cell, folder, threads, setting)
    best = VALIDATION[cell["task"]] + cell["seed"]  # the selected checkpoint's accuracy
    return {**record, "curve": [[5, best], [10, best - 1]], "validation_score": 0.0}


def _rows(text: str) -> dict[str, list[str]]:
    return {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")][1:]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith(("| stratum", "| SAM's mean"))
    }


def test_gains_not_learned_marks_and_the_families(tmp_path):
    """fake_cell: SAM's paired differences are 2.0, 2.5, 3.0 on seeds 0-2 in every stratum;
    the baseline's selected validation accuracy (its curve's best) is 61 on average on
    SST-2, 4 points over its majority class (not learned), and 81 on MRPC."""
    methods = ["baseline", "sam"]
    user = GridSpec(tasks=["glue/sst2", "glue/mrpc"], sizes=[100], methods=methods, seeds=3)
    compare(user, tmp_path / "user", backend=InlineBackend(), cell_fn=_with_validation)
    bench = GridSpec(tasks=["glue/qnli"], sizes=[100], methods=methods, seeds=3)
    compare(bench, tmp_path / "bench", backend=InlineBackend(), cell_fn=fake_cell)
    asked = []

    def majority(task, size, validation_size):
        asked.append((task, size))
        return MAJORITY[task]

    text = tables.user_table(tmp_path / "user", tmp_path / "bench", majority=majority)
    rows = _rows(text)
    assert asked == [("glue/sst2", 100), ("glue/mrpc", 100)]
    assert rows["SST-2, 100 examples"][1:] == ["61.0 (not learned)", "57.0"]
    assert rows["glue/mrpc, 100 examples"][1:] == ["81.0", "50.0"]
    assert rows["SST-2, 100 examples"][0].startswith("**+2.50 [")
    families = {
        "the user strata": "2",
        "the benchmark strata": "1",
        "user and benchmark strata together": "3",
    }
    for name, strata in families.items():
        assert rows[name][0] == strata and rows[name][1].startswith("**+2.50 ["), name
    assert "2 of 2 user strata complete (3 seeds each)." in text


def test_task_files_are_named_by_their_stem():
    assert tables.task_label("bench/user_tasks/trec.yaml") == "TREC"
    assert tables.task_label("superglue/cb") == "CB"


def test_the_majority_class_of_a_user_tasks_validation_sample(tmp_path):
    """600 rows, 70% of them "pos": the stratified validation sample of 500 keeps 70%."""
    data = tmp_path / "reviews.csv"
    rows = [f"review {i},{'pos' if i % 10 < 7 else 'neg'}" for i in range(600)]
    data.write_text("text,label\n" + "\n".join(rows) + "\n")
    assert tables.validation_majority(str(data), 50, 500) == 70.0
