"""`samlm sharpness` on task-mixture runs: a two-task tiny-BERT mixture (CB and RTE at
rates 0.2 and 0.8), its LoRA version, a named SuperGLUE mixture (multiple choice among
its heads) and a tiny-T5 mixture. The sample is drawn at the mixing rates, measured by
the model's own training loss through the run's collator, and ``best/`` is only read."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
import yaml
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForSeq2Seq

from samlm.analysis import measure_run
from samlm.cli import main
from samlm.compare import cell
from samlm.pipeline import TrainConfig, train
from samlm.pipeline.data import STRATIFIED
from samlm.pipeline.features import encode
from samlm.pipeline.mixing import sample_counts
from samlm.pipeline.mixture import MixtureJob
from samlm.pipeline.multitask import MixedCollator, load_multihead, mixed_rows
from samlm.tasks import subsample

FAST = dict(steps=1, m=0, hessian_iters=0, probes=0, grid=0, progress=False, write=False)
# CB and RTE at 10% (25 and 249 examples), RTE capped at 100: rates 0.2 and 0.8
MIX = dict(
    task="superglue/cb,superglue/rte",
    train_fraction=0.1,
    mixing_limit=100,
    validation_size=8,
    eval_size=8,
    max_steps=3,
    batch_size=8,
    eval_batch_size=16,
    max_length=48,
    learning_rate=1e-2,
    seed=1,
    progress=False,
)


def _train(out, **options):
    train(TrainConfig(output=str(out), **options), log=lambda *a: None)
    return out


def _config(run):
    return yaml.safe_load((run / "config.yaml").read_text())


def _files(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def mixture_run(tmp_path_factory, data_dir, tiny_bert_dir):
    out = tmp_path_factory.mktemp("runs") / "cb-rte-sam"
    return _train(out, model=str(tiny_bert_dir), data_dir=str(data_dir), **MIX)


def _by_hand(run, model, sample_sizes, seed=0):
    """The mean loss of ``model`` (a multi-head encoder) on each task's seeded, stratified
    sample of its training subset (rebuilt by MixtureJob), one batch through the collator."""
    job = MixtureJob(TrainConfig(**_config(run)["options"]))
    tokenizer = AutoTokenizer.from_pretrained(run / "best")
    rows = []
    for i, (task, splits, n) in enumerate(zip(job.tasks, job.splits, sample_sizes, strict=True)):
        examples = subsample(splits.train, size=n, seed=seed, stratify=task.kind in STRATIFIED)
        encoded = encode(
            task, examples, tokenizer, "encoder", max_length=48, max_target_length=32, training=True
        )
        mixed = mixed_rows(task, i, encoded)
        rows += [mixed[j] for j in range(len(mixed))]
    batch = MixedCollator(tokenizer)(rows)
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss.double())


def test_a_mixture_is_measured_on_a_sample_drawn_at_its_rates(mixture_run):
    before = _files(mixture_run / "best")
    result = measure_run(mixture_run, samples=20, batch_size=8, **FAST)
    assert result["task"] == "superglue/cb,superglue/rte" and result["mixture"] is None
    tasks = result["tasks"]
    assert list(tasks) == ["superglue/cb", "superglue/rte"]
    assert [t["train_examples"] for t in tasks.values()] == [25, 249]
    assert [t["rate"] for t in tasks.values()] == pytest.approx([0.2, 0.8])
    counts = [t["samples"] for t in tasks.values()]
    assert counts == [4, 16] == sample_counts([25, 249], [0.2, 0.8], 20)
    assert sum(counts) == result["samples"] == result["examples"] == 20
    assert result["train_examples"] == 274
    model, heads = load_multihead(mixture_run / "best")
    assert heads == list(tasks)
    assert result["parameters"] == sum(p.numel() for p in model.parameters())
    # the centre loss: load_multihead(best)'s own loss on those examples, by hand
    assert result["loss"] == pytest.approx(_by_hand(mixture_run, model, counts), abs=1e-5)
    again = measure_run(mixture_run, samples=20, batch_size=8, **FAST)
    assert again["loss"] == result["loss"] and again["sharpness"] == result["sharpness"]
    other = measure_run(mixture_run, samples=20, batch_size=8, seed=5, **FAST)
    assert other["tasks"] == tasks and other["loss"] != result["loss"]  # another sample
    assert _files(mixture_run / "best") == before  # only read


def test_all_examples_and_the_merged_view_of_a_full_mixture(mixture_run):
    everything = measure_run(mixture_run, samples=None, batch_size=64, **FAST)
    assert [t["samples"] for t in everything["tasks"].values()] == [25, 249]
    assert everything["samples"] == 274
    merged = measure_run(mixture_run, samples=12, weights="merged", **FAST)
    trained = measure_run(mixture_run, samples=12, **FAST)
    assert merged["parameters"] == trained["parameters"]  # a full run: the same weights
    assert merged["sharpness"] == trained["sharpness"]


def test_samlm_sharpness_names_the_mixture(mixture_run, capsys):
    fast = ["--samples", "10", "--batch-size", "4", "--steps", "1", "--m-examples", "2",
            "--hessian-iters", "1", "--probes", "1", "--grid", "2", "--no-progress"]  # fmt: skip
    assert main(["sharpness", str(mixture_run), *fast]) == 0
    out = capsys.readouterr().out
    assert "superglue/cb,superglue/rte (sam): 10 of 274 training examples" in out
    assert "superglue/cb        2 of 25 (mixing rate 0.2)" in out
    assert "superglue/rte       8 of 249 (mixing rate 0.8)" in out
    written = json.loads((mixture_run / "sharpness" / "sharpness.json").read_text())
    assert written["tasks"]["superglue/rte"] == {"train_examples": 249, "samples": 8, "rate": 0.8}
    assert written["m_sharpness"]["chunks"] > 0 and written["hessian"]["trace"]["probes"] == 1
    assert (mixture_run / "sharpness" / "landscape_2d.png").is_file()


def test_compare_measures_a_mixture_cell(mixture_run, monkeypatch):
    """``samlm compare --sharpness``'s measure of a cell's run, on a mixture run (fewer
    examples and iterations than a grid's)."""
    fewer = dict(cell.SHARPNESS_OPTIONS, samples=8, hessian_iters=2, probes=1)
    monkeypatch.setattr(cell, "SHARPNESS_OPTIONS", fewer)
    values = cell._sharpness(mixture_run)
    direct = measure_run(mixture_run, progress=False, write=False, **fewer)
    assert direct["tasks"]["superglue/rte"]["samples"] > 0  # the mixture's own sample
    assert values == {
        "sharpness": direct["sharpness"]["sharpness"],
        "lambda_max": direct["hessian"]["top_eigenvalue"]["value"],
        "trace": direct["hessian"]["trace"]["value"],
    }


def test_a_mixture_rebuilt_from_other_data_is_refused(mixture_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(mixture_run / "best", copy / "best")
    config = _config(mixture_run)
    config["resolved"]["tasks"]["superglue/rte"]["train_examples"] = 99
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ValueError, match="subset of superglue/rte has 249 examples but the run"):
        measure_run(copy, **FAST)
    config["resolved"]["tasks"] = {"superglue/cb": {}}
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ValueError, match="rebuilt mixture is superglue/cb,superglue/rte but"):
        measure_run(copy, **FAST)


