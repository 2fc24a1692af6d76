"""The SAM family's edges, each against plain torch: a rho-0 group under the lr schedule is
the base optimizer; rho below rho_min is refused; GSAM and LookSAM refuse a partial ascent;
LookSAM's kept direction is zero for a parameter that had no gradient at the refresh; the
engine records a step the same whichever calls a two-phase caller made."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

from samlm import SAM, sam_step
from samlm.optim.variants import AESAM, GSAM, LookSAM
from samlm.training import SAMConfig
from tests.helpers import ce_loss, tiny_batch, tiny_mlp


def test_a_rho_zero_group_is_adamw_under_the_lr_schedule():
    """rho 0 means the base optimizer whatever the schedule: with rho_schedule='lr' and
    rho_min > 0 the weights stay AdamW's bitwise, one pass a step."""
    ours, theirs = tiny_mlp(), tiny_mlp()
    sam = SAM(torch.optim.AdamW(ours.parameters(), lr=0.01), 0.0, rho_schedule="lr", rho_min=0.02)
    adamw = torch.optim.AdamW(theirs.parameters(), lr=0.01)
    scheds = [torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.1, total_iters=4) for o in (sam, adamw)]
    passes = []
    for t in range(4):
        batch = tiny_batch(seed=t)

        def closure(batch=batch, t=t):
            sam.zero_grad()
            passes.append(t)
            loss = ce_loss(ours)(batch)
            loss.backward()
            return loss

        sam.step(closure)
        adamw.zero_grad()
        ce_loss(theirs)(batch).backward()
        adamw.step()
        for s in scheds:
            s.step()
    assert passes == [0, 1, 2, 3] and sam.sam_steps == 0
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_rho_zero_group_next_to_a_perturbed_one_keeps_radius_zero():
    model = tiny_mlp()
    first, second = list(model.parameters())[:2], list(model.parameters())[2:]
    sam = SAM(
        torch.optim.SGD([{"params": first, "rho": 0.0}, {"params": second}], lr=0.1),
        0.05,
        rho_schedule="lr",
        rho_min=0.02,
    )
    for group in sam.param_groups:
        group["lr"] = 0.05
    rhos = [sam.schedule.rho(g, 3) for g in sam.param_groups]
    assert rhos == [0.0, pytest.approx(0.02 + 0.03 * 0.5)]


@pytest.mark.parametrize(
    "make",
    [
        lambda p: SAM(torch.optim.SGD(p, lr=0.1), 0.01, rho_schedule="lr", rho_min=0.05),
        lambda p: SAM(
            torch.optim.SGD([{"params": p, "rho": 0.01}], lr=0.1),
            0.1,
            rho_schedule="lr",
            rho_min=0.05,
        ),
        lambda p: SAMConfig(rho=0.01, rho_schedule="lr", rho_min=0.05),
    ],
    ids=["SAM", "param group", "SAMConfig"],
)
def test_rho_below_rho_min_is_refused_naming_both(make):
    with pytest.raises(ValueError, match=r"rho=0\.01 is below rho_min=0\.05"):
        make(tiny_mlp().parameters())


def test_rho_zero_and_rho_at_rho_min_are_allowed_with_rho_min():
    params = list(tiny_mlp().parameters())
    SAM(torch.optim.SGD(params, lr=0.1), 0.0, rho_schedule="lr", rho_min=0.05)
    SAM(torch.optim.SGD(params, lr=0.1), 0.05, rho_schedule="lr", rho_min=0.05)
    SAMConfig(rho=0.0, rho_schedule="lr", rho_min=0.05)


@pytest.mark.parametrize("variant", [GSAM, LookSAM, AESAM], ids=["gsam", "looksam", "aesam"])
def test_a_variant_refuses_a_partial_ascent_naming_it(variant):
    """The papers decompose the gradients of one batch: a quarter-batch ascent would mix the
    ascent's clean gradient of 4 examples with the SAM gradient of 16."""
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), variant=variant())
    name = variant.name
    with pytest.raises(ValueError, match=rf"ascent_fraction=0\.25 with variant='{name}'"):
        sam_step(sam, ce_loss(model), tiny_batch(), ascent_fraction=0.25)
    with pytest.raises(ValueError, match=rf"ascent_fraction=0\.25 with variant='{name}'"):
        SAMConfig(variant=name, ascent_fraction=0.25)


class _TwoBranches(nn.Module):
    """Two linear maps of one input; ``use_b=False`` leaves ``b`` out of the loss (and
    without a gradient)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(5, 3)
        self.b = nn.Linear(5, 3)

    def forward(self, x, use_b=True):
        return self.a(x) + (self.b(x) if use_b else 0.0)


def _looksam_reference(model, uses_b, k, alpha, rho, lr):
    """LookSAM (Liu et al. 2022, Algorithm 1) with plain SGD, where a parameter that takes
    no part in a step's loss has gradient zero (so g_v = 0 for it at a refresh)."""
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    dot = lambda a, b: sum((a[n] * b[n]).sum() for n in a)  # noqa: E731
    g_v = None
    for t, use_b in enumerate(uses_b):
        x, y = tiny_batch(seed=t)

        def loss(p, x=x, y=y, use_b=use_b):
            return nn.functional.cross_entropy(functional_call(model, p, (x, use_b)), y)

        g = grad(loss)(params)
        if t % k == 0:
            norm = dot(g, g).sqrt()
            g_s = grad(loss)({n: params[n] + rho * g[n] / norm for n in params})
            c = dot(g_s, g) / dot(g, g)
            g_v = {n: g_s[n] - c * g[n] for n in params}
            d = g_s
        else:
            ratio = (dot(g, g) / dot(g_v, g_v)).sqrt()
            d = {n: g[n] + alpha * ratio * g_v[n] for n in params}
        params = {n: params[n] - lr * d[n] for n in params}
    return params


def test_looksam_forgets_the_kept_direction_of_a_parameter_without_gradient():
    """b has no gradient at the refresh of step 2: its g_v is zero there, so step 3 moves
    it by its plain gradient alone (not by the g_v of step 0), and its gradient still
    counts in ||g||."""
    uses_b = [True, True, False, True, True]
    expected = _looksam_reference(_TwoBranches(), uses_b, k=2, alpha=0.7, rho=0.1, lr=0.1)
    model = _TwoBranches()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=LookSAM(k=2, alpha=0.7))
    for t, use_b in enumerate(uses_b):
        x, y = tiny_batch(seed=t)
        sam_step(sam, lambda batch, use_b=use_b: ce_loss_of(model, batch, use_b), (x, y))
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6, msg=name)


def ce_loss_of(model, batch, use_b):
    x, y = batch
    return nn.functional.cross_entropy(model(x, use_b), y)


def test_a_two_phase_looksam_step_without_perturb_is_a_plain_step_with_g_v():
    """On a reuse step the caller may skip perturb(), which would return False anyway: the
    step still applies g_v and is counted as plain, as through sam_step."""

    def run(call_perturb: bool):
        model = tiny_mlp()
        sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=LookSAM(k=3))
        for t in range(3):
            sam.zero_grad()
            ce_loss(model)(tiny_batch(seed=t)).backward()
            if (t == 0 or call_perturb) and sam.perturb():
                sam.zero_grad()
                ce_loss(model)(tiny_batch(seed=t)).backward()
            sam.step()
        return model, sam

    with_calls, sam_a = run(True)
    without, sam_b = run(False)
    assert sam_a.sam_steps == sam_b.sam_steps == 1
    assert not sam_b.last_stats.sam_step
    for p, q in zip(with_calls.parameters(), without.parameters(), strict=True):
        assert torch.equal(p, q)
