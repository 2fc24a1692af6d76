"""The power iteration on double-backward Hessian-vector products, against
torch.linalg.eigh on quadratics whose spectrum is set by construction."""

from __future__ import annotations

import torch

from samlm.optim.hessian import gradient_graph, hvp, power_iteration


def _quadratic(eigenvalues, seed=0):
    """``A = Q diag(lambda) Q^T`` with a random orthogonal Q (float64)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(
        torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64)
    )
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def _split_params(n, seed=1):
    """Two parameter tensors (a matrix and a vector) holding ``n = 6 + k`` numbers."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, generator=g, dtype=torch.float64)
    return [w[:6].reshape(2, 3).clone().requires_grad_(), w[6:].clone().requires_grad_()]


def _loss(a, params):
    """``0.5 w^T A w + b^T w`` over the concatenation of the params (Hessian A)."""
    w = torch.cat([p.reshape(-1) for p in params])
    return 0.5 * w @ a @ w + w.sum()


def test_hvp_by_double_backward_is_a_times_v():
    a = _quadratic([3.0, -2.0, 1.0, 0.5, 0.2, 0.1, -0.05, 0.01])
    params = _split_params(8)
    grads = gradient_graph(_loss(a, params), params)
    v = [torch.randn_like(p) for p in params]
    got = torch.cat([h.reshape(-1) for h in hvp(grads, params, v, keep=False)])
    torch.testing.assert_close(got, a @ torch.cat([x.reshape(-1) for x in v]))


def test_power_iteration_finds_eighs_top_eigenvector_of_largest_magnitude():
    """The dominant eigenvalue is negative (-4 against 3): the iteration follows |lambda|."""
    a = _quadratic([3.0, -4.0, 1.0, 0.5, 0.2, 0.1, -0.05, 0.01])
    values, vectors = torch.linalg.eigh(a)
    top = vectors[:, values.abs().argmax()]
    params = _split_params(8)
    grads = gradient_graph(_loss(a, params), params)
    start = [torch.ones_like(p) for p in params]
    v = power_iteration(lambda x: hvp(grads, params, x, keep=True), start, 200)
    flat = torch.cat([x.reshape(-1) for x in v])
    assert abs(flat.norm().item() - 1.0) < 1e-12
    torch.testing.assert_close(flat * torch.sign(flat @ top), top, rtol=0, atol=1e-8)


def test_each_iteration_is_a_v_normalised_and_a_warm_start_converges_faster():
    a = _quadratic([5.0, 2.0, 1.0, 0.5, 0.2, 0.1, -0.05, 0.01], seed=3)
    values, vectors = torch.linalg.eigh(a)
    top = vectors[:, values.abs().argmax()]
    params = _split_params(8)
    grads = gradient_graph(_loss(a, params), params)
    product = lambda x: hvp(grads, params, x, keep=True)  # noqa: E731
    v0 = torch.arange(1.0, 9.0, dtype=torch.float64)
    start = [v0[:6].reshape(2, 3), v0[6:]]
    one = torch.cat([x.reshape(-1) for x in power_iteration(product, start, 1)])
    torch.testing.assert_close(one, (a @ v0) / (a @ v0).norm())
    cold = torch.cat([x.reshape(-1) for x in power_iteration(product, start, 5)])
    warm_start = power_iteration(product, start, 5)
    warm = torch.cat([x.reshape(-1) for x in power_iteration(product, warm_start, 5)])
    assert (warm @ top).abs() > (cold @ top).abs()  # five more from the last v: closer


def test_a_zero_hessian_gives_no_estimate():
    params = _split_params(8)
    grads = gradient_graph(torch.cat([p.reshape(-1) for p in params]).sum(), params)
    assert grads == [None, None]  # linear: the gradient does not depend on w
    assert (
        power_iteration(
            lambda x: hvp(grads, params, x, keep=True), [torch.ones_like(p) for p in params], 5
        )
        is None
    )
