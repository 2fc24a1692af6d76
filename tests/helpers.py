"""Tiny models and seeded data for the tests."""

from __future__ import annotations

import torch
from torch import nn


def tiny_mlp(seed: int = 0, dropout: float = 0.0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Dropout(dropout), nn.Linear(7, 3)).to(dtype)


def tiny_batch(seed: int = 1, n: int = 16, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g).to(dtype), torch.randint(0, 3, (n,), generator=g)


def ce_loss(model: nn.Module):
    def loss_fn(batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x).float(), y)

    return loss_fn
