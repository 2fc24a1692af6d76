"""Parameter groups that leave biases, normalisation weights and (optionally) embeddings
out of the perturbation (and out of weight decay, where a decay is given)."""

from __future__ import annotations

from typing import Any

from torch import nn


def _is_norm(module: nn.Module) -> bool:
    if isinstance(module, nn.LayerNorm | nn.GroupNorm | nn.modules.batchnorm._NormBase):
        return True
    name = type(module).__name__
    return "LayerNorm" in name or "RMSNorm" in name  # T5LayerNorm, LlamaRMSNorm, ...


def sam_param_groups(
    model: nn.Module,
    *,
    exclude_bias_and_norm: bool = True,
    exclude_embeddings: bool = False,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into groups for the base optimizer.

    A parameter is *plain* (``perturb=False``) if it is a bias or belongs to a
    normalisation layer (with ``exclude_bias_and_norm``, the default), or (with
    ``exclude_embeddings``) belongs to an ``nn.Embedding``;
    every other trainable parameter is perturbed. With ``weight_decay``, biases and
    normalisation weights get ``weight_decay=0`` and the rest the given value.
    Frozen parameters (``requires_grad=False``) are left out. Empty groups are dropped.
    """
    kinds: dict[tuple[bool, bool], list] = {}
    seen: set[int] = set()
    for module in model.modules():
        norm = _is_norm(module)
        embedding = isinstance(module, nn.Embedding)
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            no_decay = norm or name == "bias"
            perturb = not (
                (exclude_bias_and_norm and no_decay) or (exclude_embeddings and embedding)
            )
            kinds.setdefault((perturb, no_decay), []).append(p)
    groups = []
    for (perturb, no_decay), params in kinds.items():
        group: dict[str, Any] = {"params": params, "perturb": perturb}
        if weight_decay is not None:
            group["weight_decay"] = 0.0 if no_decay else weight_decay
        groups.append(group)
    return groups
