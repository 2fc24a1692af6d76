"""FSDP2 (``fully_shard`` on a gloo mesh, CPU): global norm, equality with single-process
SAM and with single-process GSAM, LookSAM and AE-SAM, exact resume from sharded and full
checkpoints (LookSAM's g_v included, and SGD without any per-parameter state)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributed.fsdp import fully_shard

from samlm import SAM, sam_step
from samlm.optim.checkpoint import load_checkpoint, save_checkpoint
from samlm.optim.variants import AESAM, GSAM, EigenSAM, LookSAM

from .harness import spawn
from .model import batches, loss_fn, sam, shard, tiny_model

STEPS, BATCH, M = 4, 8, 2
SCHEDULED = {"interval": 2, "rho_schedule": "warmup", "warmup_steps": 3}
VARIANTS = {  # fresh objects (they hold state); AE-SAM on these batches: SAM, plain, SAM, SAM
    "gsam": lambda: GSAM(alpha=0.5),
    "looksam": lambda: LookSAM(k=2, alpha=0.7),
    "aesam": lambda: AESAM(delta=0.5, lambda_1=1.0, lambda_2=1.0),
}
# resumed after step 1: LookSAM's step 2 then steps with the g_v of step 0, from the checkpoint
RESUMED = {**VARIANTS, "looksam": lambda: LookSAM(k=3, alpha=0.7)}


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


def _train(model, opt, rank, world, steps, log=None, m=1, scheduler=None, kinds=None):
    for batch in steps:
        sam_step(opt, loss_fn(model), shard(batch, rank, world), m=m, model=model)
        if scheduler is not None:
            scheduler.step()
        if log is not None:
            log.append((opt.last_stats.grad_norm, _full(model)))
        if kinds is not None:
            kinds.append(opt.last_stats.sam_step)


def _clipped(model, variant=None):
    """Synchronized SAM with clipping, and a fresh variant by name (``None``: SAM;
    ``"sgd"``: SAM on SGD without momentum, which keeps no per-parameter state)."""
    if variant == "sgd":
        base = torch.optim.SGD(model.parameters(), lr=0.05)
        return SAM(base, rho=0.1, distributed="synchronized", max_grad_norm=10.0)
    made = None if variant is None else RESUMED[variant]()
    return sam(model, distributed="synchronized", max_grad_norm=10.0, variant=made)


def _variant_state(opt) -> dict:
    """The variant's attributes; LookSAM's g_v as this rank's shards by parameter index."""
    if opt.engine.variant is None:
        return {}
    state = dict(vars(opt.engine.variant))
    if "g_v" in state:
        index = opt._param_index()
        state["g_v"] = {index[p]: v.clone() for p, v in state["g_v"].items()}
    return state


def _worker(rank: int, world: int, out: str) -> dict:
    data = batches(STEPS, BATCH)
    model = _sharded_model()
    opt = _clipped(model)
    log: list = []
    _train(model, opt, rank, world, data, log)
    results = {"log": log}
    for variant in (None, "gsam", "aesam", "looksam", "sgd"):
        for kind in ("sharded", "full"):
            model = _sharded_model()
            opt = _clipped(model, variant)
            _train(model, opt, rank, world, data[:2])
            folder = f"{out}/{variant}-{kind}"
            save_checkpoint(folder, model, opt, full=kind == "full")
            model = _sharded_model()
            opt = _clipped(model, variant)
            load_checkpoint(folder, model, opt)
            _train(model, opt, rank, world, data[2:])
            results[(variant, kind)] = (_full(model), _variant_state(opt))
    for variant in ("gsam", "aesam", "looksam", "sgd"):  # the uninterrupted runs
        model = _sharded_model()
        opt = _clipped(model, variant)
        _train(model, opt, rank, world, data)
        results[(variant, "uninterrupted")] = (_full(model), _variant_state(opt))
    model = _sharded_model()
    opt = sam(model, distributed="synchronized", **SCHEDULED)
    log = []
    _train(model, opt, rank, world, data, log, m=M, scheduler=_decay(opt))
    results["scheduled"] = log
    for name, make in VARIANTS.items():
        model = _sharded_model()
        opt = sam(model, distributed="synchronized", variant=make())
        log, kinds = [], []
        _train(model, opt, rank, world, data, log, kinds=kinds)
        results[name] = (kinds, [weights for _, weights in log])
    per_replica = sam(model, distributed="per_replica")
    with pytest.raises(ValueError, match="per_replica"):
        sam_step(per_replica, loss_fn(model), shard(data[0], rank, world), model=model)
    # Eigen-SAM's products on shards: refused by name at its first refresh
    eigen = sam(model, distributed="synchronized", variant=EigenSAM(refresh=1))
    sam_step(eigen, loss_fn(model), shard(data[0], rank, world), model=model)
    with pytest.raises(ValueError, match=r"EigenSAM\(.*sharded \(FSDP\) parameters"):
        sam_step(eigen, loss_fn(model), shard(data[1], rank, world), model=model)
    results["eigensam_refused"] = True
    return results


