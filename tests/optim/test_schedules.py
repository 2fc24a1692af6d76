"""LR schedulers drive both objects; rho schedules, interval and randomized SAM."""

from __future__ import annotations

import pytest
import torch

from samlm import SAM
from tests.helpers import ce_loss, tiny_batch, tiny_mlp


def _closure(model, sam, batch):
    def closure():
        sam.zero_grad()
        loss = ce_loss(model)(batch)
        loss.backward()
        return loss

    return closure


def test_scheduler_on_the_wrapper_drives_the_base_optimizer():
    model = tiny_mlp()
    base = torch.optim.SGD(model.parameters(), lr=1.0)
    sam = SAM(base, rho=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(sam, lambda step: 0.5**step)
    for expected in (0.5, 0.25, 0.125):
        sam.step(_closure(model, sam, tiny_batch()))
        sched.step()
        assert base.param_groups[0]["lr"] == expected


def test_scheduler_on_the_base_drives_the_wrapper():
    model = tiny_mlp()
    base = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(base, step_size=1, gamma=0.1)
    sam = SAM(base, rho=0.1)
    sam.step(_closure(model, sam, tiny_batch()))
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
        sam.step(_closure(model, sam, tiny_batch()))
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
        sam.step(_closure(model, sam, tiny_batch()))
        kinds.append(sam.last_stats.sam_step)
    assert kinds == [True, False, False, True, False, False, True]


def test_randomized_sam_is_seeded_and_leaves_global_rng_alone():
    def run(seed):
        model = tiny_mlp()
        sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, probability=0.3, seed=seed)
        global_state = torch.get_rng_state()
        kinds = []
        for _ in range(40):
            sam.step(_closure(model, sam, tiny_batch()))
            kinds.append(sam.last_stats.sam_step)
        assert torch.equal(torch.get_rng_state(), global_state)  # SAM draws from its own
        return kinds

    a = run(1)
    assert run(1) == a
    assert 4 <= sum(a) <= 20  # about 30% of 40
    assert run(2) != a
