"""SAMTrainer: the Trainer's loop with SAM per micro-batch, on tiny random models."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    TrainerCallback,
    TrainingArguments,
)

from samlm import SAM, sam_step
from samlm.training import SAMConfig, SAMTrainer


def tiny_bert(seed: int = 0, dropout: float = 0.0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertForSequenceClassification(cfg)


def toy_dataset(n: int = 48) -> Dataset:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 40, (n, 8), generator=g)
    labels = (ids[:, 0] > 22).long()
    return Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()})


def _args(out, **kw) -> TrainingArguments:
    base = dict(
        per_device_train_batch_size=8,
        learning_rate=5e-3,
        report_to=[],
        use_cpu=True,
        seed=0,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    base.update(kw)
    return TrainingArguments(str(out), **base)


def test_accumulation_is_sam_per_micro_batch(tmp_path):
    """Two Trainer micro-batches then the Trainer's optimizer step equal sam_step with
    accumulation='per_microbatch' on the concatenated batch."""
    model, ref = tiny_bert(), tiny_bert()
    trainer = SAMTrainer(
        model=model,
        args=_args(tmp_path, gradient_accumulation_steps=2, weight_decay=0.0),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(rho=0.1),
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    sam = trainer.sam_optimizer
    assert isinstance(sam, SAM)
    ds = toy_dataset(16)
    batch = {"input_ids": torch.tensor(ds["input_ids"]), "labels": torch.tensor(ds["labels"])}
    trainer.current_gradient_accumulation_steps = 2
    model.zero_grad()
    for half in (slice(0, 8), slice(8, 16)):
        trainer.training_step(model, {k: v[half] for k, v in batch.items()})
    sam.step()

    ref_opt = SAM(
        torch.optim.AdamW(
            [{"params": [p for p in ref.parameters()], "weight_decay": 0.0}], lr=5e-3
        ),
        rho=0.1,
    )
    for group in trainer.sam_optimizer.param_groups:  # the same perturbation groups
        assert "perturb" in group
    ref_plain = {id(p) for g in sam.param_groups if not g["perturb"] for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    ref_params = dict(ref.named_parameters())
    ref_opt.base_optimizer.param_groups.clear()
    ref_opt.base_optimizer.state.clear()
    for perturb in (True, False):
        ref_opt.add_param_group(
            {
                "params": [
                    ref_params[names[id(p)]]
                    for g in sam.param_groups
                    for p in g["params"]
                    if (id(p) in ref_plain) != perturb
                ],
                "weight_decay": 0.0,
                "perturb": perturb,
                "lr": 5e-3,
            }
        )
    ref.train()
    sam_step(
        ref_opt, lambda b: ref(**b).loss, batch, accumulation_steps=2, accumulation="per_microbatch"
    )
    for (n, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=n)


def test_biases_and_norms_are_not_perturbed(tmp_path):
    model = tiny_bert()
    trainer = SAMTrainer(model=model, args=_args(tmp_path), train_dataset=toy_dataset())
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    plain = [p for g in trainer.sam_optimizer.param_groups if not g["perturb"] for p in g["params"]]
    names = {id(p): n for n, p in model.named_parameters()}
    assert plain and all("bias" in names[id(p)] or "LayerNorm" in names[id(p)] for p in plain)


class KillAfter(TrainerCallback):
    """Ends training after ``step`` steps, as a killed process would (after its save)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_embeddings_can_be_left_out(tmp_path):
    model = tiny_bert()
    trainer = SAMTrainer(
        model=model,
        args=_args(tmp_path),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(exclude_embeddings=True),
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = trainer.sam_optimizer.param_groups
    plain = {names[id(p)] for g in groups if not g["perturb"] for p in g["params"]}
    assert "bert.embeddings.word_embeddings.weight" in plain
    assert "classifier.weight" not in plain
    assert sum(len(g["params"]) for g in groups) == len(names)
    decay = {g["weight_decay"] for g in groups if g["perturb"]}
    assert decay == {trainer.args.weight_decay}  # the Trainer's decay split is kept


def _train(out, resume=None, kill_after=None, m=1):
    model = tiny_bert(dropout=0.1)
    trainer = SAMTrainer(
        model=model,
        args=_args(
            out, max_steps=6, save_strategy="steps", save_steps=3, gradient_accumulation_steps=2
        ),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(
            rho=0.1, probability=0.6, ascent_fraction=0.5, m=m, seed=1, track_cosine=True
        ),
        callbacks=[KillAfter(kill_after)] if kill_after else None,
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.mark.parametrize("m", [1, 2])
def test_resume_equals_uninterrupted(tmp_path, m):
    full = _train(tmp_path / "full", m=m)
    _train(tmp_path / "part", kill_after=3, m=m)
    resumed = _train(tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-3"), m=m)
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    losses = [r["loss"] for r in full.state.log_history if "loss" in r]
    resumed_losses = [r["loss"] for r in resumed.state.log_history if "loss" in r]
    assert resumed_losses == losses  # the first three come from the checkpoint
    assert len(losses) == 6
    kinds = [r["sam_steps"] for r in full.state.log_history if "sam_steps" in r]
    assert 0.0 in kinds and 1.0 in kinds  # randomized SAM: both kinds of step happened


def test_logs_carry_sam_statistics(tmp_path):
    trainer = _train(tmp_path, kill_after=3)
    row = next(r for r in trainer.state.log_history if r.get("sam_steps") == 1.0)
    for key in (
        "sam_loss_perturbed",
        "sam_grad_norm",
        "sam_perturbation_norm",
        "sam_cosine",
        "sam_skipped_steps",
    ):
        assert key in row
    assert row["sam_perturbation_norm"] == pytest.approx(0.1)


def test_bf16_trains(tmp_path):
    model = tiny_bert()
    before = copy.deepcopy(model.state_dict())
    trainer = SAMTrainer(
        model=model,
        args=_args(tmp_path, bf16=True, max_steps=4),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(rho=0.05),
    )
    trainer.train()
    assert trainer.sam_optimizer.skipped_steps == 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(r.get("sam_steps") == 1.0 for r in trainer.state.log_history)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="ascent_fraction=0"):
        SAMConfig(ascent_fraction=0)
    with pytest.raises(ValueError, match="rho=-1"):
        SAMConfig(rho=-1)
    with pytest.raises(ValueError, match="interval=0"):
        SAMConfig(interval=0)
