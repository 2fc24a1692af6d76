"""The grid runner: resumable, failures recorded, reports with plots."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from samlm.analysis import measure_run
from samlm.compare import GridSpec, compare, write_report
from samlm.compare import store as store_module
from samlm.compare.cell import SHARPNESS_OPTIONS
from samlm.compare.report import (
    DEV_CURVE_LABEL,
    METHOD_COLOURS,
    analyse,
    figures,
    markdown,
    method_colour,
    overall_rows,
    terminal,
)
from tests.helpers import tiny_spec

from .fake import InlineBackend, failing_cell, fake_cell, fake_cell_no_asam

SPEC = dict(
    tasks=["glue/sst2", "glue/cola"], sizes=[100, 200], methods=["baseline", "sam", "asam"], seeds=3
)


def _calls(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "calls.jsonl").read_text().splitlines()]


def test_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path):
    records = compare(GridSpec(**SPEC), tmp_path, workers=2, cell_fn=fake_cell)
    assert len(records) == 2 * 2 * 3 * 3
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 2 * 3 and all("boom" in r["error"] for r in failed)
    text = terminal(write_report(tmp_path))
    assert "FAILED glue/cola|100|asam|0" in text
    assert "significantly better" in text  # sam: +2, +2.5, +3 on sst2


def test_resume_after_a_kill_reruns_nothing_finished(tmp_path, monkeypatch):
    full = tmp_path / "full"
    compare(GridSpec(**SPEC), full, workers=2, cell_fn=fake_cell)
    write_report(full)

    killed = tmp_path / "killed"
    real_append = store_module.append
    count = {"n": 0}

    def dying_append(folder, record):
        if count["n"] == 5:
            raise KeyboardInterrupt("killed")
        count["n"] += 1
        real_append(folder, record)

    monkeypatch.setattr(store_module, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        compare(GridSpec(**SPEC), killed, workers=1, cell_fn=fake_cell)
    monkeypatch.setattr(store_module, "append", real_append)
    stored = set(store_module.read(killed))
    assert len(stored) == 5
    before = len(_calls(killed))
    compare(GridSpec(**SPEC), killed, workers=2, cell_fn=fake_cell)
    rerun = _calls(killed)[before:]
    keys = {f"{c['task']}|{c['size']}|{c['method']}|{c['seed']}" for c in rerun}
    assert not keys & {k for k in stored if store_module.read(killed)[k]["status"] == "ok"}
    write_report(killed)
    assert (killed / "report.md").read_text() == (full / "report.md").read_text()


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    compare(GridSpec(**{**SPEC, "seeds": 1}), tmp_path, workers=1, cell_fn=fake_cell)
    with pytest.raises(ValueError, match="epochs"):
        compare(GridSpec(**{**SPEC, "epochs": 5.0}), tmp_path, workers=1, cell_fn=fake_cell)


def test_spec_validation():
    with pytest.raises(ValueError, match="baseline"):
        GridSpec(tasks=["glue/sst2"], sizes=[10], methods=["sam"])
    with pytest.raises(ValueError, match="unknown method"):
        GridSpec(tasks=["glue/sst2"], sizes=[10], methods=["baseline", "adam"])


def test_tiny_grid_on_a_tiny_model_renders_a_report(tmp_path, data_dir, tiny_bert_dir):
    spec = tiny_spec(
        tasks=["glue/sst2", "glue/nope"],
        seeds=2,
        model=tiny_bert_dir,
        min_steps=4,
        validation_size=24,
        data_dir=data_dir,
        sharpness=True,
    )
    records = compare(spec, tmp_path / "cmp", workers=2)
    ok = [r for r in records.values() if r["status"] == "ok"]
    assert len(ok) == 4 and all(0 <= r["score"] <= 100 and r["curve"] for r in ok)
    assert all(r["steps"] == 4 and [s for s, _ in r["curve"]] == [2, 4] for r in ok)
    assert all(r["cpu_step_s"] > 0 for r in ok)  # trained on the CPU: its steps' CPU time
    examples = {json.dumps(r["examples"]) for r in ok}  # the same roles for every cell
    assert len(examples) == 1 and json.loads(examples.pop()) == {
        "train_examples": 16,
        "validation_examples": 24,
        "validation_from": "train",
        "reported_examples": 16,
        "selected_by": "accuracy",
    }
    assert all("glue/nope" in r["error"] for r in records.values() if r["status"] == "failed")
    a = write_report(tmp_path / "cmp")
    assert a.cost["sam"]["passes_per_step"] == 2.0
    for name in ("gain_by_stratum", "gain_vs_size", "dev_metric_during_training", "cost_vs_gain"):
        assert (tmp_path / "cmp" / f"{name}.png").stat().st_size > 1000
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert all(set(r["sharpness"]) == {"sharpness", "lambda_max", "trace"} for r in ok)
    assert "<h2>Sharpness</h2>" in page and "lambda_max" in terminal(a)
    # each cell's progress in steps: its 4 optimizer steps and the batches of its 4
    # evaluations (at steps 2 and 4, then the selected model's on validation and reported)
    for r in ok:
        p = json.loads((tmp_path / "cmp" / r["run_dir"] / "progress.json").read_text())
        assert p["done"] == p["total"] > 4 and (p["total"] - 4) % 4 == 0, p
    # measured, then deleted: only the logs and metrics of each cell stay
    cells = list((tmp_path / "cmp" / "cells").iterdir())
    assert sorted(c.name for c in cells if (c / "metrics.json").is_file()) == sorted(
        Path(r["run_dir"]).name for r in ok
    )
    assert not any((c / "best").exists() or (c / "checkpoints").exists() for c in cells)
    # every cell, finished or failed, was attempted once, here
    assert len(cells) == 8 and all(r["attempts"] == 1 for r in records.values())
    assert all(len((c / "attempts.jsonl").read_text().splitlines()) == 1 for c in cells)


def test_a_lora_grid_measures_what_trained(tmp_path, data_dir, tiny_bert_dir):
    """--sharpness with --peft lora: each cell's adapters and head, the base fixed."""
    spec = tiny_spec(
        model=tiny_bert_dir,
        data_dir=data_dir,
        sharpness=True,
        peft="lora",
        lora_r=2,
        keep_models=True,
    )
    records = compare(spec, tmp_path / "cmp", workers=1)
    assert sorted(r["status"] for r in records.values()) == ["ok", "ok"]
    for r in records.values():
        run_dir = tmp_path / "cmp" / r["run_dir"]
        options = dict(SHARPNESS_OPTIONS, progress=False, write=False)
        trained = measure_run(run_dir, weights="trained", **options)
        merged = measure_run(run_dir, weights="merged", **dict(options, hessian_iters=0, probes=0))
        # measured again the same way: the same numbers, up to the order of float sums
        # (the cell ran with the grid's thread count, this process may use another)
        assert r["sharpness"] == pytest.approx(
            {
                "sharpness": trained["sharpness"]["sharpness"],
                "lambda_max": trained["hessian"]["top_eigenvalue"]["value"],
                "trace": trained["hessian"]["trace"]["value"],
            },
            rel=1e-9,
        )
        assert all(math.isfinite(v) for v in r["sharpness"].values())
        # the adapters and the head: a small part of the merged model's weights
        assert 0 < trained["parameters"] < merged["parameters"] / 4
        assert r["sharpness"]["sharpness"] != merged["sharpness"]["sharpness"]


