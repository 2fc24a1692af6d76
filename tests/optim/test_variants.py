"""GSAM, LookSAM and AE-SAM against independent torch.func references (with accumulation
and a GradScaler for AE-SAM); passes per step; bitwise resume; bad options."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

from samlm import SAM, sam_step
from samlm.optim.variants import AESAM, GSAM, LookSAM
from tests.helpers import ce_loss, closure_for, tiny_batch, tiny_mlp
from tests.optim.reference import RefSGD

# each test also runs on CUDA with `pytest --device cuda` (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("device")


def _flat_dot(a: dict, b: dict) -> torch.Tensor:
    return sum((a[k] * b[k]).sum() for k in a)


def _reference(variant: str, steps: int, rho=0.1, alpha=0.5, k=3, lrs=None, rho_min=0.0):
    """Plain dict-of-tensors maths of the papers' rules (global norms, SGD + momentum)."""
    model = tiny_mlp()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = RefSGD(lr=0.1, momentum=0.9)
    g_v = None

    for t in range(steps):
        x, y = tiny_batch(seed=t)

        def loss(p, x=x, y=y):
            return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

        g = grad(loss)(params)
        lr = 0.1 if lrs is None else lrs[t]
        opt.lr = lr
        rho_t = rho_min + (rho - rho_min) * lr / 0.1
        sam_step_now = variant == "gsam" or t % k == 0
        if sam_step_now:
            norm = torch.sqrt(_flat_dot(g, g))
            g_s = grad(loss)({n: params[n] + rho_t * g[n] / norm for n in params})
            if variant == "gsam":
                c = _flat_dot(g, g_s) / _flat_dot(g_s, g_s)
                d = {n: g_s[n] - alpha * (g[n] - c * g_s[n]) for n in params}
            else:
                c = _flat_dot(g_s, g) / _flat_dot(g, g)
                g_v = {n: g_s[n] - c * g[n] for n in params}
                d = g_s
        else:
            ratio = torch.sqrt(_flat_dot(g, g) / _flat_dot(g_v, g_v))
            d = {n: g[n] + alpha * ratio * g_v[n] for n in params}
        params = opt(params, d)
    return params


def _ours(variant, steps, api="closure", rho=0.1, alpha=0.5, k=3, lrs=None, rho_min=0.0):
    model = tiny_mlp()
    made = GSAM(alpha) if variant == "gsam" else LookSAM(k, alpha)
    kwargs = {"rho_schedule": "lr", "rho_min": rho_min} if lrs is not None else {}
    sam = SAM(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho, variant=made, **kwargs
    )
    calls = []

    def loss_fn(batch):
        calls.append(len(batch[1]))
        return ce_loss(model)(batch)

    for t in range(steps):
        for group in sam.param_groups:
            group["lr"] = 0.1 if lrs is None else lrs[t]
        _step(sam, loss_fn, tiny_batch(seed=t), api)
    return model, sam, calls


def _step(sam, loss_fn, batch, api: str) -> None:
    """One step through the closure API or through sam_step."""
    if api == "closure":
        sam.step(closure_for(sam, loss_fn, batch))
    else:
        sam_step(sam, loss_fn, batch)


@pytest.mark.parametrize("api", ["closure", "sam_step"])
@pytest.mark.parametrize("variant", ["gsam", "looksam"])
def test_variant_matches_its_reference(variant, api):
    model, _, _ = _ours(variant, 7, api)
    expected = _reference(variant, 7)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)


def test_gsam_with_its_rho_schedule_matches_the_reference():
    lrs = [0.1, 0.08, 0.06, 0.04, 0.02]
    model, _, _ = _ours("gsam", 5, lrs=lrs, rho_min=0.02)
    expected = _reference("gsam", 5, lrs=lrs, rho_min=0.02)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)