def test_a_lora_mixture_measures_its_adapters_and_heads_or_the_merged_model(
    tmp_path, data_dir, tiny_bert_dir
):
    pytest.importorskip("peft", reason="needs the peft extra")
    from safetensors.torch import load_file

    options = dict(MIX, peft="lora", lora_r=2, model=str(tiny_bert_dir), data_dir=str(data_dir))
    run = _train(tmp_path / "lora", **options)
    before = _files(run / "best")
    trained = measure_run(run, samples=20, **FAST)
    saved = load_file(run / "best" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in saved.items())
    assert (trained["peft"], trained["weights"]) == ("lora", "trained")
    assert trained["parameters"] == sum(v.numel() for v in saved.values())  # adapters, heads
    merged = measure_run(run, samples=20, weights="merged", **FAST)
    model, _ = load_multihead(run / "best")  # merged
    assert merged["parameters"] == sum(p.numel() for p in model.parameters())
    assert trained["parameters"] < merged["parameters"]
    counts = [t["samples"] for t in trained["tasks"].values()]
    assert trained["loss"] == pytest.approx(_by_hand(run, model, counts), abs=1e-5)
    assert merged["loss"] == pytest.approx(trained["loss"], abs=1e-5)
    assert merged["sharpness"]["sharpness"] != trained["sharpness"]["sharpness"]
    assert _files(run / "best") == before


