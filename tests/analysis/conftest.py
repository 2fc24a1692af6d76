"""Models with a known Hessian, a tiny network, and the data folder for the run tests (the
tiny random BERT, ``tiny_bert_dir``, comes from ``tests/conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

DATA_DIR = Path(
    os.environ.get("SAMLM_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data")
)


class Quadratic(nn.Module):
    """``L(w) = 1/2 (w - c)^T A (w - c)``, ``w`` split over a vector and a matrix parameter
    (so the measures see more than one tensor); ``H = A`` everywhere."""

    def __init__(self, a: torch.Tensor, c: torch.Tensor | None = None) -> None:
        super().__init__()
        n = a.shape[0]
        c = torch.zeros(n) if c is None else c
        self.register_buffer("a", a.float())
        self.register_buffer("c", c.float())
        assert n >= 6 and n % 2 == 0, "4 entries in a vector, the rest in a 2-row matrix"
        self.vec = nn.Parameter(self.c[:4].clone())
        self.mat = nn.Parameter(self.c[4:].clone().reshape(2, (n - 4) // 2))

    def flat(self) -> torch.Tensor:
        return torch.cat([self.vec, self.mat.flatten()])

    def loss(self) -> torch.Tensor:
        d = self.flat() - self.c
        return 0.5 * d @ self.a @ d


def quadratic_loss(model: Quadratic, batch) -> torch.Tensor:
    return model.loss()


BATCHES = [torch.zeros(4, 1)]  # the quadratic ignores its data


def symmetric(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """``A = Q diag(eigenvalues) Q^T`` with a seeded random orthogonal ``Q``."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return (q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T).float()


def tiny_net(seed: int = 0, dropout: float = 0.5) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # nn.Linear's own init draws from the global RNG
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Dropout(dropout), nn.Linear(7, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def tiny_batches(n: int = 24, chunk: int = 8, seed: int = 1) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [(x[i : i + chunk], y[i : i + chunk]) for i in range(0, n, chunk)]


def ce_loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


@pytest.fixture(scope="session")
def sst2_data_dir() -> Path:
    if not (DATA_DIR / "glue" / "SST-2").is_dir():
        pytest.skip(f"SST-2 is absent from {DATA_DIR} (set SAMLM_DATA_DIR to the data folder)")
    return DATA_DIR
