"""The multi-head encoder: routing, the loss, and SAM's step on a mixed batch against an
independent autograd reference (the heads absent from the batch are left alone)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call
from transformers import BertConfig, BertModel

from samlm import SAM
from samlm.pipeline.multitask import HeadSpec, MultiHeadEncoder

SPECS = (
    HeadSpec("classification", 2),
    HeadSpec("classification", 3),  # absent from the batch below
    HeadSpec("multiple_choice", 2),
    HeadSpec("regression", 1),
)


def _model(seed: int = 0) -> MultiHeadEncoder:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return MultiHeadEncoder(BertModel(cfg), SPECS)


def _batch() -> dict[str, torch.Tensor]:
    """Six examples of tasks 0, 2 and 3, two sequences each at most (B=6, C=2, L=5)."""
    g = torch.Generator().manual_seed(1)
    task_ids = torch.tensor([0, 2, 3, 0, 2, 3])
    input_ids = torch.randint(1, 40, (6, 2, 5), generator=g)
    mask = torch.ones(6, 2, 5, dtype=torch.long)
    mask[:, :, 4] = 0  # some padding
    single = task_ids != 2
    mask[single, 1] = 0  # one sequence for classification and regression
    input_ids[single, 1] = 0
    labels = torch.tensor([1.0, 0.0, 2.5, 0.0, 1.0, -0.5])
    return {"input_ids": input_ids, "attention_mask": mask, "task_ids": task_ids, "labels": labels}


def test_each_example_goes_through_its_own_head():
    model = _model().eval()
    batch = _batch()
    out = model(**batch)
    manual = []
    for b, t in enumerate(batch["task_ids"].tolist()):
        n = 2 if t == 2 else 1
        enc = model.encoder(
            input_ids=batch["input_ids"][b, :n], attention_mask=batch["attention_mask"][b, :n]
        ).pooler_output
        scores = model.classifier[t](enc)
        scores = scores.squeeze(-1) if t == 2 else scores[0]
        assert torch.allclose(out.logits[b, : SPECS[t].outputs], scores, atol=1e-6)
        y = batch["labels"][b]
        if t == 3:
            manual.append((scores[0] - y) ** 2)
        else:
            manual.append(nn.functional.cross_entropy(scores[None], y.long()[None]))
    assert torch.allclose(out.loss, torch.stack(manual).mean(), atol=1e-6)
    assert out.logits[2, 1] == torch.finfo(torch.float32).min  # regression: one column


def _reference_step(model, batch, rho: float, lr: float) -> tuple[dict, float]:
    """One SAM step with SGD, by hand: g = grad L(w) over the parameters that have one,
    e = rho g / ||g||, w <- w - lr grad L(w + e); the others unchanged."""
    w = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}

    def grads(params):
        loss = functional_call(model, params, args=(), kwargs=batch).loss
        out = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return dict(zip(params, out, strict=True))

    g = {k: v for k, v in grads(w).items() if v is not None}
    norm = torch.sqrt(sum((v**2).sum() for v in g.values()))
    shifted = {k: (v + rho * g[k] / norm if k in g else v).detach().requires_grad_()
               for k, v in w.items()}  # fmt: skip
    g_sam = grads(shifted)
    new = {}
    for k, v in w.items():
        new[k] = (v - lr * g_sam[k] if g_sam[k] is not None else v).detach()
    return new, float(norm)


def test_sam_step_on_a_mixed_batch_equals_the_reference():
    model = _model().train()
    batch = _batch()
    expected, norm = _reference_step(model, batch, rho=0.05, lr=0.1)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)

    def closure():
        opt.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss

    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt.step(closure)
    assert math.isclose(opt.last_stats.grad_norm, norm, rel_tol=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(p, expected[name], atol=1e-6, rtol=1e-5), name
    absent = dict(model.classifier[1].named_parameters())
    for name, p in absent.items():
        assert p.grad is None and torch.equal(p, before[f"classifier.1.{name}"])
    for t in (0, 2, 3):  # the heads that received gradient moved
        assert not torch.equal(model.classifier[t].weight, before[f"classifier.{t}.weight"])
