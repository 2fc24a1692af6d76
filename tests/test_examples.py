"""The scripts under examples/ run as their docstrings say, and their models learn."""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=600, cwd=cwd
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def _evaluation(out: str) -> dict:
    """The dict ``print(trainer.evaluate())`` wrote last."""
    return ast.literal_eval(out.strip().splitlines()[-1])


def test_plain_loop_trains_with_each_api():
    out = _run(str(EXAMPLES / "plain_loop.py"))
    sections = re.split(r"^\((?=[abc]: )", out, flags=re.M)[1:]
    assert [s[:2] for s in sections] == ["a:", "b:", "c:"], out
    for section in sections:
        losses = [float(v) for v in re.findall(r"mean loss (\d+\.\d+)", section)]
        accuracy = float(re.search(r"train accuracy (\d\.\d+)", section).group(1))
        assert losses[-1] < 0.5 * losses[0], section  # 3 classes: chance loss is ln 3 = 1.1
        assert accuracy > 0.8, section  # chance is 1/3


@pytest.mark.slow
def test_trainer_sst2_example_learns(tmp_path, data_dir):
    out = _run(
        str(EXAMPLES / "trainer_sst2.py"),
        *("--data-dir", str(data_dir), "--output", str(tmp_path / "run")),
    )
    assert _evaluation(out)["eval_accuracy"] > 0.6  # 256 dev examples; chance is about 0.5


@pytest.mark.slow
def test_trainer_t5_example_runs_offline(tmp_path, data_dir):
    out = _run(
        str(EXAMPLES / "trainer_t5.py"),
        *("--tiny", "--data-dir", str(data_dir), "--output", str(tmp_path / "run")),
    )
    scores = _evaluation(out)  # a tiny random T5: a smoke run, not a learning test
    assert math.isfinite(scores["eval_loss"])
    assert 0.0 <= scores["eval_exact_match"] <= scores["eval_f1"] <= 100.0


def test_sft_sam_example_runs_offline_with_packing_and_lora(tmp_path):
    pytest.importorskip("trl", reason="needs the trl extra")
    pytest.importorskip("peft", reason="needs the peft extra")
    out = _run(str(EXAMPLES / "sft_sam.py"), "--lora", "--output", str(tmp_path / "run"))
    result = _evaluation(out)
    assert result["steps"] == result["sam_steps"] == 6  # every step a SAM step
    rows, tokens = result["packed_batch_shape"]
    assert rows == 1 and 0 < result["completion_tokens"] < tokens  # packed; prompts masked
    assert math.isfinite(result["last_loss"]) and math.isfinite(result["last_loss_at_w_plus_e"])
    backup = int(re.search(r"backup of w\): (\d+) bytes", out).group(1))
    assert backup == 4 * result["trainable_parameters"]  # SAM's backup: the adapters (fp32)
