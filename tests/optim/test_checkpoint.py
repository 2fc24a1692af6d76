"""Checkpoint and resume: a resumed run is bitwise the uninterrupted one."""

from __future__ import annotations

import io

import pytest
import torch

from samlm import SAM, load_checkpoint, save_checkpoint
from tests.helpers import ce_loss, rng_state, set_rng_state, tiny_batch, tiny_mlp

SAM_OPTIONS = {
    "rho": 0.2,
    "probability": 0.5,  # randomized SAM: SAM's generator must be saved
    "rho_schedule": "warmup",
    "warmup_steps": 4,
    "same_dropout": True,
    "seed": 3,
}


def _make(base: str, **options):
    model = tiny_mlp(dropout=0.3)
    if base == "sgd":  # no per-parameter state at all
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
    elif base == "sgd_momentum":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    sam = SAM(opt, **{**SAM_OPTIONS, **options})
    sched = torch.optim.lr_scheduler.StepLR(sam, step_size=3, gamma=0.5)
    return model, sam, sched


def _train(model, sam, sched, steps: range) -> list[float]:
    losses = []
    for step in steps:
        batch = tiny_batch(seed=step)

        def closure(batch=batch):
            sam.zero_grad()
            loss = ce_loss(model)(batch)
            loss.backward()
            return loss

        losses.append(sam.step(closure).item())
        sched.step()
    return losses


def _checkpoint(model, sam, sched) -> bytes:
    buf = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": sam.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng_state(),
        },
        buf,
    )
    return buf.getvalue()


@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("base", ["sgd_momentum", "adamw"])
def test_resume_is_bitwise_the_uninterrupted_run(base):
    torch.manual_seed(123)
    model, sam, sched = _make(base)
    full = _train(model, sam, sched, range(12))
    assert sam.skipped_steps == 0

    torch.manual_seed(123)
    model, sam, sched = _make(base)
    first = _train(model, sam, sched, range(5))
    blob = _checkpoint(model, sam, sched)
    _train(model, sam, sched, range(5, 7))  # the process goes on a little, then dies

    model, sam, sched = _make(base)  # fresh objects, fresh generator
    state = torch.load(io.BytesIO(blob), weights_only=False)
    model.load_state_dict(state["model"])
    sam.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    assert sam.param_groups is sam.base_optimizer.param_groups
    rest = _train(model, sam, sched, range(5, 12))
    assert first + rest == full


@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("full", [True, False], ids=["full", "sharded"])
@pytest.mark.parametrize("base", ["sgd", "sgd_momentum", "adamw"])
@pytest.mark.parametrize(
    "options", [{"probability": 1.0, "rho_schedule": "constant"}, {}], ids=["sam", "randomized"]
)
def test_save_checkpoint_resumes_bitwise(tmp_path, base, full, options):
    """``save_checkpoint``/``load_checkpoint`` in one process, full or sharded, whatever
    per-parameter state the base optimizer keeps (SGD without momentum keeps none)."""
    whole_model, sam, sched = _make(base, **options)
    whole = _train(whole_model, sam, sched, range(8))

    model, sam, sched = _make(base, **options)
    first = _train(model, sam, sched, range(4))
    save_checkpoint(tmp_path, model, sam, full=full)
    sched_state, rng = sched.state_dict(), rng_state()
    _train(model, sam, sched, range(4, 6))  # the process goes on a little, then dies

    model, sam, sched = _make(base, **options)
    load_checkpoint(tmp_path, model, sam)
    sched.load_state_dict(sched_state)
    set_rng_state(rng)
    rest = _train(model, sam, sched, range(4, 8))
    assert first + rest == whole
    for p, q in zip(whole_model.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.usefixtures("device")
@pytest.mark.parametrize("cut", [2, 4, 6])
def test_resume_across_the_sam_start_step_is_bitwise(cut):
    """SAM starts at step 4; the run is saved before, at and after the start."""
    start = {"sam_start_step": 4}
    torch.manual_seed(123)
    full_model, sam, sched = _make("adamw", **start)
    full, kinds = [], []
    for step in range(12):
        full += _train(full_model, sam, sched, range(step, step + 1))
        kinds.append(sam.last_stats.sam_step)
    assert kinds[:4] == [False] * 4 and True in kinds[4:] and False in kinds[4:]

    torch.manual_seed(123)
    model, sam, sched = _make("adamw", **start)
    first = _train(model, sam, sched, range(cut))
    blob = _checkpoint(model, sam, sched)
    _train(model, sam, sched, range(cut, cut + 2))

    model, sam, sched = _make("adamw", **start)
    state = torch.load(io.BytesIO(blob), weights_only=False)
    model.load_state_dict(state["model"])
    sam.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    rest = _train(model, sam, sched, range(cut, 12))
    assert first + rest == full
    for p, q in zip(full_model.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.usefixtures("device")
def test_randomized_sam_mixes_sam_and_plain_steps():
    """Guards the resume test: with probability 0.5 both kinds of step occur."""
    model, sam, sched = _make("adamw")
    kinds = set()
    for step in range(12):
        _train(model, sam, sched, range(step, step + 1))
        kinds.add(sam.last_stats.sam_step)
    assert kinds == {True, False}


@pytest.mark.usefixtures("device")
def test_state_dict_while_perturbed_is_refused():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    ce_loss(model)(tiny_batch()).backward()
    assert sam.perturb()
    with pytest.raises(RuntimeError, match="perturbed"):
        sam.state_dict()
    sam.restore()
    assert set(sam.state_dict()) == {"base", "sam"}


def test_loading_a_foreign_state_dict_names_the_problem():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="not a SAM state dict"):
        sam.load_state_dict(sam.base_optimizer.state_dict())
    other = SAM(torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1))
    other.base_optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))]})
    with pytest.raises(ValueError, match="parameter groups"):
        sam.load_state_dict(other.state_dict())


def _resume_v0(v0, saved, optimizer_state):
    model, sam, sched = v0.make()
    model.load_state_dict(saved["model"])
    sam.load_state_dict(optimizer_state)
    sched.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    losses = torch.tensor(v0.train(model, sam, sched, range(4, 8)))
    return losses, model.state_dict()


def test_a_checkpoint_of_release_0_1_0_resumes_exactly():
    """``fixtures/sam_state_v0.pt`` was written by samlm 0.1.0, whose SAM state had no
    version: this release loads it and takes the same next four steps. Bitwise where this
    CPU's float arithmetic is the writer's (its first loss, a forward pass of the saved
    weights, tells); elsewhere kernels round differently, so within 1e-5, which a resume
    that lost the SAM state (warm-up step, generator) misses by far."""
    from tests.optim.fixtures import make_sam_state_v0 as v0

    saved = torch.load(v0.FILE, weights_only=True)
    assert "version" not in saved["optimizer"]["sam"]  # the old format, as written
    expected_losses = torch.tensor(saved["expected"]["losses"])
    expected_model = saved["expected"]["model"]
    losses, weights = _resume_v0(v0, saved, saved["optimizer"])
    if losses[0] == expected_losses[0]:  # the writer's arithmetic: bitwise
        assert torch.equal(losses, expected_losses)
        for name, value in weights.items():
            assert torch.equal(value, expected_model[name]), name
    close = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(losses, expected_losses, **close)
    for name, value in weights.items():
        torch.testing.assert_close(value, expected_model[name], **close)

    # the tolerance still tells a wrong resume: the SAM state of a fresh run instead
    lost = {**saved["optimizer"], "sam": v0.make()[1].state_dict()["sam"]}
    losses, _ = _resume_v0(v0, saved, lost)
    assert not torch.allclose(losses, expected_losses, **close)
