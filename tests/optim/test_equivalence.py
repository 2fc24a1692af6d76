"""SAM against independent references: the base optimizer when SAM is off, a torch.func
SAM when it is on, and the untouched weights when lr = 0."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from samlm import SAM, sam_step
from tests.helpers import ce_loss, closure_for, tiny_batch, tiny_mlp

from .reference import RefAdamW, RefSGD, sam_gradient

# each test also runs on CUDA with `pytest --device cuda` (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("device")


def _base(name: str, params, lr: float = 0.1):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "sgd_momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


@pytest.mark.parametrize("base", ["sgd_momentum", "adamw"])
@pytest.mark.parametrize(
    "sam_kwargs",
    [{"rho": 0.0}, {"rho": 0.1, "probability": 0.0}, {"rho": 0.0, "adaptive": True}],
)
def test_sam_off_is_bitwise_the_base_optimizer(base, sam_kwargs):
    batch = tiny_batch()
    plain_model, sam_model = tiny_mlp(), tiny_mlp()
    plain = _base(base, plain_model.parameters())
    sam = SAM(_base(base, sam_model.parameters()), **sam_kwargs)
    for _ in range(5):
        closure_for(plain, ce_loss(plain_model), batch)()
        plain.step()
        sam.step(closure_for(sam, ce_loss(sam_model), batch))
    for p, q in zip(plain_model.parameters(), sam_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_interval_plain_steps_are_bitwise_base_steps():
    """With interval=1000 only step 0 perturbs; every later step is the base step."""
    batch = tiny_batch()
    plain_model, sam_model = tiny_mlp(), tiny_mlp()
    sam = SAM(torch.optim.AdamW(sam_model.parameters(), lr=0.1), rho=0.1, interval=1000)
    sam.step(closure_for(sam, ce_loss(sam_model), batch))
    plain_model.load_state_dict(sam_model.state_dict())
    plain = torch.optim.AdamW(plain_model.parameters(), lr=0.1)
    plain.load_state_dict(copy.deepcopy(sam.base_optimizer.state_dict()))
    for _ in range(4):
        closure_for(plain, ce_loss(plain_model), batch)()
        plain.step()
        sam.step(closure_for(sam, ce_loss(sam_model), batch))
        assert not sam.last_stats.sam_step
    for p, q in zip(plain_model.parameters(), sam_model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("base", ["sgd", "sgd_momentum", "adamw"])
@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("api", ["closure", "helper", "two_phase"])
def test_sam_matches_torch_func_reference(base, adaptive, api):
    rho, lr = 0.3, 0.1
    batch = tiny_batch()
    model = tiny_mlp()
    ref_model = copy.deepcopy(model)
    params = {k: v.detach().clone() for k, v in ref_model.named_parameters()}
    ref_step = (
        RefAdamW(lr) if base == "adamw" else RefSGD(lr, 0.9 if base == "sgd_momentum" else 0.0)
    )
    sam = SAM(_base(base, model.parameters(), lr), rho=rho, adaptive=adaptive)
    for _ in range(3):
        g = sam_gradient(ref_model, params, nn.functional.cross_entropy, batch, rho, adaptive)
        params = ref_step(params, g)
        if api == "closure":
            sam.step(closure_for(sam, ce_loss(model), batch))
        elif api == "helper":
            sam_step(sam, ce_loss(model), batch)
        else:
            sam.zero_grad()
            ce_loss(model)(batch).backward()
            assert sam.perturb()
            sam.zero_grad()
            ce_loss(model)(batch).backward()
            sam.step()
        assert sam.last_stats.sam_step
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, params[name], rtol=1e-5, atol=1e-6)


def test_sam_differs_from_base():
    """The reference test above would pass vacuously if SAM did nothing: it does not."""
    batch = tiny_batch()
    a, b = tiny_mlp(), tiny_mlp()
    plain = torch.optim.SGD(a.parameters(), lr=0.1)
    sam = SAM(torch.optim.SGD(b.parameters(), lr=0.1), rho=0.3)
    closure_for(plain, ce_loss(a), batch)()
    plain.step()
    sam.step(closure_for(sam, ce_loss(b), batch))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("base", ["sgd_momentum", "adamw"])
@pytest.mark.parametrize("adaptive", [False, True])
def test_lr_zero_leaves_weights_bitwise_unchanged(dtype, base, adaptive):
    model = tiny_mlp(dtype=dtype)
    before = [p.detach().clone() for p in model.parameters()]
    sam = SAM(_base(base, model.parameters(), lr=0.0), rho=0.5, adaptive=adaptive)
    for step in range(20):
        batch = tiny_batch(seed=step, dtype=dtype)
        sam.step(closure_for(sam, ce_loss(model), batch))
        assert sam.last_stats.sam_step
    for p, q in zip(before, model.parameters(), strict=True):
        assert torch.equal(p, q)
