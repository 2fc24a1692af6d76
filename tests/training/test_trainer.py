"""SAMTrainer: the Trainer's loop with SAM per micro-batch, on tiny random models."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from torch.func import functional_call, grad
from transformers import (
    BertForSequenceClassification,
    Seq2SeqTrainingArguments,
    T5Config,
    T5ForConditionalGeneration,
    TrainerCallback,
    TrainingArguments,
)

from samlm import SAM, sam_param_groups, sam_step
from samlm.optim.variants import TaskSAM
from samlm.training import SAMConfig, SAMSeq2SeqTrainer, SAMTrainer
from tests.helpers import tiny_hf


def tiny_bert(seed: int = 0, dropout: float = 0.0) -> BertForSequenceClassification:
    return tiny_hf("bert", seed, dropout)


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
    plain = {
        id(p) for g in trainer.sam_optimizer.param_groups if not g["perturb"] for p in g["params"]
    }
    named = dict(model.named_parameters())
    expected = {id(p) for n, p in named.items() if "bias" in n or "LayerNorm" in n}
    assert len(expected) > 10 and plain == expected
    perturbed = {
        id(p) for g in trainer.sam_optimizer.param_groups if g["perturb"] for p in g["params"]
    }
    assert perturbed == {id(p) for p in named.values()} - expected


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


def _train(out, resume=None, kill_after=None, m=1, **sam_options):
    model = tiny_bert(dropout=0.1)
    trainer = SAMTrainer(
        model=model,
        args=_args(
            out, max_steps=6, save_strategy="steps", save_steps=3, gradient_accumulation_steps=2
        ),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(
            rho=0.1,
            probability=0.6,
            ascent_fraction=0.5,
            m=m,
            seed=1,
            track_cosine=True,
            **sam_options,
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
    trainer = _train(tmp_path, kill_after=3)  # randomized SAM, half-batch ascent
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
    assert "sam_sharpness" not in row  # L(w + e) and L(w) saw different examples


def test_logged_sam_statistics_agree_with_each_other(tmp_path):
    """With the whole batch in the ascent, ``sam_sharpness`` is L(w + e) - L(w), with the
    logged L(w) (rounded to 4 places by the Trainer); ||e|| = rho; cosine in [-1, 1]."""
    trainer = SAMTrainer(
        model=tiny_bert(),
        args=_args(tmp_path, max_steps=4),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(rho=0.2, track_cosine=True),
    )
    trainer.train()
    rows = [r for r in trainer.state.log_history if "sam_steps" in r]
    assert len(rows) == 4
    for r in rows:
        assert r["sam_steps"] == 1.0 and r["sam_skipped_steps"] == 0.0
        assert r["sam_sharpness"] == pytest.approx(r["sam_loss_perturbed"] - r["loss"], abs=1e-4)
        assert r["sam_perturbation_norm"] == pytest.approx(0.2)
        assert r["sam_grad_norm"] > 0 and -1.0 <= r["sam_cosine"] <= 1.0


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


# -- exclude_head ---------------------------------------------------------------------------


def _reference_step(model, batch, rho, lr, perturbed):
    """One SAM step with plain SGD by torch.func: e from the ``perturbed`` parameters
    alone (||g|| over them too), the others at w in both passes; every parameter steps."""
    params = {n: p.detach().clone() for n, p in model.named_parameters()}

    def loss(p):
        return functional_call(model, p, (), dict(batch)).loss

    g = grad(loss)(params)
    norm = torch.sqrt(sum((g[n] ** 2).sum() for n in perturbed))
    moved = {n: w + rho * g[n] / norm if n in perturbed else w for n, w in params.items()}
    g2 = grad(loss)(moved)
    return {n: w - lr * g2[n] for n, w in params.items()}


def test_exclude_head_step_matches_a_reference_that_leaves_the_head_at_w(tmp_path):
    rho, lr = 0.5, 0.1
    model, ref = tiny_bert(), tiny_bert()
    trainer = SAMTrainer(
        model=model,
        args=_args(tmp_path, optim="sgd", learning_rate=lr, weight_decay=0.0),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(rho=rho, exclude_head=True),
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    sam = trainer.sam_optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    plain = {names[id(p)] for g in sam.param_groups if not g["perturb"] for p in g["params"]}
    assert {"classifier.weight", "classifier.bias"} <= plain
    assert sum(len(g["params"]) for g in sam.param_groups) == len(names)  # all still trained

    ds = toy_dataset(16)
    batch = {"input_ids": torch.tensor(ds["input_ids"]), "labels": torch.tensor(ds["labels"])}
    trainer.current_gradient_accumulation_steps = 1
    model.zero_grad()
    trainer.training_step(model, batch)
    sam.step()
    assert sam.last_stats.sam_step

    ref.train()
    body = [  # chosen by name, independently of samlm's grouping
        n
        for n, _ in ref.named_parameters()
        if not n.startswith("classifier.") and not n.endswith(".bias") and "LayerNorm" not in n
    ]
    expected = _reference_step(ref, batch, rho, lr, set(body))
    for n, p in model.named_parameters():
        torch.testing.assert_close(p, expected[n], rtol=0, atol=1e-6, msg=n)
    # not vacuous: perturbing the head too gives another step
    with_head = _reference_step(ref, batch, rho, lr, {*body, "classifier.weight"})
    gap = max((with_head[n] - expected[n]).abs().max().item() for n in expected)
    assert gap > 1e-4


def test_exclude_head_on_a_model_without_a_head_is_refused(tmp_path):
    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(
        T5Config(vocab_size=40, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    )
    with pytest.raises(ValueError, match="T5ForConditionalGeneration") as err:
        SAMSeq2SeqTrainer(
            model=t5,
            args=Seq2SeqTrainingArguments(str(tmp_path), report_to=[], use_cpu=True),
            sam_config=SAMConfig(exclude_head=True),
        )
    assert "model.classifier" in str(err.value) and "model.score" in str(err.value)


# -- sam_start_step -------------------------------------------------------------------------


class StepPasses(TrainerCallback):
    """Forward and backward passes of each optimizer step."""

    def __init__(self, model) -> None:
        self.counts = {"forward": 0, "backward": 0}
        self.steps: list[tuple[int, int]] = []
        model.register_forward_pre_hook(lambda *a: self._add("forward"))
        model.bert.embeddings.word_embeddings.weight.register_hook(lambda g: self._add("backward"))

    def _add(self, kind):
        self.counts[kind] += 1

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append((self.counts["forward"], self.counts["backward"]))
        self.counts = {"forward": 0, "backward": 0}


def test_plain_steps_before_sam_starts_cost_one_pass(tmp_path):
    model = tiny_bert()
    passes = StepPasses(model)
    trainer = SAMTrainer(
        model=model,
        args=_args(tmp_path, max_steps=4),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(rho=0.1, sam_start_step=2),
        callbacks=[passes],
    )
    trainer.train()
    assert passes.steps == [(1, 1), (1, 1), (2, 2), (2, 2)]
    kinds = [r["sam_steps"] for r in trainer.state.log_history if "sam_steps" in r]
    assert kinds == [0.0, 0.0, 1.0, 1.0]


def test_resume_across_the_sam_start_step_equals_uninterrupted(tmp_path):
    """SAM starts at step 4; the run is killed after its step-3 checkpoint and resumed."""
    full = _train(tmp_path / "full", sam_start_step=4)
    _train(tmp_path / "part", kill_after=3, sam_start_step=4)
    resumed = _train(
        tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-3"), sam_start_step=4
    )
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    kinds = [r["sam_steps"] for r in full.state.log_history if "sam_steps" in r]
    assert kinds[:3] == [0.0] * 3 and 1.0 in kinds[3:]
    resumed_kinds = [r["sam_steps"] for r in resumed.state.log_history if "sam_steps" in r]
    assert resumed_kinds == kinds


def test_sam_config_chunks_by_count_or_by_examples():
    assert SAMConfig(m=3).chunks(16) == 3 and SAMConfig(m=3).chunks(2) == 2
    assert SAMConfig(m_examples=4).chunks(16) == 4 and SAMConfig(m_examples=5).chunks(16) == 4
    with pytest.raises(ValueError, match="m=2 and m_examples=4"):
        SAMConfig(m=2, m_examples=4)


def _run(tmp_path, accumulation_steps: int, **sam) -> tuple[torch.nn.Module, list[dict]]:
    """6 SGD steps of 8 examples, as 8 // accumulation_steps-example micro-batches (the
    Trainer's sampler gives both the same examples in the same order)."""
    model = tiny_bert()
    trainer = SAMTrainer(
        model=model,
        args=_args(
            tmp_path / str(accumulation_steps),
            per_device_train_batch_size=8 // accumulation_steps,
            gradient_accumulation_steps=accumulation_steps,
            num_train_epochs=1,
            optim="sgd",
            learning_rate=0.5,
        ),
        train_dataset=toy_dataset(48),
        sam_config=SAMConfig(rho=0.1, **sam),
    )
    # BERT's forward takes **kwargs, so the Trainer would leave each micro-batch's mean
    # loss undivided by the accumulation steps (for SAM and its baseline alike)
    trainer.model_accepts_loss_kwargs = False
    trainer.train()
    return model, [r for r in trainer.state.log_history if "loss" in r]


