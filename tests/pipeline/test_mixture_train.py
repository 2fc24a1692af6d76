"""`samlm train` on a task mixture: a two-task run on a tiny BERT (two heads) and on a
tiny T5, per-task and average scores, resume, named mixtures, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from samlm.cli import main
from samlm.metrics import task_score
from samlm.pipeline import TrainConfig, train
from samlm.pipeline.multitask import load_multihead
from samlm.tasks import TASKS

QUIET = ["--no-progress"]


def _run(tmp_path, data_dir, *extra: str, name: str = "run") -> Path:
    out = tmp_path / name
    code = main(["train", "--data-dir", str(data_dir), "--output", str(out), *QUIET, *extra])
    assert code == 0
    return out


def test_two_tasks_on_a_tiny_bert(tmp_path, capsys, data_dir, tiny_bert_dir):
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "glue/sst2,superglue/cb",
        "--model",
        str(tiny_bert_dir),
        "--train-size",
        "24",
        "--validation-size",
        "8",
        "--eval-size",
        "12",
        "--epochs",
        "2",
        "--batch-size",
        "8",
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["main_metric"] == "average" and m["task"] == "glue/sst2,superglue/cb"
    assert set(m["per_task"]) == {"glue/sst2", "superglue/cb"}
    assert set(m["per_task"]["superglue/cb"]) == {"accuracy", "f1_macro"}
    expected = sum(task_score(s) for s in m["per_task"].values()) / 2
    assert m["average"] == pytest.approx(expected) == m["metrics"]["average"]
    assert m["metrics"]["superglue/cb/f1_macro"] == m["per_task"]["superglue/cb"]["f1_macro"]
    for name in ("glue/sst2", "superglue/cb"):  # the same subsets as a single-task run
        assert m["tasks"][name]["train_examples"] == 24
        assert m["tasks"][name]["validation_examples"] == 8
        assert m["tasks"][name]["reported_examples"] == 12
        assert m["tasks"][name]["rate"] == 0.5
    assert m["train_draws"] == m["global_steps"] * 8 == 2 * 48
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [r for r in logs if "eval_average" in r]
    assert len(evals) == 2  # every epoch (6 steps of 8 draws)
    assert {"eval_glue/sst2/accuracy", "eval_superglue/cb/f1_macro"} <= set(evals[0])
    model, tasks = load_multihead(out / "best")
    assert tasks == ["glue/sst2", "superglue/cb"] and len(model.classifier) == 2
    fast = ["--samples", "8", "--steps", "1", "--m-examples", "0", "--hessian-iters", "0",
            "--probes", "0", "--grid", "0", "--no-progress"]  # fmt: skip
    assert main(["sharpness", str(out), *fast]) == 0  # a sample of both tasks' examples
    printed = capsys.readouterr().out
    assert "glue/sst2,superglue/cb (sam): 8 of 48 training examples" in printed
    assert "superglue/cb        4 of 24 (mixing rate 0.5)" in printed


def test_subsets_match_the_single_task_runs(tmp_path, data_dir, tiny_bert_dir):
    """``--train-size`` per task: a mixture trains on each task's single-run subset."""
    from samlm.pipeline.job import TaskJob
    from samlm.pipeline.mixture import MixtureJob

    common = dict(model=str(tiny_bert_dir), data_dir=str(data_dir), train_size=20, seed=3)
    mixed = MixtureJob(TrainConfig(task="glue/sst2,superglue/rte", output="x", **common))
    for name, splits in zip(("glue/sst2", "superglue/rte"), mixed.splits, strict=True):
        single = TaskJob(TrainConfig(task=name, output="x", **common)).splits
        assert splits == single


def test_a_mixture_says_which_task_held_fewer_examples_than_asked(data_dir, tiny_bert_dir):
    """CB's 56 dev examples are fewer than --eval-size 100; SST-2's 872 are not."""
    from samlm.pipeline.mixture import MixtureJob

    cfg = TrainConfig(task="glue/sst2,superglue/cb", output="x", model=str(tiny_bert_dir),
                      data_dir=str(data_dir), train_size=16, eval_size=100)  # fmt: skip
    note = MixtureJob(cfg).note
    assert "superglue/cb: reported examples: 56, not the 100 of --eval-size" in note
    assert "glue/sst2:" not in note
    assert MixtureJob(TrainConfig(**{**cfg.to_dict(), "eval_size": 56})).note is None


