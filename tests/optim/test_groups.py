"""Excluded and frozen parameters: neither perturbed nor counted in ||g||."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from samlm import SAM, sam_param_groups
from tests.helpers import tiny_hf


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(11, 6)
        self.proj = nn.Linear(6, 6)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 3)

    def forward(self, ids):
        return self.head(self.norm(torch.tanh(self.proj(self.embed(ids))))).mean(1)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 11, (8, 4), generator=g), torch.randint(0, 3, (8,), generator=g)


def test_param_groups_exclude_biases_norms_and_optionally_embeddings():
    model = TinyLM()
    by_id = {id(p): n for n, p in model.named_parameters()}

    def perturbed(groups):
        return sorted(by_id[id(p)] for g in groups if g["perturb"] for p in g["params"])

    assert perturbed(sam_param_groups(model)) == ["embed.weight", "head.weight", "proj.weight"]
    groups = sam_param_groups(model, exclude_embeddings=True, weight_decay=0.1)
    assert perturbed(groups) == ["head.weight", "proj.weight"]
    decay = sorted(by_id[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"])
    assert decay == ["embed.weight", "head.weight", "proj.weight"]
    model.proj.weight.requires_grad_(False)
    assert "proj.weight" not in perturbed(sam_param_groups(model))


def test_excluded_and_frozen_parameters_are_not_perturbed_nor_counted():
    model = TinyLM()
    model.proj.weight.requires_grad_(False)  # frozen, but still in the optimizer
    groups = sam_param_groups(model, exclude_embeddings=True)
    groups.append({"params": [model.proj.weight]})
    sam = SAM(torch.optim.SGD(groups, lr=0.1), rho=0.5)
    ids, y = _batch()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []

    def closure():
        sam.zero_grad()
        seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        loss = nn.functional.cross_entropy(model(ids), y)
        loss.backward()
        return loss

    sam.step(closure)
    at_w_plus_e = seen[1]
    moved = sorted(n for n in w0 if not torch.equal(w0[n], at_w_plus_e[n]))
    assert moved == ["head.weight"]
    # ||g|| is over the perturbed parameters only, i.e. head.weight's gradient at w
    sam.zero_grad()
    for n, p in model.named_parameters():
        p.data.copy_(w0[n])
    nn.functional.cross_entropy(model(ids), y).backward()
    assert sam.last_stats.grad_norm == pytest.approx(model.head.weight.grad.norm().item(), rel=1e-5)
    assert sam.last_stats.perturbation_norm == pytest.approx(0.5, rel=1e-6)


def test_per_group_rho():
    model = TinyLM()
    sam = SAM(
        torch.optim.SGD(
            [
                {"params": [model.head.weight], "rho": 0.3},
                {"params": [model.proj.weight], "rho": 0.0},
                {"params": [model.embed.weight]},
            ],
            lr=0.1,
        ),
        rho=0.4,
    )
    ids, y = _batch()
    nn.functional.cross_entropy(model(ids), y).backward()
    g = {n: model.get_parameter(n).grad.clone() for n in ("head.weight", "embed.weight")}
    w0 = {
        n: model.get_parameter(n).detach().clone()
        for n in ("head.weight", "proj.weight", "embed.weight")
    }
    assert sam.perturb()
    norm = math.sqrt(sum(v.norm().item() ** 2 for v in g.values()))
    torch.testing.assert_close(model.head.weight - w0["head.weight"], 0.3 * g["head.weight"] / norm)
    torch.testing.assert_close(
        model.embed.weight - w0["embed.weight"], 0.4 * g["embed.weight"] / norm
    )
    assert torch.equal(model.proj.weight, w0["proj.weight"])
    sam.restore()
    assert torch.equal(model.head.weight, w0["head.weight"])


@pytest.mark.parametrize(
    ("kind", "head"),
    [("bert", ["classifier.bias", "classifier.weight"]), ("gpt2", ["score.weight"])],
)
def test_exclude_head_leaves_the_task_head_plain(kind, head):
    from samlm.optim import head_parameters

    model = tiny_hf(kind)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in head_parameters(model)) == head

    def split(groups):
        perturbed = {names[id(p)] for g in groups if g["perturb"] for p in g["params"]}
        plain = {names[id(p)] for g in groups if not g["perturb"] for p in g["params"]}
        return perturbed, plain

    with_head, _ = split(sam_param_groups(model, weight_decay=0.1))
    groups = sam_param_groups(model, exclude_head=True, weight_decay=0.1)
    perturbed, plain = split(groups)
    assert perturbed == with_head - set(head)  # the head alone leaves the perturbation
    assert set(head) <= plain
    assert len(perturbed) + len(plain) == len(names)  # and stays with the base optimizer
    decay = {names[id(p)] for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert head[-1].endswith("weight") and head[-1] in decay  # decay split unchanged


@pytest.mark.parametrize(("kind", "cls"), [("t5", "T5ForConditionalGeneration"), (None, "TinyLM")])
def test_exclude_head_without_a_head_names_the_model_and_the_names_looked_for(kind, cls):
    model = tiny_hf(kind) if kind else TinyLM()
    with pytest.raises(ValueError, match=cls) as err:
        sam_param_groups(model, exclude_head=True)
    assert "model.classifier" in str(err.value) and "model.score" in str(err.value)
