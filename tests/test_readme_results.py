"""The README's result tables are what ``bench/tables.py`` prints from the recorded stores
in ``bench/results/``: a rerun grid or an edited README that disagree fail here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import tables

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STORE = "results.jsonl"
LOOKSAM_CELLS = 45  # 5 strata x (4 tuning trials + 5 seeds)


def _records(record: Path) -> list[dict]:
    """The records of the store in ``record``, in the order they were written."""
    return [json.loads(line) for line in (record / STORE).read_text().splitlines()]


def _rows(table: str, first_cells: tuple[str, ...]) -> list[str]:
    return [line for line in table.splitlines() if line.startswith(first_cells)]


def test_the_answer_table_is_the_evidence_store():
    rows = _rows(tables.evidence_table(RESULTS / "evidence"), ("| SST-2", "| CB", "| RTE"))
    assert len(rows) == 5  # the five strata
    readme = (ROOT / "README.md").read_text()
    assert [row for row in rows if row not in readme] == []


def test_the_lora_table_is_the_lora_store():
    table = tables.lora_table(RESULTS / "lora", RESULTS / "evidence")
    rows = _rows(table, ("| glue/", "| superglue/", "| mean over"))
    assert len(rows) == 4  # SST-2, CB, RTE and their mean
    readme = (ROOT / "README.md").read_text()
    assert [row for row in rows if row not in readme] == []


def test_the_variants_costs_are_the_timing_store():
    timed = tables.timings(RESULTS / "variants")
    readme = " ".join((ROOT / "README.md").read_text().split())
    for name, method in (("SAM", "sam"), ("GSAM", "gsam"), ("LookSAM (k 5)", "looksam")):
        ratio = tables.timed_over_baseline(timed, method)
        assert f"{name} {ratio:.2f}x" in readme, method


def test_the_variants_table_is_the_variants_store():
    table = tables.variants_table(RESULTS / "variants")
    rows = _rows(table, ("| sam", "| asam", "| gsam", "| looksam", "| aesam"))
    assert len(rows) == 6  # SAM, SAM(0.25), ASAM and the three variants
    readme = (ROOT / "README.md").read_text()
    assert [row for row in rows if row not in readme] == []
    gains = {row.split(" | ")[0][2:]: row.split(" | ")[1] for row in rows}
    said = " ".join(readme.split())  # "The answer so far" quotes the variants' gains
    for claim in (f"GSAM {gains['gsam']}", f"AE-SAM {gains['aesam']}"):
        assert claim in said, claim
    # LookSAM's arm is rerun on the fixed code (its first run's reuse steps escaped the
    # Trainer's clipping): the README says how far the rerun is until it is complete
    rerun = _records(RESULTS / "variants")
    done = sum(r["method"] == "looksam" and r["status"] == "ok" for r in rerun)
    looksam = next(row for row in rows if row.startswith("| looksam"))
    if done < LOOKSAM_CELLS:
        assert "no results" in looksam or "partial" in looksam
        assert f"{done} of {LOOKSAM_CELLS} cells recorded" in said
    else:
        assert f"LookSAM {gains['looksam']}" in said


def test_the_user_data_table_is_the_user_store(monkeypatch):
    """The README's first screen holds `bench/tables.py user`'s table as it stands (its
    rows, means and how many strata are complete); the task files' paths are relative to
    the repository's root, and they read ../shared/data/user relative to themselves."""
    data = ROOT / "bench" / "user_tasks" / "../../../shared/data/user"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    monkeypatch.chdir(ROOT)
    table = tables.user_table(RESULTS / "user", RESULTS / "evidence")
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("<!-- user-table -->"), readme.index("<!-- /user-table -->")
    assert start < readme.index("## SAM on the benchmarks")  # the first screen, before it
    assert readme[start:end].split("\n", 1)[1].strip() == table.strip()
    # once every stratum is in, the prose quotes the final means (the first screen's summary
    # and "The answer so far")
    if "8 of 8 user strata complete" in table:
        said = " ".join(readme.split())
        means = dict(
            (row.split(" | ")[0][2:], row.split(" | ")[2].rstrip(" |"))
            for row in _rows(table, ("| the user strata", "| user and benchmark"))
        )
        user, both = means["the user strata"], means["user and benchmark strata together"]
        assert said.count(f"eight user strata is {user}") == 2, user
        assert f"together it is {both}" in said, both


def _seed_scores(record: Path) -> dict[tuple[str, int], float]:
    """Each final (non-trial) cell's score by method and seed."""
    rows = _records(record)
    return {(r["method"], r["seed"]): r["score"] for r in rows if r.get("trial") is None}


def test_the_tasksam_table_and_figures_are_the_tasksam_store():
    """The README holds `bench/tables.py tasksam`'s rows, and the prose's per-seed gains and
    TaskSAM's paired difference from pooled SAM are the store's (a 95% t interval)."""
    from scipy import stats

    table = tables.evidence_table(RESULTS / "tasksam")
    rows = _rows(table, ("| SST-2+CB+RTE", "| mean", "| time per step"))
    assert len(rows) == 3 and "1 of 1 strata complete (3 seeds each)" in table
    readme = (ROOT / "README.md").read_text()
    assert [row for row in rows if row not in readme] == []
    said = " ".join(readme.split())
    scores = _seed_scores(RESULTS / "tasksam")
    gains = [scores["tasksam", s] - scores["baseline", s] for s in range(3)]
    assert "(seeds: {:+.2f}, {:+.2f}, {:+.2f})".format(*gains) in said
    diff = [scores["tasksam", s] - scores["sam", s] for s in range(3)]
    mean, half = sum(diff) / 3, stats.t.ppf(0.975, 2) * stats.tstd(diff) / 3**0.5
    assert (
        f"pooled SAM on the same seeds is {mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"
        in said
    )
    assert "TaskSAM, its per-task form" in said and rows[1].split(" | ")[2] in said


EIGENSAM_CELLS = 45  # 5 strata x (4 tuning trials + 5 seeds)


def test_the_eigensam_paragraph_is_the_eigensam_store():
    """Until its grid is complete the README says how many Eigen-SAM cells are recorded;
    then it holds `bench/tables.py eigensam`'s rows."""
    rows = _records(RESULTS / "eigensam") if (RESULTS / "eigensam" / STORE).exists() else []
    done = sum(r["method"] == "eigensam" and r["status"] == "ok" for r in rows)
    said = " ".join((ROOT / "README.md").read_text().split())
    if done < EIGENSAM_CELLS:
        assert f"{done} of {EIGENSAM_CELLS} Eigen-SAM cells recorded" in said
        return
    table = tables.evidence_table(RESULTS / "eigensam")
    lines = _rows(table, ("| SST-2", "| CB", "| RTE", "| mean"))
    assert len(lines) == 6 and [line for line in lines if line not in said] == []
