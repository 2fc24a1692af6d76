"""bench/variants_cost.py: the warm-up steps left out; bad options refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from bench import variants_cost

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "variants_cost.py"


def test_the_clock_counts_the_steps_after_the_warm_up():
    clock = variants_cost.WarmClock()
    args = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    for step in range(1, variants_cost.WARMUP + 3):
        clock.on_step_begin(args, SimpleNamespace(global_step=step - 1), None)
        clock.on_step_end(args, SimpleNamespace(global_step=step), None)
    assert clock.steps == 2 and clock.cpu_per_step() is not None


def test_bad_options_exit_2_naming_them(tmp_path):
    run = [sys.executable, str(SCRIPT), "--data-dir", str(tmp_path), "--record", str(tmp_path)]
    out = subprocess.run([*run, "--steps", "3"], capture_output=True, text=True)
    assert out.returncode == 2 and "--steps 3 must be > 3" in out.stderr
    out = subprocess.run(run, capture_output=True, text=True)
    assert out.returncode == 2 and f"no compare store in {tmp_path}" in out.stderr
    assert not (tmp_path / variants_cost.TIMING_FILE).exists()
