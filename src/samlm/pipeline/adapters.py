"""LoRA adapters (PEFT, Hu et al. 2022) on a run's model.

``W x`` becomes ``W x + (alpha / r) B A x`` on the target modules, with ``W`` frozen and
``A`` (r x in), ``B`` (out x r, zero at the start) trained, together with a fresh task
head (encoders; text2text and causal LMs keep their LM head frozen). SAM then perturbs
exactly what trains: the adapters and the head (its parameter groups hold only
parameters that require a gradient), so its backup is the adapters' size, not the
model's. The run saves the adapter only, in PEFT's format (``adapter_config.json`` and
the adapter's weights, with an encoder's head); :func:`load_lora` puts it back on the base
model built as the run built it, :func:`merge_lora` folds it into the base's weights.
``targets`` None takes PEFT's default for the model type (GPT-2: ``c_attn``; Llama:
``q_proj``, ``v_proj``); targets that are all GPT-2's ``Conv1D`` (weight stored in x out)
get PEFT's ``fan_in_fan_out``.

A mixture's multi-head encoder (``multitask.MultiHeadEncoder``, not a transformers model)
is wrapped as PEFT wraps a custom module: LoRA on its shared encoder's target modules
(``model_type`` names the encoder, whose PEFT default applies when ``targets`` is None)
and every task head in ``modules_to_save``, so the heads train in full and are saved
with the adapter (``adapter_model.safetensors``) and restored with it on resume.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

PEFT_METHODS = ("none", "lora")
INSTALL = "pip install 'samlm[peft]'"
ADAPTER_CONFIG = "adapter_config.json"  # PEFT's: a folder with it holds a saved adapter


def require_peft(option: str = "--peft lora") -> None:
    """Raise a ValueError naming ``option`` and the install command when peft is absent."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ValueError(f"{option} needs the peft package: {INSTALL}") from None


def apply_lora(
    model: nn.Module,
    *,
    modelling: str,
    r: int,
    alpha: float,
    dropout: float,
    targets: list[str] | None,
    model_type: str | None = None,
    modules_to_save: list[str] | None = None,
) -> nn.Module:
    """``model`` with LoRA adapters (PEFT's defaults for its type when ``targets`` is None).

    ``model_type`` and ``modules_to_save`` are for a custom module (a mixture's multi-head
    encoder): the transformers type whose PEFT default targets apply, and the modules
    that train in full and are saved with the adapter."""
    require_peft()
    from peft import LoraConfig, TaskType, get_peft_model

    if model_type is not None:  # a custom module: PEFT knows no type and no task for it
        task_type = None
        targets = targets or default_targets(model_type)
    else:
        task_type = {"text2text": TaskType.SEQ_2_SEQ_LM, "causal": TaskType.CAUSAL_LM}.get(
            modelling, TaskType.SEQ_CLS
        )
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        task_type=task_type,
        modules_to_save=modules_to_save,
        fan_in_fan_out=_all_conv1d(model, targets),
    )
    try:
        with _peft_wrapping():
            return get_peft_model(model, config)
    except ValueError as err:
        kept = tuple(modules_to_save or ())
        linear = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, m in model.named_modules()
                if _adaptable(m) and not name.startswith(kept)
            }
        )
        raise ValueError(
            f"--peft lora cannot wrap {type(model).__name__} (targets {targets or 'PEFT default'}):"
            f" {err}. Give --lora-targets from its linear modules: {', '.join(linear)}"
        ) from None


def default_targets(model_type: str) -> list[str]:
    """PEFT's default LoRA target modules for a transformers ``model_type`` (BERT:
    ``query``, ``value``); a ValueError naming ``--lora-targets`` when it has none."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    if model_type not in DEFAULTS:
        raise ValueError(
            f"--peft lora: PEFT has no default target modules for model type {model_type!r}; "
            "give --lora-targets"
        )
    return list(DEFAULTS[model_type])


def _all_conv1d(model: nn.Module, targets: list[str] | None) -> bool:
    """Whether every module ``targets`` (else PEFT's default for the model's type) names is
    GPT-2's ``Conv1D``, whose weight is stored (in, out): LoRA then needs PEFT's
    ``fan_in_fan_out``, which PEFT would otherwise switch on itself with a warning."""
    if targets is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        try:
            targets = default_targets(model_type) if model_type else None
        except ValueError:
            targets = None
    if not targets:
        return False
    matched = [
        module
        for name, module in model.named_modules()
        if any(name == key or name.endswith("." + key) for key in targets)
    ]
    return bool(matched) and all(map(_is_conv1d, matched))


def _is_conv1d(module: Any) -> bool:
    return type(module).__name__ == "Conv1D"  # GPT-2's linear layers (transformers')


def _adaptable(module: Any) -> bool:
    return isinstance(module, nn.Linear | nn.Embedding | nn.Conv1d) or _is_conv1d(module)


def is_adapted(model: nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def holds_adapter(folder: str | Path) -> bool:
    """Whether ``folder`` holds an adapter PEFT saved (not a full model)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def load_lora(model: nn.Module, folder: str | Path, *, option: str = "--peft lora") -> nn.Module:
    """``model`` (the base model, built as the run built it) with the adapter saved in
    ``folder``, trainable: the adapters and the modules saved with them (an encoder's task
    head) require a gradient, the base's weights stay frozen. Without peft, a ValueError
    names ``option`` and the install command."""
    require_peft(option)
    from peft import PeftModel

    with _peft_wrapping():
        return PeftModel.from_pretrained(model, str(folder), is_trainable=True)


@contextmanager
def _peft_wrapping() -> Iterator[None]:
    """While PEFT wraps a model: peft reads transformers' deprecated
    ``is_gradient_checkpointing`` on every model it wraps, and that FutureWarning is
    theirs (peft <= 0.21 with transformers 5), not the user's to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def merge_lora(model: nn.Module) -> nn.Module:
    """The base model of a LoRA ``model`` with its adapters merged into the adapted weights
    (``W + (alpha / r) B A``) and the saved modules in place of the originals: the same
    function as ``model``, the base's architecture. Its weights keep their
    ``requires_grad`` flags (the base's: off)."""
    return model.merge_and_unload()
