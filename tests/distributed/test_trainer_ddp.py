"""SAMTrainer's own loop under DDP (2 gloo processes) equals a single-process SAMTrainer
fed the same examples, step by step: with m = 2 x (m per process) for per-replica SAM, on
the whole batch for synchronized SAM; DDP all-reduces the gradient buckets once a step."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from transformers import TrainerCallback

from samlm.training import SAMConfig, SAMTrainer

from ..training.test_trainer import _args, tiny_bert, toy_dataset
from .harness import spawn

STEPS, BATCH, RHO = 3, 8, 0.1


class RecordingTrainer(SAMTrainer):
    """Keeps each step's inputs, so that a reference can replay them, and counts the
    all-reduces of DDP's gradient buckets in each step."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.append({k: v.clone() for k, v in inputs.items()})
        return super().training_step(model, inputs, num_items_in_batch)


class CountBuckets(TrainerCallback):
    def __init__(self, trainer: RecordingTrainer) -> None:
        self.trainer, self.calls, self.per_step = trainer, 0, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.model_wrapped.register_comm_hook(None, self.hook)

    def hook(self, _, bucket):
        self.calls += 1
        grad = bucket.buffer().div_(dist.get_world_size())
        return dist.all_reduce(grad, async_op=True).get_future().then(lambda f: f.value()[0])

    def on_step_end(self, args, state, control, **kwargs):
        self.per_step.append(self.calls)
        self.calls = 0


def _train_args(out, **kw):
    # the loss of one process's examples, as samlm's pipeline sets it (transformers' default
    # True multiplies a BERT head's loss by the process count). SGD, not the default AdamW:
    # Adam divides by sqrt(v) + eps, so a gradient entry near zero, whose rounding differs
    # between the all-reduced mean and the whole batch's (and between CPUs), moves its
    # weight by up to lr either way; SGD keeps the two runs a rounding error apart.
    return _args(out, weight_decay=0.0, average_tokens_across_devices=False, optim="sgd", **kw)


def _worker(rank: int, world: int, out: str, mode: str, m: int, sam: dict | None = None) -> dict:
    # what torchrun sets; the process group already exists, so accelerate adopts it
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")  # checked, not used
    model = tiny_bert()
    sam = dict(sam or {})
    steps = sam.pop("accumulation_steps", 1)
    trainer = RecordingTrainer(
        model=model,
        args=_train_args(
            out,
            max_steps=STEPS,
            per_device_train_batch_size=BATCH // steps,
            gradient_accumulation_steps=steps,
        ),
        train_dataset=toy_dataset(),
        sam_config=SAMConfig(rho=RHO, distributed_sam=mode, m=m, **sam),
    )
    trainer.model_accepts_loss_kwargs = False  # each micro-batch's loss / the steps
    trainer.seen = []
    buckets = CountBuckets(trainer)
    trainer.add_callback(buckets)
    trainer.train()
    return {
        "world_size": trainer.args.world_size,
        "mode": trainer.sam_optimizer.distributed,
        "global_step": trainer.state.global_step,
        "bucket_all_reduces": buckets.per_step,
        "seen": trainer.seen,
        "weights": {n: p.detach().clone() for n, p in model.named_parameters()},
    }


def _single_process(tmp_path, config: SAMConfig, batches: list[dict]) -> dict:
    """A single-process SAMTrainer stepping on ``batches``, one a step, with the DDP runs'
    schedule and clipping; returns each step's ``sam_step`` and the final weights."""
    ref = tiny_bert()
    trainer = SAMTrainer(
        model=ref,
        args=_train_args(tmp_path / "ref", max_steps=STEPS, per_device_train_batch_size=BATCH),
        train_dataset=toy_dataset(),
        sam_config=config,
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=STEPS)
    trainer.current_gradient_accumulation_steps = 1
    before = {n: p.detach().clone() for n, p in ref.named_parameters()}
    kinds = []
    for batch in batches:
        ref.zero_grad()
        trainer.training_step(ref, batch)
        kinds.append(trainer.sam_optimizer.last_stats.sam_step)
        torch.nn.utils.clip_grad_norm_(ref.parameters(), trainer.args.max_grad_norm)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    for name, p in ref.named_parameters():
        assert not torch.equal(p, before[name]) or not p.requires_grad, name  # it trained
    return {"sam_steps": kinds, "weights": dict(ref.named_parameters())}


def _assert_same_weights(ours: dict, ref: dict) -> None:
    for name, p in ref.items():
        torch.testing.assert_close(
            ours[name], p, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}"
        )


@pytest.mark.parametrize(
    "mode, m, ref_m", [("per_replica", 1, 2), ("per_replica", 2, 4), ("synchronized", 1, 1)]
)
def test_trainer_under_ddp_equals_single_process_sam(tmp_path, mode, m, ref_m):
    ranks = spawn(_worker, tmp_path, str(tmp_path / "ddp"), mode, m)
    for r in ranks:
        assert (r["world_size"], r["mode"], r["global_step"]) == (2, mode, STEPS)
        # the tiny model is one bucket: one all-reduce a step, for any m (the chunks but
        # the last accumulate locally); none in the first pass
        assert r["bucket_all_reduces"] == [1] * STEPS
        assert len(r["seen"]) == STEPS and all(len(b["labels"]) == BATCH for b in r["seen"])
    for name, p in ranks[0]["weights"].items():  # DDP keeps the replicas identical
        assert torch.equal(p, ranks[1]["weights"][name]), name

    # single process on rank 0's examples then rank 1's (per replica: as m = 2 chunks)
    batches = [
        {k: torch.cat([r["seen"][step][k] for r in ranks]) for k in ranks[0]["seen"][step]}
        for step in range(STEPS)
    ]
    ref = _single_process(tmp_path, SAMConfig(rho=RHO, m=ref_m), batches)
    assert all(ref["sam_steps"])
    _assert_same_weights(ranks[0]["weights"], ref["weights"])


@pytest.mark.parametrize("variant", ["gsam", pytest.param("aesam", marks=pytest.mark.slow)])
def test_global_accumulation_under_ddp_is_the_whole_batchs_step(tmp_path, variant):
    """A variant (synchronized), 2 processes x 2 micro-batches of 4 a step: the same as
    one process's step on all 16 examples; DDP all-reduces the buckets after a pass's
    last micro-batch only."""
    sam = {"variant": variant, "accumulation_steps": 2}
    ranks = spawn(_worker, tmp_path, str(tmp_path / "ddp"), "synchronized", 1, sam)
    batches = []
    for step in range(STEPS):  # each step's 4 micro-batches: rank 0's two, rank 1's two
        parts = [r["seen"][2 * step + i] for r in ranks for i in (0, 1)]
        batches.append({k: torch.cat([part[k] for part in parts]) for k in parts[0]})
    ref = _single_process(tmp_path, SAMConfig(rho=RHO, variant=variant), batches)
    _assert_same_weights(ranks[0]["weights"], ref["weights"])
    # GSAM's clean pass never all-reduces the buckets; AE-SAM's is the Trainer's own step,
    # so its SAM steps all-reduce twice
    twice = [variant == "aesam" and kind for kind in ref["sam_steps"]]
    assert twice[0] or variant == "gsam"  # AE-SAM's first step is a SAM step
    for r in ranks:
        assert r["global_step"] == STEPS and len(r["seen"]) == 2 * STEPS
        assert r["bucket_all_reduces"] == [2 if t else 1 for t in twice]
