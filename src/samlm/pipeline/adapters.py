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
``q_proj``, ``v_proj``).
"""

from __future__ import annotations

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
) -> nn.Module:
    """``model`` with LoRA adapters (PEFT's defaults for its type when ``targets`` is None)."""
    require_peft()
    from peft import LoraConfig, TaskType, get_peft_model

    task_type = {"text2text": TaskType.SEQ_2_SEQ_LM, "causal": TaskType.CAUSAL_LM}.get(
        modelling, TaskType.SEQ_CLS
    )
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type=task_type
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        linear = sorted(
            {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if _adaptable(m)}
        )
        raise ValueError(
            f"--peft lora cannot wrap {type(model).__name__} (targets {targets or 'PEFT default'}):"
            f" {err}. Give --lora-targets from its linear modules: {', '.join(linear)}"
        ) from None


def _adaptable(module: Any) -> bool:
    return isinstance(module, nn.Linear | nn.Embedding | nn.Conv1d) or (
        type(module).__name__ == "Conv1D"  # GPT-2's linear layers
    )


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

    return PeftModel.from_pretrained(model, str(folder), is_trainable=True)


def merge_lora(model: nn.Module) -> nn.Module:
    """The base model of a LoRA ``model`` with its adapters merged into the adapted weights
    (``W + (alpha / r) B A``) and the saved modules in place of the originals: the same
    function as ``model``, the base's architecture. Its weights keep their
    ``requires_grad`` flags (the base's: off)."""
    return model.merge_and_unload()
