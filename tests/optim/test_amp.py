"""Mixed precision: fp16 with GradScaler, bf16 autocast, and the non-finite guard, on
the CPU and, with ``pytest --device cuda``, on CUDA (autocast and GradScaler of that
device type)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from samlm import SAM, sam_step
from tests.helpers import ce_loss, tiny_batch, tiny_mlp


def _inf_on_first_call(loss_fn):
    calls = []

    def wrapped(batch):
        calls.append(1)
        loss = loss_fn(batch)
        return loss * math.inf if len(calls) == 1 else loss

    return wrapped


def _autocast_fp16(loss_fn, device):
    def wrapped(batch):
        with torch.autocast(device.type, dtype=torch.float16):
            return loss_fn(batch)

    return wrapped


def test_inf_in_first_pass_skips_the_step_and_lowers_the_scale(device):
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    sam = SAM(torch.optim.AdamW(model.parameters(), lr=0.1), rho=0.1)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**10)
    loss_fn = _inf_on_first_call(_autocast_fp16(ce_loss(model), device))
    sam_step(sam, loss_fn, tiny_batch(), scaler=scaler)
    assert sam.skipped_steps == 1
    assert scaler.get_scale() < 2.0**10
    for p, q in zip(before, model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not sam.base_optimizer.state  # the base optimizer never stepped
    sam_step(sam, _autocast_fp16(ce_loss(model), device), tiny_batch(), scaler=scaler)  # goes on
    assert sam.last_stats.sam_step
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))


@pytest.mark.usefixtures("device")
def test_nan_never_reaches_the_weights_without_a_scaler():
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    sam_step(sam, _inf_on_first_call(ce_loss(model)), tiny_batch())
    assert sam.skipped_steps == 1

    calls = []

    def nan_in_second_pass():  # a finite ascent, a NaN SAM gradient
        sam.zero_grad()
        calls.append(1)
        loss = ce_loss(model)(tiny_batch())
        (loss * (math.nan if len(calls) == 2 else 1.0)).backward()
        return loss

    sam.step(nan_in_second_pass)
    assert len(calls) == 2
    assert sam.skipped_steps == 2
    for p, q in zip(before, model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("api", ["helper", "two_phase"])
def test_clipping_sees_unscaled_gradients(api, device):
    """A loss scale of 2^12 must not change the clipped update."""
    batch = tiny_batch()

    def run(scaler):
        model = tiny_mlp()
        sam = SAM(torch.optim.SGD(model.parameters(), lr=0.5), rho=0.1, max_grad_norm=0.01)
        if api == "helper":
            sam_step(sam, ce_loss(model), batch, scaler=scaler)
        else:
            scale = scaler.scale if scaler else (lambda x: x)
            sam.zero_grad()
            scale(ce_loss(model)(batch)).backward()
            assert sam.perturb()
            sam.zero_grad()
            scale(ce_loss(model)(batch)).backward()
            sam.restore()
            if scaler:
                scaler.step(sam)
                scaler.update()
            else:
                sam.step()
        return [p.detach() for p in model.parameters()]

    unscaled = run(None)
    scaled = run(torch.amp.GradScaler(device.type, init_scale=2.0**12))
    reference = tiny_mlp()
    moved = sum(
        ((a - b.detach()) ** 2).sum() for a, b in zip(unscaled, reference.parameters(), strict=True)
    )
    moved = math.sqrt(moved)
    assert moved == pytest.approx(0.5 * 0.01, rel=1e-4)  # the clip was active: lr * max_norm
    for p, q in zip(unscaled, scaled, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_bf16_autocast_trains(device):
    model = tiny_mlp()
    sam = SAM(torch.optim.AdamW(model.parameters(), lr=0.05), rho=0.05)

    def loss_fn(batch):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return ce_loss(model)(batch)

    batch = tiny_batch()
    losses = [sam_step(sam, loss_fn, batch).item() for _ in range(30)]
    assert losses[-1] < 0.8 * losses[0]
    assert sam.last_stats.sam_step and sam.skipped_steps == 0


@pytest.mark.usefixtures("device")
def test_bf16_weights_train():
    model = tiny_mlp(dtype=torch.bfloat16)
    sam = SAM(torch.optim.AdamW(model.parameters(), lr=0.05), rho=0.05)
    batch = tiny_batch(dtype=torch.bfloat16)
    losses = [
        sam_step(
            sam, lambda b: nn.functional.cross_entropy(model(b[0]).float(), b[1]), batch
        ).item()
        for _ in range(30)
    ]
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.usefixtures("device")
def test_a_skip_survives_later_micro_batches_of_the_same_step():
    from samlm.optim.step import ascend

    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    x, y = tiny_batch()
    sam.zero_grad()
    ascend(sam, lambda b: ce_loss(model)(b) * math.inf, [((x[:8], y[:8]), 8)])
    assert sam.step_skipped and not sam.is_perturbed
    ascend(sam, ce_loss(model), [((x[8:], y[8:]), 8)])  # a later, finite micro-batch
    assert sam.is_perturbed and sam.step_skipped
    ce_loss(model)((x[8:], y[8:])).backward()
    sam.step()
    assert sam.skipped_steps == 1 and not sam.step_skipped
    for p, q in zip(before, model.parameters(), strict=True):
        assert torch.equal(p, q)
    sam.zero_grad()
    ascend(sam, lambda b: ce_loss(model)(b) * math.inf, [((x, y), 16)])
    assert sam.step_skipped
    sam.zero_grad()  # a new step begins
    assert not sam.step_skipped


@pytest.mark.parametrize("variant", [None, "gsam", "aesam"])
@pytest.mark.parametrize("api", ["helper", "ascend", "two_phase"])
def test_statistics_under_a_grad_scaler_are_in_unscaled_units(api, variant, device):
    """With a loss scale S = 2^12 the gradients are S g: last_stats (||g|| above all) must
    read as without a scaler."""
    from samlm.optim.step import ascend
    from samlm.optim.variants import AESAM, GSAM

    batch = tiny_batch()

    def run(scaler):
        model = tiny_mlp()
        made = {None: None, "gsam": GSAM(0.5), "aesam": AESAM()}[variant]
        sam = SAM(
            torch.optim.SGD(model.parameters(), lr=0.5), rho=0.1, track_cosine=True, variant=made
        )
        scale = scaler.scale if scaler else (lambda x: x)
        grad_scale = scaler.get_scale() if scaler else 1.0
        if api == "helper":
            sam_step(sam, ce_loss(model), batch, scaler=scaler)
            return sam.last_stats.as_dict()
        sam.zero_grad()
        if api == "ascend":
            ascend(sam, ce_loss(model), [(batch, 16)], scale=scale, grad_scale=grad_scale)
        else:
            scale(ce_loss(model)(batch)).backward()
            sam.perturb(grad_scale=grad_scale)
        assert sam.is_perturbed
        sam.zero_grad()
        scale(ce_loss(model)(batch)).backward()
        sam.restore()
        if scaler:
            scaler.step(sam)
            scaler.update()
        else:
            sam.step()
        return sam.last_stats.as_dict()

    plain = run(None)
    scaled = run(torch.amp.GradScaler(device.type, init_scale=2.0**12))
    assert plain["sam_step"] == 1.0 and 0.1 < plain["grad_norm"] < 10.0
    for key, value in plain.items():
        assert scaled[key] == pytest.approx(value, rel=1e-5, nan_ok=True), key
