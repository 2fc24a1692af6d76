"""`samlm sharpness` on `samlm train --peft lora` runs (tiny random BERT on a slice of SST-2;
GPT-2 and T5 on CB): the adapter loads back onto the rebuilt base model as the run
trained it, ``trained`` measures the adapters and head, ``merged`` every weight of the
merged model, and ``best/`` is left as it was."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    TrainerCallback,
)

from samlm.analysis import hf_loss, measure_run
from samlm.analysis.saved_run import batches_for, read_run
from samlm.cli import main
from samlm.pipeline import TrainConfig, train
from samlm.pipeline.job import task_splits
from samlm.tasks import get_task

pytest.importorskip("peft", reason="needs the peft extra")

FAST = dict(samples=None, batch_size=8, steps=1, m=0, hessian_iters=0, probes=0, grid=0)
QUIET = dict(progress=False, write=False)


class Keep(TrainerCallback):
    """The Trainer's model and tokenizer at the end of training (the best checkpoint,
    loaded back): what ``best/`` saves."""

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        self.model, self.tokenizer = model, processing_class


def _train(out, **options):
    keep = Keep()
    train(TrainConfig(output=str(out), peft="lora", progress=False, **options), callbacks=[keep],
          log=lambda *a: None)  # fmt: skip
    return out, keep


def _files(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _in_memory_loss(run, keep):
    """The centre loss of the Trainer's own model on the batches measure_run measures
    (every training example, in order, in batches of 8), weighted as the measures weight."""
    run = read_run(run)
    task = get_task(run.config.task)
    examples = task_splits(task, run.data, run.config).train
    model = keep.model.eval()
    batches = batches_for(run, task, examples, model, keep.tokenizer, 8)
    with torch.no_grad():
        losses = [(len(b["labels"]), float(hf_loss(model, b).double())) for b in batches]
    return sum(n * loss for n, loss in losses) / sum(n for n, _ in losses)


def _check_both_views(run, keep, base):
    """``trained``: the adapter file's parameters, the Trainer's trainable ones, at the
    Trainer's loss; ``merged``: every parameter of the base architecture, at that loss."""
    best = run / "best"
    before = _files(best)
    saved = load_file(best / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in saved.items())  # B moved off 0
    trained = measure_run(run, **FAST, **QUIET)
    assert (trained["peft"], trained["weights"]) == ("lora", "trained")
    assert trained["parameters"] == sum(v.numel() for v in saved.values())
    trainable = sum(p.numel() for p in keep.model.parameters() if p.requires_grad)
    assert trained["parameters"] == trainable
    assert trained["loss"] == pytest.approx(_in_memory_loss(run, keep), abs=1e-6)
    merged = measure_run(run, weights="merged", **FAST, **QUIET)
    assert merged["weights"] == "merged"
    assert merged["parameters"] == sum(p.numel() for p in base.parameters())
    assert merged["loss"] == pytest.approx(trained["loss"], abs=1e-5)  # the same function
    assert merged["sharpness"]["sharpness"] != trained["sharpness"]["sharpness"]
    assert _files(best) == before  # best/ only read
    return trained, merged


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory, sst2_data_dir, tiny_bert_dir):
    return _train(
        tmp_path_factory.mktemp("runs") / "sst2-sam-lora",
        task="glue/sst2", model=str(tiny_bert_dir), optimizer="sam", lora_targets="query,value",
        train_size=24, eval_size=16, max_steps=3, batch_size=8, eval_batch_size=16,
        learning_rate=1e-2, seed=3, data_dir=str(sst2_data_dir),
    )  # fmt: skip


def test_an_encoder_lora_run_measures_its_adapters_and_head_or_the_merged_model(
    bert_run, tiny_bert_dir
):
    run, keep = bert_run
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    trained, merged = _check_both_views(run, keep, base)
    saved = load_file(run / "best" / "adapter_model.safetensors")
    assert {k.split(".")[-2] for k in saved} == {"lora_A", "lora_B", "classifier"}
    assert trained["parameters"] < merged["parameters"]


def test_samlm_sharpness_weights_option(bert_run, capsys):
    run, _ = bert_run
    fast = ["--samples", "8", "--steps", "1", "--m-examples", "0", "--hessian-iters", "0",
            "--probes", "0", "--grid", "0", "--no-progress"]  # fmt: skip
    assert main(["sharpness", str(run), "--weights", "merged", *fast]) == 0
    printed = capsys.readouterr()
    assert "merged: " in printed.out
    assert "it/s]" not in printed.err  # --no-progress: not even the weight-loading bar
    written = json.loads((run / "sharpness" / "sharpness.json").read_text())
    assert (written["weights"], written["peft"], written["samples"]) == ("merged", "lora", 8)
    with pytest.raises(SystemExit) as exit_:
        main(["sharpness", str(run), "--weights", "both"])
    assert exit_.value.code == 2 and "invalid choice: 'both'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"weights='both' must be one of trained, merged"):
        measure_run(run, weights="both", **QUIET)


def test_a_lora_run_without_peft_names_the_install_command(bert_run, monkeypatch):
    run, _ = bert_run
    monkeypatch.setitem(__import__("sys").modules, "peft", None)  # as if not installed
    with pytest.raises(ValueError, match=r"--peft lora run needs the peft package: pip install"):
        measure_run(run, **FAST, **QUIET)


@pytest.mark.parametrize(
    ("fixture", "auto"),
    [("tiny_gpt2_dir", AutoModelForCausalLM), ("tiny_t5_dir", AutoModelForSeq2SeqLM)],
)
def test_a_generative_lora_run(request, tmp_path, data_dir, fixture, auto):
    folder = request.getfixturevalue(fixture)
    run, keep = _train(
        tmp_path / "lora", task="superglue/cb", model=str(folder), train_size=8, eval_size=4,
        max_steps=3, batch_size=4, max_length=48, max_target_length=4, learning_rate=1e-2,
        data_dir=str(data_dir),
    )  # fmt: skip
    _check_both_views(run, keep, auto.from_pretrained(folder))
    saved = load_file(run / "best" / "adapter_model.safetensors")
    assert {k.split(".")[-2] for k in saved} == {"lora_A", "lora_B"}  # the LM head stays
