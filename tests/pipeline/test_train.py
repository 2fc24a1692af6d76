"""`samlm train` end to end: outputs, resume, text-to-text, and clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from transformers import TrainerCallback

from samlm.cli import main
from samlm.pipeline import TrainConfig, train


def _run(tmp_path, data_dir, *extra: str, name: str = "run") -> Path:
    out = tmp_path / name
    code = main(["train", "--data-dir", str(data_dir), "--output", str(out), *extra])
    assert code == 0
    return out


def test_train_writes_its_outputs(tmp_path, data_dir, tiny_bert_dir):
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "glue/sst2",
        "--model",
        str(tiny_bert_dir),
        "--optimizer",
        "sam",
        "--ascent-fraction",
        "0.25",
        "--train-size",
        "32",
        "--eval-size",
        "32",
        "--epochs",
        "2",
        "--logging-steps",
        "1",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "glue/sst2" and metrics["method"] == "sam"
    assert 0 <= metrics["metrics"]["accuracy"] <= 100
    assert metrics["train_examples"] == 32 and metrics["reported_examples"] == 32
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["options"]["ascent_fraction"] == 0.25 and config["resolved"]["rho"] == 0.05
    # the learning rate it ran at: none given, AdamW's default
    assert metrics["learning_rate"] == config["resolved"]["learning_rate"] == 1e-4
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("sam_loss_perturbed" in r for r in logs)
    assert sum("eval_accuracy" in r for r in logs) == 2  # every epoch
    assert sum("selected_accuracy" in r for r in logs) == 1  # then the best model
    assert (out / "best" / "config.json").is_file()
    assert any((out / "tensorboard").iterdir())
    assert not (out / "checkpoints").exists()


def test_same_subset_for_every_method(tmp_path, data_dir, tiny_bert_dir, monkeypatch):
    """Every method trains, selects and reports on the same examples, in the same order."""
    from samlm.pipeline import job

    seen = []
    original = job.task_splits

    def recording(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(job, "task_splits", recording)
    common = [
        "--task",
        "superglue/cb",
        "--model",
        str(tiny_bert_dir),
        "--train-size",
        "20",
        "--eval-size",
        "16",
        "--max-steps",
        "1",
    ]
    a = _run(tmp_path, data_dir, *common, "--optimizer", "baseline", name="a")
    b = _run(tmp_path, data_dir, *common, "--optimizer", "asam", name="b")
    for out in (a, b):
        assert json.loads((out / "metrics.json").read_text())["train_examples"] == 20
    assert len(seen) == 2
    for role in ("train", "validation", "reported"):
        first, second = (getattr(splits, role) for splits in seen)
        assert first and first == second, role


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("killed")


def _rte_resume_options(data_dir, model_dir, **changes) -> dict:
    """A tiny RTE run of 8 steps, a checkpoint every 2: the resume tests' options."""
    options = dict(
        task="superglue/rte",
        model=str(model_dir),
        train_size=32,
        eval_size=32,
        epochs=2,
        batch_size=8,
        save_steps=2,
        data_dir=str(data_dir),
        learning_rate=1e-3,
    )
    return {**options, **changes}


def test_resume_after_a_kill_ends_with_the_same_metrics(tmp_path, data_dir, tiny_bert_dir):
    options = _rte_resume_options(data_dir, tiny_bert_dir, probability=0.5)
    full = train(TrainConfig(output=str(tmp_path / "full"), **options), log=lambda *a: None)
    killed = TrainConfig(output=str(tmp_path / "killed"), **options)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[Kill()], log=lambda *a: None)
    assert (tmp_path / "killed" / "checkpoints" / "checkpoint-2").is_dir()
    # killed while writing the next checkpoint: it has no trainer_state.json, and the run
    # resumes from the last complete one
    half = tmp_path / "killed" / "checkpoints" / "checkpoint-4"
    half.mkdir()
    (half / "config.json").write_text("{}")
    resumed = train(killed, resume=True, log=lambda *a: None)
    assert resumed["metrics"] == full["metrics"]
    assert resumed["global_steps"] == full["global_steps"] == 8


