"""Ctrl-C (issue 40): ``samlm train`` stops with exit 130, the last checkpoint and the
``--resume`` command that goes on from it, no traceback, no process left; a second
Ctrl-C during the cleanup exits at once; ``SAMLM_DEBUG=1`` shows the traceback; ``samlm
sharpness`` says nothing is kept. (``samlm compare``'s: tests/compare/test_processes.py.)"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samlm.cli import main
from samlm.interrupt import continue_command

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}

# interrupt.run around a command that waits, then cleans up slowly when interrupted
SLOW_CLEANUP = """
import sys, time
from samlm import interrupt

def command():
    try:
        print("running", flush=True)
        time.sleep(120)
    finally:
        print("cleaning up", flush=True)
        time.sleep(float(sys.argv[1]))

sys.exit(interrupt.run("compare", ["compare"], command, lambda started: ["kept: all"]))
"""


def _start(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env or ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_line(process: subprocess.Popen, text: str) -> None:
    for line in process.stdout:
        if text in line:
            return
    raise AssertionError(f"{text!r} never printed")


def test_a_second_ctrl_c_during_the_cleanup_exits_at_once():
    p = _start([sys.executable, "-c", SLOW_CLEANUP, "120"])
    _wait_line(p, "running")
    os.killpg(p.pid, signal.SIGINT)
    _wait_line(p, "cleaning up")
    os.killpg(p.pid, signal.SIGINT)
    start = time.time()
    rest, _ = p.communicate(timeout=30)
    assert p.returncode == 130 and time.time() - start < 10
    assert "interrupted again: stopped at once" in rest and "Traceback" not in rest


@pytest.mark.parametrize("debug", ["", "1"])
def test_one_ctrl_c_says_what_is_kept_and_a_traceback_only_when_asked(debug):
    p = _start([sys.executable, "-c", SLOW_CLEANUP, "0"], env={**ENV, "SAMLM_DEBUG": debug})
    _wait_line(p, "running")
    os.killpg(p.pid, signal.SIGINT)
    rest, _ = p.communicate(timeout=30)
    assert p.returncode == 130
    assert "samlm compare: interrupted.\nkept: all\nTo go on: samlm compare\n" in rest
    assert ("Traceback" in rest) == bool(debug)


def test_the_command_that_goes_on_keeps_what_is_there():
    argv = ["compare", "--preset", "evidence", "--overwrite", "--output", "runs/my grid"]
    assert continue_command("compare", argv) == (
        "samlm compare --preset evidence --output 'runs/my grid'"
    )
    argv = ["train", "--task", "glue/sst2", "--overw", "--output", "r"]  # argparse's prefix
    assert continue_command("train", argv) == "samlm train --task glue/sst2 --output r --resume"
    assert continue_command("train", ["train", "--resume"]) == "samlm train --resume"


def test_ctrl_c_on_sharpness_says_nothing_is_kept(tmp_path, monkeypatch, capsys):
    import samlm.analysis.run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(samlm.analysis.run, "measure_run", interrupted)
    assert main(["sharpness", str(tmp_path), "--samples", "8"]) == 130
    err = capsys.readouterr().err
    assert "Nothing measured is kept" in err and "Traceback" not in err
    assert f"To go on: samlm sharpness {tmp_path} --samples 8" in err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.slow
def test_ctrl_c_stops_train_and_the_command_given_resumes(tmp_path, data_dir, tiny_bert_dir):
    out = tmp_path / "run"
    argv = ["train", "--task", "superglue/rte", "--model", str(tiny_bert_dir)]
    argv += ["--train-size", "32", "--eval-size", "16", "--batch-size", "8", "--max-length", "32"]
    argv += ["--max-steps", "300", "--save-steps", "20", "--data-dir", str(data_dir)]
    p = _start([sys.executable, "-m", "samlm", *argv, "--output", str(out)])
    deadline = time.time() + 300
    while not list(out.glob("checkpoints/checkpoint-*/trainer_state.json")):
        assert p.poll() is None and time.time() < deadline, p.communicate()[0]
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)
    text, _ = p.communicate(timeout=60)
    assert p.returncode == 130, text
    assert "samlm train: interrupted." in text and "Traceback" not in text
    (kept,) = [x for x in text.splitlines() if x.startswith("Kept: ")]
    checkpoint = Path(kept.split()[1])
    assert checkpoint.parent == out / "checkpoints" and checkpoint.is_dir()
    go_on = text.split("To go on: ")[1].splitlines()[0]
    assert go_on == shlex.join(["samlm", *argv, "--output", str(out), "--resume"])
    again = subprocess.run(
        [sys.executable, "-m", *shlex.split(go_on)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming from {checkpoint}" in again.stdout + again.stderr
    result = json.loads((out / "metrics.json").read_text())
    assert result["resumed_from"] == checkpoint.name and result["global_steps"] == 300
