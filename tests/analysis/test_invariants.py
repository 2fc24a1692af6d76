"""On a tiny network: every measure leaves the weights (bitwise), the modes, the gradients
and the global RNG as they were; the measures run in eval mode; the landscape's origin is
the model's loss; the Hessian measures match the exact Hessian."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from samlm.analysis import (
    MeasureOptions,
    filter_normalized_direction,
    hessian_trace,
    landscape_1d,
    landscape_2d,
    measure_all,
    rho_sharpness,
    top_eigenvalue,
)

from .conftest import ce_loss, tiny_batches, tiny_net

QUIET = dict(progress=False)
MEASURES = {
    "sharpness": lambda m, b: rho_sharpness(m, ce_loss, b, steps=2, **QUIET),
    "m_sharpness": lambda m, b: rho_sharpness(m, ce_loss, b, m=4, **QUIET),
    "adaptive": lambda m, b: rho_sharpness(m, ce_loss, b, adaptive=True, **QUIET),
    "random_start": lambda m, b: rho_sharpness(m, ce_loss, b, random_start=True, **QUIET),
    "eigenvalue": lambda m, b: top_eigenvalue(m, ce_loss, b, iters=3, **QUIET),
    "trace": lambda m, b: hessian_trace(m, ce_loss, b, probes=2, **QUIET),
    "landscape_1d": lambda m, b: landscape_1d(m, ce_loss, b, points=3, **QUIET),
    "landscape_2d": lambda m, b: landscape_2d(m, ce_loss, b, points=3, **QUIET),
    "train_mode": lambda m, b: rho_sharpness(m, ce_loss, b, train=True, **QUIET),
}


def _bits(model):
    return {k: v.clone().view(torch.int32) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", MEASURES)
def test_the_model_and_the_rng_are_left_as_they_were(name):
    model = tiny_net(dropout=0.5)
    model.train()
    model[1].eval()  # a mixed state must come back as it was, module by module
    model[0].weight.grad = torch.full_like(model[0].weight, 0.25)
    before, modes = _bits(model), [m.training for m in model.modules()]
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    MEASURES[name](model, tiny_batches())
    after = _bits(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 0.25))
    assert model[3].weight.grad is None


def test_measures_run_in_eval_mode_by_default():
    model = tiny_net(dropout=0.5).train()
    batches = tiny_batches(chunk=24)
    with torch.no_grad():
        eval_loss = ce_loss(model.eval(), batches[0]).item()
    model.train()
    result = rho_sharpness(model, ce_loss, batches, **QUIET)
    assert result.loss == pytest.approx(eval_loss, abs=1e-7)
    dropout = rho_sharpness(model, ce_loss, batches, train=True, seed=1, **QUIET)
    assert dropout.loss != pytest.approx(eval_loss, abs=1e-4)
    again = rho_sharpness(model, ce_loss, batches, train=True, seed=1, **QUIET)
    assert again == dropout  # train mode: dropout drawn from the seed, then the RNG restored


def test_the_landscape_at_the_origin_is_the_models_loss():
    model = tiny_net()
    batches = tiny_batches(chunk=24)
    with torch.no_grad():
        loss = float(ce_loss(model.eval(), batches[0]).double())
    line = landscape_1d(model, ce_loss, batches, points=7, span=0.5, **QUIET)
    assert line.alphas[3] == 0.0 and line.alphas[0] == -0.5 and line.alphas[-1] == 0.5
    assert line.loss_at_origin == loss and line.losses[3] == loss
    assert len(set(line.losses)) == 7  # the direction does move the weights
    surface = landscape_2d(model, ce_loss, batches, points=5, **QUIET)
    assert surface.losses[2][2] == loss == surface.loss_at_origin
    same = landscape_2d(model, ce_loss, batches, points=7, span=0.5, **QUIET)
    assert [row[3] for row in same.losses] == pytest.approx(line.losses, abs=1e-7)


def _exact_hessian(model, batches):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    model.eval()

    def loss(flat):
        parts, i = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            parts[name] = flat[i : i + shape.numel()].view(shape)
            i += shape.numel()
        return torch.nn.functional.cross_entropy(functional_call(model, parts, (x,)), y)

    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    model.double()
    try:
        return torch.autograd.functional.hessian(loss, flat)
    finally:
        model.float()


def test_hessian_measures_match_the_exact_hessian():
    model, batches = tiny_net(), tiny_batches()
    exact = _exact_hessian(model, [(x.double(), y) for x, y in batches])
    eigenvalues = torch.linalg.eigvalsh(exact)
    top = top_eigenvalue(model, ce_loss, batches, iters=300, tol=1e-7, batch_size=5, **QUIET)
    assert top.converged
    assert top.value == pytest.approx(eigenvalues.max().item(), rel=1e-3)
    trace = hessian_trace(model, ce_loss, batches, probes=100, **QUIET)
    assert abs(trace.value - exact.trace().item()) < 4 * trace.stderr


def test_measure_all_collects_every_measure(tmp_path):
    model = tiny_net()
    opts = MeasureOptions(steps=2, m=4, hessian_iters=3, probes=2, grid=3, **QUIET)
    result = measure_all(model, ce_loss, tiny_batches(), opts, output_dir=tmp_path)
    assert result["examples"] == 24 and result["m_sharpness"]["chunks"] == 6
    assert result["adaptive_sharpness"]["adaptive"]
    assert result["hessian"]["top_eigenvalue"]["iterations"] <= 3
    assert len(result["landscape"]["1d"]["losses"]) == 5
    assert len(result["landscape"]["2d"]["losses"]) == 3
    assert set(result["plots"]) == {"landscape_1d", "landscape_2d"}
    assert set(result["seconds"]) >= {"sharpness", "top_eigenvalue", "landscape_2d"}
    skipped = measure_all(
        model,
        ce_loss,
        tiny_batches(),
        MeasureOptions(m=0, hessian_iters=0, probes=0, grid=0, **QUIET),
    )
    assert skipped["m_sharpness"] is None and skipped["hessian"]["trace"] is None
    assert skipped["landscape"]["1d"] is None and skipped["plots"] == {}


def test_progress_bars_show_and_hide(capsys):
    model, batches = tiny_net(), tiny_batches()
    rho_sharpness(model, ce_loss, batches)
    assert "sharpness" in capsys.readouterr().err
    rho_sharpness(model, ce_loss, batches, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("include_1d", [False, True])
def test_filter_normalized_direction(include_1d):
    """Li et al. (2018): every filter (row) of a 2-D or larger weight gets a random
    direction with that filter's norm; 1-D parameters get 0, or themselves."""
    conv = torch.randn(4, 3, 2, 2)
    conv[1] = 0.0  # a dead filter stays dead
    params = [torch.randn(5, 7), conv, torch.randn(5)]
    d = filter_normalized_direction(params, torch.Generator().manual_seed(0), include_1d=include_1d)
    for w, di in zip(params[:2], d[:2], strict=True):
        assert di.shape == w.shape
        torch.testing.assert_close(di.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1))
        assert not torch.allclose(di, w)  # a random direction, not the weights
    assert torch.equal(d[2], params[2] if include_1d else torch.zeros(5))
    again = filter_normalized_direction(params, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(d[:2], again[:2], strict=True))  # seeded


@pytest.mark.parametrize("name", ["sharpness", "eigenvalue", "trace", "landscape_2d"])
def test_a_measure_on_an_objective_is_the_measure_on_its_model_and_batches(name):
    """``measure(objective)`` gives what ``measure(model, loss_fn, batches, batch_size=)``
    gives, bit for bit; an Objective with the model's arguments as well is refused."""
    from samlm.analysis import Objective

    model, batches = tiny_net(), tiny_batches()
    measure, options = {
        "sharpness": (rho_sharpness, dict(steps=2)),
        "eigenvalue": (top_eigenvalue, dict(iters=3)),
        "trace": (hessian_trace, dict(probes=2)),
        "landscape_2d": (landscape_2d, dict(points=3)),
    }[name]
    direct = measure(model, ce_loss, batches, batch_size=3, **options, **QUIET)
    objective = Objective(model, ce_loss, batches, batch_size=3)
    assert measure(objective, **options, **QUIET).as_dict() == direct.as_dict()
    with pytest.raises(ValueError, match="give an Objective alone"):
        measure(objective, ce_loss, batches, **QUIET)