def test_eigensam_resumes_across_refreshes_with_the_same_losses(tmp_path, data_dir, tiny_bert_dir):
    """Refreshes at every step from clock 1, warm-started: killed after 3 steps, resumed
    from checkpoint-2 (v of the refresh at clock 1 in its SAM state), the resumed run
    logs the uninterrupted run's L(w + e) at every step and ends with its metrics."""
    options = _rte_resume_options(
        data_dir,
        tiny_bert_dir,
        optimizer="eigensam",
        eigensam_refresh=1,
        eigensam_iterations=3,
        alpha=0.5,
        logging_steps=1,
    )
    full = train(TrainConfig(output=str(tmp_path / "full"), **options), log=lambda *a: None)
    killed = TrainConfig(output=str(tmp_path / "killed"), **options)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[Kill()], log=lambda *a: None)
    saved = torch.load(
        tmp_path / "killed" / "checkpoints" / "checkpoint-2" / "optimizer.pt", weights_only=True
    )
    assert saved["sam"]["variant"]["refreshed_at"] == 1 and saved["sam"]["variant"]["v"]
    resumed = train(killed, resume=True, log=lambda *a: None)
    assert resumed["metrics"] == full["metrics"]

    def losses(run):  # each step's L(w + e), as logged (a float per step)
        rows = [
            json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()
        ]
        return {r["step"]: r["sam_loss_perturbed"] for r in rows if "sam_loss_perturbed" in r}

    assert losses("killed") == losses("full") and len(losses("full")) == 8


class KillAfterLog(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == 3:  # step 3 is in log.jsonl, past checkpoint-2
            raise KeyboardInterrupt("killed")


def test_a_resumed_run_logs_each_step_once(tmp_path, data_dir, tiny_bert_dir):
    options = _rte_resume_options(
        data_dir, tiny_bert_dir, train_size=16, eval_size=16, logging_steps=1
    )

    def rows(out):
        logs = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
        return [(r["step"], r.get("loss"), r.get("eval_accuracy")) for r in logs]

    train(TrainConfig(output=str(tmp_path / "full"), **options), log=lambda *a: None)
    killed = TrainConfig(output=str(tmp_path / "killed"), **options)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[KillAfterLog()], log=lambda *a: None)
    assert 3 in [step for step, *_ in rows(tmp_path / "killed")]
    train(killed, resume=True, log=lambda *a: None)
    assert rows(tmp_path / "killed") == rows(tmp_path / "full")


def test_text2text_with_a_tiny_t5(tmp_path, data_dir, tiny_t5_dir):
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "qa/webquestions",
        "--model",
        str(tiny_t5_dir),
        "--train-size",
        "16",
        "--eval-size",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-target-length",
        "8",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["modelling"] == "text2text" and metrics["rho"] == 0.15  # Bahri et al.
    assert metrics["base_optimizer"] == "adafactor" and metrics["learning_rate"] == 1e-3
    assert set(metrics["metrics"]) >= {"exact_match", "f1"}
    # an exact match scores F1 100, so the mean F1 is at least the mean exact match
    assert 0 <= metrics["metrics"]["exact_match"] <= metrics["metrics"]["f1"] <= 100
    assert metrics["global_steps"] == 2


def test_yaml_config_and_flags(tmp_path, data_dir, tiny_bert_dir):
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "glue/cola",
                "model": str(tiny_bert_dir),
                "train-size": 16,
                "eval_size": 16,
                "max_steps": 1,
                "rho": 0.3,
            }
        )
    )
    out = _run(tmp_path, data_dir, "--config", str(config), "--rho", "0.2")
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["options"]["rho"] == 0.2 and saved["options"]["train_size"] == 16
    assert "matthews" in json.loads((out / "metrics.json").read_text())["metrics"]


@pytest.mark.slow
def test_minilm_fits_an_sst2_slice_with_the_quarter_batch_ascent(tmp_path, data_dir):
    """The installed MiniLM on real data: 40 SAM steps (quarter-batch ascent) over 64
    examples drive the training loss well below its start."""
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "glue/sst2",
        "--train-size",
        "64",
        "--eval-size",
        "64",
        "--max-steps",
        "40",
        "--logging-steps",
        "5",
        "--ascent-fraction",
        "0.25",
    )
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in logs if "loss" in r and "eval_loss" not in r]
    assert len(losses) == 9 and all(map(math.isfinite, losses))  # step 1, then every 5
    assert losses[-1] < 0.5 * losses[0], losses
    assert [r["sam_steps"] for r in logs if "sam_steps" in r] == [1.0] * 9
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_steps"] == 40 and metrics["train_examples"] == 64


