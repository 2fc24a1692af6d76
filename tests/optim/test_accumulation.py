"""Gradient accumulation, m-sharpness and the quarter-batch ascent of ``sam_step``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from samlm import SAM, sam_step
from tests.helpers import ce_loss, tiny_batch, tiny_mlp

from .reference import sam_gradient

# each test also runs on CUDA with `pytest --device cuda` (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("device")

RHO, LR = 0.3, 0.1


def _sgd_sam(model, **kwargs):
    return SAM(torch.optim.SGD(model.parameters(), lr=LR), rho=RHO, **kwargs)


def test_global_accumulation_equals_whole_batch_sam():
    batch = tiny_batch(n=16)
    whole, accum = tiny_mlp(), tiny_mlp()
    sam_whole, sam_accum = _sgd_sam(whole), _sgd_sam(accum)
    for _ in range(3):
        sam_step(sam_whole, ce_loss(whole), batch)
        sam_step(sam_accum, ce_loss(accum), batch, accumulation_steps=4)
    for p, q in zip(whole.parameters(), accum.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_global_accumulation_with_uneven_micro_batches():
    batch = tiny_batch(n=10)
    whole, accum = tiny_mlp(), tiny_mlp()
    sam_step(_sgd_sam(whole), ce_loss(whole), batch)
    sam_step(_sgd_sam(accum), ce_loss(accum), batch, accumulation_steps=3)  # 4 + 3 + 3
    for p, q in zip(whole.parameters(), accum.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{"accumulation_steps": 4, "accumulation": "per_microbatch"}, {"m": 4}]
)
def test_per_chunk_perturbation_is_the_mean_of_chunk_sam_gradients(kwargs):
    """per_microbatch with k micro-batches and m-sharpness with m chunks (Foret et al.)."""
    x, y = tiny_batch(n=16)
    model = tiny_mlp()
    ref = copy.deepcopy(model)
    params = {k: v.detach().clone() for k, v in ref.named_parameters()}
    grads = [
        sam_gradient(ref, params, nn.functional.cross_entropy, (x[i : i + 4], y[i : i + 4]), RHO)
        for i in range(0, 16, 4)
    ]
    expected = {k: params[k] - LR * sum(g[k] for g in grads) / 4 for k in params}
    sam_step(_sgd_sam(model), ce_loss(model), (x, y), **kwargs)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, expected[name], rtol=1e-5, atol=1e-6)
    whole = tiny_mlp()  # and it is not the whole-batch SAM step
    sam_step(_sgd_sam(whole), ce_loss(whole), (x, y))
    assert not torch.allclose(whole[0].weight, model[0].weight, atol=1e-6)


def _recording_loss(model, log):
    inner = ce_loss(model)

    def loss_fn(batch):
        log.append((batch[0].shape[0], [p.detach().clone() for p in model.parameters()]))
        return inner(batch)

    return loss_fn


@pytest.mark.parametrize("accumulation", ["global", "per_microbatch"])
def test_weights_are_restored_between_micro_batches(accumulation):
    model = tiny_mlp()
    w0 = [p.detach().clone() for p in model.parameters()]
    log = []
    sam_step(
        _sgd_sam(model),
        _recording_loss(model, log),
        tiny_batch(n=16),
        accumulation_steps=4,
        accumulation=accumulation,
    )
    seen = [all(torch.equal(a, b) for a, b in zip(ws, w0, strict=True)) for _, ws in log]
    if accumulation == "global":
        assert seen == [True] * 4 + [False] * 4
    else:
        assert seen == [True, False] * 4


@pytest.mark.parametrize(
    ("kwargs", "sizes"),
    [
        ({"ascent_fraction": 0.25}, [4, 16]),
        ({"ascent_fraction": 1.0}, [16, 16]),
        ({"ascent_fraction": 0.5, "accumulation_steps": 2}, [4, 4, 8, 8]),
        (
            {
                "ascent_fraction": 0.5,
                "accumulation_steps": 2,
                "accumulation": "per_microbatch",
                "m": 2,
            },
            [2, 4, 2, 4, 2, 4, 2, 4],
        ),
    ],
)
def test_ascent_pass_sees_the_requested_share(kwargs, sizes):
    model = tiny_mlp()
    log = []
    sam_step(_sgd_sam(model), _recording_loss(model, log), tiny_batch(n=16), **kwargs)
    assert [n for n, _ in log] == sizes


def test_plain_steps_of_interval_and_randomized_sam_run_one_pass():
    model = tiny_mlp()
    for sam, expected_sam_steps in (
        (_sgd_sam(model, interval=2), [True, False, True, False]),
        (_sgd_sam(model, probability=0.5, seed=5), None),
    ):
        kinds = []
        for _ in range(4 if expected_sam_steps else 20):
            log = []
            sam_step(sam, _recording_loss(model, log), tiny_batch(n=16), ascent_fraction=0.25)
            kinds.append(sam.last_stats.sam_step)
            assert [n for n, _ in log] == ([4, 16] if kinds[-1] else [16])
        if expected_sam_steps:
            assert kinds == expected_sam_steps
        else:
            assert True in kinds and False in kinds


def test_helper_and_closure_agree():
    batch = tiny_batch()
    a, b = tiny_mlp(), tiny_mlp()
    sam_a, sam_b = _sgd_sam(a), _sgd_sam(b)
    loss_a = sam_step(sam_a, ce_loss(a), batch)

    def closure():
        sam_b.zero_grad()
        loss = ce_loss(b)(batch)
        loss.backward()
        return loss

    loss_b = sam_b.step(closure)
    assert loss_a.item() == loss_b.item()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)


def test_batch_forms_dict_and_tuple():
    """A dict batch is split like a tuple (its tensors along dim 0, anything else passed
    to every micro-batch as is): the same step, bit for bit."""
    model, twin = tiny_mlp(), tiny_mlp()
    x, y = tiny_batch()
    sam, sam_twin = _sgd_sam(model), _sgd_sam(twin)
    seen = []

    def dict_loss(b):
        seen.append(b["name"])
        return nn.functional.cross_entropy(model(b["x"]), b["y"])

    options = dict(ascent_fraction=0.25, accumulation_steps=2)
    loss = sam_step(sam, dict_loss, {"x": x, "y": y, "name": "not a tensor"}, **options)
    loss_twin = sam_step(sam_twin, ce_loss(twin), (x, y), **options)
    assert loss.item() == loss_twin.item()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)
    assert seen and set(seen) == {"not a tensor"}
    with pytest.raises(ValueError, match="first-dimension"):
        sam_step(sam, ce_loss(model), (x, y[:3]))


@pytest.mark.parametrize("track_cosine", [False, True])
def test_ascent_gradients_are_freed_before_the_second_pass(monkeypatch, track_cosine):
    """The second pass's gradients must not sit beside the ascent's (they took fresh
    memory and slowed SAM(0.25)): by the second forward, no ascent gradient is alive,
    unless ``track_cosine`` keeps them for cos(g, g_sam)."""
    import gc
    import weakref

    from samlm.optim import step as step_module

    model = tiny_mlp()
    sam = _sgd_sam(model, track_cosine=track_cosine)
    refs = []
    real_grad = torch.autograd.grad

    def grad(*args, **kwargs):
        out = real_grad(*args, **kwargs)
        refs.extend(weakref.ref(g) for g in out if g is not None)
        return out

    monkeypatch.setattr(step_module.torch.autograd, "grad", grad)
    alive = []
    loss = ce_loss(model)

    def loss_fn(batch):
        if refs:  # the second pass: the ascent's gradients were taken
            gc.collect()
            alive.append(sum(r() is not None for r in refs))
        return loss(batch)

    sam_step(sam, loss_fn, tiny_batch(), ascent_fraction=0.25)
    n_params = len(list(model.parameters()))
    assert len(refs) == n_params and len(alive) == 1
    assert alive[0] == (n_params if track_cosine else 0)
