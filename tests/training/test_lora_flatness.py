"""Flat-LoRA and BAR: the seeded noise and its exact removal, steps equal to references
computed by hand, BAR's rescaling (Algorithms 2-3 of its paper) and its agreement with
SAM's drift, passes per step."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.func import functional_call, grad

from samlm.training import BAR, FlatLoRA
from samlm.training.flat_lora import noise_seed
from samlm.training.lora_layers import lora_layers
from tests.helpers import tiny_hf

peft = pytest.importorskip("peft", reason="needs the peft extra")


def _lora_model(kind: str = "bert", targets=("query", "value"), dtype=torch.float32):
    model = tiny_hf(kind)
    task = "SEQ_CLS"
    config = peft.LoraConfig(
        r=4, lora_alpha=8, lora_dropout=0.0, target_modules=list(targets), task_type=task
    )
    torch.manual_seed(1)
    model = peft.get_peft_model(model, config).to(dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    for seed, p in enumerate(trainable):  # B starts at 0: move it, so that A's gradient is not 0
        p.data.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed))
    return model.train()


def _batch(seed: int, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (n, 6), generator=g)
    return {"input_ids": ids, "labels": (ids[:, 0] > 22).long()}


def _noise_by_hand(weight_oi, a, b, scaling, sigma_t, seed, step, index):
    """eps (out x in) of the paper: N(0, sigma_t^2 ||row of W + s B A||^2 / n)."""
    merged = weight_oi + scaling * (b @ a)
    z = torch.randn(merged.shape, generator=torch.Generator().manual_seed(
        noise_seed(seed, step, index)), dtype=torch.float32).to(merged.dtype)  # fmt: skip
    return z * sigma_t * merged.norm(dim=1, keepdim=True) / math.sqrt(merged.shape[1])


@pytest.mark.parametrize("kind,targets", [("bert", ("query", "value")), ("gpt2", ("c_attn",))])
def test_flat_lora_noise_is_seeded_and_removed_bitwise(kind, targets):
    model = _lora_model(kind, targets)
    flat = FlatLoRA(sigma=0.2, seed=3)
    layers = lora_layers(model)
    assert len(layers) == 2 if kind == "bert" else len(layers) == 1
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    storage = [layer.weight.data_ptr() for layer in layers]
    sigma_t = flat.sigma_at(5, 10)
    assert (
        sigma_t == pytest.approx(0.1) and flat.sigma_at(0, 10) == 0 and flat.sigma_at(10, 10) == 0.2
    )
    for index, layer in enumerate(layers):
        eps = flat.noise(layer, index, 5, 10)
        assert torch.equal(eps, flat.noise(layer, index, 5, 10))  # same seed and step
        assert not torch.equal(eps, flat.noise(layer, index, 6, 10))  # another step
        assert not torch.equal(eps, FlatLoRA(0.2, seed=4).noise(layer, index, 5, 10))
        w = layer.weight.detach()
        w_oi = w.T if layer.transposed else w
        hand = _noise_by_hand(
            w_oi, layer.A.detach(), layer.B.detach(), layer.scaling, sigma_t, 3, 5, index
        )
        torch.testing.assert_close(eps, hand.T if layer.transposed else hand)
    assert layers[0].transposed == (kind == "gpt2")  # Conv1D stores in x out
    noise = [flat.noise(layer, index, 5, 10) for index, layer in enumerate(layers)]
    with flat.perturbed(model, 5, 10):
        for layer, eps in zip(layers, noise, strict=True):
            assert torch.equal(layer.weight, before[_param_name(model, layer.weight)] + eps)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name  # bitwise, the same tensors
    assert [layer.weight.data_ptr() for layer in layers] == storage
    with pytest.raises(RuntimeError, match="boom"), flat.perturbed(model, 5, 10):
        raise RuntimeError("boom")
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # on error too


def _param_name(model, param):
    return next(n for n, p in model.named_parameters() if p is param)


def _train_sgd(tmp_path, model, batch, schedule: str, **flatness) -> None:
    """Three steps of ``with_lora_flatness(Trainer)`` on ``batch``: SGD, lr 0.1 on the
    ``schedule``, no weight decay, no clipping."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from samlm.training import with_lora_flatness

    with_lora_flatness(Trainer)(
        model=model,
        args=TrainingArguments(
            str(tmp_path), per_device_train_batch_size=8, max_steps=3, report_to=[], use_cpu=True,
            save_strategy="no", disable_tqdm=True, learning_rate=0.1, optim="sgd",
            lr_scheduler_type=schedule, weight_decay=0.0, max_grad_norm=0.0,
        ),
        train_dataset=Dataset.from_dict({k: v.tolist() for k, v in batch.items()}),
        **flatness,
    ).train()  # fmt: skip


