"""Parameter groups that leave biases, normalisation weights and (optionally) embeddings
or the task head out of the perturbation (and biases and normalisation weights out of
weight decay, where a decay is given)."""

from __future__ import annotations

from typing import Any

from torch import nn

# The attribute holding the freshly initialised task head of transformers' task models:
# ``classifier`` (BERT, RoBERTa, DeBERTa, ELECTRA... for sequence classification and
# multiple choice), ``score`` (GPT-2, Llama, Mistral...), ``classification_head`` (BART,
# T5ForSequenceClassification) and ``qa_outputs`` (extractive question answering).
# Seq2seq and causal LMs have no fresh head: their ``lm_head`` is pretrained or tied.
HEAD_NAMES = ("classifier", "score", "classification_head", "qa_outputs")


def _is_norm(module: nn.Module) -> bool:
    if isinstance(module, nn.LayerNorm | nn.GroupNorm | nn.modules.batchnorm._NormBase):
        return True
    name = type(module).__name__
    return "LayerNorm" in name or "RMSNorm" in name  # T5LayerNorm, LlamaRMSNorm, ...


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model``'s task head: the modules named in :data:`HEAD_NAMES`
    that ``model`` holds as attributes (``model.classifier``, ``model.score``...).

    Which parameters a model did not load from its checkpoint is not recorded anywhere,
    so the head is found by the standard names of transformers' task models; a model
    wrapped by DDP is looked into (``model.module``). Raises ``ValueError`` naming the
    model's class and the names looked for when it has none of them, e.g. a seq2seq or
    causal LM, whose ``lm_head`` is pretrained (or tied to the embeddings).
    """
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    heads = [getattr(inner, name, None) for name in HEAD_NAMES]
    params = [p for head in heads if isinstance(head, nn.Module) for p in head.parameters()]
    if not params:
        raise ValueError(
            f"exclude_head: {type(inner).__name__} has no task head module (looked for "
            f"{', '.join('model.' + n for n in HEAD_NAMES)}); seq2seq and causal LMs have no "
            "freshly initialised head (their lm_head is pretrained or tied)"
        )
    return params


def sam_param_groups(
    model: nn.Module,
    *,
    exclude_bias_and_norm: bool = True,
    exclude_embeddings: bool = False,
    exclude_head: bool = False,
    weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into groups for the base optimizer.

    A parameter is *plain* (``perturb=False``) if it is a bias or belongs to a
    normalisation layer (with ``exclude_bias_and_norm``, the default), or (with
    ``exclude_embeddings``) belongs to an ``nn.Embedding``, or (with ``exclude_head``)
    belongs to the task head (:func:`head_parameters`, which raises ``ValueError`` for
    a model without one); every other trainable parameter is perturbed. Plain
    parameters are still trained by the base optimizer. With ``weight_decay``, biases
    and normalisation weights get ``weight_decay=0`` and the rest the given value.
    Frozen parameters (``requires_grad=False``) are left out. Empty groups are dropped.
    """
    head = {id(p) for p in head_parameters(model)} if exclude_head else set()
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
                (exclude_bias_and_norm and no_decay)
                or (exclude_embeddings and embedding)
                or id(p) in head
            )
            kinds.setdefault((perturb, no_decay), []).append(p)
    groups = []
    for (perturb, no_decay), params in kinds.items():
        group: dict[str, Any] = {"params": params, "perturb": perturb}
        if weight_decay is not None:
            group["weight_decay"] = 0.0 if no_decay else weight_decay
        groups.append(group)
    return groups
