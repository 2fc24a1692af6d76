"""bench/tables.py variants: gain, share of SAM's gain, cost and the issue's target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import tables
from samlm.compare import GridSpec, compare

from .fake import InlineBackend, fake_cell

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "tables.py"


def _variant_cell(spec, cell, folder, threads, setting=None):
    """fake_cell (baseline 70 + seed / 2, SAM 72 + seed: 1.9x per step); looksam keeps
    SAM's gain at 1.1x the baseline's time per step, aesam keeps it at 1.5x, gsam half."""
    method = cell["method"]
    record = fake_cell(
        spec,
        {**cell, "method": "sam" if method != "baseline" else method},
        folder,
        threads,
        setting,
    )
    time = {"looksam": 11.0, "aesam": 15.0}.get(method, record["train_time_s"])
    score = record["score"] - (0.5 * (2 + 0.5 * cell["seed"]) if method == "gsam" else 0.0)
    return {
        **record,
        "method": method,
        "key": record["key"].replace("|sam|", f"|{method}|"),
        "train_time_s": time,
        "score": score,
    }


def _rows(record: Path) -> dict[str, list[str]]:
    """The table's method rows, by method: the cells after the method's name."""
    return {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
        for line in tables.variants_table(record).splitlines()
        if line.startswith("| ") and not line.startswith("| method")
    }


def test_share_cost_and_target(tmp_path):
    methods = ["baseline", "sam", "gsam", "looksam", "aesam"]
    spec = GridSpec(tasks=["glue/sst2", "glue/cola"], sizes=[100], methods=methods, seeds=3)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=_variant_cell)
    rows = _rows(tmp_path)
    assert rows["sam"][1].startswith("+2.50 [") and rows["sam"][4] == "1.90x"
    assert rows["looksam"][2:] == ["100%", "2.00", "1.10x", "met"]
    assert rows["aesam"][2:] == ["100%", "2.00", "1.50x", "missed"]  # too slow
    assert rows["gsam"][2] == "50%" and rows["gsam"][5] == "missed"  # too little gain
    # aesam's CoLA cells lost, looksam's timing unknown: not judged, and said why
    path = tmp_path / "results.jsonl"
    records = [json.loads(x) for x in path.read_text().splitlines()]
    records = [r for r in records if not (r["method"] == "aesam" and r["task"] == "glue/cola")]
    for r in records:
        if r["method"] == "looksam":
            r["train_time_s"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = _rows(tmp_path)
    assert rows["looksam"][4:] == ["n/a", "not judged: no time per step"]
    assert rows["aesam"][5] == (  # 1.50x misses the cost half whatever the share
        "missed: 1.50x > 1.15x (share not judged: SAM's gain is over other strata) "
        "(partial: 1 of 2 strata)"
    )
    # SAM no better than the baseline: no gain to keep, so only the cost half judges
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    for r in records:
        if r["method"] == "sam":
            r["score"] = 70.0 + 0.5 * r["seed"] + (-1) ** r["seed"]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = _rows(tmp_path)
    why = "SAM's gain is not significantly above zero"
    assert rows["gsam"][5] == f"missed: 1.90x > 1.15x (share not judged: {why})"  # too slow
    assert rows["looksam"][5] == "not judged: " + why  # fast enough: the share decides


def test_variants_timed_on_one_machine_and_aesam_from_its_share(tmp_path):
    methods = ["baseline", "sam", "gsam", "looksam", "aesam"]
    spec = GridSpec(tasks=["glue/sst2", "glue/cola"], sizes=[100], methods=methods, seeds=3)
    compare(spec, tmp_path, backend=InlineBackend(), cell_fn=_variant_cell)
    seconds = {"baseline": 1.0, "sam": 1.9, "gsam": 2.0, "looksam": 1.1}
    timing = [
        {"task": task, "size": 100, "method": m, "machine": "vm/1", "cpu_step_s": t * scale}
        for task, scale in (("glue/sst2", 1.0), ("glue/cola", 3.0))  # the ratios hold
        for m, t in seconds.items()
    ]
    timing.append({**timing[0], "machine": "vm/2", "cpu_step_s": 9.0})  # no sam there
    (tmp_path / "timing.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timing))
    rows = _rows(tmp_path)
    assert rows["sam"][4] == "1.90x"  # the grid's pairs (its cells' train_time_s)
    assert rows["gsam"][4] == "2.00x" and rows["looksam"][4:] == ["1.10x", "met"]
    # AE-SAM: 2 passes per step, a SAM step on every step: 1 + 1.0 (1.9 - 1)
    assert rows["aesam"][3:] == ["2.00", "1.90x", "missed"]
    lines = tables.variants_table(tmp_path).splitlines()
    assert lines[-2] == (
        "Time per step: sam: from the grid's cells (pairs run on one machine); gsam, "
        "looksam: timed on one machine (timing.jsonl); aesam: estimated from "
        "its share of SAM steps and those timings."
    )
    assert lines[-1] == "SAM there: 1.90x the baseline's time per step."


def _timed_grid(record: Path) -> None:
    """The fake grid, with GSAM and LookSAM timed on one machine at 2.0x and 1.1x."""
    methods = ["baseline", "sam", "gsam", "looksam", "aesam"]
    spec = GridSpec(tasks=["glue/sst2"], sizes=[100], methods=methods, seeds=3)
    compare(spec, record, backend=InlineBackend(), cell_fn=_variant_cell)
    seconds = {"baseline": 1.0, "sam": 1.9, "gsam": 2.0, "looksam": 1.1}
    timing = [
        {"task": "glue/sst2", "size": 100, "method": m, "machine": "vm/1", "cpu_step_s": t}
        for m, t in seconds.items()
    ]
    (record / "timing.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timing))


def test_cost_and_gain_are_the_tables_figures(tmp_path):
    _timed_grid(tmp_path)
    points = tables.cost_and_gain(tmp_path)
    assert set(points) == {"sam", "gsam", "looksam", "aesam"}
    rows = _rows(tmp_path)
    for method, (time, _, mean, low, high) in points.items():
        assert rows[method][1] == f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"
        assert rows[method][4] == f"{time:.2f}x"
        assert low < mean < high
    sources = {m: p[1] for m, p in points.items()}
    assert sources == {"sam": "grid", "gsam": "timed", "looksam": "timed", "aesam": "estimated"}


def test_the_script_prints_the_table_and_draws_the_plot(tmp_path):
    _timed_grid(tmp_path)
    png = tmp_path / "plots" / "cost_gain.png"  # its folder made
    run = [sys.executable, str(SCRIPT), "variants", "--record", str(tmp_path), "--plot", str(png)]
    out = subprocess.run(run, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == tables.variants_table(tmp_path) + "\n"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # no recorded store: exit 2, named, nothing drawn
    missing, nothing = tmp_path / "missing", tmp_path / "nothing.png"
    run = [
        sys.executable,
        str(SCRIPT),
        "variants",
        "--record",
        str(missing),
        "--plot",
        str(nothing),
    ]
    out = subprocess.run(run, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and str(missing) in out.stderr
    assert not nothing.exists()
