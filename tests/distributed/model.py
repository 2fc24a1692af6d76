"""A tiny classifier and its data, identical in every process (built from seeds)."""

from __future__ import annotations

import torch
from torch import nn

from samlm import SAM

IN, HIDDEN, OUT = 6, 16, 3


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, OUT))


def batches(steps: int, size: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        {"x": torch.randn(size, IN, generator=g), "y": torch.randint(0, OUT, (size,), generator=g)}
        for _ in range(steps)
    ]


def shard(batch: dict[str, torch.Tensor], rank: int, world: int) -> dict[str, torch.Tensor]:
    return {k: v.chunk(world)[rank] for k, v in batch.items()}


def loss_fn(model: nn.Module):
    return lambda b: nn.functional.cross_entropy(model(b["x"]), b["y"])


def sam(model: nn.Module, **kwargs) -> SAM:
    base = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.01)
    return SAM(base, rho=0.1, **kwargs)
