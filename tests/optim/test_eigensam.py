"""Eigen-SAM against an independent torch.func reference (its perturbation, whole steps
across refreshes, with accumulation); invariants (alpha 0 is SAM, rho 0 the base
optimizer); passes and Hessian-vector products per step; bitwise resume; refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jvp

from samlm import SAM, sam_step
from samlm.optim.variants import EigenSAM
from samlm.training import SAMConfig
from tests.helpers import (
    assert_bitwise,
    ce_loss,
    closure_for,
    round_trip,
    sgd_run,
    tiny_batch,
    tiny_mlp,
)
from tests.optim.reference import RefSGD


def _dot(a: dict, b: dict) -> torch.Tensor:
    return sum((a[k] * b[k]).sum() for k in a)


def _eigenvector(loss, params, v, iterations):
    """Power iteration v <- H v / ||H v|| with H v a forward-over-reverse product."""
    for _ in range(iterations):
        hv = jvp(grad(loss), (params,), (v,))[1]
        norm = _dot(hv, hv).sqrt()
        v = {k: hv[k] / norm for k in hv}
    return v


def _reference(steps, rho=0.1, alpha=0.5, refresh=3, iterations=5, lr=0.1):
    """Eigen-SAM (Luo et al. 2024) as this project states it: SGD with momentum; SAM until
    the first v; v refreshed when refresh steps passed since the last refresh (or 0)."""
    model = tiny_mlp()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = RefSGD(lr=lr, momentum=0.9)
    v, last = None, 0
    for t in range(steps):
        x, y = tiny_batch(seed=t)

        def loss(p, x=x, y=y):
            return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

        if alpha > 0 and t - last >= refresh:
            if v is None:
                gen = torch.Generator().manual_seed(0)
                v = {k: torch.randn(p.shape, generator=gen) for k, p in params.items()}
            v, last = _eigenvector(loss, params, v, iterations), t
        g = grad(loss)(params)
        norm = _dot(g, g).sqrt()
        g_hat = {k: g[k] / norm for k in g}
        if v is None:
            e = {k: rho * g_hat[k] for k in g}
        else:
            s = torch.sign(_dot(g, v))
            c = _dot(v, g_hat)
            e = {k: rho * (g_hat[k] + alpha * s * (v[k] - c * g_hat[k])) for k in g}
        params = opt(params, grad(loss)({k: params[k] + e[k] for k in params}))
    return params


def _ours(steps, rho=0.1, alpha=0.5, refresh=3, iterations=5, accumulation_steps=1, model=None):
    model = model or tiny_mlp()
    variant = EigenSAM(alpha, refresh, iterations)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho, variant=variant)
    calls, hvps = [], []
    loss = ce_loss(model)

    def loss_fn(batch):
        calls.append(len(batch[1]))
        return loss(batch)

    for t in range(steps):
        sam_step(sam, loss_fn, tiny_batch(seed=t), accumulation_steps=accumulation_steps)
        hvps.append(sam.last_stats.hvps)
    return model, sam, calls, hvps


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_eigensam_matches_its_reference_across_refreshes(accumulation_steps):
    model, sam, _, _ = _ours(8, accumulation_steps=accumulation_steps)
    expected = _reference(8)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)
    assert sam.engine.variant.refreshed_at == 6


def test_the_perturbation_is_the_formula_group_by_group():
    """With v given (two groups, radii 0.1 and 0.3), w + e at the second pass is
    w + rho_i [g_hat + alpha s (v - <v, g_hat> g_hat)]_i, norms and products global."""
    model = tiny_mlp()
    first, last = list(model[0].parameters()), list(model[3].parameters())
    base = torch.optim.SGD([{"params": first, "rho": 0.1}, {"params": last, "rho": 0.3}], lr=0.1)
    variant = EigenSAM(alpha=0.7, refresh=1000)
    sam = SAM(base, variant=variant)
    gen = torch.Generator().manual_seed(5)
    raw = [torch.randn(p.shape, generator=gen) for p in model.parameters()]
    norm = torch.sqrt(sum((r**2).sum() for r in raw))
    variant.v = {p: r / norm for p, r in zip(model.parameters(), raw, strict=True)}
    names = [n for n, _ in model.named_parameters()]
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []

    def loss_fn(batch):
        seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return ce_loss(model)(batch)

    batch = tiny_batch(seed=3)
    sam_step(sam, loss_fn, batch)
    g = grad(
        lambda p: nn.functional.cross_entropy(functional_call(model, p, (batch[0],)), batch[1])
    )(w)
    v = {n: r / norm for n, r in zip(names, raw, strict=True)}
    g_hat = {n: g[n] / _dot(g, g).sqrt() for n in g}
    s, c = torch.sign(_dot(g, v)), _dot(v, g_hat)
    rho = {n: 0.1 if n.startswith("0.") else 0.3 for n in names}
    for n in names:
        e = rho[n] * (g_hat[n] + 0.7 * s * (v[n] - c * g_hat[n]))
        torch.testing.assert_close(seen[1][n] - w[n], e, rtol=1e-5, atol=1e-7)
    e_sq = sum(((seen[1][n] - w[n]) ** 2).sum() for n in names)
    assert sam.last_stats.perturbation_norm == pytest.approx(e_sq.sqrt().item(), rel=1e-5)


def test_alpha_zero_is_sam_bitwise_without_a_product():
    model, _, calls, hvps = _ours(7, alpha=0.0, refresh=2)
    plain = tiny_mlp()
    sam = SAM(torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9), 0.1)
    for t in range(7):
        sam_step(sam, ce_loss(plain), tiny_batch(seed=t))
    for p, q in zip(model.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p, q)
    assert len(calls) == 14 and hvps == [0] * 7


def test_rho_zero_is_the_base_optimizer_bitwise_one_pass_a_step():
    model, sam, calls, hvps = _ours(5, rho=0.0, refresh=2)
    assert_bitwise(model, sgd_run(5))
    assert len(calls) == 5 and hvps == [0] * 5 and sam.engine.variant.v == {}


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_passes_and_products_per_step(accumulation_steps):
    """A refresh (steps 3 and 6 at refresh=3): one forward per micro-batch kept as a graph
    (one micro-batch) or one per micro-batch and product (two), then the step's two."""
    k = accumulation_steps
    _, sam, calls, hvps = _ours(8, refresh=3, iterations=4, accumulation_steps=k)
    assert hvps == [0, 0, 0, 4, 0, 0, 4, 0]
    refresh_forwards = 1 if k == 1 else 4 * k
    assert len(calls) == 8 * 2 * k + 2 * refresh_forwards
    assert sam.sam_steps == 8


