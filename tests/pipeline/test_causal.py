"""Decoder-only (causal) LMs in `samlm train`: prompt + completion, the loss on the
completion only, evaluation by greedy generation scored with the task's metric; SAM,
LoRA, bitwise resume and clear errors, on tiny random GPT-2 and Llama models."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BertConfig,
    EvalPrediction,
    GPT2Config,
    LlamaConfig,
    T5Config,
    TrainerCallback,
)

from samlm.analysis import measure_run
from samlm.cli import main
from samlm.metrics import task_score
from samlm.pipeline import TrainConfig, train
from samlm.pipeline.data import run_splits
from samlm.pipeline.features import collator, encode, metrics_fn
from samlm.pipeline.models import auto_modelling, load_model, resolve_model
from samlm.tasks import TASKS, Example, get_task
from samlm.training import CausalLMTrainer
from samlm.training.generation import left_padded_prompts

RTE = get_task("superglue/rte")
EXAMPLES = [
    Example({"premise": "A cat sat on the mat.", "hypothesis": "A cat sat."}, label=0),
    Example({"premise": "Rain all day.", "hypothesis": "It was a dry and sunny day."}, label=1),
    Example({"premise": "He ran.", "hypothesis": "He moved."}, label=0),
]
QUIET = dict(log=lambda *a: None)


def _loaded(folder):
    return load_model(resolve_model(str(folder), "auto", RTE), RTE)


def _encoded(tokenizer, *, training: bool):
    return encode(
        RTE, EXAMPLES, tokenizer, "causal", max_length=64, max_target_length=6, training=training
    )


@pytest.mark.parametrize("fixture", ["tiny_gpt2_dir", "tiny_llama_dir"])
def test_the_loss_is_on_the_completion_tokens_only(request, fixture):
    model, tokenizer = _loaded(request.getfixturevalue(fixture))
    assert tokenizer.pad_token is not None  # GPT-2's: none saved, eos lent
    ds = _encoded(tokenizer, training=True)
    batch = collator(RTE, "causal", tokenizer, model)([ds[i] for i in range(len(ds))])
    width = batch["input_ids"].shape[1]
    spans = []
    for i, ex in enumerate(EXAMPLES):
        prompt = tokenizer(RTE.source(ex))["input_ids"]
        completion = tokenizer(" " + RTE.target(ex), add_special_tokens=False)["input_ids"]
        completion = [*completion, tokenizer.eos_token_id]
        n = len(prompt) + len(completion)
        assert batch["input_ids"][i, :n].tolist() == prompt + completion
        masked = [-100] * len(prompt)
        assert batch["labels"][i].tolist() == masked + completion + [-100] * (width - n)
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (width - n)
        spans.append((len(prompt), n))
    assert len({n for _, n in spans}) > 1  # rows of different lengths: padding is tested
    ids, mask = left_padded_prompts(batch["input_ids"], batch["labels"], tokenizer.pad_token_id)
    for i, (p, _) in enumerate(spans):
        assert ids[i, ids.shape[1] - p :].tolist() == batch["input_ids"][i, :p].tolist()
        assert mask[i].tolist() == [0] * (ids.shape[1] - p) + [1] * p

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = model(**batch).loss
    log_probs = torch.log_softmax(logits.double(), -1)
    terms = [
        -log_probs[i, t - 1, batch["input_ids"][i, t]]  # token t predicted at t - 1
        for i, (p, n) in enumerate(spans)
        for t in range(p, n)
    ]
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)


def test_batched_generation_equals_one_prompt_at_a_time(tiny_gpt2_dir, tmp_path):
    """Left-padded prompts, completions cut after the prompt, decoded and scored as
    text-to-text predictions are."""
    model, tokenizer = _loaded(tiny_gpt2_dir)
    ds = _encoded(tokenizer, training=False)
    args = dict(output_dir=str(tmp_path), per_device_eval_batch_size=3, report_to=[])
    from transformers import Seq2SeqTrainingArguments

    trainer = CausalLMTrainer(
        model=model,
        args=Seq2SeqTrainingArguments(generation_max_length=6, **args),
        processing_class=tokenizer,
        data_collator=collator(RTE, "causal", tokenizer, model),
    )
    batched = trainer.predict(ds).predictions
    model.eval()
    for i, ex in enumerate(EXAMPLES):
        prompt = tokenizer(RTE.source(ex), return_tensors="pt")
        alone = model.generate(**prompt, max_new_tokens=6, do_sample=False)
        alone = alone[0, prompt["input_ids"].shape[1] :].tolist()
        row = [t for t in batched[i].tolist() if t != -100]
        assert row[: len(alone)] == alone
        assert all(t == tokenizer.pad_token_id for t in row[len(alone) :])
    # " entailment" + eos then -100 (the evaluation loop's padding) scores as the label
    good = tokenizer(" entailment not_entailment", add_special_tokens=False)["input_ids"]
    words = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in RTE.label_names]
    rows = [words[0], words[1], good]  # the last is no label: wrong
    width = max(map(len, rows)) + 1
    ids = np.full((3, width), -100)
    for i, r in enumerate(rows):
        ids[i, : len(r) + 1] = [*r, tokenizer.eos_token_id]
    score = metrics_fn(RTE, "causal", EXAMPLES, tokenizer)(EvalPrediction(ids, None))
    assert score == {"accuracy": pytest.approx(200 / 3)}


def _train_args(folder, task, *extra):
    return [
        "train", "--task", task, "--model", str(folder), "--train-size", "8",
        "--eval-size", "8", "--max-steps", "4", "--batch-size", "2", "--save-steps", "2",
        "--max-length", "48", "--max-target-length", "4", "--logging-steps", "1",
        "--learning-rate", "1e-2", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fixture", "task", "metrics"),
    [
        ("tiny_gpt2_dir", "glue/sst2", {"accuracy"}),
        ("tiny_llama_dir", "superglue/cb", {"accuracy", "f1_macro"}),
    ],
)
def test_sam_run_is_scored_on_its_greedy_completions(
    request, tmp_path, data_dir, fixture, task, metrics
):
    folder = request.getfixturevalue(fixture)
    out = tmp_path / "run"
    argv = _train_args(folder, task, "--data-dir", str(data_dir), "--output", str(out))
    assert main(argv) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert (result["modelling"], result["method"], result["rho"]) == ("causal", "sam", 0.05)
    assert set(result["metrics"]) == metrics | {"loss"}
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert sum("sam_loss_perturbed" in r for r in logs) == 4
    assert sum(f"eval_{get_task(task).main_metric}" in r for r in logs) == 2
    # the run's score is the greedy completions of best/, one prompt at a time
    model = AutoModelForCausalLM.from_pretrained(out / "best").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "best")  # saved with its pad token
    t = get_task(task)
    examples = run_splits(t, data_dir, train_size=8, eval_size=8).reported
    predictions = []
    for ex in examples:
        prompt = tokenizer(t.source(ex), truncation=True, max_length=48, return_tensors="pt")
        ids = prompt["input_ids"]
        new = model.generate(ids, attention_mask=prompt["attention_mask"], max_new_tokens=4)
        text = tokenizer.decode(new[0, ids.shape[1] :], skip_special_tokens=True)
        predictions.append(text)
    expected = t.compute_metrics(predictions, examples)
    assert {k: result["metrics"][k] for k in expected} == pytest.approx(expected)
    # samlm sharpness measures it on the completion loss
    kw = dict(samples=4, batch_size=4, steps=1, hessian_iters=0, probes=0, grid=0, m=0)
    sharp = measure_run(out, write=False, progress=False, **kw)["sharpness"]
    assert math.isfinite(sharp["sharpness"]) and sharp["loss"] > 0 and sharp["rho"] == 0.05


class Snapshot(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.weights = {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lora_on_gpt2_moves_the_adapters_only(tmp_path, data_dir, tiny_gpt2_dir):
    pytest.importorskip("peft", reason="needs the peft extra")
    cfg = TrainConfig(
        task="superglue/cb", model=str(tiny_gpt2_dir), output=str(tmp_path / "lora"),
        peft="lora", train_size=8, eval_size=4, max_steps=3, batch_size=4,
        max_length=48, max_target_length=4, learning_rate=1e-2, data_dir=str(data_dir),
        progress=False,
    )  # fmt: skip
    snap = Snapshot()
    result = train(cfg, callbacks=[snap], **QUIET)
    assert result["modelling"] == "causal" and "f1_macro" in result["metrics"]
    adapter = json.loads((tmp_path / "lora" / "best" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "CAUSAL_LM" and adapter["target_modules"] == ["c_attn"]
    base = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir).state_dict()
    moved = []
    for name, value in snap.weights.items():
        if "lora_" in name:
            moved.append(name)
            continue
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(value, base[key]), name
    assert any("lora_B" in n and snap.weights[n].abs().sum() > 0 for n in moved)


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            raise KeyboardInterrupt("killed")


def test_resume_is_bitwise_the_uninterrupted_run(tmp_path, data_dir, tiny_gpt2_dir):
    options = dict(
        task="superglue/cb", model=str(tiny_gpt2_dir), train_size=8, eval_size=4, epochs=2,
        batch_size=2, save_steps=2, max_length=48, max_target_length=4, learning_rate=1e-2,
        probability=0.5, data_dir=str(data_dir), progress=False,
    )  # fmt: skip
    full = train(TrainConfig(output=str(tmp_path / "full"), **options), **QUIET)
    killed = TrainConfig(output=str(tmp_path / "killed"), **options)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[Kill()], **QUIET)
    resumed = train(killed, resume=True, **QUIET)
    assert resumed["metrics"] == full["metrics"] and resumed["global_steps"] == 8
    assert resumed["best_checkpoint"] == full["best_checkpoint"]
    a = load_file(tmp_path / "full" / "best" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "best" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_mixture_of_tasks_on_a_causal_lm(tmp_path, data_dir, tiny_gpt2_dir):
    out = tmp_path / "mix"
    argv = _train_args(tiny_gpt2_dir, "superglue/rte,superglue/cb")
    assert main([*argv, "--data-dir", str(data_dir), "--output", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["modelling"] == "causal"
    assert set(result["per_task"]) == {"superglue/rte", "superglue/cb"}
    expected = sum(task_score(s) for s in result["per_task"].values()) / 2
    assert result["average"] == pytest.approx(expected) == result["metrics"]["average"]


def test_modelling_is_detected_from_the_config():
    assert auto_modelling(GPT2Config()) == "causal"  # no architecture recorded
    assert auto_modelling(LlamaConfig(architectures=["LlamaForCausalLM"])) == "causal"
    assert auto_modelling(GPT2Config(architectures=["GPT2ForSequenceClassification"])) == "encoder"
    assert auto_modelling(BertConfig()) == "encoder"
    assert auto_modelling(BertConfig(is_decoder=True)) == "causal"
    assert auto_modelling(T5Config()) == "text2text"
    assert "causal" in RTE.modelling and "causal" in get_task("qa/nq_open").modelling


def _fail(capsys, *argv: str) -> str:
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samlm train: error:")
    return err


def test_an_encoder_forced_into_causal_modelling(tmp_path, capsys, data_dir, tiny_bert_dir):
    out = tmp_path / "o"
    err = _fail(
        capsys, "--task", "glue/sst2", "--model", str(tiny_bert_dir), "--modelling", "causal",
        "--data-dir", str(data_dir), "--output", str(out),
    )  # fmt: skip
    assert str(tiny_bert_dir) in err and "not a decoder-only causal LM" in err
    assert not out.exists()


def test_a_task_without_a_text_form(tmp_path, capsys, data_dir, tiny_gpt2_dir, monkeypatch):
    encoder_only = dataclasses.replace(TASKS["glue/sst2"], modelling=("encoder",))
    monkeypatch.setitem(TASKS, "glue/sst2", encoder_only)
    out = tmp_path / "o"
    err = _fail(
        capsys, "--task", "glue/sst2", "--model", str(tiny_gpt2_dir),
        "--data-dir", str(data_dir), "--output", str(out),
    )  # fmt: skip
    assert "glue/sst2 cannot be modelled as causal" in err and not out.exists()


def test_a_tokenizer_without_eos(tmp_path, capsys, data_dir, tokenizer):
    from transformers import GPT2LMHeadModel

    folder = tmp_path / "no-eos"
    n = len(tokenizer)
    config = GPT2Config(vocab_size=n, n_embd=8, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # MiniLM's WordPiece: no eos token
    capsys.readouterr()
    out = tmp_path / "o"
    err = _fail(
        capsys, "--task", "glue/sst2", "--model", str(folder), "--data-dir", str(data_dir),
        "--output", str(out),
    )  # fmt: skip
    assert str(folder) in err and "no eos token" in err and not out.exists()


def test_evaluation_refuses_a_model_under_sams_perturbation(tiny_gpt2_dir, tmp_path):
    from transformers import TrainingArguments

    from samlm.training import SAMCausalLMTrainer, SAMConfig

    model, tokenizer = _loaded(tiny_gpt2_dir)
    collate = collator(RTE, "causal", tokenizer, model)
    trainer = SAMCausalLMTrainer(
        model=model,
        args=TrainingArguments(str(tmp_path), report_to=[]),
        processing_class=tokenizer,
        data_collator=collate,
        sam_config=SAMConfig(rho=0.05),
    )
    sam = trainer.create_optimizer()
    ds = _encoded(tokenizer, training=False)
    sam.zero_grad()
    model(**collate([ds[i] for i in range(len(ds))])).loss.backward()
    assert sam.perturb()
    with pytest.raises(RuntimeError, match="perturbation"):
        trainer.evaluate(ds)
    sam.restore()
    assert "eval_loss" in trainer.evaluate(ds)
