"""LR schedulers drive both objects; rho schedules, interval and randomized SAM."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from samlm import SAM, sam_step
from samlm.training import SAMConfig
from tests.helpers import ce_loss, closure_for, tiny_batch, tiny_mlp

from .reference import RefSGD, sam_gradient


def test_scheduler_on_the_wrapper_drives_the_base_optimizer():
    model = tiny_mlp()
    base = torch.optim.SGD(model.parameters(), lr=1.0)
    sam = SAM(base, rho=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(sam, lambda step: 0.5**step)
    for expected in (0.5, 0.25, 0.125):
        sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
        sched.step()
        assert base.param_groups[0]["lr"] == expected


def test_scheduler_on_the_base_drives_the_wrapper():
    model = tiny_mlp()
    base = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(base, step_size=1, gamma=0.1)
    sam = SAM(base, rho=0.1)
    sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
    sched.step()
    assert sam.param_groups[0]["lr"] == pytest.approx(0.1)
    assert sam.param_groups is base.param_groups


def test_group_added_through_the_wrapper_reaches_the_base():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(list(model.parameters())[:2], lr=1.0), rho=0.3)
    sam.add_param_group({"params": list(model.parameters())[2:], "rho": 0.0})
    assert len(sam.base_optimizer.param_groups) == 2
    assert sam.base_optimizer.param_groups[1]["rho"] == 0.0
    assert sam.base_optimizer.param_groups[1]["perturb"] is True


def _rhos(sam, model, steps, sched=None):
    out = []
    for _ in range(steps):
        sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
        out.append(sam.last_stats.perturbation_norm if sam.last_stats.sam_step else 0.0)
        if sched is not None:
            sched.step()
    return out


def test_rho_proportional_to_lr():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.2, rho_schedule="lr")
    sched = torch.optim.lr_scheduler.LambdaLR(sam, lambda step: 1.0 / (step + 1))
    assert _rhos(sam, model, 4, sched) == pytest.approx([0.2, 0.1, 0.2 / 3, 0.05])


def test_rho_warmup():
    model = tiny_mlp()
    sam = SAM(
        torch.optim.SGD(model.parameters(), lr=0.1), rho=0.4, rho_schedule="warmup", warmup_steps=4
    )
    assert _rhos(sam, model, 6) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_interval_perturbs_every_kth_step():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, interval=3)
    kinds = []
    for _ in range(7):
        sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
        kinds.append(sam.last_stats.sam_step)
    assert kinds == [True, False, False, True, False, False, True]


def test_randomized_sam_is_seeded_and_leaves_global_rng_alone():
    def run(seed):
        model = tiny_mlp()
        sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, probability=0.3, seed=seed)
        global_state = torch.get_rng_state()
        kinds = []
        for _ in range(40):
            sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
            kinds.append(sam.last_stats.sam_step)
        assert torch.equal(torch.get_rng_state(), global_state)  # SAM draws from its own
        return kinds

    a = run(1)
    assert run(1) == a
    assert 4 <= sum(a) <= 20  # about 30% of 40
    assert run(2) != a


# -- sam_start_step: plain steps of the base optimizer before SAM starts -------------------


def _counting_loss(model, calls):
    inner = ce_loss(model)

    def loss_fn(batch):
        calls.append(1)
        return inner(batch)

    return loss_fn


@pytest.mark.parametrize("start", [-1, 1.5, "2"])
def test_sam_start_step_must_be_a_non_negative_integer(start):
    model = tiny_mlp()
    with pytest.raises(ValueError, match=f"sam_start_step={start!r}"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), sam_start_step=start)
    with pytest.raises(ValueError, match=f"sam_start_step={start!r}"):
        SAMConfig(sam_start_step=start)


@pytest.mark.parametrize("api", ["closure", "helper", "two_phase"])
def test_steps_before_the_start_are_plain_sgd_then_sam(api):
    """sam_start_step=2: steps 1 and 2 are bitwise plain SGD, step 3 is the SAM step of
    the torch.func reference from the weights plain SGD reached."""
    rho, lr = 0.3, 0.1
    batch = tiny_batch()
    model, plain_model = tiny_mlp(), tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=lr), rho=rho, sam_start_step=2)
    plain = torch.optim.SGD(plain_model.parameters(), lr=lr)
    kinds = []
    for step in range(3):
        w = {k: v.detach().clone() for k, v in model.named_parameters()}
        if api == "closure":
            sam.step(closure_for(sam, ce_loss(model), batch))
        elif api == "helper":
            sam_step(sam, ce_loss(model), batch)
        else:
            sam.zero_grad()
            ce_loss(model)(batch).backward()
            if sam.perturb():
                sam.zero_grad()
                ce_loss(model)(batch).backward()
            sam.step()
        kinds.append(sam.last_stats.sam_step)
        if step < 2:
            closure_for(plain, ce_loss(plain_model), batch)()
            plain.step()
            for p, q in zip(plain_model.parameters(), model.parameters(), strict=True):
                assert torch.equal(p, q)
    assert kinds == [False, False, True]
    g = sam_gradient(plain_model, w, nn.functional.cross_entropy, batch, rho)
    expected = RefSGD(lr)(w, g)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, expected[name], rtol=0, atol=1e-6)
    # and the third step is not the plain one (the comparison above is not vacuous)
    closure_for(plain, ce_loss(plain_model), batch)()
    plain.step()
    assert not torch.allclose(plain_model[0].weight, model[0].weight, rtol=0, atol=1e-5)


@pytest.mark.parametrize("api", ["closure", "helper"])
def test_plain_steps_before_the_start_cost_one_pass(api):
    """1 forward-backward per plain step, 2 per SAM step; the interval counts from the
    start (steps 2 and 4 perturb)."""
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, sam_start_step=2, interval=2)
    passes = []
    for _ in range(5):
        calls = []
        loss_fn = _counting_loss(model, calls)
        if api == "helper":
            sam_step(sam, loss_fn, tiny_batch())
        else:

            def closure(loss_fn=loss_fn):
                sam.zero_grad()
                loss = loss_fn(tiny_batch())
                loss.backward()
                return loss

            sam.step(closure)
        passes.append(len(calls))
        assert sam.last_stats.sam_step == (len(calls) == 2)
    assert passes == [1, 1, 2, 1, 2]


def test_rho_warmup_counts_from_the_start():
    model = tiny_mlp()
    sam = SAM(
        torch.optim.SGD(model.parameters(), lr=0.1),
        rho=0.4,
        rho_schedule="warmup",
        warmup_steps=2,
        sam_start_step=2,
    )
    assert _rhos(sam, model, 5) == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.4])


def test_randomized_sam_draws_nothing_before_the_start():
    """The draws begin at the start step: the gate after it is the unshifted gate."""

    def kinds(start):
        model = tiny_mlp()
        sam = SAM(
            torch.optim.SGD(model.parameters(), lr=0.1),
            rho=0.1,
            probability=0.5,
            seed=4,
            sam_start_step=start,
        )
        out = []
        for _ in range(start + 16):
            sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
            out.append(sam.last_stats.sam_step)
        return out

    shifted = kinds(3)
    assert shifted[:3] == [False] * 3
    assert shifted[3:] == kinds(0)
    assert True in shifted and False in shifted[3:]
