"""The step plan both drivers execute: which passes run, on which examples, weighted how,
which one synchronises, and where a step ends; the variants' naming; record_plain."""

from __future__ import annotations

import math

import pytest
import torch

from samlm import SAM, sam_step
from samlm.optim.plan import StepPlan
from samlm.optim.variants import AESAM, GSAM, Variant
from tests.helpers import ce_loss, tiny_batch, tiny_mlp


class Recording:
    """Passes in a few lines of torch that log each call: ``("ascent", sizes)`` or
    ``("backward", [(size, weight)], last, perturbed)``."""

    def __init__(self, model, sam, scale=1.0):
        self.model, self.sam, self.scale, self.calls = model, sam, scale, []

    def ascent(self, pieces, fraction):
        self.calls.append(("ascent", [len(y) for (_, y), _ in pieces], fraction))
        params = self.sam.trainable_params()
        total = sum(size for _, size in pieces)
        loss = sum(ce_loss(self.model)(b) * (size / total) for b, size in pieces)
        grads = torch.autograd.grad(loss * self.scale, params)
        return loss.detach(), dict(zip(params, grads, strict=True))

    def backward(self, pieces, last):
        shape = [(len(y), weight) for (_, y), weight in pieces]
        self.calls.append(("backward", shape, last, self.sam.is_perturbed))
        losses = [ce_loss(self.model)(b) * weight for b, weight in pieces]
        sum(losses).backward()
        return sum(loss.detach() for loss in losses)

    def grad_scale(self):
        return 1.0


def _plan(chunks=None, micro=2):
    x, y = tiny_batch(n=16)
    size = 16 // micro
    pieces = [((x[i : i + size], y[i : i + size]), size) for i in range(0, 16, size)]
    return StepPlan(pieces, chunks)


def test_a_plain_step_is_one_backward_of_every_micro_batch():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.0)
    passes = Recording(model, sam)
    outcome = _plan().run(sam.engine, passes)
    assert passes.calls == [("backward", [(8, 0.5), (8, 0.5)], True, False)]
    assert outcome.loss_perturbed is None and not outcome.skipped
    assert not sam.last_stats.sam_step and sam.last_stats.loss == outcome.loss


def test_units_run_ascent_then_second_pass_and_only_the_last_synchronises():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    passes = Recording(model, sam)
    outcome = _plan(chunks=lambda size: 2).run(sam.engine, passes)
    unit = [("ascent", [4], 1.0), ("backward", [(4, 0.25)], False, True)]
    assert passes.calls[:-1] == unit * 3 + unit[:1]
    assert passes.calls[-1] == ("backward", [(4, 0.25)], True, True)
    assert not sam.is_perturbed and sam.last_stats.sam_step
    x, y = tiny_batch(n=16)  # L(w): the units' ascent losses weighted by their share
    expected = sum(ce_loss(model)((x[i : i + 4], y[i : i + 4])) / 4 for i in range(0, 16, 4))
    torch.testing.assert_close(outcome.loss, expected.detach())


def test_aesam_decides_from_the_whole_batchs_backward():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, variant=AESAM())
    passes = Recording(model, sam)
    outcome = _plan().run(sam.engine, passes)  # mu = sigma = 0: the first step perturbs
    whole = [(8, 0.5), (8, 0.5)]
    assert passes.calls == [("backward", whole, True, False), ("backward", whole, True, True)]
    assert outcome.loss_from_backward and outcome.loss_perturbed is not None


def test_a_non_finite_ascent_ends_the_step_with_its_gradient_in_p_grad():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    passes = Recording(model, sam, scale=math.inf)
    outcome = _plan(chunks=lambda size: 1).run(sam.engine, passes)
    assert outcome.skipped and passes.calls == [("ascent", [8], 1.0)]
    assert sam.step_skipped and not sam.is_perturbed
    assert all(not torch.isfinite(p.grad).all() for p in model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    sam.step()
    assert sam.skipped_steps == 1
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))


def test_a_variants_one_unit_rule_holds_on_plain_steps_too():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, sam_start_step=1, variant=GSAM())
    assert not sam.is_sam_step()
    with pytest.raises(ValueError, match="m=2 with GSAM"):
        sam_step(sam, ce_loss(model), tiny_batch(), m=2)


def test_a_variant_names_itself_and_the_base_class_is_not_one():
    with pytest.raises(TypeError, match="Nameless must set name"):
        type("Nameless", (Variant,), {})
    assert type("Named", (Variant,), {"name": "named"})().name == "named"
    model = tiny_mlp()
    with pytest.raises(ValueError, match=r"must be a samlm\.optim\.variants\.Variant subclass"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), variant=Variant())


def test_record_plain_records_and_takes_no_step():
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    sam.engine.record_plain(torch.tensor(0.5))
    assert sam.last_stats.loss == 0.5 and not sam.last_stats.sam_step
    assert sam.engine.clock == 0
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))