@pytest.fixture(scope="module")
def fsdp_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fsdp")


@pytest.fixture(scope="module")
def fsdp_results(fsdp_folder):
    return spawn(_worker, fsdp_folder, str(fsdp_folder))


def _resume_on_one_rank(rank: int, world: int, folder: str) -> dict:
    """Load the 2-rank run's sharded checkpoint (after 2 steps) on ``world`` = 1 rank and
    take the last 2 steps there."""
    model = _sharded_model()
    opt = _clipped(model)
    load_checkpoint(folder, model, opt)
    _train(model, opt, rank, world, batches(STEPS, BATCH)[2:])
    return _full(model)


def test_a_sharded_checkpoint_resumes_on_another_rank_count(fsdp_results, fsdp_folder):
    one = fsdp_folder / "one-rank"
    one.mkdir()
    (weights,) = spawn(_resume_on_one_rank, one, str(fsdp_folder / "None-sharded"), world=1)
    final = fsdp_results[0]["log"][-1][1]  # the 2-rank uninterrupted run
    assert weights.keys() == final.keys()
    for name, w in weights.items():
        torch.testing.assert_close(w, final[name], rtol=1e-5, atol=1e-6)


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


@pytest.mark.parametrize("variant", [None, "gsam", "aesam", "looksam", "sgd"])
@pytest.mark.parametrize("kind", ["sharded", "full"])
def test_fsdp_resume_equals_an_uninterrupted_run(fsdp_results, kind, variant):
    for rank in fsdp_results:
        weights, state = rank[(variant, kind)]
        final, final_state = (
            (rank["log"][-1][1], {}) if variant is None else rank[(variant, "uninterrupted")]
        )
        for name, w in weights.items():
            assert torch.equal(w, final[name]), name
        state, final_state = dict(state), dict(final_state)  # the fixture's, shared
        g_v, final_g_v = state.pop("g_v", {}), final_state.pop("g_v", {})
        assert state == final_state  # AE-SAM's mean, var, T; GSAM's alpha; LookSAM's ||g_v||^2
        assert g_v.keys() == final_g_v.keys() and (variant != "looksam" or g_v)
        for i, v in g_v.items():  # LookSAM's g_v: this rank's shards
            assert torch.equal(v, final_g_v[i]), i


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fsdp_variants_match_single_process(fsdp_results, name):
    model = tiny_model()
    opt = sam(model, variant=VARIANTS[name]())
    kinds = []
    for step, batch in enumerate(batches(STEPS, BATCH)):
        sam_step(opt, loss_fn(model), batch)
        kinds.append(opt.last_stats.sam_step)
        for rank in fsdp_results:
            for key, w in rank[name][1][step].items():
                torch.testing.assert_close(w, model.state_dict()[key], rtol=1e-5, atol=1e-6)
    assert all(kinds) == (name == "gsam")  # LookSAM and AE-SAM take plain steps too
    assert fsdp_results[0][name][0] == fsdp_results[1][name][0] == kinds


def test_eigensam_is_refused_on_sharded_parameters_by_name(fsdp_results):
    assert all(rank["eigensam_refused"] for rank in fsdp_results)