@pytest.mark.slow
def test_text2text_with_minilm_warm_started_encoder_decoder(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("SAMLM_CACHE", str(tmp_path / "cache"))
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "superglue/rte",
        "--model",
        "minilm-seq2seq",
        "--modelling",
        "text2text",
        "--train-size",
        "16",
        "--eval-size",
        "8",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--max-target-length",
        "4",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["modelling"] == "text2text" and metrics["base_optimizer"] == "adamw"
    assert metrics["global_steps"] == 2
    # accuracy over the 8 generated answers: a whole number of them
    assert metrics["metrics"]["accuracy"] * 8 / 100 in range(9)
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "sam_loss_perturbed" in r]
    assert steps and all(math.isfinite(r["loss"]) and r["sam_steps"] == 1.0 for r in steps)


def test_exclude_head_and_sam_start_step_reach_the_run(tmp_path, data_dir, tiny_bert_dir):
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "glue/sst2",
        "--model",
        str(tiny_bert_dir),
        "--train-size",
        "16",
        "--eval-size",
        "16",
        "--batch-size",
        "8",
        "--max-steps",
        "3",
        "--logging-steps",
        "1",
        "--exclude-head",
        "--sam-start-step",
        "2",
    )
    options = yaml.safe_load((out / "config.yaml").read_text())["options"]
    assert options["exclude_head"] is True and options["sam_start_step"] == 2
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["sam_steps"] for r in logs if "sam_steps" in r] == [0.0, 0.0, 1.0]


def test_exclude_head_is_refused_for_text2text_before_anything_is_written(tmp_path, tiny_t5_dir):
    cfg = TrainConfig(
        task="qa/webquestions",
        model=str(tiny_t5_dir),
        output=str(tmp_path / "o"),
        exclude_head=True,
    )
    with pytest.raises(ValueError, match=r"exclude_head.*text2text"):
        train(cfg, log=lambda *a: None)
    assert not (tmp_path / "o").exists()


def test_resume_of_a_run_saved_before_an_option_existed(tmp_path):
    """A run folder whose config.yaml predates an option resumes with its default."""
    from samlm.pipeline.run import _check_output, _prepare_output

    cfg = TrainConfig(task="glue/sst2", output=str(tmp_path / "run"))
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("exclude_head", "sam_start_step")}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump({"options": old}))
    _check_output(cfg, resume=True, overwrite=False)
    assert _prepare_output(cfg, resume=True, overwrite=False) is None
    changed = TrainConfig(task="glue/sst2", output=str(tmp_path / "run"), sam_start_step=3)
    with pytest.raises(ValueError, match="sam_start_step: 0 -> 3"):
        _check_output(changed, resume=True, overwrite=False)


def test_resume_of_a_moved_run_folder(tmp_path, monkeypatch):
    """The folder's path is not an option: a run saved as ``runs/x`` resumes when named
    by its absolute path (as compare's backends name cells) or after a move."""
    from samlm.pipeline.run import _check_output

    monkeypatch.chdir(tmp_path)
    saved = TrainConfig(task="glue/sst2", output="runs/x").to_dict()
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "config.yaml").write_text(yaml.safe_dump({"options": saved}))
    _check_output(
        TrainConfig(task="glue/sst2", output=str(tmp_path / "moved")), resume=True, overwrite=False
    )
    with pytest.raises(ValueError, match="seed: 0 -> 1"):
        _check_output(
            TrainConfig(task="glue/sst2", output=str(tmp_path / "moved"), seed=1),
            resume=True,
            overwrite=False,
        )


