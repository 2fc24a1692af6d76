"""Quadratics ``L(w) = 1/2 (w - c)^T A (w - c)`` with a known Hessian ``A``: the measures
against their closed forms."""

from __future__ import annotations

import torch

from samlm.analysis import hessian_trace, rho_sharpness, top_eigenvalue

from .conftest import BATCHES, Quadratic, quadratic_loss, symmetric

EIGS = [10.0, 5.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01]
QUIET = dict(progress=False)


def test_top_eigenvalue_matches_the_exact_one():
    model = Quadratic(symmetric(EIGS))
    result = top_eigenvalue(model, quadratic_loss, BATCHES, iters=100, tol=1e-7, **QUIET)
    assert abs(result.value - 10.0) < 1e-4
    assert result.converged and 1 < result.iterations < 100
    assert result.relative_change < 1e-7 and not result.shifted
    assert len(result.history) == result.iterations


def test_top_eigenvalue_reports_non_convergence():
    model = Quadratic(symmetric([1.0, 0.99, 0.98, 0.5, 0.2, 0.1]))
    result = top_eigenvalue(model, quadratic_loss, BATCHES, iters=3, tol=1e-9, **QUIET)
    assert not result.converged and result.iterations == 3
    assert result.relative_change > 1e-9


def test_top_eigenvalue_is_the_largest_not_the_largest_in_magnitude():
    model = Quadratic(symmetric([3.0, 1.0, 0.5, 0.2, -0.1, -8.0], seed=2))
    result = top_eigenvalue(model, quadratic_loss, BATCHES, iters=200, tol=1e-8, **QUIET)
    assert result.shifted and abs(result.dominant + 8.0) < 1e-3
    assert abs(result.value - 3.0) < 1e-3 and result.converged


def test_trace_matches_the_exact_one():
    a = symmetric(EIGS)
    result = hessian_trace(Quadratic(a), quadratic_loss, BATCHES, probes=400, **QUIET)
    exact = sum(EIGS)
    assert result.stderr > 0 and abs(result.value - exact) < 4 * result.stderr
    assert abs(result.value - exact) / exact < 0.1
    # Rademacher probes are exact for a diagonal Hessian: z^T D z = tr(D) for every z
    diagonal = hessian_trace(
        Quadratic(torch.diag(torch.tensor(EIGS))), quadratic_loss, BATCHES, probes=5, **QUIET
    )
    assert abs(diagonal.value - exact) < 1e-5 and diagonal.stderr < 1e-5


def test_sharpness_at_the_minimum_approaches_the_closed_form():
    """At the minimum the gradient is zero: the seeded random start lets the ascent move,
    and k steps converge to rho^2 lambda_max / 2."""
    rho = 0.1
    model = Quadratic(symmetric(EIGS), c=torch.linspace(-1, 1, len(EIGS)))
    exact = rho**2 * max(EIGS) / 2
    result = rho_sharpness(model, quadratic_loss, BATCHES, rho=rho, steps=40, **QUIET)
    assert result.random_starts == 1
    assert abs(result.sharpness - exact) / exact < 1e-2
    assert abs(result.perturbation_norm - rho) < 1e-6
    one = rho_sharpness(model, quadratic_loss, BATCHES, rho=rho, steps=1, **QUIET)
    assert one.sharpness < result.sharpness  # more steps, a tighter lower bound
    assert result.history[-1] >= result.history[0]
    none = rho_sharpness(model, quadratic_loss, BATCHES, rho=rho, random_start=False, **QUIET)
    assert none.sharpness == 0.0 and none.random_starts == 0


def test_adaptive_sharpness_at_the_minimum_approaches_the_closed_form():
    """ASAM's ball ||T^-1 e|| <= rho, T = |c| + eta: max = rho^2 lambda_max(T A T) / 2."""
    rho, eta = 0.5, 0.01
    a, c = symmetric(EIGS), torch.linspace(-1, 1, len(EIGS))
    t = torch.diag(c.abs() + eta)
    exact = rho**2 * torch.linalg.eigvalsh((t @ a @ t).double()).max().item() / 2
    model = Quadratic(a, c=c)
    result = rho_sharpness(
        model, quadratic_loss, BATCHES, rho=rho, steps=60, adaptive=True, eta=eta, **QUIET
    )
    assert result.adaptive and result.eta == eta
    assert abs(result.sharpness - exact) / exact < 1e-2


def test_the_random_start_is_seeded():
    model = Quadratic(symmetric(EIGS))
    runs = [
        rho_sharpness(model, quadratic_loss, BATCHES, steps=2, seed=s, **QUIET).sharpness
        for s in (0, 0, 1)
    ]
    assert runs[0] == runs[1] != runs[2]
