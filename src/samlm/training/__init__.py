"""Training on the Hugging Face stack: ``SAMTrainer`` and its ``SAMConfig``; Flat-LoRA
and BAR for LoRA models (``with_lora_flatness``)."""

from .bar import BAR
from .config import SAMConfig
from .flat_lora import FlatLoRA
from .generation import CausalLMTrainer, SAMCausalLMTrainer
from .lora_flatness import LoRAFlatnessMixin, with_lora_flatness
from .trainer import SAMSeq2SeqTrainer, SAMTrainer

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
]