def test_rates_and_the_stream_follow_the_options(data_dir, tiny_bert_dir, tokenizer):
    from samlm.pipeline.mixing import MixtureSampler
    from samlm.pipeline.mixture import MixtureJob

    cfg = TrainConfig(
        task="superglue/cb,superglue/rte",
        output="x",
        model=str(tiny_bert_dir),
        data_dir=str(data_dir),
        train_fraction=0.1,  # 25 and 249 examples
        mixing_limit=100,
        max_steps=5,
        batch_size=4,
    )
    job = MixtureJob(cfg)
    assert job.sizes == [25, 249]
    assert job.rates == pytest.approx([25 / 125, 100 / 125])  # min(e, K) / sum min(e, K)
    enc = dict(tokenizer=tokenizer, modelling="encoder", max_length=32, max_target_length=8)
    stream = job.train_dataset(enc)
    draws = MixtureSampler((25, 249), tuple(job.rates), seed=0).draw(0, 20)
    assert len(stream) == 20 == job.draws
    assert stream["task_ids"] == [t for t, _ in draws]
    cb = job.splits[0].train
    for row, (t, j) in zip(stream, draws, strict=True):
        if t == 0:  # the drawn CB example, in the mixed layout
            ex = cb[j].fields
            text = tokenizer(ex["premise"], ex["hypothesis"], truncation=True, max_length=32)
            assert row["input_ids"] == [text["input_ids"]] and row["labels"] == cb[j].label


class Recorder(TrainerCallback):
    """The input ids of every training forward pass (both of SAM's passes)."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.batches: list[torch.Tensor] = []
        self.kill_at = kill_at

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, inputs, kw):
            if module.training:
                self.batches.append((state.global_step, kw["input_ids"].clone()))

        model.register_forward_pre_hook(hook, with_kwargs=True)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.kill_at:
            raise KeyboardInterrupt("killed")


def test_resume_draws_the_same_examples(tmp_path, data_dir, tiny_bert_dir):
    options = dict(
        task="superglue/cb,superglue/rte",
        model=str(tiny_bert_dir),
        train_size=16,
        eval_size=8,
        max_steps=6,
        batch_size=4,
        save_steps=2,
        data_dir=str(data_dir),
        mixing="temperature",
        temperature=2.0,
        progress=False,
    )
    whole = Recorder()
    full = train(TrainConfig(output=str(tmp_path / "full"), **options), callbacks=[whole])
    killed_cfg = TrainConfig(output=str(tmp_path / "killed"), **options)
    first = Recorder(kill_at=3)
    with pytest.raises(KeyboardInterrupt):
        train(killed_cfg, callbacks=[first])
    second = Recorder()
    resumed = train(killed_cfg, resume=True, callbacks=[second])
    seen = [b for b in first.batches if b[0] < 2] + second.batches  # resumed at step 2
    assert len(seen) == len(whole.batches) == 12  # SAM: two passes per step
    for (step_a, a), (step_b, b) in zip(seen, whole.batches, strict=True):
        assert step_a == step_b and torch.equal(a, b)
    assert resumed["metrics"] == full["metrics"] and resumed["global_steps"] == 6


def test_named_mixture_takes_the_tasks_whose_data_is_found(tmp_path, data_dir, tiny_bert_dir):
    out = _run(
        tmp_path,
        data_dir,
        "--mixture",
        "superglue",
        "--model",
        str(tiny_bert_dir),
        "--train-size",
        "8",
        "--eval-size",
        "4",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--mixing",
        "equal",
        "--optimizer",
        "baseline",
    )
    m = json.loads((out / "metrics.json").read_text())
    local = {
        t.name
        for t in TASKS.values()
        if t.benchmark == "superglue"
        and t.has_local("train", data_dir)
        and t.has_local("validation", data_dir)
    }
    assert set(m["tasks"]) == local and m["mixture"] == "superglue"
    assert "superglue/copa" in local  # multiple choice in the mix
    assert set(m["per_task"]) == local
    assert all(t["rate"] == pytest.approx(1 / len(local)) for t in m["tasks"].values())


def test_two_tasks_on_a_tiny_t5(tmp_path, data_dir, tiny_t5_dir):
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "glue/sst2,qa/webquestions",
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
    m = json.loads((out / "metrics.json").read_text())
    assert m["modelling"] == "text2text" and m["base_optimizer"] == "adafactor"
    assert set(m["per_task"]["qa/webquestions"]) == {"exact_match", "f1"}
    assert set(m["per_task"]["glue/sst2"]) == {"accuracy"}
    expected = sum(task_score(s) for s in m["per_task"].values()) / 2
    assert m["average"] == pytest.approx(expected)


def _fail(capsys, *argv: str) -> str:
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samlm train: error:") and err.count("\n") <= 8
    return err


@pytest.mark.parametrize(
    ("tasks", "named"),
    [
        ("glue/sst2,glue/nope", "glue/nope"),  # unknown task
        ("glue/sst2,qa/webquestions", "qa/webquestions"),  # text2text only, encoder model
        ("glue/sst2,glue/SST-2", "glue/sst2"),  # the same task twice
    ],
)
def test_bad_mixtures_exit_2_naming_the_task(
    tmp_path, capsys, data_dir, tiny_bert_dir, tasks, named
):
    out = tmp_path / "out"
    err = _fail(
        capsys,
        "--task",
        tasks,
        "--model",
        str(tiny_bert_dir),
        "--data-dir",
        str(data_dir),
        "--output",
        str(out),
    )
    assert named in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mixture", "nope"], "mixture='nope'"),
        (["--mixture", "glue", "--task", "glue/sst2"], "--mixture"),
        (["--task", "glue/sst2,glue/cola", "--temperature", "2"], "--mixing temperature"),
        (["--task", "glue/sst2,glue/cola", "--mixing-limit", "0"], "mixing_limit=0"),
        (
            ["--task", "glue/sst2,glue/cola", "--mixing", "equal", "--mixing-limit", "9"],
            "--mixing-limit 9 has an effect only with --mixing proportional or temperature",
        ),
    ],
)
def test_bad_mixture_options(tmp_path, capsys, extra, message):
    err = _fail(capsys, *extra, "--output", str(tmp_path / "out"))
    assert message in err
    assert not (tmp_path / "out").exists()


class Snapshot(TrainerCallback):
    """Every parameter at the start of training, what SAM perturbs, and the model at the
    end (the best one, reloaded by then)."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at = kill_at
        self.start: dict[str, torch.Tensor] = {}
        self.perturbed: set[int] = set()
        self.model = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.start = {n: p.detach().clone() for n, p in model.named_parameters()}
        groups = optimizer.param_groups
        self.perturbed = {id(p) for g in groups if g.get("perturb") for p in g["params"]}

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.kill_at:
            raise KeyboardInterrupt("killed")

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


