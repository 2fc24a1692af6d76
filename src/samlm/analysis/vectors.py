"""Vectors in parameter space: lists of fp32 tensors shaped like the parameters.

Inner products sum each tensor's products in fp32 (PyTorch's cascade summation: a relative
error near 1e-7 even over millions of entries, without fp64 copies of the parameters),
then add the per-tensor sums in fp64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

Vector = list[Tensor]


def zeros_like(params: Sequence[Tensor]) -> Vector:
    return [torch.zeros(p.shape, dtype=torch.float32, device=p.device) for p in params]


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """``<a, b> = sum_i a_i . b_i``."""
    return math.fsum(float((x * y).sum()) for x, y in zip(a, b, strict=True))


def norm(a: Sequence[Tensor]) -> float:
    """``||a|| = sqrt(<a, a>)``."""
    return math.sqrt(dot(a, a))


def scale(a: Sequence[Tensor], c: float) -> Vector:
    """``c a``."""
    return [x * c for x in a]


def axpy(a: Sequence[Tensor], c: float, b: Sequence[Tensor]) -> Vector:
    """``a + c b``."""
    return [x + c * y for x, y in zip(a, b, strict=True)]


def mul(a: Sequence[Tensor], b: Sequence[Tensor]) -> Vector:
    """The elementwise product ``a * b``."""
    return [x * y for x, y in zip(a, b, strict=True)]


def gaussian(params: Sequence[Tensor], generator: torch.Generator) -> Vector:
    """``z ~ N(0, I)``, drawn on the CPU from ``generator`` (device-independent), in order."""
    return [
        torch.randn(p.shape, generator=generator, dtype=torch.float32).to(p.device) for p in params
    ]


def rademacher(params: Sequence[Tensor], generator: torch.Generator) -> Vector:
    """``z`` with independent entries ``+1`` or ``-1``, each with probability 1/2."""
    out = []
    for p in params:
        bits = torch.randint(0, 2, p.shape, generator=generator, dtype=torch.int8)
        out.append((bits.to(torch.float32) * 2 - 1).to(p.device))
    return out