def _colours(fig) -> dict[str, set[str]]:
    """Method -> the colours its artists have in ``fig`` (error bars, lines, points)."""
    from matplotlib.colors import to_hex

    found: dict[str, set[str]] = {}
    for ax in fig.axes:
        pairs = [(c.get_label(), [c.lines[0].get_color()]) for c in ax.containers]
        pairs += [(line.get_label(), [line.get_color()]) for line in ax.get_lines()]
        pairs += [(c.get_label(), list(c.get_facecolor())) for c in ax.collections]  # scatter
        for label, colours in pairs:
            if label and not label.startswith("_"):  # not an axhline or an error bar's part
                found.setdefault(label, set()).update(to_hex(c) for c in colours)
    return found


def test_a_method_has_one_colour_in_every_plot(tmp_path):
    import matplotlib.pyplot as plt

    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    figs = figures(analyse(tmp_path))
    try:
        assert set(figs) == {
            "gain_by_stratum",
            "gain_vs_size",
            "dev_metric_during_training",
            "cost_vs_gain",
        }
        seen = {name: _colours(fig) for name, fig in figs.items()}
    finally:
        for fig in figs.values():
            plt.close(fig)
    assert set(seen["gain_vs_size"]) == set(seen["cost_vs_gain"]) == {"sam", "asam"}
    assert set(seen["gain_by_stratum"]) == {"sam", "asam"}
    assert set(seen["dev_metric_during_training"]) == {"baseline", "sam", "asam"}
    for by_method in seen.values():
        for method, colours in by_method.items():
            assert colours == {method_colour(method)}, (method, colours)
    # fixed by METHODS, not by the grid's subset or order: SAM is orange everywhere
    assert method_colour("baseline") == "#1f77b4" and method_colour("sam") == "#ff7f0e"
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    other = method_colour("lookahead")
    assert other == method_colour("lookahead") and other not in METHOD_COLOURS.values()