@pytest.mark.parametrize("optimizer", ["gsam", "looksam", "aesam", "eigensam"])
def test_train_runs_the_variants(tmp_path, data_dir, tiny_bert_dir, optimizer):
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "glue/sst2",
        "--model",
        str(tiny_bert_dir),
        "--optimizer",
        optimizer,
        *(["--looksam-k", "2"] if optimizer == "looksam" else []),
        *(["--eigensam-refresh", "2", "--alpha", "0.3"] if optimizer == "eigensam" else []),
        "--train-size",
        "32",
        "--eval-size",
        "16",
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--logging-steps",
        "1",
    )
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["options"]["optimizer"] == optimizer
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    shares = [r["sam_steps"] for r in logs if "sam_steps" in r]
    # looksam k=2: SAM, reuse, SAM, reuse; gsam: a SAM step every step; aesam: its first
    # step is a SAM step (its statistics start at 0), the others as the gradient norm says
    if optimizer == "aesam":
        assert len(shares) == 4 and shares[0] == 1.0 and set(shares) <= {0.0, 1.0}
    else:
        assert shares == ([1.0, 0.0, 1.0, 0.0] if optimizer == "looksam" else [1.0] * 4)
    assert json.loads((out / "metrics.json").read_text())["method"] == optimizer


def test_asam_without_rho_runs_at_its_authors_radius(tmp_path, data_dir, tiny_bert_dir):
    """ASAM's neighbourhood is scale-invariant: its authors' code defaults to rho 0.5,
    ten times SAM's 0.05, and samlm train (like samlm compare) takes that."""
    out = _run(
        tmp_path, data_dir, "--task", "glue/sst2", "--model", str(tiny_bert_dir),
        "--optimizer", "asam", "--train-size", "16", "--eval-size", "8", "--max-steps", "1",
    )  # fmt: skip
    assert yaml.safe_load((out / "config.yaml").read_text())["resolved"]["rho"] == 0.5


def test_train_config_gives_gsam_its_papers_rho_schedule():
    cfg = TrainConfig(task="glue/sst2", output="x", optimizer="gsam", rho_min=0.01)
    sam = cfg.sam_config(0.05)
    assert (sam.rho_schedule, sam.rho_min, sam.variant) == ("lr", 0.01, "gsam")
    assert TrainConfig(task="glue/sst2", output="x").sam_config(0.05).rho_schedule == "constant"
    with pytest.raises(ValueError, match="interval=2 with variant='looksam'"):
        TrainConfig(task="glue/sst2", output="x", optimizer="looksam", interval=2)


def test_train_with_lora_saves_the_adapter_and_resumes_exactly(tmp_path, data_dir, tiny_bert_dir):
    pytest.importorskip("peft", reason="needs the peft extra")
    options = dict(
        task="glue/sst2",
        model=str(tiny_bert_dir),
        peft="lora",
        lora_targets="query,value",
        train_size=32,
        eval_size=16,
        epochs=2,
        batch_size=8,
        save_steps=2,
        data_dir=str(data_dir),
        learning_rate=1e-3,
    )
    full = train(TrainConfig(output=str(tmp_path / "full"), **options), log=lambda *a: None)
    best = tmp_path / "full" / "best"
    assert (best / "adapter_config.json").is_file()  # PEFT's format: the adapter only
    assert not (best / "model.safetensors").exists()
    killed = TrainConfig(output=str(tmp_path / "killed"), **options)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[Kill()], log=lambda *a: None)
    resumed = train(killed, resume=True, log=lambda *a: None)
    assert resumed["metrics"] == full["metrics"]
    assert resumed["global_steps"] == full["global_steps"] == 8


def test_lora_errors_name_the_option(tmp_path, data_dir, tiny_bert_dir, monkeypatch, capsys):
    pytest.importorskip("peft", reason="needs the peft extra")
    common = ["--task", "glue/sst2", "--model", str(tiny_bert_dir), "--train-size", "16"]
    bad = ["train", "--data-dir", str(data_dir), "--output", str(tmp_path / "a"), *common]
    assert main([*bad, "--peft", "lora", "--lora-targets", "no_such_module"]) == 2
    err = capsys.readouterr().err
    assert "--peft lora cannot wrap" in err and "query" in err  # it lists what can be adapted
    assert not (tmp_path / "a").exists()  # nothing written
    monkeypatch.setitem(__import__("sys").modules, "peft", None)  # as if not installed
    out = tmp_path / "b"
    assert main(["train", "--output", str(out), *common, "--peft", "lora"]) == 2
    assert "pip install 'samlm[peft]'" in capsys.readouterr().err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("progress", [True, False])
