"""bench/tables.py evidence: the README's answer table over the complete strata only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import tables
from samlm.compare import GridSpec, compare

from .fake import InlineBackend, failing_cell, fake_cell

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "tables.py"
METHODS = ["baseline", "sam", "sam_quarter", "asam"]


def _rows(text: str) -> dict[str, list[str]]:
    return {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")][1:]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| stratum")
    }


def test_gains_mean_cost_and_share_over_the_complete_strata(tmp_path):
    """fake_cell: SAM +2 + seed / 2 (2.0, 2.5, 3.0), SAM(0.25) +1 and ASAM -1 on every
    seed; ASAM's CoLA cells fail, so CoLA is incomplete and left out."""
    spec = GridSpec(tasks=["glue/sst2", "glue/cola"], sizes=[100], methods=METHODS, seeds=3)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    two = GridSpec(tasks=["glue/sst2"], sizes=[250, 100], methods=METHODS, seeds=3)
    compare(two, tmp_path / "two", backend=InlineBackend(), cell_fn=fake_cell)
    rows = _rows(tables.evidence_table(tmp_path / "two"))
    assert list(rows)[:3] == [
        "SST-2, 250 examples",
        "SST-2, 100 examples",
        "mean over the 2 (stratified bootstrap)",
    ]
    assert rows["mean over the 2 (stratified bootstrap)"][0].startswith("**+2.50 [")
    text = tables.evidence_table(tmp_path)
    rows = _rows(text)
    assert list(rows) == [
        "SST-2, 100 examples",
        "mean",
        "time per step vs baseline",
        "share of SAM's gain kept",
    ]
    sst2 = rows["SST-2, 100 examples"]
    assert sst2[0].startswith("**+2.50 [") and sst2[0].endswith("]**")  # t interval, n = 3
    assert sst2[1:] == ["**+1.00 [+1.00, +1.00]**", "**-1.00 [-1.00, -1.00]**"]
    assert rows["mean"] == sst2  # one stratum: its own t interval
    assert rows["time per step vs baseline"] == ["1.90x", "1.90x", "1.90x"]
    assert rows["share of SAM's gain kept"] == ["", "40%", "-40%"]
    assert "1 of 2 strata complete (3 seeds each); still running: glue/cola 100." in text


def test_nothing_complete_and_no_store(tmp_path):
    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=METHODS, seeds=2)
    compare(spec, tmp_path / "run", backend=InlineBackend(), cell_fn=failing_cell)
    assert tables.evidence_table(tmp_path / "run") == "No stratum is complete yet."
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "evidence", "--record", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no recorded store in" in done.stderr


def test_the_tasksam_section_names_the_mixture_by_its_tasks(tmp_path):
    """``tables.py tasksam``: the evidence table of the mixture grid with TaskSAM, its one
    stratum named by its tasks' short names (fake_cell: TaskSAM +0.5 on every seed)."""
    spec = GridSpec(
        tasks=["glue/sst2+superglue/cb"],
        sizes=[100],
        methods=["baseline", "sam", "tasksam"],
        seeds=3,
    )
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "tasksam", "--record", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = _rows(done.stdout)
    assert list(rows)[:2] == ["SST-2+CB, 100 examples", "mean"]
    assert rows["SST-2+CB, 100 examples"][1] == "**+0.50 [+0.50, +0.50]**"
    assert "| stratum | SAM | TaskSAM |" in done.stdout


def test_the_eigensam_section_puts_gsam_from_the_variants_grid_beside_it(tmp_path):
    """``tables.py eigensam``: the evidence grid with Eigen-SAM, and GSAM's column from the
    variants grid grown from the same cells (fake_cell: Eigen-SAM -0.5, GSAM +1.5 on every
    seed); grids whose baseline cells differ are refused."""
    core = ["baseline", "sam", "sam_quarter", "asam"]
    grids = {"eigensam": [*core, "eigensam"], "variants": [*core, "gsam"]}
    for name, methods in grids.items():
        spec = GridSpec(tasks=["glue/sst2"], sizes=[250, 100], methods=methods, seeds=3)
        compare(spec, tmp_path / name, backend=InlineBackend(), cell_fn=fake_cell)
    argv = ["--record", str(tmp_path / "eigensam"), "--variants", str(tmp_path / "variants")]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "eigensam", *argv], capture_output=True, text=True, check=True
    )
    assert "| stratum | SAM | SAM(0.25) | ASAM | Eigen-SAM | GSAM |" in done.stdout
    rows = _rows(done.stdout)
    for stratum in ("SST-2, 250 examples", "SST-2, 100 examples"):
        assert rows[stratum][3:] == ["**-0.50 [-0.50, -0.50]**", "**+1.50 [+1.50, +1.50]**"]
    assert rows["mean over the 2 (stratified bootstrap)"][4].startswith("**+1.50 [")

    def other_baseline(spec, cell, folder, threads, setting=None):
        record = fake_cell(spec, cell, folder, threads, setting)
        return {**record, "score": record["score"] + (cell["method"] == "baseline")}

    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=grids["variants"], seeds=3)
    compare(spec, tmp_path / "other", backend=InlineBackend(), cell_fn=other_baseline)
    with pytest.raises(ValueError, match="baseline cells differ"):
        tables.eigensam_table(tmp_path / "eigensam", tmp_path / "other")