def test_dev_curves_say_they_are_the_selection_metric(tmp_path):
    import matplotlib.pyplot as plt

    compare(GridSpec(**{**SPEC, "seeds": 1}), tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    fig = figures(analyse(tmp_path))["dev_metric_during_training"]
    try:
        assert fig.get_suptitle() == DEV_CURVE_LABEL
        assert DEV_CURVE_LABEL == "validation metric (used for selection), mean over seeds"
        assert all("used for selection" in ax.get_ylabel() for ax in fig.axes)
    finally:
        plt.close(fig)
    write_report(tmp_path)
    assert "used for checkpoint selection" in (tmp_path / "report.html").read_text()


def _texts(folder: Path) -> dict[str, str]:
    """Terminal, markdown and HTML text of a written report (the inlined PNGs left out)."""
    a = write_report(folder)
    page = (folder / "report.html").read_text()
    page = re.sub(r"data:image/png;base64,[^\"]*", "", page)
    assert (folder / "report.md").read_text() == markdown(a, {p.stem: "" for p in _pngs(folder)})
    return {"terminal": terminal(a), "markdown": (folder / "report.md").read_text(), "html": page}


def _pngs(folder: Path) -> list[Path]:
    order = ["gain_by_stratum", "gain_vs_size", "dev_metric_during_training", "cost_vs_gain"]
    return sorted(folder.glob("*.png"), key=lambda p: order.index(p.stem))


def test_a_method_without_results_shows_no_nan(tmp_path):
    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=fake_cell_no_asam)
    for where, text in _texts(tmp_path).items():
        assert not re.search(r"\bnan", text), (where, text)
        assert "asam: no results (12 failed)" in text, where
        assert "n/a" in text, where  # asam's cost
        assert "sam: no results" not in text.replace("asam: no results", "")
    a = analyse(tmp_path)
    assert a.without_results() == {"asam": "12 failed"}
    assert a.cost["sam"]["time_per_step_vs_baseline"] == pytest.approx(1.9)