def test_gsam_with_alpha_zero_is_sam_bitwise():
    a, _, _ = _ours("gsam", 4, alpha=0.0)
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), 0.1)
    for t in range(4):
        sam.step(closure_for(sam, ce_loss(model), tiny_batch(seed=t)))
    for p, q in zip(a.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("api", ["closure", "sam_step"])
def test_looksam_between_refreshes_costs_one_pass(api):
    _, sam, calls = _ours("looksam", 7, api, k=3)
    # steps 0, 3, 6 refresh (two passes), the others reuse g_v (one pass)
    assert len(calls) == 7 + 3
    assert sam.last_stats.sam_step  # step 6
    assert sam.sam_steps == 3 and sam.state_dict()["sam"]["sam_steps"] == 3


@pytest.mark.parametrize("variant", [GSAM(0.3), LookSAM(3, 0.7)], ids=["gsam", "looksam"])
def test_a_resumed_variant_is_bitwise_the_uninterrupted_one(variant):
    def make():
        model = tiny_mlp()
        fresh = type(variant)(**({"alpha": 0.3} if isinstance(variant, GSAM) else {"k": 3}))
        sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), 0.1, variant=fresh)
        return model, sam

    def train(model, sam, steps):
        for t in steps:
            sam_step(sam, ce_loss(model), tiny_batch(seed=t))

    model, sam = make()
    train(model, sam, range(4))  # the state after step 3 holds a g_v from step 3
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "sam": sam.state_dict()}, buf)
    train(model, sam, range(4, 9))
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    other, other_sam = make()
    other.load_state_dict(saved["model"])
    other_sam.load_state_dict(saved["sam"])
    train(other, other_sam, range(4, 9))
    for p, q in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_variants_state_does_not_load_into_another():
    model = tiny_mlp()
    looksam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), variant=LookSAM())
    plain = SAM(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="variant 'looksam'"):
        plain.load_state_dict(looksam.state_dict())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: GSAM(alpha=1.5), "alpha=1.5"),
        (lambda: GSAM(alpha=-0.1), "alpha=-0.1"),
        (lambda: GSAM(alpha=math.nan), "alpha=nan"),
        (lambda: LookSAM(k=0), "k=0"),
        (lambda: LookSAM(k=-2), "k=-2"),
        (lambda: LookSAM(k=2.5), "k=2.5"),
        (lambda: LookSAM(alpha=-1.0), "alpha=-1.0"),
        (lambda: LookSAM(alpha=math.inf), "alpha=inf"),
        (lambda: AESAM(delta=0.0), r"delta=0\.0"),
        (lambda: AESAM(delta=1.0), r"delta=1\.0 must be in \(0, 1\)"),
        (lambda: AESAM(delta=-0.5), r"delta=-0\.5"),
        (lambda: AESAM(delta=1.5), r"delta=1\.5"),
        (lambda: AESAM(lambda_1=math.nan), "lambda_1=nan"),
        (lambda: AESAM(lambda_2=-math.inf), "lambda_2=-inf"),
        (lambda: AESAM(total_steps=0), "total_steps=0"),
    ],
)
def test_bad_variant_options_name_themselves(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_variant_conflicts_are_refused():
    model = tiny_mlp()
    with pytest.raises(ValueError, match="interval=2"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), variant=LookSAM(k=3), interval=2)
    with pytest.raises(ValueError, match=r"rho_min=0.1 needs rho_schedule='lr'"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho_min=0.1)
    with pytest.raises(ValueError, match="variant=1"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), variant=1)


@pytest.mark.parametrize("variant", [GSAM, LookSAM, AESAM])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"m": 2}, "m=2"),
        ({"m_examples": 4}, "m_examples=4"),
        (
            {"accumulation_steps": 2, "accumulation": "per_microbatch"},
            "accumulation='per_microbatch' with accumulation_steps=2",
        ),
    ],
)
def test_a_variant_refuses_several_units_per_step_naming_the_option(variant, kwargs, message):
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), variant=variant())
    with pytest.raises(ValueError, match=f"{message} with .*one unit per step"):
        sam_step(sam, ce_loss(model), tiny_batch(), **kwargs)


def _aesam_reference(steps: int, total: int, rho=0.1, delta=0.5):
    """AE-SAM's rule on dicts: decide from ||g||^2 against its running mean and deviation."""
    model = tiny_mlp()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = RefSGD(lr=0.1, momentum=0.9)
    mean = var = 0.0
    kinds = []
    for t in range(steps):
        x, y = tiny_batch(seed=t)

        def loss(p, x=x, y=y):
            return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

        g = grad(loss)(params)
        s = _flat_dot(g, g).item()
        mean = delta * mean + (1 - delta) * s
        var = delta * var + (1 - delta) * (s - mean) ** 2
        c = (t / total) * -1.0 + (1 - t / total) * 1.0
        sam_now = s >= mean + c * var**0.5
        kinds.append(sam_now)
        if sam_now:
            norm = s**0.5
            g = grad(loss)({n: params[n] + rho * g[n] / norm for n in params})
        params = opt(params, g)
    return params, kinds


@pytest.mark.parametrize("api", ["closure", "sam_step"])
def test_aesam_matches_its_reference_and_costs_one_pass_on_plain_steps(api):
    steps, total = 10, 10
    expected, kinds = _aesam_reference(steps, total)
    assert any(kinds) and not all(kinds)  # both branches are exercised
    model = tiny_mlp()
    sam = SAM(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        0.1,
        variant=AESAM(delta=0.5, total_steps=total),
    )
    calls, ours = [], []

    def loss_fn(batch):
        calls.append(len(batch[1]))
        return ce_loss(model)(batch)

    for t in range(steps):
        _step(sam, loss_fn, tiny_batch(seed=t), api)
        ours.append(sam.last_stats.sam_step)
    assert ours == kinds
    assert len(calls) == steps + sum(kinds)  # one pass, plus one per SAM step
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)


