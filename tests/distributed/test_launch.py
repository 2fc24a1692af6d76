"""``samlm train`` under ``torchrun --nproc_per_node 2`` and ``accelerate launch
--multi_gpu --num_processes 2`` (DDP on gloo) writes what a single-process run writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

BATCH, TRAIN, EPOCHS, WORLD = 4, 32, 2, 2
TEARDOWN_ABORT = "terminate called without an active exception"
LAUNCHERS = {
    "torchrun": ("torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD)),
    # accelerate's passthrough to torchrun; --multi_gpu also on CPUs (--cpu is one process)
    "accelerate": ("accelerate.commands.launch", "--multi_gpu", "--num_processes", str(WORLD)),
}


@pytest.mark.parametrize(
    "launcher, mode",
    [
        ("torchrun", "per_replica"),
        # the synchronized mode's maths is checked in-process (test_trainer_ddp.py); its
        # launch differs only by the flag
        pytest.param("torchrun", "synchronized", marks=pytest.mark.slow),
        # the same run under accelerate's launcher (11 s): make test-slow, as CI runs it
        pytest.param("accelerate", "per_replica", marks=pytest.mark.slow),
    ],
)
def test_launched_train_writes_a_complete_run(tmp_path, data_dir, tiny_bert_dir, launcher, mode):
    out = tmp_path / "run"
    command = [
        *(sys.executable, "-m", *LAUNCHERS[launcher]),
        *("-m", "samlm", "train", "--task", "glue/sst2"),
        *("--model", str(tiny_bert_dir), "--data-dir", str(data_dir), "--output", str(out)),
        *("--ascent-fraction", "0.5", "--train-size", str(TRAIN), "--eval-size", "16"),
        *("--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--logging-steps", "1"),
        *("--distributed-sam", mode, "--no-progress"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    if done.returncode != 0 and TEARDOWN_ABORT in done.stderr and (out / "metrics.json").is_file():
        # a C++ abort in a rank's shutdown, after the run was complete: seen about once in
        # 15 launches of this file on a loaded 2-core machine, with release 0.1.0 too
        # (2026-11-30); launched once more, from scratch, the run must succeed
        shutil.rmtree(out)
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("-> ") == 1, done.stdout  # the summary line, once

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "sam" and 0 <= metrics["metrics"]["accuracy"] <= 100
    # each process takes BATCH examples a step: the global batch is WORLD * BATCH
    assert metrics["global_steps"] == TRAIN // (BATCH * WORLD) * EPOCHS
    options = yaml.safe_load((out / "config.yaml").read_text())["options"]
    assert options["distributed_sam"] == mode
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "sam_loss_perturbed" in r]
    assert len(steps) == metrics["global_steps"]  # one line per step, from rank 0 only
    for r in steps:  # both losses on one scale: the mean loss of a process's examples
        assert 0.5 < r["sam_loss_perturbed"] / r["loss"] < 2
    assert (out / "best" / "config.json").is_file()
    assert len(list((out / "tensorboard").iterdir())) == 1  # one writer
    assert not (out / "checkpoints").exists()