@pytest.mark.parametrize("saved_at", [2, 4])
def test_a_resumed_eigensam_is_bitwise_the_uninterrupted_one(saved_at):
    """Saved before the first refresh (2) and between two (4): v, its clock, the rest."""
    straight, _, _, _ = _ours(8)
    model, sam, _, _ = _ours(saved_at)
    saved = round_trip({"model": model.state_dict(), "sam": sam.state_dict()})
    other = tiny_mlp(seed=9)
    other.load_state_dict(saved["model"])
    other_sam = SAM(
        torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9), 0.1, variant=EigenSAM(0.5, 3, 5)
    )
    other_sam.load_state_dict(saved["sam"])
    for t in range(saved_at, 8):
        sam_step(other_sam, ce_loss(other), tiny_batch(seed=t))
    for p, q in zip(straight.parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q)
    own = sam.state_dict()["sam"]["variant"]
    assert own["name"] == "eigensam" and own["refreshed_at"] == (3 if saved_at == 4 else 0)
    assert len(own["v"]) == (4 if saved_at == 4 else 0)


def test_the_refresh_runs_in_the_passes_mode_with_one_forward():
    """The refresh runs in training mode (dropout on: the authors' code switches to eval),
    one forward whose mask all its products share."""
    model = tiny_mlp(dropout=0.3)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=EigenSAM(refresh=1))
    modes = []

    def loss_fn(batch):
        modes.append(model.training)
        return ce_loss(model)(batch)

    model.train()
    sam_step(sam, loss_fn, tiny_batch(seed=0))  # clock 0: no refresh yet
    sam_step(sam, loss_fn, tiny_batch(seed=1))
    assert modes == [True] * 5 and sam.last_stats.hvps == 5
    assert len(sam.engine.variant.v) == 4


def test_eigensam_refuses_what_it_cannot_do_naming_it():
    model = tiny_mlp()

    def make(**kw):
        return SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=EigenSAM(), **kw)

    with pytest.raises(ValueError, match=r"SAM\.step\(closure\).*sam_step or SAMTrainer"):
        sam = make()
        sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
    with pytest.raises(ValueError, match=r"ascent_fraction=0\.25 with variant='eigensam'"):
        sam_step(make(), ce_loss(model), tiny_batch(), ascent_fraction=0.25)
    with pytest.raises(ValueError, match=r"m=2 with EigenSAM"):
        sam_step(make(), ce_loss(model), tiny_batch(), m=2)
    with pytest.raises(ValueError, match=r"adaptive=True \(ASAM\)"):
        sam = make(adaptive=True)
        sam.engine.variant.v = {p: torch.ones_like(p) for p in model.parameters()}
        sam_step(sam, ce_loss(model), tiny_batch())
    for bad, message in (
        ({"alpha": -0.1}, r"alpha=-0\.1 must be"),
        ({"refresh": 0}, r"refresh=0 must be an integer >= 1"),
        ({"iterations": 1.5}, r"iterations=1\.5 must be an integer"),
    ):
        with pytest.raises(ValueError, match=message):
            EigenSAM(**bad)
    with pytest.raises(ValueError, match=r"m=2"):
        SAMConfig(variant="eigensam", m=2)


class _FusedAttention(nn.Module):
    """A forward through the fused CPU flash-attention kernel, called directly (as a
    model loaded with a fused attention implementation does): no second derivative."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(5, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.proj(x).reshape(-1, 1, 2, 4)  # (batch, heads, tokens, dim)
        out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(h, h, h)[0]
        return self.head(out.reshape(-1, 8))


def test_a_forward_without_a_second_derivative_is_refused_naming_the_fix():
    model = _FusedAttention()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=EigenSAM(refresh=1))
    sam_step(sam, ce_loss(model), tiny_batch(seed=0))  # clock 0: no refresh, no product
    with pytest.raises(ValueError, match=r"double backward.*attn_implementation='eager'"):
        sam_step(sam, ce_loss(model), tiny_batch(seed=1))


def test_scaled_dot_product_attention_refreshes_on_its_math_backend():
    """F.scaled_dot_product_attention picks a fused kernel without a second derivative
    on CPU; the refresh's forward runs the math backend, so the products exist."""

    class Attention(_FusedAttention):
        def forward(self, x):
            h = self.proj(x).reshape(-1, 1, 2, 4)
            out = nn.functional.scaled_dot_product_attention(h, h, h)
            return self.head(out.reshape(-1, 8))

    model = Attention()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=EigenSAM(refresh=1))
    for t in range(2):
        sam_step(sam, ce_loss(model), tiny_batch(seed=t))
    assert sam.last_stats.hvps == 5 and len(sam.engine.variant.v) == 4