def test_flat_lora_trainer_step_equals_the_reference_by_hand(tmp_path):
    """Three Trainer steps (SGD, lr 0.1, one batch each) against a hand computation: the
    gradient of the adapters and the head at W + s B A + eps, then p -= lr g."""

    model = _lora_model()
    reference = copy.deepcopy(model)
    batch = _batch(0)
    flat = FlatLoRA(sigma=3.0, seed=7)  # large: a visible effect on a tiny model
    _train_sgd(tmp_path, model, batch, "constant", flat_lora=flat)

    layers = lora_layers(reference)  # their order numbers the noise seeds
    assert len(layers) == 2
    frozen = {n: p.detach() for n, p in reference.named_parameters() if not p.requires_grad}
    params = {n: p.detach().clone() for n, p in reference.named_parameters() if p.requires_grad}
    plain = dict(params)  # the same steps without noise
    for step in range(3):
        sigma_t = 3.0 * (1 - math.cos(math.pi * step / 3)) / 2  # 0 at step 0
        weights = dict(frozen)
        for index, layer in enumerate(layers):
            w = _param_name(reference, layer.weight)
            a = params[_param_name(reference, layer.A)]
            b = params[_param_name(reference, layer.B)]
            weights[w] = frozen[w] + _noise_by_hand(
                frozen[w], a, b, layer.scaling, sigma_t, 7, step, index
            )

        def loss(p, weights=weights):
            return functional_call(reference, {**weights, **p}, (), batch).loss

        g = grad(loss)(params)
        params = {n: params[n] - 0.1 * g[n] for n in params}
        g = grad(lambda p: functional_call(reference, {**frozen, **p}, (), batch).loss)(plain)
        plain = {n: plain[n] - 0.1 * g[n] for n in plain}
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), params[name], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(p, frozen[name]), name  # the frozen model, bitwise
    moved = max((params[n] - plain[n]).abs().max().item() for n in plain)
    assert moved > 3e-5  # the noise changed the steps, by more than the tolerance above


def _balancedness(layer) -> float:
    return 0.5 * (layer.A.double().pow(2).sum() - layer.B.double().pow(2).sum()).item()


def _norm(t) -> float:
    return t.double().norm().item()


