"""TaskSAM (per-task sharpness for mixtures) against an independent torch.func reference of
its rule, with two and three tasks, with accumulation and with ASAM's ball; invariants
(rho 0 is the base optimizer on the stratified batch, one task is SAM); passes per
step; bitwise resume; refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad

from samlm import SAM, sam_step
from samlm.optim.variants import TaskSAM
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

TASKS = {2: (6, 10), 3: (4, 6, 6)}


def _norm(d: dict) -> torch.Tensor:
    return torch.sqrt(sum((v**2).sum() for v in d.values()))


def _reference(steps, tasks, rho=0.1, lr=0.1, k=1, adaptive=False, eta=0.01):
    """p.grad = sum_i (n_i / n) grad L_i(w + e_i), e_i = rho g_i / ||g_i|| (ASAM:
    rho T^2 g_i / ||T g_i||, T = |w| + eta), g_i = grad L_i(w) on task i's examples of
    every micro-batch; SGD with momentum. Batch t is tiny_batch(seed=t), k micro-batches
    of sum(tasks) examples, each task after task."""
    model = tiny_mlp()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = RefSGD(lr=lr, momentum=0.9)
    size = sum(tasks)
    for t in range(steps):
        x, y = tiny_batch(seed=t, n=size * k)
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        for i, count in enumerate(tasks):
            start = sum(tasks[:i])
            rows = torch.cat([torch.arange(start, start + count) + j * size for j in range(k)])

            def loss(p, xi=x[rows], yi=y[rows]):
                return nn.functional.cross_entropy(functional_call(model, p, (xi,)), yi)

            g = grad(loss)(params)
            if adaptive:
                scale = {n: params[n].abs() + eta for n in params}
                norm = _norm({n: scale[n] * g[n] for n in g})
                e = {n: rho * scale[n] ** 2 * g[n] / norm for n in g}
            else:
                e = {n: rho * g[n] / _norm(g) for n in g}
            g_i = grad(loss)({n: params[n] + e[n] for n in params})
            for n in total:
                total[n] += (count / size) * g_i[n]
        params = opt(params, total)
    return params


def _ours(steps, tasks, rho=0.1, k=1, adaptive=False, model=None, sam=None, start=0):
    model = model or tiny_mlp()
    if sam is None:
        base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sam = SAM(base, rho, adaptive=adaptive, variant=TaskSAM())
    calls = []
    loss = ce_loss(model)

    def loss_fn(batch):
        calls.append(len(batch[1]))
        return loss(batch)

    for t in range(start, steps):
        batch = tiny_batch(seed=t, n=sum(tasks) * k)
        sam_step(sam, loss_fn, batch, accumulation_steps=k, task_sizes=tasks)
    return model, sam, calls


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("k", [1, 2])
def test_tasksam_matches_its_reference(m, k):
    model, sam, _ = _ours(5, TASKS[m], k=k)
    expected = _reference(5, TASKS[m], k=k)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)
    assert sam.sam_steps == 5


def test_tasksam_with_asam_balls_matches_its_reference():
    model, _, _ = _ours(4, TASKS[3], rho=0.5, adaptive=True)
    expected = _reference(4, TASKS[3], rho=0.5, adaptive=True)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-6)


def test_each_task_is_perturbed_by_its_own_gradient():
    """At each second pass the weights are w + rho g_i / ||g_i|| for that pass's task;
    the step's statistics: L(w) = sum_i (n_i / n) L_i(w), ||g|| the last task's."""
    model = tiny_mlp()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.2, variant=TaskSAM())
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []

    def loss_fn(batch):
        seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        return ce_loss(model)(batch)

    x, y = tiny_batch(seed=4)
    sam_step(sam, loss_fn, (x, y), task_sizes=TASKS[3])
    loss_w = 0.0
    for i, count in enumerate(TASKS[3]):
        start = sum(TASKS[3][:i])
        xi, yi = x[start : start + count], y[start : start + count]

        def loss(p, xi=xi, yi=yi):
            return nn.functional.cross_entropy(functional_call(model, p, (xi,)), yi)

        g = grad(loss)(w)
        for n in w:
            e = 0.2 * g[n] / _norm(g)
            torch.testing.assert_close(seen[2 * i + 1][n] - w[n], e, rtol=1e-5, atol=1e-7)
            assert torch.equal(seen[2 * i][n], w[n])  # each ascent at w: restored between
        loss_w += count / 16 * loss(w).item()
    assert sam.last_stats.loss.item() == pytest.approx(loss_w, rel=1e-6)
    assert sam.last_stats.grad_norm == pytest.approx(_norm(g).item(), rel=1e-5)


def test_rho_zero_is_the_base_optimizer_on_the_stratified_batch_bitwise():
    model, sam, calls = _ours(4, TASKS[3], rho=0.0)
    assert_bitwise(model, sgd_run(4))
    assert calls == [16] * 4 and sam.sam_steps == 0


def test_one_task_is_sam_bitwise():
    model, _, calls = _ours(5, (16,))
    plain = tiny_mlp()
    sam = SAM(torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9), 0.1)
    for t in range(5):
        sam_step(sam, ce_loss(plain), tiny_batch(seed=t))
    assert_bitwise(model, plain)
    assert calls == [16, 16] * 5


@pytest.mark.parametrize("k", [1, 2])
def test_two_passes_per_task_and_micro_batch(k):
    """Per step: task i's ascent then its second pass, on its slice of each micro-batch."""
    _, _, calls = _ours(2, TASKS[3], k=k)
    per_step = [c for count in TASKS[3] for c in [count] * (2 * k)]
    assert calls == per_step * 2


