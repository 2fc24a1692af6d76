"""bench/tables.py lora: the four arms paired on the seeds they share."""

from __future__ import annotations

from pathlib import Path

from bench import tables
from samlm.compare import GridSpec, compare

from .fake import InlineBackend, fake_cell

ROOT = Path(__file__).resolve().parents[2]


def _lora_cell(spec, cell, folder, threads, setting=None):
    """fake_cell, LoRA three points below it; LoRA + SAM's seed 2 never finishes."""
    record = fake_cell(spec, cell, folder, threads, setting)
    if cell["method"] == "sam" and cell["seed"] == 2:
        raise RuntimeError("killed")
    return {**record, "score": record["score"] - 3.0}


def test_four_arms_on_common_seeds(tmp_path):
    grid = dict(sizes=[250], methods=["baseline", "sam"], seeds=3)
    full, lora = tmp_path / "full", tmp_path / "lora"
    inline = InlineBackend()
    full_spec = GridSpec(tasks=["glue/sst2", "glue/cola"], **grid)
    compare(full_spec, full, backend=inline, cell_fn=fake_cell)
    lora_spec = GridSpec(tasks=["glue/sst2", "glue/rte"], peft="lora", **grid)
    compare(lora_spec, lora, backend=inline, cell_fn=_lora_cell)
    lines = tables.lora_table(lora, full).splitlines()
    sst2 = next(line for line in lines if line.startswith("| glue/sst2"))
    cells = [c.strip() for c in sst2.strip("|").split("|")]
    # seeds 0, 1 (LoRA + SAM lacks 2): baseline 70, 70.5; sam 72, 73; LoRA 3 below
    assert cells[1] == "2"
    assert cells[2:6] == ["70.25 ± 0.35", "72.50 ± 0.71", "67.25 ± 0.35", "69.50 ± 0.71"]
    assert cells[6].startswith("+2.25 [") and cells[7].startswith("+2.25 [")
    assert cells[8] == "**-3.00 [-3.00, -3.00]**"  # every seed exactly 3 below: significant
    rte = next(line for line in lines if line.startswith("| glue/rte"))
    rte = [c.strip() for c in rte.strip("|").split("|")]  # the full store has no RTE
    assert rte[1:4] == ["0", "not finished: full, full + SAM", "-"] and set(rte[3:]) == {"-"}
    assert len(rte) == len(cells)
    assert "1.90x with LoRA, 1.90x with full fine-tuning" in lines[-1]


def test_mean_over_the_tasks(tmp_path):
    grid = dict(tasks=["glue/sst2", "glue/cola"], sizes=[250], methods=["baseline", "sam"])
    full, lora = tmp_path / "full", tmp_path / "lora"
    inline = InlineBackend()
    compare(GridSpec(seeds=3, **grid), full, backend=inline, cell_fn=fake_cell)
    compare(GridSpec(seeds=3, peft="lora", **grid), lora, backend=inline, cell_fn=_lora_cell)
    lines = tables.lora_table(lora, full).splitlines()
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    # LoRA + SAM lacks seed 2 on both tasks: the mean pairs seeds 0 and 1 of each
    mean = [c.strip() for c in rows["mean over the 2 tasks (stratified bootstrap)"].split("|")]
    per_task = [[c.strip() for c in rows[t].split("|")] for t in grid["tasks"]]
    assert mean[2:7] == [""] * 5  # no seed count, no arm scores
    assert mean[-2] == "**-3.00 [-3.00, -3.00]**"  # LoRA exactly 3 below on every pair
    sam_lora = [float(row[-4].split()[0]) for row in per_task]  # the tasks' gains
    assert mean[-4].strip("*").startswith(f"{sum(sam_lora) / 2:+.2f} [")  # their mean