@pytest.mark.parametrize(
    "sam",
    [
        {"sam_accumulation": "global"},
        {"variant": "gsam"},
        {"variant": "looksam", "looksam_k": 2},
        {"variant": "aesam"},
        {"variant": "eigensam", "eigensam_refresh": 2, "alpha": 0.5},
    ],
    ids=["sam", "gsam", "looksam", "aesam", "eigensam"],
)
def test_global_accumulation_is_the_whole_batchs_step(tmp_path, sam):
    """Two micro-batches of 4 with accumulation='global' (the variants' default) train
    as one batch of 8: the same SAM and plain steps, logged losses and weights."""
    whole, whole_logs = _run(tmp_path, 1, **sam)
    halves, halves_logs = _run(tmp_path, 2, **sam)
    kinds = [r["sam_steps"] for r in whole_logs]
    assert [r["sam_steps"] for r in halves_logs] == kinds and len(kinds) == 6
    if sam.get("variant") in ("looksam", "aesam"):  # their plain steps are covered too
        assert set(kinds) == {0.0, 1.0}
    for a, b in zip(whole_logs, halves_logs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    for (name, p), q in zip(whole.named_parameters(), halves.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


def test_per_micro_batch_accumulation_is_not_the_whole_batchs_step(tmp_path):
    """SAM's default with accumulation: each micro-batch perturbed with its own gradient,
    so the run parts from the whole batch's (the test above can tell the two apart)."""
    whole, _ = _run(tmp_path, 1)
    halves, _ = _run(tmp_path, 2)
    pairs = zip(whole.parameters(), halves.parameters(), strict=True)
    assert max((p - q).abs().max().item() for p, q in pairs) > 1e-3


def test_accumulation_options_are_checked():
    assert SAMConfig(variant="gsam").accumulates_globally
    assert not SAMConfig().accumulates_globally
    assert SAMConfig(sam_accumulation="global").accumulates_globally
    for config, message in (
        (
            dict(variant="gsam", sam_accumulation="per_microbatch"),
            "sam_accumulation='per_microbatch' with",
        ),
        (dict(sam_accumulation="global", m=2), r"m=2 with sam_accumulation='global'"),
        (dict(sam_accumulation="all"), "sam_accumulation='all' must be"),
    ):
        with pytest.raises(ValueError, match=message):
            SAMConfig(**config)
    with pytest.raises(ValueError, match="variant='gsam' with m-sharpness"):
        SAMConfig(variant="gsam", m=2)
    with pytest.raises(ValueError, match="variant='fsam'"):
        SAMConfig(variant="fsam")


def test_aesam_learns_the_runs_length_from_the_trainer(tmp_path):
    trainer = SAMTrainer(
        model=tiny_bert(),
        args=_args(tmp_path),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(variant="aesam"),
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    assert trainer.sam_optimizer.engine.variant.total_steps == 10
    with pytest.raises(ValueError, match=r"ascent_fraction=0\.25 with variant='aesam'"):
        SAMConfig(variant="aesam", ascent_fraction=0.25)


def test_aesam_takes_its_thresholds_from_the_config(tmp_path):
    """delta, lambda_1, lambda_2 reach the variant; unset, AE-SAM's own defaults; set for
    a method that does not use them, a ValueError naming them (alpha likewise)."""
    trainer = SAMTrainer(
        model=tiny_bert(),
        args=_args(tmp_path),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(
            variant="aesam", aesam_delta=0.5, aesam_lambda_1=0.0, aesam_lambda_2=2.0
        ),
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    variant = trainer.sam_optimizer.engine.variant
    assert (variant.delta, variant.lambda_1, variant.lambda_2) == (0.5, 0.0, 2.0)
    default = SAMConfig(variant="aesam").make_variant()
    assert (default.delta, default.lambda_1, default.lambda_2) == (0.9, -1.0, 1.0)
    assert SAMConfig(variant="aesam", aesam_lambda_2=3.0).make_variant().lambda_1 == -1.0
    for config, message in (
        (dict(aesam_delta=0.5), r"aesam_delta=0\.5 with variant=None: only variant='aesam'"),
        (
            dict(variant="looksam", aesam_lambda_1=0.0),
            r"aesam_lambda_1=0\.0 with variant='looksam'",
        ),
        (dict(variant="aesam", alpha=0.5), r"alpha=0\.5 with variant='aesam': only variant="),
        (dict(variant="aesam", aesam_delta=1.0), r"aesam_delta=1\.0 must be in \(0, 1\)"),
    ):
        with pytest.raises(ValueError, match=message):
            SAMConfig(**config)


@pytest.mark.parametrize("variant", [None, "aesam"])
def test_the_loss_scale_is_divided_out_of_sam_statistics_and_aesam_decisions(tmp_path, variant):
    """fp16 needs a GPU; on CPU a GradScaler put where the Accelerator keeps fp16's own
    scales the Trainer's backward (gradients S g). With S doubling at every step, the
    runs take the same SAM and plain steps (AE-SAM decides by ||g||^2, unscaled), log the
    same ||g|| and end at the same weights as without a scaler."""

    def run(scaler):
        trainer = SAMTrainer(
            model=tiny_bert(),
            args=_args(tmp_path / str(scaler is None), max_steps=6, max_grad_norm=0.0),
            train_dataset=toy_dataset(),
            sam_config=SAMConfig(rho=0.1, variant=variant),
        )
        trainer.accelerator.scaler = scaler  # before train(): its optimizer steps through it
        trainer.train()
        rows = [r for r in trainer.state.log_history if "sam_steps" in r]
        return trainer.model, [r["sam_steps"] for r in rows], [r.get("sam_grad_norm") for r in rows]

    model, kinds, norms = run(None)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=1)
    scaled_model, scaled_kinds, scaled_norms = run(scaler)
    assert scaler.get_scale() == 2.0**10  # it grew at every step: no step was skipped
    assert scaled_kinds == kinds and (variant is None or set(kinds) == {0.0, 1.0})
    assert scaled_norms == pytest.approx(norms, rel=1e-4)
    for p, q in zip(model.parameters(), scaled_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_eigensam_refreshes_in_the_trainer_with_its_options(tmp_path):
    """alpha, refresh and iterations reach the variant; the Trainer's step plan refreshes
    v through BERT's scaled dot-product attention (6 steps, refresh 2: at steps 2 and 4);
    unset, the authors' code's defaults; refresh without Eigen-SAM is refused."""
    config = SAMConfig(
        rho=0.1, variant="eigensam", alpha=0.5, eigensam_refresh=2, eigensam_iterations=3
    )
    trainer = SAMTrainer(
        model=tiny_bert(),
        args=_args(tmp_path, per_device_train_batch_size=8, num_train_epochs=1, optim="sgd"),
        train_dataset=toy_dataset(48),
        sam_config=config,
    )
    trainer.train()
    variant = trainer.sam_optimizer.engine.variant
    assert (variant.alpha, variant.refresh, variant.iterations) == (0.5, 2, 3)
    assert variant.refreshed_at == 4 and len(variant.v) > 0
    norm = sum((v.double() ** 2).sum() for v in variant.v.values()).sqrt()
    assert norm.item() == pytest.approx(1.0)
    default = SAMConfig(variant="eigensam").make_variant()
    assert (default.alpha, default.refresh, default.iterations) == (0.2, 100, 5)
    with pytest.raises(ValueError, match=r"eigensam_refresh=2 with variant='gsam': only variant="):
        SAMConfig(variant="gsam", eigensam_refresh=2)
    with pytest.raises(ValueError, match=r"adaptive=True with variant='eigensam'"):
        SAMConfig(variant="eigensam", adaptive=True)


@pytest.mark.parametrize(("k", "clip"), [(1, 0.0), (2, 0.0), (2, 0.05)])
def test_tasksam_in_the_trainer_is_sam_steps_task_by_task(tmp_path, k, clip):
    """SAMTrainer with TaskSAM (task_sizes (1, 3) per micro-batch of 4, k micro-batches a
    step; no clipping, or at 0.05, below every step's norm) trains as samlm.sam_step with
    TaskSAM and max_grad_norm on the same batches: each task's slices weighted by their
    share of the step, the clip on the final direction only."""
    dataset = toy_dataset(48)
    trainer_model = tiny_bert()
    args = _args(
        tmp_path,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=k,
        max_steps=4,
        optim="sgd",
        learning_rate=0.5,
        lr_scheduler_type="constant",
        max_grad_norm=clip,
        train_sampling_strategy="sequential",
    )
    config = SAMConfig(rho=0.1, variant="tasksam")
    trainer = SAMTrainer(
        model=trainer_model,
        args=args,
        train_dataset=dataset,
        sam_config=config,
        task_sizes=(1, 3),
    )
    trainer.model_accepts_loss_kwargs = False
    trainer.train()
    assert trainer.sam_optimizer.sam_steps == 4
    model = tiny_bert()
    groups = sam_param_groups(model)  # the Trainer's: biases and norms at w
    sam = SAM(torch.optim.SGD(groups, lr=0.5), 0.1, max_grad_norm=clip or None, variant=TaskSAM())
    ids, labels = torch.tensor(dataset["input_ids"]), torch.tensor(dataset["labels"])
    for step in range(4):
        rows = slice(4 * k * step, 4 * k * (step + 1))
        batch = {"input_ids": ids[rows], "labels": labels[rows]}
        sam_step(sam, lambda b: model(**b).loss, batch, accumulation_steps=k, task_sizes=(1, 3))
    for (name, p), q in zip(model.named_parameters(), trainer_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
