"""`samlm train` and a two-cell `samlm compare` grid on the test device (``pytest --device
cuda``; on the CPU otherwise): where the weights were at every step, and what the grid's
records say of where their cells trained."""

from __future__ import annotations

import json
import math

import pytest
from transformers import TrainerCallback

from samlm.compare import compare
from samlm.pipeline import TrainConfig, train
from tests.helpers import tiny_spec


class WhereTrained(TrainerCallback):
    """The device types the model's weights were on at each step's end."""

    def __init__(self) -> None:
        self.devices: set[str] = set()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.devices.add(next(model.parameters()).device.type)


def test_train_takes_its_sam_steps_on_the_device(
    tmp_path, data_dir, tiny_bert_dir, pipeline_device
):
    """SAM with the quarter-batch ascent; on a GPU in bf16 (``--bf16`` is refused on a CPU)."""
    on_gpu = pipeline_device.type == "cuda"
    probe = WhereTrained()
    cfg = TrainConfig(
        task="glue/sst2",
        output=str(tmp_path / "run"),
        model=str(tiny_bert_dir),
        ascent_fraction=0.25,
        train_size=16,
        eval_size=16,
        epochs=1,
        batch_size=8,
        logging_steps=1,
        data_dir=str(data_dir),
        bf16=on_gpu,
    )
    result = train(cfg, callbacks=[probe], log=lambda *a: None)
    assert probe.devices == {pipeline_device.type}
    assert result["global_steps"] == 2 and 0 <= result["metrics"]["accuracy"] <= 100
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    perturbed = [r["sam_loss_perturbed"] for r in logs if "sam_loss_perturbed" in r]
    assert perturbed and all(math.isfinite(v) for v in perturbed)


# slow on a CPU (a spawned worker: ~25 s on 2 cores), where test_compare.py's tiny grid
# covers the same path; bench/device_check.sh runs it on CUDA
@pytest.mark.slow
def test_a_compare_grid_trains_its_cells_on_the_device(
    tmp_path, data_dir, tiny_bert_dir, pipeline_device
):
    """Baseline and SAM, one seed, in one spawned worker process."""
    spec = tiny_spec(model=tiny_bert_dir, data_dir=data_dir)
    records = compare(spec, tmp_path / "cmp", workers=1)
    assert sorted(r["method"] for r in records.values()) == ["baseline", "sam"]
    assert all(r["status"] == "ok" and r["steps"] == 2 for r in records.values())
    # a cell records its steps' CPU time on a CPU only: None says it trained on the GPU
    on_gpu = pipeline_device.type == "cuda"
    assert all((r["cpu_step_s"] is None) == on_gpu for r in records.values())