def test_no_progress_silences_every_bar(tmp_path, data_dir, tiny_bert_dir, capfd, progress):
    """--no-progress: no bar of the Trainer, the weight loading or saving (the libraries'
    switches come back as they were); with --progress, all of them show on stderr."""
    import datasets
    from transformers.utils import logging

    args = [
        "train", "--task", "glue/sst2", "--model", str(tiny_bert_dir),
        "--optimizer", "baseline", "--train-size", "16", "--eval-size", "16",
        "--max-steps", "2", "--batch-size", "8", "--output", str(tmp_path / "run"),
        "--data-dir", str(data_dir), "--progress" if progress else "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    err = capfd.readouterr().err
    bars = [line for line in err.replace("\r", "\n").splitlines() if "it/s]" in line]
    names = {line.partition(":")[0].strip() for line in bars if "%|" in line}
    if progress:
        assert {"Loading weights", "Writing model shards"} <= names, err
    else:
        assert not bars, err
    assert logging.is_progress_bar_enabled() and datasets.is_progress_bar_enabled()


def _dropout_free(kind: str, folder: Path, tokenizer) -> Path:
    """A tiny random BERT classifier or T5 without dropout (so that a batch and its
    micro-batches see the same network)."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(0)
    if kind == "bert":
        config = BertConfig(
            vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=32, max_position_embeddings=128,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )  # fmt: skip
        BertForSequenceClassification(config).save_pretrained(folder)
    else:
        config = T5Config(
            vocab_size=tokenizer.vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1,
            num_heads=2, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "kind, optimizer",
    [
        ("bert", "baseline"),
        pytest.param("t5", "baseline", marks=pytest.mark.slow),
        pytest.param("llama", "baseline", marks=pytest.mark.slow),
        pytest.param("bert", "sam", marks=pytest.mark.slow),
    ],
)
def test_gradient_accumulation_trains_as_the_whole_batch(
    tmp_path, data_dir, tokenizer, request, kind, optimizer
):
    """2 micro-batches of 4 train as one batch of 8 (these heads take **kwargs without
    using them, so the Trainer would leave each micro-batch's mean loss undivided: twice
    the gradient). A classifier's mean over examples: the same losses and weights; T5's
    mean over each micro-batch's tokens: the same scale; a causal LM's loss over the
    step's tokens (the Trainer's num_items_in_batch): the same losses. Dropout 0, SGD, no
    clipping."""
    from safetensors.torch import load_file

    if kind == "llama":  # the tiny Llama has no dropout
        folder = request.getfixturevalue("tiny_llama_dir")
    else:
        folder = _dropout_free(kind, tmp_path / kind, tokenizer)
    task = {"bert": ["superglue/rte", 32], "t5": ["qa/webquestions", 16]}.get(
        kind, ["qa/webquestions", 16]
    )

    def run(name: str, batch_size: int, steps: int) -> tuple[list[float], dict]:
        sam = {"sam_accumulation": "global"} if optimizer == "sam" and steps > 1 else {}
        cfg = TrainConfig(
            task=task[0], model=str(folder), output=str(tmp_path / name),
            data_dir=str(data_dir), train_size=task[1], eval_size=8, epochs=1,
            batch_size=batch_size, gradient_accumulation_steps=steps, optimizer=optimizer,
            base_optimizer="sgd", learning_rate=0.5, max_grad_norm=0.0, logging_steps=1,
            max_target_length=8, **sam,
        )  # fmt: skip
        train(cfg, log=lambda *a: None)
        rows = [json.loads(line) for line in (tmp_path / name / "log.jsonl").open()]
        losses = [r["loss"] for r in rows if "loss" in r]
        return losses, load_file(tmp_path / name / "best" / "model.safetensors")

    whole, whole_weights = run("whole", 8, 1)
    halves, halves_weights = run("halves", 4, 2)
    assert len(whole) == task[1] // 8 == len(halves)
    if kind == "t5":  # token means over 8 examples, or over 4 and 4 then averaged
        assert halves[0] == pytest.approx(whole[0], rel=0.1)
        return
    assert halves == pytest.approx(whole, rel=1e-5)
    for name, value in whole_weights.items():
        torch.testing.assert_close(halves_weights[name], value, rtol=1e-5, atol=1e-6, msg=name)
