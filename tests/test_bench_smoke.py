"""The benchmark scripts still run (``make test-slow``): bench/step_overhead.py --quick
(also --lora), bench/distributed.py, whose byte counts are exact and checked here, and
bench/grid_schedule.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.slow


def _run(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_step_overhead_quick_prints_every_ratio():
    pytest.importorskip("pytorch_optimizer", reason="needs the bench extra")
    out = _run(str(BENCH / "step_overhead.py"), "--quick")
    for label in ("sam / plain_fb", "sam_quarter / plain_fbq", "sam / peer"):
        assert re.search(rf"^{re.escape(label)} +\d+\.\d{{3}} +\d+\.\d{{3}} ", out, re.M), out
    # the backups are exactly the perturbed parameters' bytes
    assert re.search(r"^sam extra state / perturbed params +1\.000 .*PASS$", out, re.M), out
    for name in ("sam", "sam_quarter", "peer"):  # the own-work rows
        assert re.search(rf"^{name} +\d+\.\d +\d+\.\d%", out, re.M), out
    # Eigen-SAM between refreshes and at a refresh step (5 products), and amortised
    for name in ("eigensam", "eigensam_refresh"):
        assert re.search(rf"^{name} +\d+\.\d +1\.00 ", out, re.M), out
    assert re.search(r"^Eigen-SAM: a refresh step \(5 Hessian-vector products", out, re.M), out
    for name in ("tasksam_2", "tasksam_3"):  # TaskSAM: a SAM step every call
        assert re.search(rf"^{name} +\d+\.\d +1\.00 ", out, re.M), out


def test_distributed_bench_counts_the_bytes_of_each_mode():
    out = _run(str(BENCH / "distributed.py"))
    rows = {
        tuple(line.split()[:3]): line.split()
        for line in out.splitlines()
        if line.startswith(("ddp ", "fsdp "))
    }
    per_replica = rows[("ddp", "SAM", "per_replica")]
    synchronized = rows[("ddp", "SAM", "synchronized")]
    assert per_replica[-3:-1] == ["4B", "1.000"]  # a 4-byte flag, no gradient traffic
    assert synchronized[-2] == "2.000"  # the ascent gradients once more
    assert rows[("fsdp", "SAM", "synchronized")][-2] == "2.000"


def test_step_overhead_lora_quick_prints_every_step():
    pytest.importorskip("peft", reason="needs the peft extra")
    out = _run(str(BENCH / "step_overhead.py"), "--lora", "--quick")
    for name in ("lora", "lora_sam", "lora_flat", "lora_bar"):
        assert re.search(rf"^{name} +\d+\.\d +\d+\.\d{{3}} ", out, re.M), out
    assert re.search(r"^lora +\d+\.\d +1\.000 ", out, re.M), out  # the reference


def test_step_overhead_runs_a_subset_on_a_random_bert_under_bf16_autocast():
    """The options bench/device_check.sh uses on a GPU, here on the CPU: only the ratios
    whose variants ran are printed."""
    out = _run(
        str(BENCH / "step_overhead.py"),
        "--quick",
        "--model",
        "bert-tiny",
        "--autocast",
        "bf16",
        "--variants",
        "plain,fb,plain_fb,sam,gsam",
    )
    assert re.search(r"^bert-tiny, 4\.\dM parameters, on cpu, autocast bf16", out, re.M), out
    assert re.search(r"^sam / plain_fb +\d+\.\d{3} ", out, re.M), out
    assert "sam / peer" not in out and "sam_quarter" not in out
    assert re.search(r"^gsam +\d+\.\d +1\.00 ", out, re.M), out  # GSAM: a SAM step each call


def test_grid_schedule_runs_both_orders_on_the_same_cells():
    out = _run(str(BENCH / "grid_schedule.py"), "--scale", "0.01", "--rounds", "1")
    assert re.search(r"^72 cells, 2 workers; their sleep over the workers: \d+\.\d s$", out, re.M)
    assert re.search(
        r"^round 1: plan \d+\.\d s, barrier \d+\.\d s, barrier / plan \d+\.\d\dx$", out, re.M
    ), out
