"""Training on the Hugging Face stack: ``SAMTrainer`` and its ``SAMConfig`` (whose SAM
options have ``samlm train``'s names: ``looksam_k``, ``sam_accumulation``...); Flat-LoRA
and BAR for LoRA models (``with_lora_flatness``). Names load on first use
(:mod:`samlm._lazy`): ``samlm.training.config`` imports without the Trainer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .bar import BAR
    from .config import SAMConfig
    from .flat_lora import FlatLoRA
    from .generation import CausalLMTrainer, SAMCausalLMTrainer
    from .lora_flatness import LoRAFlatnessMixin, with_lora_flatness
    from .trainer import SAMSeq2SeqTrainer, SAMTrainer

_WHERE = {
    "BAR": ".bar",
    "CausalLMTrainer": ".generation",
    "FlatLoRA": ".flat_lora",
    "LoRAFlatnessMixin": ".lora_flatness",
    "SAMCausalLMTrainer": ".generation",
    "SAMConfig": ".config",
    "SAMSeq2SeqTrainer": ".trainer",
    "SAMTrainer": ".trainer",
    "with_lora_flatness": ".lora_flatness",
}
__all__ = [
    "BAR",
    "CausalLMTrainer",
    "FlatLoRA",
    "LoRAFlatnessMixin",
    "SAMCausalLMTrainer",
    "SAMConfig",
    "SAMSeq2SeqTrainer",
    "SAMTrainer",
    "with_lora_flatness",
]  # the names _WHERE maps (tests/test_lazy.py)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)
