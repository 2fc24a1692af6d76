"""The device check's parts that run here: ``pytest --device`` and bench/device_prep.py
(the slimmed wheel, the grid's summary, the random model of a staged config)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from bench import device_prep

ROOT = Path(__file__).resolve().parents[1]


def _pytest(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-ra", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    return done.stdout + done.stderr


@pytest.mark.slow  # a pytest in a subprocess: ~25 s on 2 shared cores
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_device_cuda_skips_the_device_tests_alone_saying_why():
    out = _pytest("--device", "cuda", "tests/optim/test_dropout.py", "tests/optim/test_engine.py")
    # test_dropout's 3 tests take a device, test_engine's do not
    assert "3 skipped" in out and "deselected" in out and "passed" not in out, out
    assert "--device cuda: this machine has no CUDA device" in out


@pytest.mark.slow
def test_device_cpu_runs_the_device_tests_alone():
    out = _pytest("--device", "cpu", "tests/optim/test_dropout.py", "tests/optim/test_engine.py")
    assert "3 passed" in out and "deselected" in out and "skipped" not in out, out


def _wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name in ("ray/__init__.py", "ray/jars/ray_dist.jar", "ray/dashboard/main.js.map"):
            z.writestr(name, "x" * 100)
        binary = zipfile.ZipInfo("ray/core/raylet")
        binary.external_attr = (stat.S_IFREG | 0o755) << 16
        z.writestr(binary, "elf")
        record = "".join(f"{n},sha256=abc,100\n" for n in z.namelist())
        z.writestr("ray-1.0.dist-info/RECORD", record + "ray-1.0.dist-info/RECORD,,\n")


def test_slim_wheel_drops_the_jars_and_source_maps_and_their_record_lines(tmp_path):
    wheel = tmp_path / "ray-1.0-cp312-cp312-manylinux2014_x86_64.whl"
    _wheel(wheel)
    before, after = device_prep.slim_wheel(wheel)
    assert after < before
    with zipfile.ZipFile(wheel) as z:
        assert sorted(z.namelist()) == [
            "ray-1.0.dist-info/RECORD",
            "ray/__init__.py",
            "ray/core/raylet",
        ]
        record = z.read("ray-1.0.dist-info/RECORD").decode()
        assert "jars" not in record and ".js.map" not in record and "ray/core/raylet," in record
        assert z.getinfo("ray/core/raylet").external_attr >> 16 & 0o111  # still executable


def test_grid_summary_says_where_each_cell_trained(tmp_path):
    records = [
        {"method": "baseline", "seed": 0, "status": "ok", "score": 81.5, "steps": 200,
         "train_time_s": 12.0, "cpu_step_s": None, "error": None},
        {"method": "sam", "seed": 0, "status": "failed", "score": None, "steps": None,
         "train_time_s": None, "cpu_step_s": None, "error": "CUDA out of memory"},
        {"method": "sam", "seed": 1, "status": "ok", "score": 80.0, "steps": 2,
         "train_time_s": 3.0, "cpu_step_s": 0.4, "error": None},
    ]  # fmt: skip
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    lines = device_prep.grid_summary(tmp_path)
    expected = "baseline seed 0 ok score 81.50 steps 200 train 12.0 s on GPU"
    assert lines[0].split() == expected.split()
    assert lines[1].endswith("error: CUDA out of memory")
    assert lines[2].endswith("on CPU")


def test_random_model_has_the_staged_config_and_tokenizer(tmp_path, tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    for name in ("a", "b"):
        device_prep.random_model(tiny_bert_dir, tmp_path / name)
    a, b = (AutoModelForSequenceClassification.from_pretrained(tmp_path / n) for n in "ab")
    assert a.config.hidden_size == 16 and a.config.num_labels == 2  # tiny_bert_dir's
    assert AutoTokenizer.from_pretrained(tmp_path / "a").vocab_size > 1000  # MiniLM's
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
