"""FSDP2 (``fully_shard`` on a gloo mesh, CPU): global norm, equality with single-process
SAM, exact resume from sharded and full checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributed.fsdp import fully_shard

from samlm import sam_step
from samlm.optim.checkpoint import load_checkpoint, save_checkpoint

from .harness import spawn
from .model import batches, loss_fn, sam, shard, tiny_model

STEPS, BATCH, M = 4, 8, 2
SCHEDULED = {"interval": 2, "rho_schedule": "warmup", "warmup_steps": 3}


def _sharded_model() -> nn.Module:
    model = tiny_model()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    return model


def _full(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.full_tensor().clone() for k, v in model.state_dict().items()}


def _decay(opt):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 / (1 + step))


def _train(model, opt, rank, world, steps, log=None, m=1, scheduler=None):
    for batch in steps:
        sam_step(opt, loss_fn(model), shard(batch, rank, world), m=m, model=model)
        if scheduler is not None:
            scheduler.step()
        if log is not None:
            log.append((opt.last_stats.grad_norm, _full(model)))


def _worker(rank: int, world: int, out: str) -> dict:
    data = batches(STEPS, BATCH)
    model = _sharded_model()
    opt = sam(model, distributed="synchronized", max_grad_norm=10.0)
    log: list = []
    _train(model, opt, rank, world, data, log)
    results = {"log": log}
    for kind in ("sharded", "full"):
        model = _sharded_model()
        opt = sam(model, distributed="synchronized", max_grad_norm=10.0)
        _train(model, opt, rank, world, data[:2])
        folder = f"{out}/{kind}"
        save_checkpoint(folder, model, opt, full=kind == "full")
        model = _sharded_model()
        opt = sam(model, distributed="synchronized", max_grad_norm=10.0)
        load_checkpoint(folder, model, opt)
        _train(model, opt, rank, world, data[2:])
        results[kind] = _full(model)
    model = _sharded_model()
    opt = sam(model, distributed="synchronized", **SCHEDULED)
    log = []
    _train(model, opt, rank, world, data, log, m=M, scheduler=_decay(opt))
    results["scheduled"] = log
    per_replica = sam(model, distributed="per_replica")
    with pytest.raises(ValueError, match="per_replica"):
        sam_step(per_replica, loss_fn(model), shard(data[0], rank, world), model=model)
    return results


@pytest.fixture(scope="module")
def fsdp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    return spawn(_worker, out, str(out))


def _reference():
    model = tiny_model()
    opt = sam(model, max_grad_norm=10.0)
    log = []
    for batch in batches(STEPS, BATCH):
        sam_step(opt, loss_fn(model), batch)
        log.append(
            (opt.last_stats.grad_norm, {k: v.clone() for k, v in model.state_dict().items()})
        )
    return log


def _chunk_major(batch, world):
    """The global batch reordered so that single-process chunk c holds every rank's chunk c
    (under FSDP each of the m perturbations comes from the global gradient of chunk c)."""
    return {
        k: torch.cat([part for c in range(M) for part in (r.chunk(M)[c] for r in v.chunk(world))])
        for k, v in batch.items()
    }


def test_fsdp_with_m_schedules_and_an_lr_scheduler_matches_single_process_sam(fsdp_results):
    model = tiny_model()
    opt = sam(model, **SCHEDULED)
    scheduler = _decay(opt)
    for step, batch in enumerate(batches(STEPS, BATCH)):
        sam_step(opt, loss_fn(model), _chunk_major(batch, 2), m=M)
        scheduler.step()
        for rank in fsdp_results:
            for name, w in rank["scheduled"][step][1].items():
                torch.testing.assert_close(w, model.state_dict()[name], rtol=1e-5, atol=1e-6)


def test_fsdp_matches_single_process_sam_with_a_global_norm(fsdp_results):
    reference = _reference()
    for rank in fsdp_results:
        for (norm, weights), (ref_norm, ref_weights) in zip(rank["log"], reference, strict=True):
            assert norm == pytest.approx(ref_norm, rel=1e-5)
            for name, w in weights.items():
                torch.testing.assert_close(w, ref_weights[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["sharded", "full"])
def test_fsdp_resume_equals_an_uninterrupted_run(fsdp_results, kind):
    for rank in fsdp_results:
        final = rank["log"][-1][1]
        for name, w in rank[kind].items():
            assert torch.equal(w, final[name]), name