def test_aesam_resumes_bitwise_with_its_statistics_and_clock():
    def make():
        model = tiny_mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, SAM(opt, 0.1, variant=AESAM(delta=0.5, total_steps=9))

    def train(model, sam, steps):
        kinds = []
        for t in steps:
            sam_step(sam, ce_loss(model), tiny_batch(seed=t))
            kinds.append(sam.last_stats.sam_step)
        return kinds

    model, sam = make()
    train(model, sam, range(4))
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "sam": sam.state_dict()}, buf)
    own = sam.state_dict()["sam"]
    assert set(own["variant"]) == {"name", "mean", "var"} and own["step"] == 4  # t of c_t
    kinds = train(model, sam, range(4, 9))
    assert any(kinds) and not all(kinds)
    saved = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    other, other_sam = make()
    other.load_state_dict(saved["model"])
    other_sam.load_state_dict(saved["sam"])
    assert train(other, other_sam, range(4, 9)) == kinds
    for p, q in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q)
    a, b = sam.engine.variant, other_sam.engine.variant
    assert (a.mean, a.var) == (b.mean, b.var)


def _aesam_run(steps, total, **step_kwargs):
    """Our AE-SAM (delta=0.5) through sam_step: the model and each step's decision."""
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sam = SAM(opt, 0.1, variant=AESAM(delta=0.5, total_steps=total))
    kinds = []
    for t in range(steps):
        sam_step(sam, ce_loss(model), tiny_batch(seed=t), **step_kwargs)
        kinds.append(sam.last_stats.sam_step)
    return model, sam, kinds


@pytest.mark.parametrize("accumulation_steps", [4, 3])  # 4 x 4, and uneven 6 + 5 + 5
def test_aesam_with_accumulation_matches_its_reference(accumulation_steps):
    expected, kinds = _aesam_reference(10, 10)
    model, _, ours = _aesam_run(10, 10, accumulation_steps=accumulation_steps)
    assert ours == kinds
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)


def test_aesam_with_a_grad_scaler_matches_its_reference():
    """A scale that doubles every step would change the statistic; AE-SAM leaves it out."""
    expected, kinds = _aesam_reference(10, 10)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=1)
    model, _, ours = _aesam_run(10, 10, scaler=scaler)
    assert scaler.get_scale() == 2.0**14  # it grew at every step
    assert ours == kinds
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)


def test_aesam_skips_a_non_finite_step_with_a_grad_scaler():
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=AESAM())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    sam_step(sam, lambda b: ce_loss(model)(b) * math.inf, tiny_batch(), scaler=scaler)
    assert sam.skipped_steps == 1 and scaler.get_scale() < 2.0**10
    assert (sam.engine.variant.mean, sam.engine.variant.var) == (0.0, 0.0)  # untouched
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))
    sam_step(sam, ce_loss(model), tiny_batch(), scaler=scaler)  # and goes on
    assert sam.last_stats.sam_step and sam.engine.variant.mean > 0.0


def test_a_variant_refuses_a_second_pass_that_accumulated_into_the_clean_gradient():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=GSAM())

    def closure():
        sam.zero_grad(set_to_none=False)  # zeroes the clean gradient in place
        loss = ce_loss(model)(tiny_batch())
        loss.backward()
        return loss

    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="set_to_none=True"):
        sam.step(closure)
    assert not sam.is_perturbed  # the weights are back at w
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("full", [True, False], ids=["full", "sharded"])
def test_looksam_resumes_bitwise_from_a_checkpoint(tmp_path, full):
    from samlm.optim.checkpoint import load_checkpoint, save_checkpoint

    def make():
        model = tiny_mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, SAM(opt, 0.1, variant=LookSAM(k=3))

    model, sam = make()
    for t in range(4):  # g_v from step 3, reused at steps 4 and 5
        sam_step(sam, ce_loss(model), tiny_batch(seed=t))
    assert sam.engine.variant.g_v
    save_checkpoint(tmp_path, model, sam, full=full)
    other, other_sam = make()
    load_checkpoint(tmp_path, other, other_sam)
    assert set(other_sam.engine.variant.g_v) == set(other.parameters())
    for t in range(4, 7):
        sam_step(sam, ce_loss(model), tiny_batch(seed=t))
        sam_step(other_sam, ce_loss(other), tiny_batch(seed=t))
    for p, q in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q)
