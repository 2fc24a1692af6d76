"""The LoRA layers of a PEFT model, as Flat-LoRA and BAR see them.

A LoRA linear layer computes ``W x + s B A x`` (``s = alpha / r``, ``A`` r x in, ``B``
out x r) for its active adapter. Only PEFT's linear LoRA layers (``nn.Linear`` and
GPT-2's ``Conv1D``, whose weight is stored transposed) are taken; LoRA on embeddings or
convolutions is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class LoRALayer:
    """One adapted linear layer: its frozen weight, its factors and their scale."""

    name: str
    module: nn.Module
    adapter: str

    @property
    def weight(self) -> nn.Parameter:
        """The frozen base weight, as stored (in x out when ``transposed``)."""
        return self.module.get_base_layer().weight

    @property
    def transposed(self) -> bool:
        return bool(getattr(self.module, "fan_in_fan_out", False))

    @property
    def A(self) -> nn.Parameter:
        return self.module.lora_A[self.adapter].weight

    @property
    def B(self) -> nn.Parameter:
        return self.module.lora_B[self.adapter].weight

    @property
    def scaling(self) -> float:
        return float(self.module.scaling[self.adapter])

    @torch.no_grad()
    def merged(self) -> Tensor:
        """``W + s B A`` in fp32, out x in (whatever the stored layout)."""
        w = self.weight.float()
        w = w.T if self.transposed else w
        return w + self.scaling * (self.B.float() @ self.A.float())


@torch.no_grad()
def merged_weight(layers: Sequence[LoRALayer]) -> Tensor:
    """``W + sum_a s_a B_a A_a`` in fp32, out x in, over ``layers``: the active adapters
    of one module (PEFT lets several be active at once; the layer adds them all)."""
    merged = layers[0].merged()
    for layer in layers[1:]:
        merged += layer.scaling * (layer.B.float() @ layer.A.float())
    return merged


def by_module(layers: Sequence[LoRALayer]) -> list[tuple[int, list[LoRALayer]]]:
    """``layers`` grouped by module (one base weight each), in order, each group with
    the index of its first layer in ``layers``."""
    groups: dict[int, tuple[int, list[LoRALayer]]] = {}
    for index, layer in enumerate(layers):
        groups.setdefault(id(layer.module), (index, []))[1].append(layer)
    return list(groups.values())


def lora_layers(model: nn.Module) -> list[LoRALayer]:
    """The linear LoRA layers of ``model`` in module order, each with its active adapter;
    a ValueError when there is none (the model is not a LoRA model)."""
    try:
        from peft.tuners.lora.layer import Linear
    except ImportError:
        raise ValueError("LoRA layers need the peft package: pip install 'samlm[peft]'") from None
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, Linear) and not module.merged:
            layers += [
                LoRALayer(name, module, adapter)
                for adapter in module.active_adapters
                if adapter in module.lora_A
            ]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no LoRA linear layer (Flat-LoRA and BAR act on "
            "PEFT LoRA adapters: wrap the model with peft.get_peft_model first)"
        )
    return layers