def test_a_grid_where_every_cell_failed_still_reports(tmp_path):
    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=failing_cell)
    texts = _texts(tmp_path)
    assert _pngs(tmp_path) == []
    for where, text in texts.items():
        assert not re.search(r"\bnan", text), (where, text)
        for method in SPEC["methods"]:
            assert f"{method}: no results (12 failed)" in text, where
        assert "(no results)" in text and "FAILED glue/sst2|100|baseline|0" in text
    saved = yaml.safe_load((tmp_path / "compare.yaml").read_text())
    (tmp_path / "compare.yaml").write_text(yaml.safe_dump({**saved, "seeds": 4}))
    assert analyse(tmp_path).without_results()["sam"] == "12 failed, 4 not run yet"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_html_report_shows_its_plots_in_headless_chromium(tmp_path):
    import matplotlib.image

    compare(GridSpec(**SPEC), tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    write_report(tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1300,4000",
            f"--screenshot={shot}",
            (tmp_path / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    # matplotlib's first line colour, #1f77b4, appears only if the plots were decoded
    blue = (
        (abs(pixels[..., 0] - 0x1F / 255) < 0.06)
        & (abs(pixels[..., 1] - 0x77 / 255) < 0.06)
        & (abs(pixels[..., 2] - 0xB4 / 255) < 0.06)
    )
    assert blue.sum() > 200


def test_a_grid_grows_by_tasks_and_seeds_without_rerunning_its_cells(tmp_path):
    small = {**SPEC, "tasks": ["glue/sst2"], "seeds": 1}
    compare(GridSpec(**small), tmp_path, workers=1, cell_fn=fake_cell)
    before = len(_calls(tmp_path))
    compare(GridSpec(**{**SPEC, "seeds": 2}), tmp_path, workers=2, cell_fn=fake_cell)
    rerun = _calls(tmp_path)[before:]
    assert len(rerun) == 2 * 2 * 3 * 2 - before
    assert not any(c["task"] == "glue/sst2" and c["seed"] == 0 for c in rerun)
    with pytest.raises(ValueError, match="seeds"):  # shrinking is another grid
        compare(GridSpec(**{**SPEC, "seeds": 1}), tmp_path, workers=1, cell_fn=fake_cell)


def test_passes_per_step_come_from_the_logged_share_of_sam_steps(tmp_path):
    from samlm.compare.cell import _sam_share, read_log

    log = tmp_path / "log.jsonl"
    assert _sam_share(read_log(log)) == 1.0  # nothing logged: every step counted as a SAM step
    rows = [{"step": 5, "sam_steps": 0.2}, {"step": 10, "sam_steps": 0.4}, {"eval_x": 1}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _sam_share(read_log(log)) == pytest.approx(0.3)


def test_the_variants_are_methods_tuned_like_sam_but_not_in_the_evidence_grid():
    from samlm.compare.grid import CORE_METHODS, METHODS, PRESETS, TUNE_GRID

    for method in ("gsam", "looksam", "aesam", "eigensam", "tasksam"):
        assert METHODS[method] == {"optimizer": method}
        assert TUNE_GRID[method] == TUNE_GRID["sam"]
    assert PRESETS["evidence"]["methods"] == CORE_METHODS
    assert GridSpec(tasks=["glue/sst2"], sizes=[8]).methods == CORE_METHODS


def test_the_lora_and_mixture_presets_run_the_evidence_grids_tasks():
    """Issue 15's and 16's recorded runs: the evidence grid's learnable tasks at 250
    examples, baseline against SAM, tuned alike, under the evidence grid's protocol."""
    from samlm.compare.grid import PRESETS, PROTOCOL

    tasks = PRESETS["evidence"]["tasks"]
    lora, mixture = GridSpec(**PRESETS["lora"]), GridSpec(**PRESETS["mixture"])
    assert (lora.tasks, lora.sizes, lora.peft, lora.seeds) == (tasks, [250], "lora", 5)
    assert mixture.tasks == ["+".join(tasks)] and mixture.peft == "none"
    for spec in (lora, mixture):
        assert spec.methods == ["baseline", "sam"] and spec.tune
        assert all(getattr(spec, k) == v for k, v in PROTOCOL.items())
    assert lora.tune_grid("baseline")[0]["learning_rate"] == pytest.approx(5e-4)


def test_the_share_of_sams_gain_is_given_only_where_there_is_a_gain(tmp_path):
    from samlm.compare.report import NO_SHARE

    methods = ["baseline", "sam", "sam_quarter", "asam"]
    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=methods)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=fake_cell)
    rows = {r["method"]: r for r in overall_rows(analyse(tmp_path))}
    assert rows["sam_quarter"]["share of SAM's gain"] == "40%"  # +1 of SAM's +2.5
    assert rows["asam"]["share of SAM's gain"] == "-40%"  # every method, even a loss
    assert rows["sam"]["share of SAM's gain"] == ""
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    noise = {0: -1.0, 1: 1.5, 2: 0.5}  # SAM's gains: mean +0.33, interval across zero
    records = [json.loads(x) for x in lines]
    for r in records:
        if r["method"] == "sam":
            r["score"] = 70.0 + 0.5 * r["seed"] + noise[r["seed"]]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = {r["method"]: r for r in overall_rows(analyse(tmp_path))}
    assert rows["sam_quarter"]["share of SAM's gain"] == rows["asam"]["share of SAM's gain"]
    assert rows["asam"]["share of SAM's gain"] == NO_SHARE


def test_no_share_of_sams_gain_over_other_strata(tmp_path):
    from samlm.compare.report.tables import OTHER_STRATA

    methods = ["baseline", "sam", "asam"]
    spec = GridSpec(tasks=["glue/sst2", "glue/cola"], sizes=[100], methods=methods)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=fake_cell)  # asam fails on CoLA
    a = analyse(tmp_path)
    assert a.overall()["sam"].significant and a.overall()["asam"].n_strata == 1
    assert {r["method"]: r for r in overall_rows(a)}["asam"]["share of SAM's gain"] == OTHER_STRATA
