"""bench/evidence.py: the recorded store merges back without duplicates, and the chosen
settings export as the data the default preset reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import evidence
from samlm.compare import GridSpec, compare, store

from .fake import InlineBackend
from .test_tuning import SPEC, tuning_cell

ROOT = Path(__file__).resolve().parents[2]


def test_merge_and_export(tmp_path):
    run = tmp_path / "run"
    compare(GridSpec(**{**SPEC, "seeds": 1}), run, backend=InlineBackend(), cell_fn=tuning_cell)
    record = tmp_path / "repo" / "bench" / "results" / "evidence"
    evidence.mirror(run, record)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert evidence.merge(record, fresh) == len(store.read(run))
    assert evidence.merge(record, fresh) == 0  # nothing twice
    target = tmp_path / "repo" / "src" / "samlm" / "compare" / "recorded.json"
    target.parent.mkdir(parents=True)
    chosen = evidence.export_settings(record, target)
    assert chosen["glue/sst2|100|sam"] == {"learning_rate": 2e-4, "rho": 0.02}
    written = json.loads(target.read_text())
    assert written["settings"] == chosen
    assert written["source"] == "bench/results/evidence"


def test_the_recorded_settings_are_the_package_data():
    """``samlm.compare.recorded`` reads the file ``--export-settings`` writes."""
    from samlm.compare import recorded

    written = json.loads((ROOT / "src" / "samlm" / "compare" / "recorded.json").read_text())
    assert recorded.SOURCE == written["source"] == "bench/results/evidence"
    assert written["settings"] == recorded.SETTINGS
    assert recorded.SETTINGS["glue/sst2|250|sam"] == {"learning_rate": 1e-4, "rho": 0.05}


def test_variants_preset_is_the_evidence_grid_with_its_recorded_methods():
    from samlm.compare import METHODS, PRESETS

    evidence, variants = PRESETS["evidence"], PRESETS["variants"]
    assert {k: v for k, v in variants.items() if k != "methods"} == {
        k: v for k, v in evidence.items() if k != "methods"
    }
    # the methods of its recorded run: every method but Eigen-SAM and TaskSAM (mixtures
    # only), which came later
    assert variants["methods"] == [m for m in METHODS if m not in ("eigensam", "tasksam")]
    core = {c.key for c in GridSpec(**evidence).cells()}
    assert core < {c.key for c in GridSpec(**variants).cells()}  # the same keys, reused


def test_variants_wait_for_the_evidence_grid(tmp_path):
    record = tmp_path / "evidence"
    record.mkdir()
    cells = GridSpec(**evidence.PRESETS["evidence"]).cells()
    for cell in cells[:-1]:
        store.append(record, {"key": cell.key, "status": "ok"})
    assert evidence.missing_cells("evidence", record) == 1
    script = ROOT / "bench" / "evidence.py"
    options = ["--preset", "variants", "--data-dir", str(tmp_path)]
    options += ["--record", str(tmp_path / "variants"), "--output", str(tmp_path / "out")]
    run = subprocess.run(
        [sys.executable, str(script), *options],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert "lacks 1 cell(s)" in run.stderr and "--preset evidence" in run.stderr
    assert not (tmp_path / "out").exists()  # nothing written
    store.append(record, {"key": cells[-1].key, "status": "ok"})
    assert evidence.missing_cells("evidence", record) == 0


def test_a_grid_that_builds_on_another_starts_from_its_store(tmp_path):
    """--preset variants on a fresh machine: its output starts from the evidence store
    (spec and records), and samlm compare runs only the cells the base grid lacks."""
    base_spec = {**SPEC, "methods": ["baseline", "sam"], "seeds": 1}
    base = tmp_path / "results" / "evidence"
    compare(GridSpec(**base_spec), base, backend=InlineBackend(), cell_fn=tuning_cell)
    (base / "calls.jsonl").unlink()
    output = tmp_path / "run"
    evidence.seed(output, tmp_path / "results" / "variants", base)  # nothing recorded yet
    assert store.read(output) == store.read(base)
    grown = GridSpec(**{**base_spec, "methods": ["baseline", "sam", "asam"]})
    compare(grown, output, backend=InlineBackend(), cell_fn=tuning_cell)
    ran = [json.loads(line)["method"] for line in (output / "calls.jsonl").read_text().splitlines()]
    assert ran and set(ran) == {"asam"}  # the base grid's cells are not run again
    assert {c.key for c in grown.cells()} <= set(store.read(output))  # and the trials


@pytest.mark.parametrize("preset", ["user", "eigensam", "tasksam"])
def test_bench_presets_reach_samlm_compare_as_their_grids(preset):
    """The flags evidence.py gives samlm compare for a bench preset make its grid:
    eigensam and tasksam are the evidence and mixture presets with one method more."""
    from samlm.cli import _given, build_parser
    from samlm.compare import PRESETS

    args = build_parser().parse_args(["compare", *evidence.compare_args(preset)])
    options = {**PRESETS[args.preset], **_given(args, GridSpec)}
    assert GridSpec(**options) == GridSpec(**evidence.grid_of(preset))
    base = evidence.BUILDS_ON.get(preset)
    if base:
        grown = {**PRESETS[base], "methods": [*PRESETS[base]["methods"], preset]}
        assert evidence.grid_of(preset) == grown
