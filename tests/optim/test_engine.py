"""The step engine's contracts: float64, rho = 0 in one pass, the paper's m, forwarded
groups and state, the versioned state dict, and torch's optimizer machinery."""

from __future__ import annotations

import copy

import pytest
import torch

from samlm import SAM, sam_step
from samlm.optim import torch_compat
from samlm.optim.sam import STATE_VERSION
from tests.helpers import ce_loss, closure_for, tiny_batch, tiny_mlp


@pytest.mark.parametrize("rho", [0.0, 0.1])
def test_float64_models_step(rho):
    model = tiny_mlp(dtype=torch.float64)
    twin = copy.deepcopy(model)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=rho)
    base = torch.optim.SGD(twin.parameters(), lr=0.1)
    batch = tiny_batch(dtype=torch.float64)
    for _ in range(3):
        sam.step(closure_for(sam, ce_loss(model), batch))
        base.step(closure_for(base, ce_loss(twin), batch))
    assert sam.last_stats.sam_step == (rho > 0)
    same = [torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters(), strict=True)]
    assert all(same) == (rho == 0.0)  # rho = 0: the base optimizer, bitwise
    if rho > 0:
        assert sam.last_stats.grad_norm > 0


def _counting(model):
    calls = []

    def loss_fn(batch):
        calls.append(len(batch[1]))
        return ce_loss(model)(batch)

    return loss_fn, calls


def test_rho_zero_is_one_pass_and_the_base_step_bitwise():
    model, twin = tiny_mlp(), tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho=0.0)
    base = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    loss_fn, calls = _counting(model)
    for step in range(3):
        batch = tiny_batch(seed=step)
        sam_step(sam, loss_fn, batch, ascent_fraction=0.25)
        base.zero_grad()
        ce_loss(twin)(batch).backward()
        base.step()
    assert calls == [16, 16, 16]  # one forward-backward of the whole batch per step
    assert not sam.is_sam_step() and not sam.last_stats.sam_step
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_group_with_rho_zero_does_not_make_a_sam_step_alone():
    model = tiny_mlp()
    groups = [
        {"params": list(model[0].parameters()), "rho": 0.0},
        {"params": list(model[3].parameters()), "perturb": False},
    ]
    sam = SAM(torch.optim.SGD(groups, lr=0.1), rho=0.3)
    loss_fn, calls = _counting(model)
    sam_step(sam, loss_fn, tiny_batch())
    assert calls == [16]


def test_m_examples_is_the_papers_m():
    """m_examples = 4 on 16 examples: 4 chunks of 4 (the same step as m = 4 chunks)."""
    runs = {}
    for kwargs in ({"m_examples": 4}, {"m": 4}, {"m_examples": 5}):
        model = tiny_mlp()
        sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
        loss_fn, calls = _counting(model)
        sam_step(sam, loss_fn, tiny_batch(), **kwargs)
        runs[str(kwargs)] = (calls, [p.detach().clone() for p in model.parameters()])
    calls, weights = runs["{'m_examples': 4}"]
    assert calls == [4, 4] * 4  # per chunk: ascent, then descent
    same_calls, same_weights = runs["{'m': 4}"]
    assert same_calls == calls
    assert all(torch.equal(a, b) for a, b in zip(weights, same_weights, strict=True))
    assert runs["{'m_examples': 5}"][0] == [4, 4] * 4  # ceil(16 / 5) = 4 chunks of 4


def test_m_and_m_examples_together_are_refused():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="m=2 and m_examples=4"):
        sam_step(sam, ce_loss(model), tiny_batch(), m=2, m_examples=4)
    with pytest.raises(ValueError, match="m_examples=0"):
        sam_step(sam, ce_loss(model), tiny_batch(), m_examples=0)


def test_groups_state_and_defaults_are_the_base_optimizers_even_after_a_load():
    model = tiny_mlp()
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sam = SAM(base, rho=0.1)
    sched = torch.optim.lr_scheduler.StepLR(sam, step_size=1, gamma=0.5)
    sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
    sched.step()
    base.load_state_dict(copy.deepcopy(base.state_dict()))  # new group dicts in the base
    assert sam.param_groups is base.param_groups and sam.state is base.state
    assert sam.defaults is base.defaults and sam.defaults["rho"] == 0.1
    sched.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.025)  # the scheduler is live
    sam.load_state_dict(copy.deepcopy(sam.state_dict()))
    sched.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.0125)


def test_the_state_dict_has_a_version_and_a_newer_one_is_refused():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), seed=5)
    state = sam.state_dict()
    assert state["sam"]["version"] == STATE_VERSION == 1
    newer = copy.deepcopy(state)
    newer["sam"]["version"] = STATE_VERSION + 1
    with pytest.raises(ValueError, match="newer than this samlm"):
        sam.load_state_dict(newer)


def test_missing_sam_keys_take_their_defaults():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), probability=0.5, seed=5)
    fresh = torch.Generator().manual_seed(5).get_state()
    for _ in range(3):
        sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
    state = sam.state_dict()
    state["sam"] = {"step": 7}  # an older writer's subset
    sam.load_state_dict(state)
    again = sam.state_dict()["sam"]
    assert again["step"] == 7 and again["skipped_steps"] == 0
    assert not torch.equal(again["generator"], fresh)  # kept: not in the loaded part


def test_torch_optimizer_init_sets_only_what_torch_compat_sets():
    """Fails when torch's Optimizer.__init__ starts setting something SAM does not."""
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    own = set(vars(sgd)) - {"defaults", "state", "param_groups"}
    assert own == set(torch_compat.HOOK_DICTS) | set(torch_compat.OTHER_ATTRIBUTES)
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1))
    assert own <= set(vars(sam))


def test_step_hooks_registered_on_sam_run_around_its_step():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    seen = []
    sam.register_step_pre_hook(lambda opt, args, kwargs: seen.append(("pre", opt.is_perturbed)))
    sam.register_step_post_hook(lambda opt, args, kwargs: seen.append(("post", opt.is_perturbed)))
    sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
    assert seen == [("pre", False), ("post", False)]
    assert sam.last_stats.sam_step