@pytest.mark.parametrize("variant", ["nbar", "obar"])
def test_bar_rescales_each_layer_as_algorithms_2_and_3(variant):
    """X = B, Y = A^T: nBAR grows the factor whose gradient is larger and shrinks the other
    by (1 -+ a_t eta); oBAR shrinks the larger factor. Gradients are left as they were."""
    model = _lora_model()
    layers = lora_layers(model)
    f = 4.0 if variant == "nbar" else 0.25  # the same B A (and loss): flips layer 0's rule
    with torch.no_grad():
        layers[0].A.mul_(f), layers[0].B.div_(f)
    model(**_batch(1)).loss.backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    lrs = {layer.A: 0.01 * (i + 1) for i, layer in enumerate(layers)}
    lrs.update({layer.B: 0.02 * (i + 1) for i, layer in enumerate(layers)})
    bar = BAR(alpha=0.8, variant=variant)
    bar.rescale_(model, 2, 8, lrs.__getitem__)
    a_t = 0.8 * (1 - 2 / 8)
    expected = dict(before)
    decisions = []
    for layer in layers:
        a, b = _param_name(model, layer.A), _param_name(model, layer.B)
        if variant == "nbar":
            grow_b = _norm(grads[b]) >= _norm(grads[a])
        else:
            grow_b = _norm(before[b]) < _norm(before[a])
        decisions.append(grow_b)
        sign = 1 if grow_b else -1
        expected[b] = before[b] * (1 + sign * a_t * lrs[layer.B])
        expected[a] = before[a] * (1 - sign * a_t * lrs[layer.A])
    assert sorted(decisions) == [False, True]  # both branches of the rule
    factors = {_param_name(model, t) for layer in layers for t in (layer.A, layer.B)}
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-6, atol=0)
        assert torch.equal(p, before[name]) == (name not in factors), name
        if name in grads:
            assert torch.equal(p.grad, grads[name]), name
    moved = {n: p.detach().clone() for n, p in model.named_parameters()}
    bar.rescale_(model, 8, 8, lrs.__getitem__)  # a_T = 0 (linear): nothing moves
    assert all(torch.equal(p, moved[n]) for n, p in model.named_parameters())
    head = next(p for n, p in model.named_parameters() if "classifier" in n and p.grad is not None)
    for broken, value in ((layers[0].A, float("inf")), (head, float("nan"))):
        saved = broken.grad.clone()
        broken.grad.view(-1)[0] = value  # a step a GradScaler skips: no layer moves
        bar.rescale_(model, 2, 8, lrs.__getitem__)
        assert all(torch.equal(p, moved[n]) for n, p in model.named_parameters())
        broken.grad.copy_(saved)
    with pytest.raises(ValueError, match=r"a_t \* learning rate = 1\.2 must be < 1"):
        bar.rescale_(model, 0, 8, lambda p: 1.5)


def test_bar_schedules_and_options():
    assert BAR(alpha=2.0).alpha_at(3, 12) == pytest.approx(2.0 * 0.75)
    assert BAR(alpha=2.0, schedule="cosine").alpha_at(4, 12) == pytest.approx(
        2.0 * 0.5 * (1 + math.cos(math.pi / 3))
    )
    assert BAR(alpha=2.0, schedule="cosine").alpha_at(12, 12) == pytest.approx(0.0)
    assert BAR(alpha=2.0, schedule="constant").alpha_at(11, 12) == 2.0
    assert BAR(alpha=2.0).alpha_at(5, 0) == 2.0  # T unknown: mu_0
    assert BAR() == BAR(0.5, "nbar", "linear")  # the defaults the docs give
    with pytest.raises(ValueError, match="alpha=-1"):
        BAR(alpha=-1)
    with pytest.raises(ValueError, match="variant='sbar' must be one of nbar, obar"):
        BAR(variant="sbar")
    with pytest.raises(ValueError, match="schedule='step' must be one of linear, cosine"):
        BAR(schedule="step")


def test_nbar_moves_balancedness_the_way_sam_does():
    """nBAR's rule is SAM's drift made explicit: on every layer whose SAM step changes the
    balancedness (||A||^2 - ||B||^2) / 2 measurably beyond the plain step's change, nBAR
    moves it in the same direction (float64)."""
    model = _lora_model(dtype=torch.float64)
    batch = _batch(2)
    eta, rho = 1e-3, 1e-2
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    start = {n: p.detach().clone() for n, p in trainable.items()}

    def loss(p):
        return functional_call(model, {**frozen, **p}, (), batch).loss

    def balancedness(params):
        for n, p in trainable.items():
            p.data = params[n].clone()
        return [_balancedness(layer) for layer in lora_layers(model)]

    g = grad(loss)(start)
    norm = torch.sqrt(sum(v.pow(2).sum() for v in g.values()))
    plain = balancedness({n: start[n] - eta * g[n] for n in start})
    g_sam = grad(loss)({n: start[n] + rho * g[n] / norm for n in start})
    sam = balancedness({n: start[n] - eta * g_sam[n] for n in start})
    start_b = balancedness(start)
    for n, p in trainable.items():
        p.grad = g[n].clone()
    BAR(alpha=1.0).rescale_(model, 0, 10, lambda p: eta)
    bar = [_balancedness(layer) for layer in lora_layers(model)]
    compared = 0
    for p_plain, p_sam, p_bar, p0 in zip(plain, sam, bar, start_b, strict=True):
        if abs(p_sam - p_plain) > 1e-12:
            assert math.copysign(1, p_sam - p_plain) == math.copysign(1, p_bar - p0)
            compared += 1
    assert compared >= 1


