"""rho-sharpness on a tiny network: SAM's own estimate, m-sharpness, batching, seeds."""

from __future__ import annotations

import pytest
import torch

from samlm import SAM
from samlm.analysis import rho_sharpness

from .conftest import ce_loss, tiny_batches, tiny_net

QUIET = dict(progress=False)


def _whole(batches):
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


@pytest.mark.parametrize("adaptive", [False, True])
def test_one_step_is_sams_own_estimate(adaptive):
    """k = 1 from the origin is the perturbation SAM takes (ASAM's too): compare with the
    sharpness the project's SAM optimizer reports for the same batch."""
    batches = tiny_batches()
    model = tiny_net().eval()
    x, y = _whole(batches)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.0), rho=0.05, adaptive=adaptive, eta=0.01)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    expected = opt.last_stats.as_dict()
    model.zero_grad(set_to_none=True)
    result = rho_sharpness(
        model, ce_loss, [(x, y)], rho=0.05, steps=1, adaptive=adaptive, eta=0.01, **QUIET
    )
    assert result.random_starts == 0 and result.chunks == 1
    assert result.loss == pytest.approx(expected["loss"], abs=1e-6)
    assert result.perturbed_loss == pytest.approx(expected["loss_perturbed"], abs=1e-6)
    assert result.sharpness == pytest.approx(expected["sharpness"], abs=1e-6)
    assert result.perturbation_norm == pytest.approx(expected["perturbation_norm"], rel=1e-5)


def test_more_steps_find_more_sharpness_within_the_ball():
    model = tiny_net()
    one = rho_sharpness(model, ce_loss, tiny_batches(), rho=0.2, steps=1, **QUIET)
    many = rho_sharpness(model, ce_loss, tiny_batches(), rho=0.2, steps=8, **QUIET)
    assert many.sharpness >= one.sharpness > 0
    assert many.perturbation_norm <= 0.2 + 1e-6 and len(many.history) == 8


def test_m_sharpness_is_the_mean_over_chunks():
    batches = tiny_batches(n=24, chunk=8)
    model = tiny_net()
    result = rho_sharpness(model, ce_loss, batches, rho=0.1, steps=2, m=4, **QUIET)
    chunks = [(x[i : i + 4], y[i : i + 4]) for x, y in batches for i in range(0, 8, 4)]
    separate = [
        rho_sharpness(model, ce_loss, [c], rho=0.1, steps=2, **QUIET).sharpness for c in chunks
    ]
    assert result.chunks == 6 and result.m == 4
    assert result.sharpness == pytest.approx(sum(separate) / 6, abs=1e-7)
    whole = rho_sharpness(model, ce_loss, batches, rho=0.1, steps=2, **QUIET)
    assert result.sharpness > whole.sharpness  # each chunk gets its own worst direction


def test_batch_size_only_changes_memory_not_the_value():
    batches = tiny_batches(n=24, chunk=24)
    model = tiny_net()
    whole = rho_sharpness(model, ce_loss, batches, rho=0.1, steps=3, **QUIET)
    split = rho_sharpness(model, ce_loss, batches, rho=0.1, steps=3, batch_size=5, **QUIET)
    assert split.loss == pytest.approx(whole.loss, abs=1e-6)
    assert split.sharpness == pytest.approx(whole.sharpness, abs=1e-5)


def test_results_are_deterministic():
    model = tiny_net()
    kwargs = dict(rho=0.1, steps=3, random_start=True, seed=3, **QUIET)
    first = rho_sharpness(model, ce_loss, tiny_batches(), **kwargs)
    second = rho_sharpness(model, ce_loss, tiny_batches(), **kwargs)
    assert first == second and first.random_starts == 1
