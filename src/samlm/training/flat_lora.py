"""Flat-LoRA (Li et al., ICML 2025, arXiv 2409.14396): LoRA trained for flatness of the
full weight space, by a random perturbation of the merged weight.

The paper minimises the expected loss under a random perturbation of the merged weight
``W' = W + s B A`` of every LoRA layer (``W`` out x in, fan-in ``n``)::

    min_{A,B}  E_eps L(W + s B A + eps),   eps[i, j] ~ N(0, sigma_t^2 ||W'[i, :]||^2 / n)

filter-wise: each output row's noise scales with that row's norm, and ``1 / n`` keeps
the output's variance independent of the input width. ``sigma_t`` rises over training
with a cosine, ``sigma_t = sigma (1 - cos(pi t / T)) / 2`` (0 at the start, ``sigma`` at
the end), ``t`` the optimizer step and ``T`` the run's steps. One sample per step: the
step's gradient of the adapters (and of whatever else trains, such as the task head) is
taken at ``W' + eps`` and the base optimizer steps with it. Cost: one forward-backward
per step, as plain LoRA, plus drawing ``eps`` (the size of the adapted weights) for each
micro-batch; with SAM on top, SAM's two passes both run at the perturbed point.

Checked against the authors' code (github.com/nblt/Flat-LoRA, ``logTrainer.py``): the
row-norm scaling of ``W + s B A`` by ``sigma / sqrt(n)``, the cosine ramp from 0 and
one noise per optimizer step (kept over its micro-batches); ``sigma = 0.05`` is their
README's setting. Departures: the noise is drawn from ``(seed, step, layer)`` (the
authors' seed is the clock), so a run is reproducible and resumes bitwise; ``t / T``
counts optimizer steps (theirs: micro-batches over the epochs' batches); and instead
of adding ``eps`` in place and subtracting the regenerated noise afterwards (which
leaves rounding errors in ``W``), the layer gets ``W + eps`` as a new tensor for the
step and its own ``W`` back after it, bitwise, for the transient memory of one copy of
the adapted weights. The draw uses its own generator: dropout's random stream is the
plain run's. A layer with several active adapters (PEFT allows it) gets one noise, from
``W + sum_a s_a B_a A_a``, drawn at its first adapter's index; its ``W`` is saved once.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..optim.validation import non_negative
from .lora_layers import LoRALayer, by_module, lora_layers, merged_weight


def noise_seed(seed: int, step: int, index: int) -> int:
    """The generator seed of layer ``index``'s noise at optimizer step ``step``."""
    digest = hashlib.blake2b(f"flat-lora:{seed}:{step}:{index}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


@dataclass(frozen=True)
class FlatLoRA:
    """Flat-LoRA's options: ``sigma`` (the final relative noise level) and ``seed``."""

    sigma: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        non_negative("sigma", self.sigma)

    def sigma_at(self, step: int, total_steps: int) -> float:
        """``sigma (1 - cos(pi t / T)) / 2``, ``t`` capped at ``T``."""
        if total_steps <= 0:
            return self.sigma
        return self.sigma * (1 - math.cos(math.pi * min(step, total_steps) / total_steps)) / 2

    @torch.no_grad()
    def noise(
        self, layers: LoRALayer | Sequence[LoRALayer], index: int, step: int, total_steps: int
    ) -> Tensor:
        """``eps`` of one layer at ``step``, fp32, in the layout its weight is stored in;
        ``layers``: the layer's active adapters (one, or several of one module: then
        ``W' = W + sum_a s_a B_a A_a``)."""
        layers = [layers] if isinstance(layers, LoRALayer) else list(layers)
        layer = layers[0]
        merged = merged_weight(layers)  # out x in
        out_features, n = merged.shape
        std = self.sigma_at(step, total_steps) / math.sqrt(n) * merged.norm(dim=1, keepdim=True)
        gen = torch.Generator(device=merged.device).manual_seed(noise_seed(self.seed, step, index))
        z = torch.randn(out_features, n, generator=gen, device=merged.device)
        eps = z * std
        return eps.T if layer.transposed else eps

    @contextlib.contextmanager
    def perturbed(self, model: nn.Module, step: int, total_steps: int) -> Iterator[None]:
        """Every LoRA layer's base weight is ``W + eps`` inside, ``W`` (bitwise) after."""
        if self.sigma_at(step, total_steps) == 0:
            yield
            return
        kept: list[tuple[nn.Parameter, Tensor]] = []
        try:  # one noise per base weight, whatever the number of active adapters
            for index, adapters in by_module(lora_layers(model)):
                eps = self.noise(adapters, index, step, total_steps)
                weight = adapters[0].weight
                kept.append((weight, weight.data))
                weight.data = (weight.data.float() + eps).to(weight.dtype)
            yield
        finally:
            for weight, original in kept:
                weight.data = original