def test_bar_trainer_steps_equal_the_reference_by_hand(tmp_path):
    """Three Trainer steps (SGD, lr 0.1 decaying linearly, one batch each) against a hand
    computation: the gradient at the step's weights, BAR's rescaling at that step's
    learning rate, then p -= lr g."""
    model = _lora_model()
    reference = copy.deepcopy(model)
    batch = _batch(0)
    _train_sgd(tmp_path, model, batch, "linear", bar=BAR(alpha=2.0))  # large: visible in 3 steps

    layers = lora_layers(reference)
    frozen = {n: p.detach() for n, p in reference.named_parameters() if not p.requires_grad}
    params = {n: p.detach().clone() for n, p in reference.named_parameters() if p.requires_grad}
    plain = dict(params)
    for step in range(3):
        lr, a_t = 0.1 * (1 - step / 3), 2.0 * (1 - step / 3)
        g = grad(lambda p: functional_call(reference, {**frozen, **p}, (), batch).loss)(params)
        for layer in layers:
            a, b = _param_name(reference, layer.A), _param_name(reference, layer.B)
            sign = 1 if _norm(g[b]) >= _norm(g[a]) else -1
            params[b] = params[b] * (1 + sign * a_t * lr)
            params[a] = params[a] * (1 - sign * a_t * lr)
        params = {n: params[n] - lr * g[n] for n in params}
        g = grad(lambda p: functional_call(reference, {**frozen, **p}, (), batch).loss)(plain)
        plain = {n: plain[n] - lr * g[n] for n in plain}
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.detach(), params[name], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(p, frozen[name]), name
    moved = max((params[n] - plain[n]).abs().max().item() for n in plain)
    assert moved > 1e-4  # BAR changed the steps, by more than the tolerance above


def _passes(trainer_cls, tmp_path, steps=3, gradient_accumulation_steps=1, batch_size=8, **kwargs):
    """(forwards, backwards) of the model over ``steps`` training steps."""
    from datasets import Dataset
    from transformers import TrainingArguments

    model = _lora_model()
    counts = {"forward": 0, "backward": 0}
    model.register_forward_pre_hook(lambda *a: counts.__setitem__("forward", counts["forward"] + 1))
    layer = lora_layers(model)[0]
    layer.A.register_hook(lambda g: counts.__setitem__("backward", counts["backward"] + 1))
    trainer = trainer_cls(
        model=model,
        args=TrainingArguments(
            str(tmp_path), per_device_train_batch_size=batch_size, max_steps=steps,
            gradient_accumulation_steps=gradient_accumulation_steps, report_to=[],
            use_cpu=True, save_strategy="no", disable_tqdm=True,
        ),
        train_dataset=Dataset.from_dict({k: v.tolist() for k, v in _batch(0).items()}),
        **kwargs,
    )  # fmt: skip
    trainer.train()
    return counts["forward"], counts["backward"]