def test_a_named_mixture_with_multiple_choice(tmp_path, data_dir, tiny_bert_dir):
    run = _train(
        tmp_path / "superglue", mixture="superglue", task="", model=str(tiny_bert_dir),
        train_size=8, eval_size=4, max_steps=2, batch_size=4, mixing="equal",
        optimizer="baseline", max_length=48, data_dir=str(data_dir), progress=False,
    )  # fmt: skip
    result = measure_run(run, samples=12, batch_size=5, **FAST)
    assert result["mixture"] == "superglue" and "superglue/copa" in result["tasks"]
    n = len(result["tasks"])
    assert all(t["rate"] == pytest.approx(1 / n) for t in result["tasks"].values())
    assert sum(t["samples"] for t in result["tasks"].values()) == 12
    assert min(t["samples"] for t in result["tasks"].values()) >= 12 // n
    assert result["task"] == ",".join(_config(run)["resolved"]["tasks"])
    # the same run from a folder that lacks one of its tasks' data: a different mixture
    partial = tmp_path / "partial" / "superglue"
    partial.mkdir(parents=True)
    for name in ("CB", "RTE", "COPA"):
        (partial / name).symlink_to(data_dir / "superglue" / name)
    with pytest.raises(ValueError, match=r"rebuilt mixture is .* but the run trained"):
        measure_run(run, data_dir=partial.parent, **FAST)


def test_a_text2text_mixture(tmp_path, data_dir, tiny_t5_dir):
    run = _train(
        tmp_path / "t5", task="glue/sst2,superglue/cb", model=str(tiny_t5_dir), train_size=8,
        eval_size=4, max_steps=2, batch_size=4, max_target_length=4, max_length=48,
        data_dir=str(data_dir), progress=False,
    )  # fmt: skip
    before = _files(run / "best")
    # one pair per batch: the objective is the mean of the pairs' own losses
    result = measure_run(run, samples=6, batch_size=1, **FAST)
    assert result["task"] == "glue/sst2,superglue/cb"
    assert {k: v["samples"] for k, v in result["tasks"].items()} == {
        "glue/sst2": 3,
        "superglue/cb": 3,
    }
    model = AutoModelForSeq2SeqLM.from_pretrained(run / "best").eval()
    assert result["parameters"] == sum(p.numel() for p in model.parameters())
    tokenizer = AutoTokenizer.from_pretrained(run / "best")
    job = MixtureJob(TrainConfig(**_config(run)["options"]))
    collate = DataCollatorForSeq2Seq(tokenizer, model=model)
    losses = []
    for task, splits in zip(job.tasks, job.splits, strict=True):
        examples = subsample(splits.train, size=3, seed=0, stratify=True)
        ds = encode(
            task, examples, tokenizer, "text2text", max_length=48, max_target_length=4,
            training=True,
        )  # fmt: skip
        for row in ds:  # the task's own prompt: "sst2 sentence: ...", "cb hypothesis: ..."
            with torch.no_grad():
                losses.append(float(model(**collate([row])).loss.double()))
    assert result["examples"] == len(losses) == 6
    assert result["loss"] == pytest.approx(sum(losses) / len(losses), abs=1e-5)
    assert _files(run / "best") == before