@pytest.mark.parametrize("saved_at", [1, 3])
def test_a_resumed_tasksam_is_bitwise_the_uninterrupted_one(saved_at):
    straight, _, _ = _ours(5, TASKS[2])
    model, sam, _ = _ours(saved_at, TASKS[2])
    saved = round_trip({"model": model.state_dict(), "sam": sam.state_dict()})
    other = tiny_mlp(seed=9)
    other.load_state_dict(saved["model"])
    other_sam = SAM(
        torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9), 0.1, variant=TaskSAM()
    )
    other_sam.load_state_dict(saved["sam"])
    _ours(5, TASKS[2], model=other, sam=other_sam, start=saved_at)
    assert_bitwise(straight, other)
    assert sam.state_dict()["sam"]["variant"] == {"name": "tasksam"}


def test_tasksam_refuses_what_it_cannot_do_naming_it():
    model = tiny_mlp()

    def make(variant=TaskSAM):
        return SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.1, variant=variant and variant())

    with pytest.raises(ValueError, match=r"SAM\.step\(closure\).*sam_step or SAMTrainer"):
        sam = make()
        sam.step(closure_for(sam, ce_loss(model), tiny_batch()))
    with pytest.raises(ValueError, match=r"pass task_sizes to samlm\.sam_step or SAMTrainer"):
        sam_step(make(), ce_loss(model), tiny_batch())
    with pytest.raises(ValueError, match=r"task_sizes given, but None is not a per-task variant"):
        sam_step(make(None), ce_loss(model), tiny_batch(), task_sizes=(8, 8))
    with pytest.raises(ValueError, match=r"\[8, 4\] sum to 12: each micro-batch"):
        sam_step(make(), ce_loss(model), tiny_batch(), task_sizes=(8, 4))
    with pytest.raises(ValueError, match=r"m=2 with TaskSAM\(\): its units are the step's tasks"):
        sam_step(make(), ce_loss(model), tiny_batch(), m=2, task_sizes=(8, 8))
    with pytest.raises(ValueError, match=r"ascent_fraction=0\.25 with variant='tasksam'"):
        sam_step(make(), ce_loss(model), tiny_batch(), ascent_fraction=0.25, task_sizes=(8, 8))


def test_a_loss_scale_changes_nothing_and_a_non_finite_task_skips_the_step():
    """With a GradScaler (scale 2^10) the steps are TaskSAM's without one: each e_i is a
    ratio, the scale leaves only the final direction, before the base step. An inf in the
    second task's ascent skips the whole step and lowers the scale."""
    model, _, _ = _ours(3, TASKS[2])
    scaled = tiny_mlp()
    sam = SAM(torch.optim.SGD(scaled.parameters(), lr=0.1, momentum=0.9), 0.1, variant=TaskSAM())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for t in range(3):
        sam_step(sam, ce_loss(scaled), tiny_batch(seed=t), scaler=scaler, task_sizes=TASKS[2])
    for p, q in zip(model.parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    calls = []

    def inf_in_the_second_ascent(batch):
        calls.append(len(batch[1]))
        loss = ce_loss(scaled)(batch)
        return loss * float("inf") if len(calls) == 3 else loss

    before = [p.detach().clone() for p in scaled.parameters()]
    sam_step(sam, inf_in_the_second_ascent, tiny_batch(seed=3), scaler=scaler, task_sizes=TASKS[2])
    assert calls == [6, 6, 10] and sam.skipped_steps == 1 and scaler.get_scale() < 2.0**10
    assert all(torch.equal(p, q) for p, q in zip(before, scaled.parameters(), strict=True))