def test_passes_per_step(tmp_path):
    from transformers import Trainer

    from samlm.training import SAMConfig, SAMTrainer, with_lora_flatness

    flat = with_lora_flatness(Trainer)
    assert _passes(flat, tmp_path, flat_lora=FlatLoRA()) == (3, 3)
    assert _passes(flat, tmp_path, bar=BAR()) == (3, 3)
    assert _passes(flat, tmp_path, flat_lora=FlatLoRA(), bar=BAR()) == (3, 3)
    sam = with_lora_flatness(SAMTrainer)
    assert _passes(sam, tmp_path, flat_lora=FlatLoRA(), sam_config=SAMConfig()) == (6, 6)
    with pytest.raises(ValueError, match="BAR replaces SAM's second pass"):
        _passes(sam, tmp_path, bar=BAR(), sam_config=SAMConfig())
    with pytest.raises(ValueError, match="no LoRA linear layer"):
        flat(model=tiny_hf("bert"), args=None, flat_lora=FlatLoRA())
    with pytest.raises(ValueError, match="sigma=-1"):
        FlatLoRA(sigma=-1)


def test_bar_rescales_once_per_optimizer_step(tmp_path, monkeypatch):
    """With gradient accumulation BAR acts once per optimizer step, after its last
    micro-batch (not once per micro-batch, which would compound the factor)."""
    from transformers import Trainer

    from samlm.training import with_lora_flatness

    calls = []
    rescale = BAR.rescale_
    monkeypatch.setattr(
        BAR, "rescale_", lambda self, m, step, *a: (calls.append(step), rescale(self, m, step, *a))
    )
    flat = with_lora_flatness(Trainer)
    assert _passes(flat, tmp_path, gradient_accumulation_steps=2, batch_size=4, bar=BAR()) == (6, 6)
    assert calls == [0, 1, 2]


def test_flat_lora_draws_one_noise_per_optimizer_step(tmp_path, monkeypatch):
    """With gradient accumulation every micro-batch of a step sees the same noise (its
    seed is the step's, and the adapters move only at the step's end)."""
    from transformers import Trainer

    from samlm.training import with_lora_flatness

    seen: list[tuple[int, int]] = []
    original = FlatLoRA.noise

    def noise(self, layer, index, step, total_steps):
        eps = original(self, layer, index, step, total_steps)
        if index == 0:
            seen.append((step, hash(eps.numpy().tobytes())))
        return eps

    monkeypatch.setattr(FlatLoRA, "noise", noise)
    _passes(with_lora_flatness(Trainer), tmp_path, gradient_accumulation_steps=2,
            batch_size=4, flat_lora=FlatLoRA(sigma=0.5))  # fmt: skip
    assert [s for s, _ in seen] == [1, 1, 2, 2]  # step 0: sigma_0 = 0, nothing drawn
    assert seen[0][1] == seen[1][1] != seen[2][1] == seen[3][1]


def test_flat_lora_with_two_active_adapters_adds_one_noise_and_restores_w():
    """PEFT lets a layer run two adapters at once (W x + s_1 B_1 A_1 x + s_2 B_2 A_2 x):
    inside, W + eps with one eps drawn from the merged W + s_1 B_1 A_1 + s_2 B_2 A_2;
    after, W bitwise."""
    torch.manual_seed(2)
    model = peft.get_peft_model(
        tiny_hf("bert"),
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query"], init_lora_weights=False),
    )
    model.add_adapter(
        "second",
        peft.LoraConfig(r=2, lora_alpha=6, target_modules=["query"], init_lora_weights=False),
    )
    model.base_model.set_adapter(["default", "second"])
    layers = lora_layers(model)
    assert [layer.adapter for layer in layers] == ["default", "second"]
    weight = layers[0].weight
    assert layers[1].weight is weight
    before = weight.detach().clone()
    flat = FlatLoRA(sigma=0.2, seed=3)
    merged = before.clone()
    for layer in layers:
        merged += layer.scaling * (layer.B.detach() @ layer.A.detach())
    z = torch.randn(merged.shape, generator=torch.Generator().manual_seed(noise_seed(3, 5, 0)))
    eps = z * flat.sigma_at(5, 10) * merged.norm(dim=1, keepdim=True) / math.sqrt(merged.shape[1])
    with flat.perturbed(model, 5, 10):
        torch.testing.assert_close(weight.detach(), before + eps)
    assert torch.equal(weight, before)
