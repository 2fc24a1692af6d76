"""Tiny models and seeded data for the tests (the Hugging Face ones import transformers
when called).

``tiny_mlp`` and ``tiny_batch`` put their tensors on ``DEVICE``: the CPU, or for a test
that takes the ``device`` fixture (tests/conftest.py), that fixture's device
(``pytest --device cuda``). The data are drawn on the CPU from a seeded generator and
then moved, so they are the same numbers on every device.
"""

from __future__ import annotations

import io

import torch
from torch import nn

DEVICE = torch.device("cpu")  # set for one test by the `device` fixture


def tiny_mlp(seed: int = 0, dropout: float = 0.0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Dropout(dropout), nn.Linear(7, 3))
    return model.to(dtype).to(DEVICE)


def tiny_batch(seed: int = 1, n: int = 16, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 5, generator=g).to(dtype), torch.randint(0, 3, (n,), generator=g)
    return x.to(DEVICE), y.to(DEVICE)


def rng_state() -> torch.Tensor:
    """The CPU generator's state, followed on CUDA by the state of ``DEVICE``'s generator
    (dropout on a GPU draws from the latter)."""
    cpu = torch.get_rng_state()
    if DEVICE.type != "cuda":
        return cpu
    return torch.cat([cpu, torch.cuda.get_rng_state(DEVICE)])


def set_rng_state(state: torch.Tensor) -> None:
    """Put back what :func:`rng_state` returned."""
    n = torch.get_rng_state().numel()
    torch.set_rng_state(state[:n])
    if DEVICE.type == "cuda":
        torch.cuda.set_rng_state(state[n:], DEVICE)


def closure_for(opt, loss_fn, batch):
    """An optimizer closure: zero the gradients, ``loss_fn(batch)``, backward, the loss."""

    def closure():
        opt.zero_grad()
        loss = loss_fn(batch)
        loss.backward()
        return loss

    return closure


def sgd_run(steps: int, lr: float = 0.1, momentum: float = 0.9) -> nn.Module:
    """``tiny_mlp()`` after ``steps`` steps of SGD alone on ``tiny_batch(seed=t)``."""
    model = tiny_mlp()
    sgd = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for t in range(steps):
        sgd.zero_grad()
        ce_loss(model)(tiny_batch(seed=t)).backward()
        sgd.step()
    return model


def assert_bitwise(a: nn.Module, b: nn.Module) -> None:
    """Every parameter of ``a`` equal to ``b``'s, bit for bit."""
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def round_trip(state: dict) -> dict:
    """``state`` through ``torch.save`` and ``torch.load(weights_only=True)``, as a
    checkpoint holds it."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def ce_loss(model: nn.Module):
    def loss_fn(batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x).float(), y)

    return loss_fn


def tiny_hf(kind: str = "bert", seed: int = 0, dropout: float = 0.0) -> nn.Module:
    """A tiny random BERT or GPT-2 classifier (2 labels), or a tiny T5 (``"t5"``)."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2ForSequenceClassification,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(seed)
    if kind == "bert":
        cfg = BertConfig(
            vocab_size=40,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
            num_labels=2,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
        )
        return BertForSequenceClassification(cfg)
    if kind == "gpt2":
        cfg = GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2, n_positions=16)
        return GPT2ForSequenceClassification(cfg)
    cfg = T5Config(vocab_size=40, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    return T5ForConditionalGeneration(cfg)


def tiny_spec(**overrides):
    """The tiny ``samlm compare`` grid of the tests: SST-2 at 16 examples, baseline and
    SAM, one seed, 2 steps of 8 examples, evaluated at step 2 on 16 dev examples,
    selected on 16; ``overrides`` replace any field (give ``model`` and ``data_dir``, the
    ``tiny_bert_dir`` and ``data_dir`` fixtures: paths are passed as strings)."""
    from pathlib import Path

    from samlm.compare import GridSpec

    options = dict(
        tasks=["glue/sst2"],
        sizes=[16],
        methods=["baseline", "sam"],
        seeds=1,
        epochs=1.0,
        min_steps=2,
        save_steps=2,
        eval_size=16,
        validation_size=16,
        batch_size=8,
        max_length=32,
    )
    given = {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}
    return GridSpec(**{**options, **given})