LORA_MIX = dict(
    task="glue/sst2,superglue/cb",
    peft="lora",
    lora_r=2,
    train_size=16,
    validation_size=8,
    eval_size=8,
    max_steps=6,
    batch_size=4,
    save_steps=2,
    learning_rate=1e-2,
    progress=False,
)


def test_lora_on_a_mixture_trains_adapters_and_heads_only(tmp_path, data_dir, tiny_bert_dir):
    pytest.importorskip("peft", reason="needs the peft extra")
    from safetensors.torch import load_file

    seen = Snapshot()
    options = dict(LORA_MIX, model=str(tiny_bert_dir), data_dir=str(data_dir))
    result = train(TrainConfig(output=str(tmp_path / "run"), **options), callbacks=[seen])
    assert set(result["per_task"]) == {"glue/sst2", "superglue/cb"}
    expected = sum(task_score(s) for s in result["per_task"].values()) / 2
    assert result["average"] == pytest.approx(expected) == result["metrics"]["average"]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["average"] == result["average"] and set(m["per_task"]) == set(result["per_task"])
    trained = {n for n, p in seen.model.named_parameters() if p.requires_grad}
    params = dict(seen.model.named_parameters())
    # SAM perturbs what trains (but the heads' biases: SAMConfig.exclude_bias_and_norm)
    weights = {id(params[n]) for n in trained if not n.endswith(".bias")}
    assert seen.perturbed == weights
    # PEFT's default targets for BERT (query, value), and both heads in full
    assert trained and all(".lora_" in n or ".modules_to_save." in n for n in trained), sorted(
        trained
    )
    assert {n for n in trained if "query" in n} and {n for n in trained if "value" in n}
    assert {n for n in trained if "classifier.0." in n} and {
        n for n in trained if "classifier.1." in n
    }
    end = params
    for name, before in seen.start.items():
        if name in trained:
            if ".lora_B." in name or "classifier" in name:  # B starts at zero: it must move
                assert not torch.equal(end[name], before), name
        else:  # the frozen encoder (and PEFT's copy of the untrained heads): untouched
            assert torch.equal(end[name], before), name
    best = tmp_path / "run" / "best"
    assert (best / "adapter_config.json").is_file() and not (best / "model.safetensors").exists()
    saved = load_file(best / "adapter_model.safetensors")
    assert any("classifier.1" in k for k in saved) and any("lora_A" in k for k in saved)
    assert not any("word_embeddings" in k for k in saved)  # the adapter, not the encoder
    model, tasks = load_multihead(best)  # the adapter merged into the pretrained encoder
    assert tasks == ["glue/sst2", "superglue/cb"] and len(model.classifier) == 2
    batch = dict(
        input_ids=torch.randint(1000, 2000, (4, 1, 12)),
        attention_mask=torch.ones(4, 1, 12, dtype=torch.long),
        task_ids=torch.tensor([0, 1, 1, 0]),
    )
    seen.model.eval()
    model.eval()
    with torch.no_grad():
        want = seen.model(**batch).logits
        got = model(**batch).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_lora_on_a_mixture_resumes_exactly(tmp_path, data_dir, tiny_bert_dir):
    pytest.importorskip("peft", reason="needs the peft extra")
    from safetensors.torch import load_file

    options = dict(LORA_MIX, model=str(tiny_bert_dir), data_dir=str(data_dir))
    full = train(TrainConfig(output=str(tmp_path / "full"), **options))
    killed = TrainConfig(output=str(tmp_path / "killed"), **options)
    with pytest.raises(KeyboardInterrupt):
        train(killed, callbacks=[Snapshot(kill_at=3)])
    resumed = train(killed, resume=True)
    assert resumed["resumed_from"] == "checkpoint-2" and resumed["global_steps"] == 6
    assert resumed["metrics"] == full["metrics"]
    assert resumed["per_task"] == full["per_task"]
    a = load_file(tmp_path / "full" / "best" / "adapter_model.safetensors")
    b = load_file(tmp_path / "killed" / "best" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_on_a_text2text_mixture(tmp_path, data_dir, tiny_t5_dir):
    pytest.importorskip("peft", reason="needs the peft extra")
    out = _run(
        tmp_path,
        data_dir,
        "--task",
        "glue/sst2,superglue/cb",
        "--model",
        str(tiny_t5_dir),
        "--peft",
        "lora",
        "--train-size",
        "8",
        "--eval-size",
        "4",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--max-target-length",
        "4",
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["modelling"] == "text2text" and set(m["per_task"]) == {"glue/sst2", "superglue/cb"}
    expected = sum(task_score(s) for s in m["per_task"].values()) / 2
    assert m["average"] == pytest.approx(expected) == m["metrics"]["average"]
    assert (out / "best" / "adapter_config.json").is_file()  # as a single-task LoRA run
    assert not (out / "best" / "multitask.json").exists()


def test_lora_errors_on_a_mixture_name_the_option(tmp_path, capsys, data_dir, tiny_bert_dir):
    pytest.importorskip("peft", reason="needs the peft extra")
    from samlm.pipeline.adapters import default_targets

    out = tmp_path / "out"
    common = ["--task", "glue/sst2,superglue/cb", "--model", str(tiny_bert_dir)]
    paths = ["--data-dir", str(data_dir), "--output", str(out), "--train-size", "8"]
    lora = ["--peft", "lora", "--lora-targets", "no_such_module"]
    assert main(["train", *common, *paths, *lora]) == 2
    err = capsys.readouterr().err  # after the model's loading messages
    assert "--peft lora cannot wrap MultiHeadEncoder" in err
    listed = err.split("linear modules: ")[1].strip().split(", ")
    assert "query" in listed and not any(m.isdigit() for m in listed)  # not the heads
    assert not out.exists()
    assert default_targets("bert") == ["query", "value"]
    with pytest.raises(ValueError, match=r"no default target modules .* give --lora-targets"):
        default_targets("no-such-type")
