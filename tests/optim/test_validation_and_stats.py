"""Bad arguments name themselves; per-step statistics match independent computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

from samlm import SAM, sam_step
from tests.helpers import ce_loss, tiny_batch, tiny_mlp


def _sgd(model=None):
    return torch.optim.SGD((model or tiny_mlp()).parameters(), lr=0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rho": -0.1}, "rho=-0.1"),
        ({"rho": math.nan}, "rho=nan"),
        ({"eta": -1.0}, "eta=-1.0"),
        ({"interval": 0}, "interval=0"),
        ({"interval": 1.5}, "interval=1.5"),
        ({"probability": 1.5}, "probability=1.5"),
        ({"rho_schedule": "cosine"}, "rho_schedule='cosine'"),
        ({"rho_schedule": "warmup"}, "warmup_steps=0"),
        ({"max_grad_norm": -1.0}, "max_grad_norm=-1.0"),
    ],
)
def test_bad_sam_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        SAM(_sgd(), **kwargs)


def test_bad_base_optimizer_and_groups():
    with pytest.raises(ValueError, match="base_optimizer=list"):
        SAM([torch.zeros(1)])
    model = tiny_mlp()
    with pytest.raises(ValueError, match=r"rho=-1 \(param group 1\)"):
        SAM(
            torch.optim.SGD(
                [{"params": [model[0].weight]}, {"params": [model[0].bias], "rho": -1}], lr=0.1
            )
        )
    with pytest.raises(ValueError, match="already a SAM"):
        SAM(SAM(_sgd()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ascent_fraction": 0.0}, "ascent_fraction=0.0"),
        ({"ascent_fraction": 1.5}, "ascent_fraction=1.5"),
        ({"m": 0}, "m=0"),
        ({"accumulation_steps": 0}, "accumulation_steps=0"),
        ({"accumulation": "sum"}, "accumulation='sum'"),
        ({"m": 2, "accumulation_steps": 2}, "per_microbatch"),
        ({"accumulation_steps": 17}, "17 chunks"),
    ],
)
def test_bad_step_arguments(kwargs, message):
    model = tiny_mlp()
    with pytest.raises(ValueError, match=message):
        sam_step(SAM(_sgd(model)), ce_loss(model), tiny_batch(n=16), **kwargs)


def test_stats_match_independent_values():
    rho = 0.2
    model = tiny_mlp()
    x, y = batch = tiny_batch()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}

    def loss(p):
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    g1 = grad(loss)(params)
    g_norm = math.sqrt(sum((v**2).sum().item() for v in g1.values()))
    shifted = {k: params[k] + rho * g1[k] / g_norm for k in params}
    g2 = grad(loss)(shifted)
    dot = sum((g1[k] * g2[k]).sum().item() for k in params)
    cos = dot / g_norm / math.sqrt(sum((v**2).sum().item() for v in g2.values()))

    sam = SAM(_sgd(model), rho=rho, track_cosine=True)
    sam_step(sam, ce_loss(model), batch)
    stats = sam.last_stats.as_dict()
    assert stats["sam_step"] == 1.0
    assert stats["grad_norm"] == pytest.approx(g_norm, rel=1e-5)
    assert stats["perturbation_norm"] == pytest.approx(rho, rel=1e-6)
    assert stats["cosine"] == pytest.approx(cos, abs=1e-4)
    assert stats["loss"] == pytest.approx(loss(params).item(), rel=1e-6)
    assert stats["loss_perturbed"] == pytest.approx(loss(shifted).item(), rel=1e-5)
    assert stats["sharpness"] == pytest.approx(stats["loss_perturbed"] - stats["loss"])
    assert stats["skipped_steps"] == 0.0


def test_asam_perturbation_norm():
    rho, eta = 0.5, 0.01
    model = tiny_mlp()
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    sam = SAM(_sgd(model), rho=rho, adaptive=True, eta=eta)
    ce_loss(model)(tiny_batch()).backward()
    g = {k: v.grad.clone() for k, v in model.named_parameters()}
    t = {k: w[k].abs() + eta for k in w}
    norm = math.sqrt(sum(((t[k] * g[k]) ** 2).sum().item() for k in w))
    e_norm = rho * math.sqrt(sum(((t[k] ** 2 * g[k]) ** 2).sum().item() for k in w)) / norm
    assert sam.perturb()
    assert sam.last_stats.perturbation_norm == pytest.approx(e_norm, rel=1e-5)
    moved = math.sqrt(sum(((p - w[k]) ** 2).sum().item() for k, p in model.named_parameters()))
    assert moved == pytest.approx(e_norm, rel=1e-4)


def test_asam_moves_zero_weights():
    """T = |w| + eta keeps zero-valued weights (a fresh LoRA-B matrix) in play."""
    model = tiny_mlp()
    with torch.no_grad():
        model[3].weight.zero_()
    rho, eta = 0.5, 0.01
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    sam = SAM(_sgd(model), rho=rho, adaptive=True, eta=eta)
    ce_loss(model)(tiny_batch()).backward()
    g = {k: v.grad.clone() for k, v in model.named_parameters()}
    t = {k: w[k].abs() + eta for k in w}
    norm = math.sqrt(sum(((t[k] * g[k]) ** 2).sum().item() for k in w))
    assert sam.perturb()
    # e = rho T^2 g / ||T g||; on the zeroed layer T = eta
    expected = rho * eta**2 * g["3.weight"] / norm
    assert expected.abs().sum() > 0
    torch.testing.assert_close(model[3].weight, expected, rtol=1e-5, atol=1e-12)


def test_sharpness_is_not_reported_across_different_examples():
    model = tiny_mlp()
    sam = SAM(_sgd(model), rho=0.1)
    sam_step(sam, ce_loss(model), tiny_batch(), ascent_fraction=0.25)
    assert math.isnan(sam.last_stats.as_dict()["sharpness"])


@pytest.mark.parametrize("set_to_none", [True, False])
def test_cosine_in_the_closure_api(set_to_none):
    """Zeroing in place reuses the first-pass gradient tensors: the cosine is then NaN
    (not a wrong number), and the step itself is unaffected."""
    batch = tiny_batch()
    model, ref = tiny_mlp(), tiny_mlp()
    sam = SAM(_sgd(model), rho=0.2, track_cosine=True)
    sam_step(SAM(_sgd(ref), rho=0.2), ce_loss(ref), batch)

    def closure():
        sam.zero_grad(set_to_none=set_to_none)
        loss = ce_loss(model)(batch)
        loss.backward()
        return loss

    sam.step(closure)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
    cosine = sam.last_stats.cosine
    assert (0.5 < cosine <= 1.0) if set_to_none else math.isnan(cosine)


def test_track_cosine_is_off_by_default():
    model = tiny_mlp()
    sam = SAM(_sgd(model), rho=0.2)
    sam_step(sam, ce_loss(model), tiny_batch())
    assert sam.last_stats.sam_step and math.isnan(sam.last_stats.cosine)
